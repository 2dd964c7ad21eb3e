#!/usr/bin/env bash
# `make test-vagrant`: the project's own Vagrantfile, brought up with the
# libvirt provider on this machine, runs the conformance suite in a Debian
# VM with AppArmor; the reports come back to _out/conformance-vagrant and
# `secrunctl conformance verify` fails the run on any failed check or on
# skipped AppArmor checks.
#
# Offline and loopback-only: the box is built here from Debian packages
# (box.sh, cached), secrun, secrunctl and the probe are built here (an
# emulated guest would take minutes), and libvirt, QEMU and Vagrant run in
# private mount and network namespaces (isolated.sh), so that no libvirt
# network, bridge or address appears on this machine. The VM is destroyed
# and libvirtd stopped on every exit; afterwards this script checks that
# they are gone, that the host has no new interface and no new address
# outside 127.0.0.0/8, and that /dev/kvm has its owner and mode.
#
# Needs root on Debian 12 amd64. Installs its packages with apt.
#
# Environment:
#   SECRUN_VAGRANT_ACCEL  auto (default): KVM when /dev/kvm is usable and
#                         the CPU has vmx or svm, else TCG; kvm; tcg
#   SECRUN_VAGRANT_OUT    report directory (default _out/conformance-vagrant)
#   SECRUN_VAGRANT_CACHE  boxes, packages, Vagrant's home (default
#                         /var/cache/secrun/vagrant)
#   SECRUN_VAGRANT_CPUS, SECRUN_VAGRANT_MEM  guest size (2, 2048)
#   SECRUN_VAGRANT_REQUIRE  settings that must run with nothing skipped
#                         (default apparmor)
#   SECRUN_VAGRANT_HOLD   1: keep the VM after the suite and print how to
#                         reach it (debugging; never in CI)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=../vm/lib.sh
. "$here/../vm/lib.sh"
# shellcheck source=lib.sh
. "$here/lib.sh"
cd "$repo"
export PATH=/usr/local/go/bin:$PATH

out=${SECRUN_VAGRANT_OUT:-_out/conformance-vagrant}
[ "$(id -u)" = 0 ] || vagrant_die "make test-vagrant runs libvirt and QEMU; run it as root"
[ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ] || vagrant_die "make test-vagrant needs a Debian amd64 host"
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
: >"$out/stages.txt"
total_start=$(vm_now)

VAGRANT_STAGES=$out/stages.txt
stage() { vagrant_stage "$@"; }

# ---- packages ----
PACKAGES=(vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils
	mmdebstrap grub-pc-bin fdisk e2fsprogs rsync openssh-client iproute2 util-linux)
install_packages() {
	local missing
	missing=$(dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' "${PACKAGES[@]}" 2>&1 | awk '$1 != "ii" { print $NF }' || true)
	[ -n "$missing" ] || return 0
	vagrant_log "installing: $(echo $missing)"
	# On a host with systemd, installing libvirt-daemon-system starts
	# libvirtd, which starts the "default" NAT network. policy-rc.d is
	# Debian's switch for "start no services from maintainer scripts";
	# it is removed right after (and left alone when the host has one).
	local guard=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		guard=1
	fi
	local rc=0
	# shellcheck disable=SC2086 # one word per package
	{ apt-get -o DPkg::Lock::Timeout=600 update -q &&
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $missing; } >"$out/apt.log" 2>&1 || rc=$?
	[ -z "$guard" ] || rm -f /usr/sbin/policy-rc.d
	[ "$rc" = 0 ] || { tail -n 20 "$out/apt.log" >&2; vagrant_die "apt-get install failed (log: $out/apt.log)"; }
}
stage packages install_packages

# ---- box ----
box_file=
make_box() { box_file=$("$here/box.sh"); }
stage box make_box
box_key=$(basename "$box_file" .box)
box_name=secrun-local/bookworm-$box_key

# ---- binaries, built here: the guest only runs them ----
bin=$out/bin
build() {
	mkdir -p "$bin"
	go build -trimpath -o "$bin/secrun" ./cmd/secrun &&
		go build -trimpath -o "$bin/secrunctl" ./cmd/secrunctl &&
		CGO_ENABLED=0 go build -trimpath -o "$bin/conformance-probe" ./conformance/probe
}
stage build build

# ---- accelerator ----
accel=${SECRUN_VAGRANT_ACCEL:-auto}
case $accel in
auto)
	if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qE '^flags.* (vmx|svm)( |$)' /proc/cpuinfo; then
		accel=kvm
	else
		accel=tcg
		vagrant_log "no usable KVM here (/dev/kvm missing, or the CPU has no vmx/svm): the guest runs under TCG, software emulation"
	fi
	;;
