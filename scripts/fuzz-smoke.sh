#!/usr/bin/env bash
# Runs every native Go fuzz target of the module for a while each (default
# 5s), so CI exercises the parsers of hostile input on every submission.
# Seed corpora under testdata/fuzz/ run as ordinary tests too.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-5s}
fails=0
count=0
for pkg in $(go list ./...); do
	for fn in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
		count=$((count + 1))
		echo "fuzz: $pkg $fn for $time"
		ok=0
		for try in 1 2; do
			if go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$time" "$pkg" >/tmp/secrun-fuzz.$$.log 2>&1; then
				ok=1
				break
			fi
			# Go's fuzzer can end a time-boxed run with "context deadline
			# exceeded" when the clock runs out mid-minimisation on a busy
			# machine; that is no finding (a finding writes its input to
			# testdata/fuzz), so it gets one more run.
			if grep -q 'Failing input written' /tmp/secrun-fuzz.$$.log || ! grep -q 'context deadline exceeded' /tmp/secrun-fuzz.$$.log; then
				break
			fi
			echo "fuzz: $fn ended on the fuzzer's deadline, not a finding; running it again"
		done
		if [ $ok = 0 ]; then
			cat /tmp/secrun-fuzz.$$.log
			fails=$((fails + 1))
		fi
	done
done
rm -f /tmp/secrun-fuzz.$$.log
echo "fuzz: $count targets, $fails failed"
[ "$fails" -eq 0 ]
