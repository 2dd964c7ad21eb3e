#!/usr/bin/env bash
# `make conformance-vm`: runs secrun's conformance suite in a disposable
# QEMU VM, so that loaded AppArmor profiles, sysctls and cgroups never touch
# the host. The VM has a Debian kernel with AppArmor and a pure cgroup v2
# hierarchy; its userland is runc, crun, apparmor, libseccomp and busybox,
# unpacked from Debian packages (image.sh, cached). The binaries under test
# (bin/secrun, bin/secrunctl, the probe) and the guest scripts go in on a
# small payload disk built on every run; the guest writes its reports back
# to that disk and powers off, and this script reads them with debugfs.
#
#   scripts/vm/run.sh            run the matrix, write _out/conformance-vm
#   scripts/vm/run.sh --shell    boot the same VM with a shell on this terminal
#
# Environment (all optional):
#   SECRUN_VM_OUT      report directory (default _out/conformance-vm)
#   SECRUN_VM_CACHE    image and package cache (default /var/cache/secrun-vm)
#   SECRUN_VM_ACCEL    auto (KVM when it works, else TCG), kvm or tcg
#   SECRUN_VM_TIMEOUT  seconds the guest may run before it is killed (480; 960 with SECRUN_VM_VALIDITY)
#   SECRUN_VM_CPUS, SECRUN_VM_MEM   guest CPUs (host's, at most 4) and MiB (2048)
#   SECRUN_VM_CPU      QEMU CPU model (max under TCG, host under KVM)
#   SECRUN_VM_POLICY   --policy for cases without a RuntimeClass
#   SECRUN_VM_VALIDITY=1  add --validity
#   SECRUN_VM_ROWS     matrix rows (secrun-runc secrun-crun runc crun); rows
#                      not named secrun-* are comparison rows, not gating
#   SECRUN_VM_REQUIRE  comma-separated settings whose checks each gating row
#                      must run, none skipped (apparmor)
#   SECRUN_VM_QUIET=1  do not stream the guest console
#   SECRUN_VM_KERNEL   kernel package (linux-image-cloud-amd64)
#   SECRUN_VM_QEMU     QEMU binary (qemu-system-x86_64)
#   SECRUN_VM_INIT     the guest's first program (/payload/guest-init.sh)
#
# Exit status: 0 all gating checks passed; 1 a check failed in the VM;
# 2 host problem (not root, QEMU missing); 3 packages; 4 image build;
# 5 the VM did not boot or report (see lib.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

mode=run
case ${1:-} in
"") ;;
--shell) mode=shell ;;
-h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
*) vm_die "$VM_EXIT_HOST" "unknown argument $1" "usage: scripts/vm/run.sh [--shell]" ;;
esac

export PATH=$PATH:/usr/local/go/bin
t_start=$(vm_now)
out=${SECRUN_VM_OUT:-$repo/_out/conformance-vm}
# --validity runs every container a second time, as its twin.
default_timeout=480
[ -n "${SECRUN_VM_VALIDITY:-}" ] && default_timeout=960
timeout_s=${SECRUN_VM_TIMEOUT:-$default_timeout}
accel=${SECRUN_VM_ACCEL:-auto}
cpus=${SECRUN_VM_CPUS:-$(n=$(nproc); [ "$n" -gt 4 ] && n=4; echo "$n")}
mem=${SECRUN_VM_MEM:-2048}

[ "$(id -u)" = 0 ] || vm_die "$VM_EXIT_HOST" "make conformance-vm needs root (it installs QEMU with apt and builds a root image owned by root)" "run: sudo make conformance-vm"

