#!/usr/bin/env bash
# Builds a libvirt Vagrant box of Debian 12 from Debian packages only, or
# finds it in the cache, and prints the .box file's path on stdout.
#
# The box is what `vagrant up` needs where no box can be downloaded (CI,
# offline machines): the packages the Vagrantfile's provisioner installs
# are already in it, AppArmor is on, systemd runs with cgroup v2, the
# `vagrant` user has Vagrant's well-known insecure key (Vagrant replaces it
# on first boot, as with any public box) and passwordless sudo, and the
# qemu guest agent reports the addresses vagrant-libvirt asks for.
#
# No loop device, no mount: mmdebstrap builds the root in a directory,
# mkfs.ext4 -d writes it into the partition of a sparse raw disk at its
# offset, and GRUB's boot.img and core.img are written to the disk's first
# sectors by hand (grub-install cannot map a partition without udev).
#
# The box is keyed by the resolved versions of every package that goes in
# (and of the host's GRUB, whose images are embedded) and by this script,
# like scripts/vm/image.sh keys its image.
#
# Environment:
#   SECRUN_VAGRANT_CACHE  cache directory (default /var/cache/secrun/vagrant)
#   SECRUN_VAGRANT_KEEP   boxes kept in the cache (default 2)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../vm/lib.sh
. "$here/../vm/lib.sh"
# shellcheck source=lib.sh
. "$here/lib.sh"

SUITE=bookworm
# What the guest needs to boot and be reached by Vagrant...
BASE_PACKAGES=(linux-image-cloud-amd64 initramfs-tools systemd systemd-sysv udev dbus
	openssh-server sudo qemu-guest-agent rsync iproute2 e2fsprogs ca-certificates)
# ...and what the Vagrantfile's "tools" provisioner installs (keep the two
# lists in step: the guest has no network, so anything missing here makes
# the provisioner fail).
TOOL_PACKAGES=(runc crun apparmor apparmor-utils libseccomp2 libseccomp-dev
	busybox-static pkg-config gcc libc6-dev make git curl)
DISK_GB=20
# Bump when the box changes in a way no input shows.
BOX_FORMAT=1

[ "$(id -u)" = 0 ] || vagrant_die "building the box needs root (files in it must be owned by root)"
for t in mmdebstrap mkfs.ext4 sfdisk grub-mkimage qemu-img; do
	command -v "$t" >/dev/null || vagrant_die "$t is missing" "install: apt-get install mmdebstrap e2fsprogs fdisk grub-pc-bin qemu-utils"
done
grub_dir=/usr/lib/grub/i386-pc
[ -f "$grub_dir/boot.img" ] || vagrant_die "$grub_dir/boot.img is missing" "install: apt-get install grub-pc-bin"
vagrant_key=$(find /usr/share/rubygems-integration /usr/lib/ruby /opt/vagrant -path '*/keys/vagrant.pub' 2>/dev/null | head -n1 || true)
[ -n "$vagrant_key" ] || vagrant_die "Vagrant's insecure public key (keys/vagrant.pub) was not found" "install: apt-get install vagrant"

mkdir -p "$VAGRANT_CACHE/boxes" "$VAGRANT_CACHE/debs"
exec 9>"$VAGRANT_CACHE/box.lock"
flock -w 900 9 || vagrant_die "another box build holds $VAGRANT_CACHE/box.lock for over 15 minutes"
rm -rf "$VAGRANT_CACHE"/tmp.*
work=$(mktemp -d "$VAGRANT_CACHE/tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The key: every package version mmdebstrap will install. Its apt variant
# installs the Essential:yes set plus apt plus the packages named; resolving
# the host's Essential names with those gives the same set.
mapfile -t essential < <(dpkg-query -Wf '${Package} ${Essential}\n' | awk '$2 == "yes" { print $1 }')
resolve() {
	apt-get -s -q -o Dir::State::status=/dev/null \
		-o APT::Install-Recommends=false -o APT::Install-Suggests=false \
		install "${essential[@]}" apt "${BASE_PACKAGES[@]}" "${TOOL_PACKAGES[@]}" 2>"$work/apt.err" |
		awk '/^Inst /{ v = $3; gsub(/[()]/, "", v); print $2 "=" v }' | sort >"$work/packages.txt"
	[ -s "$work/packages.txt" ]
}
# Resolving takes apt many seconds on a loaded machine; reuse the answer
# while the package lists, the apt configuration and the names are the same.
apt_state=$({
	echo "${essential[*]} | ${BASE_PACKAGES[*]} | ${TOOL_PACKAGES[*]}"
	find /var/lib/apt/lists /etc/apt -maxdepth 2 -type f ! -name lock -printf '%p %s %T@\n' 2>/dev/null | sort
} | sha256sum | cut -c1-16)
resolved=$VAGRANT_CACHE/resolved-$apt_state.txt
if [ -s "$resolved" ]; then
	cp "$resolved" "$work/packages.txt"
elif ! resolve; then
	vagrant_log "resolving the box's packages failed; running apt-get update once"
	apt-get -o DPkg::Lock::Timeout=600 update -q >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; vagrant_die "apt-get update failed"; }
	resolve || { cat "$work/apt.err" >&2; vagrant_die "cannot resolve the box's packages from the host's apt sources" \
		"check: apt-get -s install ${BASE_PACKAGES[*]} ${TOOL_PACKAGES[*]}"; }
