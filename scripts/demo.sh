#!/usr/bin/env bash
# Demonstrates secrun hardening a real container: one `runc spec` bundle,
# run by bare runc and by secrun-restricted (harden mode), and the kernel's
# view of each process side by side. Exits non-zero if secrun's container
# does not show the restricted policy in force.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/bin
work=$(mktemp -d /tmp/secrun-demo.XXXXXX)
root=$work/state
cleanup() {
	for id in demo-runc demo-secrun; do runc --root "$root" delete -f "$id" >/dev/null 2>&1 || true; done
	rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/bundle/rootfs/bin" "$work/bundle/rootfs/etc" "$root"
cp /bin/busybox "$work/bundle/rootfs/bin/"
for a in sh cat id grep; do ln -s busybox "$work/bundle/rootfs/bin/$a"; done
(cd "$work/bundle" && runc spec)
# The process prints what the kernel enforces on it. `runc spec` writes
# "terminal": true and args ["sh"] on lines of their own.
sed -i -e 's/"terminal": true/"terminal": false/' \
	-e 's|^\([[:space:]]*\)"sh"$|\1"sh", "-c", "grep -E \\"^(Cap(Bnd\|Eff\|Prm)\|NoNewPrivs\|Seccomp):\\" /proc/self/status; echo uid: $(id -u)"|' \
	"$work/bundle/config.json"
cp -a "$work/bundle" "$work/bundle-secrun"

cat >"$work/config.yaml" <<YAML
auditLog: $work/audit.log
policies:
  restricted:
    mode: harden
    runAsUser: 65534
    runAsGroup: 65534
    ambientCapabilities: true   # NET_BIND_SERVICE stays effective for the non-root user
YAML

echo "== bare runc"
runc --root "$root" run --bundle "$work/bundle" demo-runc | tee "$work/runc.out"
echo
echo "== secrun-restricted (harden mode)"
SECRUN_CONFIG=$work/config.yaml "$bin/secrun-restricted" --root "$root" run --bundle "$work/bundle-secrun" demo-secrun | tee "$work/secrun.out"
echo
echo "== audit log"
cat "$work/audit.log"
echo

fail=0
check() { if grep -qE "$2" "$work/secrun.out"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
check "capabilities: NET_BIND_SERVICE only" '^CapEff:[[:space:]]+0000000000000400$'
check "bounding set: NET_BIND_SERVICE only" '^CapBnd:[[:space:]]+0000000000000400$'
check "no_new_privs" '^NoNewPrivs:[[:space:]]+1$'
check "seccomp filter" '^Seccomp:[[:space:]]+2$'
check "non-root user" '^uid: 65534$'
exit $fail
