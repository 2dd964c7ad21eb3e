#!/usr/bin/env bash
# Builds the conformance VM's guest from Debian packages only, or finds it
# in the cache: a kernel, an initramfs and an ext4 root image. Prints the
# image directory on stdout (vmlinuz, initrd.img, root.ext4, packages.txt).
#
# Packages come from the host's own apt configuration (apt-get download);
# nothing else is downloaded. The image is keyed by a hash of the resolved
# package versions and of the files that shape the image (this script and
# initramfs-init), so it is rebuilt only when one of those changes. The
# secrun binaries are not part of the image: run.sh brings them in on a
# separate payload disk on every run.
#
# Environment:
#   SECRUN_VM_CACHE    cache directory (default /var/cache/secrun-vm)
#   SECRUN_VM_KERNEL   kernel package (default linux-image-cloud-amd64)
#   SECRUN_VM_KEEP     images kept in the cache (default 3)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

# What the guest runs: the two runtimes secrun delegates to, AppArmor's
# parser, libseccomp for the cgo-linked secrun, busybox as the userland.
GUEST_PACKAGES=(runc crun apparmor libseccomp2 busybox-static)
KERNEL_PACKAGE=${SECRUN_VM_KERNEL:-linux-image-cloud-amd64}
# Modules the initramfs loads to reach the disks, in dependency order.
# Any that the kernel has built in are skipped.
INITRD_MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk)
# Bump when the layout of the image changes in a way no input shows.
IMAGE_FORMAT=2

[ "$(id -u)" = 0 ] || vm_die "$VM_EXIT_HOST" "building the VM image needs root (files in the image must be owned by root)" "run as root: sudo make conformance-vm"
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
	vm_die "$VM_EXIT_HOST" "apt-get and dpkg-deb are missing: the VM is built from Debian packages on a Debian host"
arch=$(dpkg --print-architecture)
[ "$arch" = amd64 ] || vm_die "$VM_EXIT_HOST" "the VM image is amd64 only; this host is $arch"
for t in mkfs.ext4 cpio ldconfig; do
	command -v "$t" >/dev/null || vm_die "$VM_EXIT_HOST" "$t is missing" "install it: apt-get install e2fsprogs cpio libc-bin"
done

