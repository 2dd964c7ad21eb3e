# Shared helpers for scripts/vm/*.sh (sourced, not run).
#
# Exit statuses of the VM scripts, so that CI can tell a failing check from
# broken infrastructure:
#   0  every gating check passed inside the VM
#   1  a check failed inside the VM (the suite ran; read the report)
#   2  usage or host problem: not root, not Debian/amd64, QEMU missing
#   3  a Debian package could not be resolved or downloaded
#   4  the image (root, kernel, initramfs) or payload could not be built
#   5  the VM did not boot or did not report (timeout, crash, no status)

# shellcheck disable=SC2034 # used by the scripts that source this file
VM_EXIT_CHECKS=1
VM_EXIT_HOST=2
VM_EXIT_PACKAGES=3
VM_EXIT_IMAGE=4
VM_EXIT_GUEST=5

vm_log() { printf 'vm: %s\n' "$*" >&2; }

# vm_die STATUS WHAT HINT...: one clear line naming the failing step, then exit.
vm_die() {
	local status=$1 what=$2
	shift 2
	printf 'vm: ERROR: %s\n' "$what" >&2
	local h
	for h in "$@"; do printf 'vm:   %s\n' "$h" >&2; done
	exit "$status"
}

# vm_now: seconds since the epoch with milliseconds.
vm_now() { date +%s.%N | cut -c1-14; }

# vm_elapsed START: seconds since START, one decimal.
vm_elapsed() { awk -v s="$1" -v e="$(vm_now)" 'BEGIN { printf "%.1f", e - s }'; }

# Cache of images and downloaded packages; survives fresh clones on the same
# runner. Override with SECRUN_VM_CACHE.
# shellcheck disable=SC2034
VM_CACHE=${SECRUN_VM_CACHE:-/var/cache/secrun-vm}