# Host tools, installed from Debian on a fresh machine.
need=()
qemu=${SECRUN_VM_QEMU:-qemu-system-x86_64}
command -v "$qemu" >/dev/null || need+=(qemu-system-x86)
command -v debugfs >/dev/null && command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v cpio >/dev/null || need+=(cpio)
if [ ${#need[@]} -gt 0 ]; then
	vm_log "installing ${need[*]} (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	aptlog=$(mktemp)
	{ apt-get install -y -q --no-install-recommends "${need[@]}" >"$aptlog" 2>&1 ||
		{ apt-get update -q && apt-get install -y -q --no-install-recommends "${need[@]}"; } >>"$aptlog" 2>&1; } || {
		tail -n 20 "$aptlog" >&2
		rm -f "$aptlog"
		vm_die "$VM_EXIT_HOST" "QEMU or its tools are missing and could not be installed: ${need[*]}" \
			"install them by hand: apt-get install --no-install-recommends qemu-system-x86 e2fsprogs cpio"
	}
	rm -f "$aptlog"
fi
command -v "$qemu" >/dev/null || vm_die "$VM_EXIT_HOST" "QEMU ($qemu) is missing" "install it: apt-get install --no-install-recommends qemu-system-x86"
qemu_version=$("$qemu" --version | head -n1) && [ -n "$qemu_version" ] ||
	vm_die "$VM_EXIT_HOST" "QEMU ($qemu) does not run" "reinstall it: apt-get install --reinstall qemu-system-x86"

# The binaries under test.
for b in secrun secrunctl; do
	[ -x "$repo/bin/$b" ] || vm_die "$VM_EXIT_HOST" "bin/$b is missing" "build first: make build (make conformance-vm does)"
done

# The guest image (cached).
t0=$(vm_now)
img=$("$here/image.sh") || exit $?
t_image=$(vm_elapsed "$t0")
kver=$(cat "$img/kernel-version")

work=$(mktemp -d "${TMPDIR:-/tmp}/secrun-vm.XXXXXX")
qpid='' tpid=''
cleanup() {
	[ -n "$qpid" ] && kill "$qpid" 2>/dev/null
	[ -n "$tpid" ] && kill "$tpid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rows=${SECRUN_VM_ROWS:-secrun-runc secrun-crun runc crun}

# The payload disk: binaries under test, guest scripts, settings, and an
# empty results directory the guest fills.
t0=$(vm_now)
pl=$work/payload
mkdir -p "$pl/bin" "$pl/results"
cp "$repo/bin/secrun" "$repo/bin/secrunctl" "$pl/bin/"
# The probe is the whole rootfs of the full suite's test containers; the
# guest has no Go, so it is built here (static).
if [ -d "$repo/conformance/probe" ]; then
	command -v go >/dev/null || vm_die "$VM_EXIT_HOST" "Go is missing: the conformance probe is built on the host" "install Go 1.24 or newer (/usr/local/go/bin is searched)"
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$pl/bin/probe" ./conformance/probe) 2>"$work/probe.err" || {
		cat "$work/probe.err" >&2
		vm_die "$VM_EXIT_IMAGE" "building the conformance probe (CGO_ENABLED=0 go build ./conformance/probe) failed"
	}
fi
cp "$here/guest-init.sh" "$here/guest-run.sh" "$pl/"
chmod 0755 "$pl"/*.sh
{
	[ -n "${SECRUN_VM_POLICY:-}" ] && echo "SECRUN_VM_POLICY='$SECRUN_VM_POLICY'"
	[ -n "${SECRUN_VM_VALIDITY:-}" ] && echo "SECRUN_VM_VALIDITY=1"
	echo "SECRUN_VM_ROWS='$rows'"
	echo "SECRUN_PROBE=/payload/bin/probe"
	echo "export SECRUN_PROBE"
} >"$pl/vm.env"
size=$(($(du -sm "$pl" | cut -f1) + 256))
mkfs.ext4 -q -F -L secrun-payload -O ^has_journal -d "$pl" "$work/payload.ext4" "${size}M" >"$work/mkfs.log" 2>&1 || {
	cat "$work/mkfs.log" >&2
	vm_die "$VM_EXIT_IMAGE" "mkfs.ext4 -d failed building the payload disk"
}
t_payload=$(vm_elapsed "$t0")

kvm_usable() {
	[ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo
}

# qemu_cmd ACCEL [CMDLINE_EXTRA]: the QEMU command line, in "${q[@]}".
qemu_cmd() {
	local cpu=${SECRUN_VM_CPU:-max}
	[ "$1" = kvm ] && cpu=${SECRUN_VM_CPU:-host}
	q=("$qemu" -name secrun-conformance -machine pc -accel "$1" -cpu "$cpu"
		-m "$mem" -smp "$cpus" -nodefaults -no-user-config -display none -no-reboot
		-kernel "$img/vmlinuz" -initrd "$img/initrd.img"
		-append "console=ttyS0 panic=-1 quiet cgroup_no_v1=all ${2:-secrun.init=${SECRUN_VM_INIT:-/payload/guest-init.sh}}"
		-drive "file=$img/root.ext4,format=raw,if=virtio,snapshot=on"
		-drive "file=$work/payload.ext4,format=raw,if=virtio")
}

if [ "$mode" = shell ]; then
	a=$accel
	[ "$a" = auto ] && { kvm_usable && a=kvm || a=tcg; }
	qemu_cmd "$a" "secrun.init=/payload/guest-init.sh secrun.shell"
	vm_log "booting with a shell on this terminal ($a); 'exit' powers the VM off"
	"${q[@]}" -serial mon:stdio
	exit 0
fi

# Only ever delete a previous report directory.
if [ -d "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -f "$out/console.log" ]; then
	vm_die "$VM_EXIT_HOST" "$out exists and is not a conformance-vm report directory; not deleting it" "set SECRUN_VM_OUT to an empty or new directory"
fi
rm -rf "$out"
mkdir -p "$out"
console=$out/console.log

# boot ACCEL WATCHDOG: runs the VM to the end. WATCHDOG (seconds) bounds
# the time to userspace; 0 = only the overall timeout. Sets boot_s, vm_s;
# returns 0 when QEMU ended on its own, 1 when the guest never reached
# userspace in time, 2 on timeout, 3 when QEMU failed to start.
boot() {
	local acc=$1 watchdog=$2 t0 now up=
	qemu_cmd "$acc"
	: >"$console"
	t0=$(vm_now)
	"${q[@]}" -serial "file:$console" 2>"$work/qemu.err" &
	qpid=$!
	if [ "${SECRUN_VM_QUIET:-0}" != 1 ]; then
		tail -n +1 -F --pid="$qpid" "$console" 2>/dev/null | sed -u -e 's/\r$//' -e 's/\x1b[[0-9;?]*[a-zA-Z]//g' -e 's/^/guest| /' &
		tpid=$!
	fi
	boot_s=
	while kill -0 "$qpid" 2>/dev/null; do
		now=$(vm_elapsed "$t0")
		if [ -z "$up" ] && grep -q '^SECRUN-VM: userspace up' "$console" 2>/dev/null; then
			up=1
			boot_s=$now
		fi
		if [ -z "$up" ] && [ "$watchdog" != 0 ] && awk -v n="$now" -v w="$watchdog" 'BEGIN { exit !(n > w) }'; then
			kill "$qpid" 2>/dev/null
			wait "$qpid" 2>/dev/null
			qpid=
			return 1
		fi
		if awk -v n="$now" -v w="$timeout_s" 'BEGIN { exit !(n > w) }'; then
			kill "$qpid" 2>/dev/null
			wait "$qpid" 2>/dev/null
			qpid=
			vm_s=$now
			return 2
		fi
		sleep 0.1
	done
	local rc=0
	wait "$qpid" || rc=$?
	qpid=
	vm_s=$(vm_elapsed "$t0")
	if [ -n "$tpid" ]; then
		wait "$tpid" 2>/dev/null || true
		tpid=
	fi
	[ -z "$boot_s" ] && grep -q '^SECRUN-VM: userspace up' "$console" && boot_s=$vm_s
	if [ $rc != 0 ] && [ -z "$boot_s" ]; then return 3; fi
	return 0
}

case $accel in
auto) if kvm_usable; then accel=kvm; else accel=tcg; fi ;;
kvm | tcg) ;;
*) vm_die "$VM_EXIT_HOST" "SECRUN_VM_ACCEL must be auto, kvm or tcg, not $accel" ;;
esac
vm_log "booting $kver under $accel ($cpus CPUs, $mem MiB; $qemu_version)"
set +e
boot "$accel" "$([ "$accel" = kvm ] && [ "${SECRUN_VM_ACCEL:-auto}" = auto ] && echo 30 || echo 0)"
rc=$?
accel_note=
if [ "$accel" = kvm ] && [ "${SECRUN_VM_ACCEL:-auto}" = auto ] && { [ $rc = 1 ] || [ $rc = 3 ]; }; then
	if [ $rc = 1 ]; then accel_note="KVM reached no guest userspace in 30 s"; else accel_note="KVM failed: $(grep -m1 -i error "$work/qemu.err" || head -n1 "$work/qemu.err")"; fi
	vm_log "$accel_note; falling back to TCG (console of the KVM attempt: console-kvm.log)"
	cp "$console" "$out/console-kvm.log"
	accel=tcg
	boot tcg 0
	rc=$?
fi
set -e
case $rc in
0) ;;
1 | 2)
	tail -n 30 "$console" >&2
	vm_die "$VM_EXIT_GUEST" "the VM did not finish within ${timeout_s} s (accel $accel)${boot_s:+; it booted in $boot_s s}" \
		"console log: $console" "raise SECRUN_VM_TIMEOUT, or check the log for a hang"
	;;
3)
	cat "$work/qemu.err" >&2
	vm_die "$VM_EXIT_GUEST" "QEMU failed to start the VM (accel $accel)" "QEMU's error is above; console log: $console" \
		"try SECRUN_VM_ACCEL=tcg"
	;;
esac

# Results back from the payload disk, without mounting it.
debugfs -R "rdump /results $work" "$work/payload.ext4" >"$work/debugfs.log" 2>&1 || true
if [ ! -f "$work/results/status" ]; then
	grep -a 'SECRUN-VM-FATAL' "$console" >&2 || tail -n 30 "$console" >&2
	vm_die "$VM_EXIT_GUEST" "the VM stopped without reporting a status (booted: ${boot_s:-no})" \
		"console log: $console" "$(grep -v '^debugfs [0-9]' "$work/debugfs.log" | head -n 3 | tr '\n' ' ')"
fi
mv "$work/results" "$out/guest"
guest_status=$(cat "$out/guest/status")

{
	echo "accel=$accel"
	echo "accel_note=$accel_note"
	echo "qemu=$qemu_version"
	echo "kernel=$kver"
	echo "cpus=$cpus"
	echo "mem_mib=$mem"
	echo "image=$(basename "$img")"
	echo "image_seconds=$t_image"
	echo "payload_seconds=$t_payload"
	echo "boot_seconds=${boot_s:-}"
	echo "vm_seconds=$vm_s"
	echo "total_seconds=$(vm_elapsed "$t_start")"
	echo "guest_status=$guest_status"
	cat "$out/guest/guest.env"
} >"$out/vm.env"
cp "$img/packages.txt" "$out/packages.txt"

# The matrix verdict and reports, from each row's report.json.
dirs=() comparison=()
for row in $rows; do
	dirs+=("$out/guest/$row")
	case $row in secrun-*) ;; *) comparison+=(--comparison "$row") ;; esac
done
set +e
"$repo/bin/secrunctl" conformance matrix --out "$out" --require "${SECRUN_VM_REQUIRE:-apparmor}" --cgroup2 \
	--facts "$out/vm.env" "${comparison[@]}" "${dirs[@]}"
status=$?
set -e
[ "$status" = 0 ] || status=$VM_EXIT_CHECKS
if [ "$guest_status" != 0 ] && [ "$status" = 0 ]; then
	vm_log "the guest's runner exited $guest_status (see guest/guest-run.log)"
	status=$VM_EXIT_CHECKS
fi
vm_log "boot $boot_s s, VM $vm_s s, total $(vm_elapsed "$t_start") s; reports in ${out#"$repo"/}/"
exit "$status"
