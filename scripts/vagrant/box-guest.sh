#!/usr/bin/env bash
# mmdebstrap customize hook of box.sh: turns the root at $1 into a Vagrant
# box's guest. $2 is the root file system's UUID, $3 Vagrant's insecure
# public key. Runs on the host; commands that must see the guest's own
# users run under chroot.
set -euo pipefail
root=$1 uuid=$2 key=$3

echo secrun-vagrant >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tsecrun-vagrant\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
printf 'UUID=%s / ext4 errors=remount-ro 0 1\n' "$uuid" >"$root/etc/fstab"

# The vagrant user, as every public box has it.
chroot "$root" useradd -m -s /bin/bash -U vagrant
install -d -m 0700 -o "$(chroot "$root" id -u vagrant)" -g "$(chroot "$root" id -g vagrant)" "$root/home/vagrant/.ssh"
install -m 0600 -o "$(chroot "$root" id -u vagrant)" -g "$(chroot "$root" id -g vagrant)" "$key" "$root/home/vagrant/.ssh/authorized_keys"
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/vagrant"
chmod 0440 "$root/etc/sudoers.d/vagrant"
# No reverse DNS: the guest may have no network at all.
echo 'UseDNS no' >"$root/etc/ssh/sshd_config.d/vagrant.conf"
# Host keys are made on first boot, so that no two VMs share them.
rm -f "$root"/etc/ssh/ssh_host_*
mkdir -p "$root/etc/systemd/system/ssh.service.d"
cat >"$root/etc/systemd/system/ssh.service.d/host-keys.conf" <<'UNIT'
[Service]
# Debian's unit checks the configuration first, which fails without host
# keys: make them before that check.
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT

# Network: DHCP on every Ethernet NIC (QEMU's user-mode network, or a
# provider's management network), except a NIC whose MAC is in the
# locally administered range 52:54:00:5e:c0:xx: that is the placeholder
# NIC the Vagrantfile's loopback networking adds (a QEMU socket that
# nothing joins); it gets a fixed link-local address for the guest agent to
# report to vagrant-libvirt, which wants an address before it goes on to
# the configured ssh host.
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/10-placeholder.network" <<'NET'
[Match]
MACAddress=52:54:00:5e:c0:01

[Link]
RequiredForOnline=no

[Network]
Address=169.254.77.2/24
ConfigureWithoutCarrier=yes
# Vagrant restarts systemd-networkd when it sets the hostname; the address
# must not flap then, or vagrant-libvirt finds no ssh info mid-run.
KeepConfiguration=static
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
cat >"$root/etc/systemd/network/20-dhcp.network" <<'NET'
[Match]
Type=ether

[Network]
DHCP=ipv4
IPv6AcceptRA=no
LinkLocalAddressing=no
NET
chroot "$root" systemctl enable systemd-networkd.service ssh.service >/dev/null 2>&1
# Do not wait two minutes for "online" at boot when a NIC has no carrier.
chroot "$root" systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1
# Nothing in the guest needs these timers; under emulation they cost minutes.
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer >/dev/null 2>&1 || true

# Boot: GRUB straight into the kernel, AppArmor on, console on the serial
# port (libvirt logs it), cgroup v2 only (systemd's default since 247).
kver=$(basename "$(ls -1 "$root"/boot/vmlinuz-* | sort -V | tail -n1)")
kver=${kver#vmlinuz-}
[ -f "$root/boot/initrd.img-$kver" ] || { echo "box-guest: no initrd for $kver" >&2; exit 1; }
grep -q '^CONFIG_SECURITY_APPARMOR=y' "$root/boot/config-$kver" || { echo "box-guest: kernel $kver has no AppArmor" >&2; exit 1; }
mkdir -p "$root/boot/grub/i386-pc"
cp /usr/lib/grub/i386-pc/*.mod /usr/lib/grub/i386-pc/*.lst "$root/boot/grub/i386-pc/"
cat >"$root/boot/grub/grub.cfg" <<CFG
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
menuentry "Debian $kver" {
	linux /boot/vmlinuz-$kver root=UUID=$uuid ro console=tty0 console=ttyS0,115200 apparmor=1 security=apparmor systemd.unified_cgroup_hierarchy=1 quiet
	initrd /boot/initrd.img-$kver
}
CFG