fi
if [ ! -s "$resolved" ]; then
	rm -f "$VAGRANT_CACHE"/resolved-*.txt
	cp "$work/packages.txt" "$resolved"
fi
key=$({
	echo "format=$BOX_FORMAT suite=$SUITE disk=$DISK_GB"
	cat "$work/packages.txt"
	dpkg-query -W grub-pc-bin
	sha256sum <"$vagrant_key"
	sha256sum <"$0"
	sha256sum <"$here/box-guest.sh"
} | sha256sum | cut -c1-16)
box=$VAGRANT_CACHE/boxes/$key.box
if [ -s "$box" ]; then
	touch "$box"
	vagrant_log "box $key cached"
	echo "$box"
	exit 0
fi

start=$(vm_now)
vagrant_log "building box $key: $(wc -l <"$work/packages.txt") packages from the host's apt sources"
root=$work/root
uuid=$(cat /proc/sys/kernel/random/uuid)
sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
	[ -s "$f" ] && sources+=("$f")
done
[ ${#sources[@]} -gt 0 ] || vagrant_die "the host has no apt sources; the box is built from them"
include=$(IFS=,; echo "${BASE_PACKAGES[*]},${TOOL_PACKAGES[*]}")
# The downloaded .debs are kept in the cache, so a rebuild after one
# package update downloads only that package.
mmdebstrap --variant=apt --include="$include" \
	--aptopt='APT::Install-Recommends "false"' \
	--dpkgopt=force-unsafe-io \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
	--skip=download/empty --skip=essential/unlink \
	--setup-hook="mkdir -p \"\$1\"/var/cache/apt/archives" \
	--setup-hook="sync-in '$VAGRANT_CACHE/debs' /var/cache/apt/archives" \
	--customize-hook="sync-out /var/cache/apt/archives '$VAGRANT_CACHE/debs'" \
	--customize-hook="'$here/box-guest.sh' \"\$1\" '$uuid' '$vagrant_key'" \
	--customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
	"$SUITE" "$root" "${sources[@]}" >"$work/mmdebstrap.log" 2>&1 || {
	tail -n 30 "$work/mmdebstrap.log" >&2
	vagrant_die "mmdebstrap failed building the box's root" "the log is above; the packages come from the host's apt sources"
}
vagrant_log "root built in $(vm_elapsed "$start") s ($(du -sm "$root" | cut -f1) MB)"

# Disk: MBR, one ext4 partition from 1 MiB to the end, GRUB in the gap.
disk=$work/box.img
truncate -s "${DISK_GB}G" "$disk"
echo 'start=2048, type=83, bootable' | sfdisk -q "$disk"
part_sectors=$(($(stat -c %s "$disk") / 512 - 2048))
mkfs.ext4 -q -F -U "$uuid" -L root -E offset=$((2048 * 512)) -d "$root" "$disk" "$((part_sectors / 8))" >"$work/mkfs.err" 2>&1 ||
	{ cat "$work/mkfs.err" >&2; vagrant_die "mkfs.ext4 -d failed writing the box's root"; }
grub-mkimage -O i386-pc -o "$work/core.img" -p '(hd0,msdos1)/boot/grub' \
	biosdisk part_msdos ext2 normal linux configfile echo search serial terminal ||
	vagrant_die "grub-mkimage failed"
[ "$(stat -c %s "$work/core.img")" -lt $((2047 * 512)) ] || vagrant_die "GRUB's core.img does not fit before the partition"
# boot.img's code only (446 bytes: the partition table stays), core.img
# from sector 1, where boot.img looks for it; grub-mkimage has already
# written core.img's own length into its first sector's block list.
dd if="$grub_dir/boot.img" of="$disk" bs=446 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$disk" bs=512 seek=1 conv=notrunc status=none

qemu-img convert -c -O qcow2 "$disk" "$work/box.qcow2"
rm -f "$disk"
mv "$work/box.qcow2" "$work/box.img"
cat >"$work/metadata.json" <<EOF
{"provider": "libvirt", "format": "qcow2", "virtual_size": $DISK_GB}
EOF
cat >"$work/Vagrantfile" <<'EOF'
# Box built by secrun's scripts/vagrant/box.sh from Debian packages.
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.disk_bus = "virtio"
  end
end
EOF
tar -C "$work" -cf "$work/out.box" metadata.json Vagrantfile box.img
mv "$work/out.box" "$box"
cp "$work/packages.txt" "$VAGRANT_CACHE/boxes/$key.packages.txt"
vagrant_log "box $key built in $(vm_elapsed "$start") s ($(du -sh "$box" | cut -f1))"

keep=${SECRUN_VAGRANT_KEEP:-2}
ls -1t "$VAGRANT_CACHE"/boxes/*.box 2>/dev/null | tail -n +$((keep + 1)) | while read -r old; do
	rm -f "$old" "${old%.box}.packages.txt"
done
find "$VAGRANT_CACHE/debs" -name '*.deb' -mtime +30 -delete
echo "$box"
