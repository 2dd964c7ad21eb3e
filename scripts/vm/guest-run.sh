#!/bin/sh
# Runs the conformance matrix inside the VM (guest-init.sh calls it with the
# results directory on the payload disk). Rows:
#
#   secrun-runc   the suite through secrun, delegate runc   (gating)
#   secrun-crun   the suite through secrun, delegate crun   (gating)
#   runc          the suite against bare runc, for comparison   (informational)
#   crun          the suite against bare crun, for comparison   (informational)
#
# In each row: `secrunctl conformance` (the full suite) writes
# RESULTS/<row>/{report.tap,report.junit.xml,report.json}, and the VM's own
# checks (vm-checks.sh: AppArmor default profile and deny, Localhost missing
# and enforced, cgroup v2) write the same files in RESULTS/<row>/vm-checks.
# Without the full suite (SECRUN_VM_SUITE=checks, or secrunctl has no
# conformance command) the VM checks write to RESULTS/<row> directly.
# RESULTS/matrix.tsv lists the rows. Exit status 1 when a gating row fails
# or writes no report.
set -u
R=$1
P=/payload
BIN=$P/bin
# Settings from the host (run.sh writes vm.env).
# shellcheck disable=SC1091
[ -f "$P/vm.env" ] && . "$P/vm.env"
SUITE=${SECRUN_VM_SUITE:-auto}
ROWS=${SECRUN_VM_ROWS:-secrun-runc secrun-crun runc crun}
RUNC=$(command -v runc)
CRUN=$(command -v crun)

# The conformance suite, run once per row: NAME RUNTIME REPORT_DIR
# DELEGATE (DELEGATE is empty for the bare rows). Swapping the suite's
# command line is a change to full_suite only.
full_suite() {
	"$BIN/secrunctl" conformance --runtime "$2" ${4:+--delegate "$4"} \
		${SECRUN_VM_POLICY:+--policy "$SECRUN_VM_POLICY"} ${SECRUN_VM_VALIDITY:+--validity} \
		--probe "$BIN/probe" --work-dir "/tmp/conformance-$1" --report-dir "$3"
}

# The VM's checks. secrun gets its delegate through $SECRUN_CONFIG: harden
# mode, so that the policy shows on a plain bundle (capabilities dropped,
# no_new_privs, seccomp and AppArmor RuntimeDefault added, a non-root user).
checks_suite() {
	if [ -n "$4" ]; then
		mkdir -p /etc/secrun
		cat >"/etc/secrun/$1.yaml" <<-YAML
			runtime: $4
			auditLog: $3/audit.log
			policies:
			  baseline:
			    mode: harden
			  restricted:
			    mode: harden
			    runAsUser: 65534
			    runAsGroup: 65534
		YAML
		SECRUN_CONFIG=/etc/secrun/$1.yaml "$P/vm-checks.sh" --runtime "$2" --report-dir "$3" --name "$1"
	else
		"$P/vm-checks.sh" --runtime "$2" --report-dir "$3" --name "$1"
	fi
}

if [ "$SUITE" = auto ]; then
	if "$BIN/secrunctl" conformance --help >/dev/null 2>&1; then SUITE=full; else SUITE=checks; fi
fi
# The runtime under test in the secrun rows. The full suite runs plain
# secrun: each case picks its policy through its RuntimeClass (else
# SECRUN_VM_POLICY, else the configuration's default). The VM checks run
# secrun-<policy> (restricted unless SECRUN_VM_POLICY says otherwise).
CHECKS_SECRUN=$BIN/secrun-${SECRUN_VM_POLICY:-restricted}
case $SUITE in
full) SECRUN=$BIN/secrun ;;
checks) SECRUN=$CHECKS_SECRUN ;;
*) echo "guest-run: SECRUN_VM_SUITE must be auto, full or checks, not $SUITE"; exit 2 ;;
esac

uptime_s() { cut -d' ' -f1 /proc/uptime; }

echo "guest-run: suite=$SUITE rows: $ROWS"
echo "guest-run: $(runc --version | head -n1), $(crun --version | head -n1), $(apparmor_parser --version | head -n1)"
: >"$R/matrix.tsv"
fail=0
for row in $ROWS; do
	case $row in
	secrun-runc) rt=$SECRUN gate=gating delegate=$RUNC ;;
	secrun-crun) rt=$SECRUN gate=gating delegate=$CRUN ;;
	runc) rt=$RUNC gate=info delegate='' ;;
	crun) rt=$CRUN gate=info delegate='' ;;
	*) echo "guest-run: unknown row $row"; exit 2 ;;
	esac
	d=$R/$row
	mkdir -p "$d"
	echo "== $row ($gate): $rt${delegate:+, delegate $delegate}"
	t0=$(uptime_s)
	(
		unset SECRUN_CONFIG
		"${SUITE}_suite" "$row" "$rt" "$d" "$delegate"
	) >"$d/suite.log" 2>&1
	rc=$?
	sed 's/^/   /' "$d/suite.log" | tail -n 25
	if [ ! -s "$d/report.tap" ]; then
		echo "   $row: the suite wrote no report.tap (exit $rc)"
		[ $rc = 0 ] && rc=1
	fi
	suite=$SUITE
	if [ "$SUITE" = full ]; then
		suite=full+checks
		crt=$rt
		[ -n "$delegate" ] && crt=$CHECKS_SECRUN
		mkdir -p "$d/vm-checks"
		(
			unset SECRUN_CONFIG
			checks_suite "$row" "$crt" "$d/vm-checks" "$delegate"
		) >"$d/vm-checks/suite.log" 2>&1
		crc=$?
		sed 's/^/   /' "$d/vm-checks/suite.log"
		[ -s "$d/vm-checks/report.tap" ] || { [ $crc = 0 ] && crc=1; }
		[ $rc = 0 ] && rc=$crc
	fi
	secs=$(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }')
	echo "$rc" >"$d/status"
	echo "$secs" >"$d/seconds"
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$row" "$gate" "$rc" "$secs" "$suite" "$rt${delegate:+ -> $delegate}" >>"$R/matrix.tsv"
	echo "== $row: exit $rc in $secs s"
	[ "$gate" = gating ] && [ "$rc" != 0 ] && fail=1
done
echo "guest-run: AppArmor denials the kernel logged: $(dmesg | grep -c 'apparmor="DENIED"')"
exit $fail
