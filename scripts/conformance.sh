#!/usr/bin/env bash
# `make conformance`: secrun's conformance suite on this machine, against
# real runc through secrun, then its validity mode (every check must fail
# against a bundle that does not enforce its setting). Reports go to
# _out/conformance (report.* and validity.*, the audit logs, the secrun
# configuration and seccomp profile the suite used). Exits non-zero when
# either run has a failure. Needs root; `make conformance` builds first.
#
# Extra arguments go to both runs, e.g.
#   scripts/conformance.sh --runtime runc          # bare runc, to compare
#   scripts/conformance.sh --case capabilities-example
#
# SECRUN_PROBE names a probe built elsewhere (a VM without Go gets it from
# the host); otherwise it is built here.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

out=${SECRUN_CONFORMANCE_OUT:-_out/conformance}
if [ "$(id -u)" != 0 ]; then
	echo "conformance: the suite starts real containers; run it as root" >&2
	exit 1
fi
for b in secrun secrunctl; do
	[ -x "bin/$b" ] || { echo "conformance: bin/$b is missing; run make build" >&2; exit 1; }
done
# The probe is the whole rootfs of every test container: static, built once.
probe=${SECRUN_PROBE:-}
if [ -z "$probe" ]; then
	probe=bin/conformance-probe
	CGO_ENABLED=0 go build -trimpath -o "$probe" ./conformance/probe
fi

rm -rf "$out"
mkdir -p "$out"
rc=0
bin/secrunctl conformance --probe "$probe" --report-dir "$out" "$@" | tee "$out/conformance.txt" || rc=1
echo
bin/secrunctl conformance --validity --probe "$probe" --report-dir "$out" "$@" | tee "$out/validity.txt" || rc=1
echo
echo "== $out"
grep -hE '^(conformance|validity): [0-9]+ passed' "$out/conformance.txt" "$out/validity.txt" || rc=1
exit $rc
