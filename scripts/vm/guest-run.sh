#!/bin/sh
# Runs the conformance matrix inside the VM (guest-init.sh calls it with the
# results directory on the payload disk). Rows:
#
#   secrun-runc   the suite through secrun, delegate runc   (gating)
#   secrun-crun   the suite through secrun, delegate crun   (gating)
#   runc          the suite against bare runc, for comparison   (informational)
#   crun          the suite against bare crun, for comparison   (informational)
#
# In each row `secrunctl conformance` writes RESULTS/<row>/{report.tap,
# report.junit.xml,report.json}; this script adds the suite's output
# (suite.log) and exit status (status). The VM-only checks (AppArmor's
# default profile, Localhost profiles, concurrent starts) are suite checks
# that run wherever the kernel has AppArmor. On the host, run.sh combines
# the rows with `secrunctl conformance matrix`. Exit status 1 when a gating
# row fails or writes no report.
set -u
R=$1
P=/payload
BIN=$P/bin
# Settings from the host (run.sh writes vm.env).
# shellcheck disable=SC1091
[ -f "$P/vm.env" ] && . "$P/vm.env"
ROWS=${SECRUN_VM_ROWS:-secrun-runc secrun-crun runc crun}
RUNC=$(command -v runc)
CRUN=$(command -v crun)

# The conformance suite, run once per row: NAME RUNTIME REPORT_DIR
# DELEGATE (DELEGATE is empty for the bare rows). Each case picks its
# policy through its RuntimeClass (else SECRUN_VM_POLICY, else the
# configuration's default). Swapping the suite's command line is a change
# to full_suite only.
full_suite() {
	"$BIN/secrunctl" conformance --runtime "$2" ${4:+--delegate "$4"} \
		${SECRUN_VM_POLICY:+--policy "$SECRUN_VM_POLICY"} ${SECRUN_VM_VALIDITY:+--validity} \
		--probe "$BIN/probe" --work-dir "/tmp/conformance-$1" --report-dir "$3"
}

uptime_s() { cut -d' ' -f1 /proc/uptime; }

echo "guest-run: rows: $ROWS"
echo "guest-run: $(runc --version | head -n1), $(crun --version | head -n1), $(apparmor_parser --version | head -n1)"
fail=0
for row in $ROWS; do
	case $row in
	secrun-runc) rt=$BIN/secrun gate=gating delegate=$RUNC ;;
	secrun-crun) rt=$BIN/secrun gate=gating delegate=$CRUN ;;
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
		full_suite "$row" "$rt" "$d" "$delegate"
	) >"$d/suite.log" 2>&1
	rc=$?
	sed 's/^/   /' "$d/suite.log" | tail -n 25
	if [ ! -s "$d/report.json" ] && [ ! -s "$d/validity.json" ]; then
		echo "   $row: the suite wrote no report.json or validity.json (exit $rc)"
		[ $rc = 0 ] && rc=1
	fi
	echo "$rc" >"$d/status"
	echo "== $row: exit $rc in $(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }') s"
	[ "$gate" = gating ] && [ "$rc" != 0 ] && fail=1
done
echo "guest-run: AppArmor denials the kernel logged: $(dmesg | grep -c 'apparmor="DENIED"')"
exit $fail
