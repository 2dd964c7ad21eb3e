#!/usr/bin/env bash
# make test-kubernetes: builds (or reuses) the tools, then runs the
# Kubernetes suite (integration/kubernetes): per containerd row a one-node
# cluster on loopback, Pods through secrun's RuntimeClasses, the rollout
# manifests of deploy/, the host checked unchanged. Progress lines carry
# their time; a summary table ends the run; captures and the summary land
# in _out/kubernetes. SECRUN_K8S_ROWS=containerd-2.x runs one row.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:$PATH
if [ "$(id -u)" != 0 ]; then
	echo "test-kubernetes: the kubelet, containerd and their containers need root; run as root" >&2
	exit 1
fi
start=$SECONDS
scripts/kubernetes/deps.sh
echo "test-kubernetes: tools ready in $((SECONDS - start))s"
t=$SECONDS
SECRUN_KUBERNETES_TEST=1 nice -n 5 go test -count=1 -timeout 40m -v ./integration/kubernetes/
echo "test-kubernetes: suite in $((SECONDS - t))s; total $((SECONDS - start))s"
