#!/usr/bin/env bash
# make bench: secrun's overhead, measured (never asserted in tests).
#  1. Go benchmarks of the wrapper's own work (argv, policy, rewrite).
#  2. Package init cost of the secrun binary (GODEBUG=inittrace).
#  3. Real run cycles through secrun and bare runc, alternated, with the
#     median ratio against runc measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${BENCH_ITERATIONS:-40}

echo "== Go benchmarks (wrapper's own work per create)"
go test -run '^$' -bench 'ApplyCreate$|ParseArgs|LoadConfig|LoadWrapperConfig|DecideRestricted|CreateRewrite' -benchmem ./shim ./policy | grep -E '^(Benchmark|ok)'

echo
echo "== init cost of bin/secrun (GODEBUG=inittrace; no runc on PATH and no config, so secrun stops before exec and runc's own init is not counted)"
PATH=/nonexistent SECRUN_CONFIG=/nonexistent GODEBUG=inittrace=1 bin/secrun --version 2>&1 >/dev/null |
	awk '/^init / { ms += $5; n++ } END { printf "%d packages, %.3f ms of init in total (budget: < 1 ms)\n", n, ms }' || true

echo
echo "== run cycles"
bin/secrunctl bench -n "$n" --secrun bin/secrun-restricted