kvm | tcg) ;;
*) vagrant_die "SECRUN_VAGRANT_ACCEL=$accel: use auto, kvm or tcg" ;;
esac
driver=qemu
[ "$accel" = tcg ] || driver=kvm

# ---- the VM, in private namespaces ----
host_addrs() { ip -o addr show | awk '{ print $2, $4 }' | sort; }
host_links() { ip -o link show | awk -F': ' '{ print $2 }' | sort; }
host_kvm() { stat -c '%U:%G %a' /dev/kvm 2>/dev/null || echo none; }
host_addrs >"$out/host-addrs.before"
host_links >"$out/host-links.before"
kvm_before=$(host_kvm)
state=$(mktemp -d /var/tmp/secrun-vagrant.XXXXXX)
finish() {
	local rc=$?
	trap - EXIT
	# isolated.sh stops libvirtd in its own trap; should it have been
	# killed before, stop what it started, by pid.
	if [ -f "$state/libvirtd.pid" ]; then
		p=$(cat "$state/libvirtd.pid")
		if kill -0 "$p" 2>/dev/null && [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = /usr/sbin/libvirtd ]; then
			vagrant_log "stopping libvirtd $p left running"
			kill "$p" || true
		fi
	fi
	rm -rf "$state"
	exit "$rc"
}
trap finish EXIT
export SECRUN_VAGRANT_CACHE=$VAGRANT_CACHE
vm_rc=0
stage vm unshare --mount --net --propagation private \
	"$here/isolated.sh" "$state" "$out" "$bin" "$box_file" "$box_name" "$driver" || vm_rc=$?
cat "$state/stages" >>"$out/stages.txt" 2>/dev/null || true

# ---- nothing left behind ----
leftover() {
	local bad=0 p
	host_addrs >"$out/host-addrs.after"
	host_links >"$out/host-links.after"
	while read -r dev addr; do
		case $addr in
		127.* | ::1/*) ;;
		*)
			vagrant_log "ERROR: a new address appeared on the host: $addr on $dev"
			bad=1
			;;
		esac
	done < <(comm -13 "$out/host-addrs.before" "$out/host-addrs.after")
	if comm -13 "$out/host-links.before" "$out/host-links.after" | grep -q .; then
		vagrant_log "ERROR: new network interfaces on the host: $(comm -13 "$out/host-links.before" "$out/host-links.after" | tr '\n' ' ')"
		bad=1
	fi
	if [ "$(host_kvm)" != "$kvm_before" ]; then
		vagrant_log "ERROR: /dev/kvm changed from $kvm_before to $(host_kvm)"
		bad=1
	fi
	if [ -f "$state/libvirtd.pid" ] && kill -0 "$(cat "$state/libvirtd.pid")" 2>/dev/null; then
		vagrant_log "ERROR: libvirtd $(cat "$state/libvirtd.pid") is still running"
		bad=1
	fi
	for p in "$state"/run/qemu/*.pid; do
		[ -f "$p" ] || continue
		if kill -0 "$(cat "$p")" 2>/dev/null; then
			vagrant_log "ERROR: QEMU $(cat "$p") is still running"
			bad=1
		fi
	done
	return "$bad"
}
leftover_rc=0
stage leftover-check leftover || leftover_rc=$?

# ---- the verdict, from the reports ----
reports=()
for f in report.json validity.json; do [ -f "$out/$f" ] && reports+=("$out/$f"); done
verify_rc=0
if [ ${#reports[@]} != 2 ]; then
	vagrant_log "ERROR: the VM sent back ${#reports[@]} of 2 reports (report.json, validity.json); see $out"
	verify_rc=1
else
	stage verify "$bin/secrunctl" conformance verify --require "${SECRUN_VAGRANT_REQUIRE:-apparmor}" "${reports[@]}" || verify_rc=$?
fi

echo
echo "== make test-vagrant ($accel): seconds per stage"
awk '{ printf "  %-16s %7.1f%s\n", $1, $2, ($3 == 0 ? "" : "  (exit " $3 ")") }' "$out/stages.txt"
printf '  %-16s %7.1f\n' total "$(vm_elapsed "$total_start")"
echo "reports in $out"
[ "$vm_rc" = 0 ] && [ "$leftover_rc" = 0 ] && [ "$verify_rc" = 0 ]
