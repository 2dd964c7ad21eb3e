#!/usr/bin/env bash
# make bench: secrun's overhead, measured (never asserted in tests). The
# logic is in Go (secrunctl bench); this runs the Go benchmarks of the
# wrapper's own work and hands their output over, so that every budget is
# judged from this one run:
#  1. Go benchmarks of the wrapper's in-process work (ns/op, allocs/op).
#  2. secrunctl bench: secrun's own process on a create against a naive Go
#     wrapper, nvidia-container-runtime (built from the Go module proxy,
#     cached in /var/cache/secrun/bench) and static Go floors; secrun's
#     package init; run cycles against bare runc; the budgets.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${BENCH_ITERATIONS:-40}
own=${BENCH_OWN_ITERATIONS:-60}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "== Go benchmarks (the wrapper's in-process work per create)"
nice go test -run '^$' -bench 'ApplyCreate$|ParseArgs|LoadConfig|LoadWrapperConfig|DecideRestricted|CreateRewrite' -benchmem -count 5 ./shim ./policy | tee "$out" | grep -E '^(Benchmark|ok)'

echo
bin/secrunctl bench -n "$n" --own-iterations "$own" --secrun bin/secrun-restricted --go-bench "$out"