mkdir -p "$VM_CACHE/debs" "$VM_CACHE/images"
# One build at a time per cache (concurrent CI jobs on one runner).
exec 9>"$VM_CACHE/lock"
flock -w 600 9 || vm_die "$VM_EXIT_IMAGE" "another image build holds $VM_CACHE/lock for over 10 minutes"
rm -rf "$VM_CACHE"/tmp.*
work=$(mktemp -d "$VM_CACHE/tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT

# apt_resolve PKG...: "name=version" of PKG and everything it depends on
# (no recommends), as apt would install it on an empty system.
apt_resolve() {
	apt-get -s -q -o Dir::State::status=/dev/null \
		-o APT::Install-Recommends=false -o APT::Install-Suggests=false \
		install "$@" 2>"$work/apt.err" |
		awk '/^Inst /{ v = $3; gsub(/[()]/, "", v); print $2 "=" v }'
}

resolve_all() {
	apt_resolve "${GUEST_PACKAGES[@]}" >"$work/guest.pkgs" || return 1
	apt_resolve "$KERNEL_PACKAGE" | grep -E '^linux-image-[0-9]' >"$work/kernel.pkgs" || return 1
	[ -s "$work/guest.pkgs" ] && [ "$(wc -l <"$work/kernel.pkgs")" = 1 ]
}

# Resolving takes apt a second or two; reuse the answer while the package
# lists, the apt configuration and the requested packages are unchanged.
apt_state=$({
	echo "${GUEST_PACKAGES[*]} | $KERNEL_PACKAGE"
	find /var/lib/apt/lists /etc/apt -maxdepth 2 -type f ! -name lock -printf '%p %s %T@\n' 2>/dev/null | sort
} | sha256sum | cut -c1-16)
resolved=$VM_CACHE/resolved-$apt_state
if [ -s "$resolved/guest.pkgs" ] && [ -s "$resolved/kernel.pkgs" ]; then
	cp "$resolved/guest.pkgs" "$resolved/kernel.pkgs" "$work/"
elif ! resolve_all; then
	# A fresh machine may have no package lists yet.
	vm_log "resolving packages failed; running apt-get update once"
	apt-get update -q >"$work/update.log" 2>&1 || {
		cat "$work/update.log" >&2
		vm_die "$VM_EXIT_PACKAGES" "apt-get update failed" "the VM is built from the Debian packages of this host's apt sources; fix apt first"
	}
	resolve_all || {
		cat "$work/apt.err" >&2
		vm_die "$VM_EXIT_PACKAGES" "cannot resolve the guest packages (${GUEST_PACKAGES[*]}) or kernel package $KERNEL_PACKAGE from the host's apt sources" \
			"check: apt-get -s install ${GUEST_PACKAGES[*]} $KERNEL_PACKAGE" \
			"set SECRUN_VM_KERNEL to another kernel package (one with AppArmor, e.g. linux-image-amd64)"
	}
fi

if [ ! -s "$resolved/guest.pkgs" ]; then
	rm -rf "$VM_CACHE"/resolved-*
	mkdir -p "$resolved"
	cp "$work/guest.pkgs" "$work/kernel.pkgs" "$resolved/"
fi

kernel_pkg=$(cut -d= -f1 "$work/kernel.pkgs")
key=$({
	echo "format=$IMAGE_FORMAT arch=$arch modules=${INITRD_MODULES[*]}"
	sort "$work/guest.pkgs" "$work/kernel.pkgs"
	sha256sum <"$here/image.sh"
	sha256sum <"$here/initramfs-init"
} | sha256sum | cut -c1-16)
img=$VM_CACHE/images/$key

if [ -f "$img/done" ]; then
	touch "$img/done"
	vm_log "image $key cached ($kernel_pkg)"
	echo "$img"
	exit 0
fi

start=$(vm_now)
vm_log "building image $key: $kernel_pkg + $(wc -l <"$work/guest.pkgs") packages"

# deb_path NAME=VERSION: where apt-get download puts it (epoch ':' -> %3a).
deb_path() {
	local name=${1%%=*} ver=${1#*=}
	ls "$VM_CACHE/debs/${name}_${ver//:/%3a}_"*.deb 2>/dev/null | head -n1
}

missing=()
while read -r p; do
	[ -n "$(deb_path "$p")" ] || missing+=("$p")
done < <(cat "$work/guest.pkgs" "$work/kernel.pkgs")
if [ ${#missing[@]} -gt 0 ]; then
	vm_log "downloading ${#missing[@]} packages with apt-get download"
	if ! (cd "$VM_CACHE/debs" && apt-get download -q -o APT::Sandbox::User=root "${missing[@]}") >"$work/download.log" 2>&1; then
		tail -n 20 "$work/download.log" >&2
		vm_die "$VM_EXIT_PACKAGES" "apt-get download failed for: ${missing[*]}" \
			"the VM needs these Debian packages from the host's apt sources; is the mirror reachable? (apt-get update)"
	fi
fi

# Kernel: vmlinuz and the few modules the initramfs needs.
kdir=$work/kernel
dpkg-deb -x "$(deb_path "$(cat "$work/kernel.pkgs")")" "$kdir" ||
	vm_die "$VM_EXIT_IMAGE" "cannot unpack kernel package $kernel_pkg"
kver=$(ls "$kdir/lib/modules")
vmlinuz="$kdir/boot/vmlinuz-$kver"
[ -f "$vmlinuz" ] || vm_die "$VM_EXIT_IMAGE" "kernel package $kernel_pkg has no /boot/vmlinuz-$kver"
grep -q '^CONFIG_SECURITY_APPARMOR=y' "$kdir/boot/config-$kver" ||
	vm_die "$VM_EXIT_IMAGE" "kernel $kver has no AppArmor (CONFIG_SECURITY_APPARMOR); choose another SECRUN_VM_KERNEL"

# Root: the guest packages unpacked (no maintainer scripts are needed:
# nothing here is a service), busybox for everything else. The layout is
# merged-/usr, as Debian installs it since bookworm; tar keeps the
# /bin -> usr/bin style links whether a package ships /lib or /usr/lib.
root=$work/root
mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib" "$root/usr/lib64"
for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done
while read -r p; do
	{ dpkg-deb --fsys-tarfile "$(deb_path "$p")" | tar -x --keep-directory-symlink -C "$root"; } ||
		vm_die "$VM_EXIT_IMAGE" "cannot unpack $p"
done <"$work/guest.pkgs"
[ -e "$root/lib64/ld-linux-x86-64.so.2" ] || vm_die "$VM_EXIT_IMAGE" "the guest root has no /lib64/ld-linux-x86-64.so.2 after unpacking libc6"
rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/locale" "$root/usr/share/info" "$root/usr/share/lintian"
"$root/bin/busybox" --list-full | while read -r applet; do
	[ -e "$root/$applet" ] || [ -L "$root/$applet" ] || {
		mkdir -p "$root/$(dirname "$applet")"
		ln -s /bin/busybox "$root/$applet"
	}
done
mkdir -p "$root"/{proc,sys,dev,run,tmp,payload,root,var/log,var/lib,etc/secrun}
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
echo secrun-vm >"$root/etc/hostname"
echo 'include /etc/ld.so.conf.d/*.conf' >"$root/etc/ld.so.conf"
ln -sf /proc/mounts "$root/etc/mtab"
ldconfig -r "$root" || vm_die "$VM_EXIT_IMAGE" "ldconfig failed on the guest root"
for b in runc crun apparmor_parser; do
	[ -n "$(find "$root/usr" -name "$b" -type f 2>/dev/null | head -n1)" ] ||
		vm_die "$VM_EXIT_IMAGE" "the guest root has no $b after unpacking the packages"
done
cp "$work/guest.pkgs" "$root/etc/secrun/vm-packages.txt"

# Initramfs: busybox, the virtio modules, initramfs-init as /init.
ird=$work/initrd
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,lib/modules}
cp "$root/bin/busybox" "$ird/bin/busybox"
cp "$here/initramfs-init" "$ird/init"
chmod 0755 "$ird/init"
: >"$ird/lib/modules/order"
for m in "${INITRD_MODULES[@]}"; do
	ko=$(find "$kdir/lib/modules/$kver" -name "$m.ko*" | head -n1)
	if [ -z "$ko" ]; then
		grep -q "/$m.ko\$" "$kdir/lib/modules/$kver/modules.builtin" ||
			vm_die "$VM_EXIT_IMAGE" "kernel $kver has no module $m (needed to reach the virtio disks)"
		continue
	fi
	case $ko in
	*.ko) cp "$ko" "$ird/lib/modules/$m.ko" ;;
	*.ko.xz) xz -dc "$ko" >"$ird/lib/modules/$m.ko" || vm_die "$VM_EXIT_IMAGE" "cannot decompress $m.ko.xz" "install xz-utils" ;;
	*.ko.zst) zstd -qdc "$ko" >"$ird/lib/modules/$m.ko" || vm_die "$VM_EXIT_IMAGE" "cannot decompress $m.ko.zst" "install zstd" ;;
	*) vm_die "$VM_EXIT_IMAGE" "unsupported module file $ko" ;;
	esac
	echo "$m" >>"$ird/lib/modules/order"
