#!/usr/bin/env bash
# Installs and builds what the Kubernetes tests need: secrun's own build
# dependencies, Debian's containerd (the 1.6 row) and iptables (so the test
# can compare iptables-save before and after), then the tools pinned in
# versions.env (build.sh; cached outside the clone). Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:$PATH
t=$SECONDS
scripts/install-deps.sh
need=()
command -v containerd >/dev/null 2>&1 || need+=(containerd)
command -v iptables-save >/dev/null 2>&1 || need+=(iptables)
if [ ${#need[@]} -gt 0 ]; then
	echo "kubernetes: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	# Debian's containerd package starts no daemon without systemd; the
	# tests start their own and never touch a system one.
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "kubernetes: packages ready in $((SECONDS - t))s"
scripts/kubernetes/build.sh
