# Shared helpers for scripts/vagrant/*.sh (sourced, after scripts/vm/lib.sh
# for vm_now and vm_elapsed).

vagrant_log() { printf 'vagrant: %s\n' "$*" >&2; }

# vagrant_die WHAT HINT...: one line naming the failing step, then exit 2.
vagrant_die() {
	local what=$1
	shift
	printf 'vagrant: ERROR: %s\n' "$what" >&2
	local h
	for h in "$@"; do printf 'vagrant:   %s\n' "$h" >&2; done
	exit 2
}

# Boxes, downloaded packages and Vagrant's home; survives fresh clones on
# the same runner.
# shellcheck disable=SC2034
VAGRANT_CACHE=${SECRUN_VAGRANT_CACHE:-/var/cache/secrun/vagrant}

# vagrant_stage NAME CMD...: run CMD, print its time, and append
# "NAME SECONDS STATUS" to $VAGRANT_STAGES for the summary.
vagrant_stage() {
	local name=$1 t rc=0
	shift
	t=$(vm_now)
	vagrant_log "== $name"
	"$@" || rc=$?
	printf '%s %s %s\n' "$name" "$(vm_elapsed "$t")" "$rc" >>"$VAGRANT_STAGES"
	if [ "$rc" = 0 ]; then
		vagrant_log "== $name: $(vm_elapsed "$t") s"
	else
		vagrant_log "== $name: $(vm_elapsed "$t") s, exit $rc"
	fi
	return "$rc"
}