done

out=$work/out
mkdir -p "$out"
cp "$vmlinuz" "$out/vmlinuz"
(cd "$ird" && find . | cpio -o -H newc -R 0:0 --quiet) >"$out/initrd.img" ||
	vm_die "$VM_EXIT_IMAGE" "cpio failed building the initramfs"
# The root disk is attached read-only-in-effect (QEMU snapshot=on), so it
# needs only a little free space for the guest's writes during one boot.
size=$(($(du -sm "$root" | cut -f1) + 384))
mkfs.ext4 -q -F -L secrun-root -O ^has_journal -d "$root" "$out/root.ext4" "${size}M" >"$work/mkfs.err" 2>&1 || {
	cat "$work/mkfs.err" >&2
	vm_die "$VM_EXIT_IMAGE" "mkfs.ext4 -d failed building the root image" "is there space in $VM_CACHE? (mkfs.ext4 -d needs e2fsprogs 1.43 or newer)"
}
{
	echo "kernel $kernel_pkg=$(cut -d= -f2 "$work/kernel.pkgs") ($kver)"
	cat "$work/guest.pkgs"
} >"$out/packages.txt"
echo "$kver" >"$out/kernel-version"
date -u +%FT%TZ >"$out/done"

rm -rf "$img"
mv "$out" "$img"
vm_log "image $key built in $(vm_elapsed "$start") s ($(du -sh --apparent-size "$img/root.ext4" | cut -f1) root, $(du -sh "$img/root.ext4" | cut -f1) on disk)"

# Keep the newest few images (a cache hit touches "done"), and the
# packages used in the last 30 days.
keep=${SECRUN_VM_KEEP:-3}
ls -1t "$VM_CACHE"/images/*/done 2>/dev/null | tail -n +$((keep + 1)) | while read -r old; do
	rm -rf "$(dirname "$old")"
done
while read -r p; do touch "$(deb_path "$p")"; done < <(cat "$work/guest.pkgs" "$work/kernel.pkgs")
find "$VM_CACHE/debs" -name "*.deb" -mtime +30 -delete
echo "$img"
