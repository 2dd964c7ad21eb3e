#!/usr/bin/env bash
# Keeps a one-node test cluster up for other tests, and takes it down:
#
#   scripts/kubernetes/cluster.sh up   [-row containerd-2.x|containerd-1.6]
#   scripts/kubernetes/cluster.sh down [-row ...]
#
# `up` builds what is missing (deps.sh), starts the cluster under a
# detached supervisor and prints KUBECONFIG=... once the node is Ready;
# `down` stops it and checks the host is as it was. Needs root. The
# cluster is the one make test-kubernetes starts (see docs/kubernetes.md),
# in /tmp/secrun-k8s/keep-<row>.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:$PATH
case "${1:-}" in
up | down) ;;
*)
	echo "usage: $0 up|down [-row containerd-2.x|containerd-1.6]" >&2
	exit 2
	;;
esac
if [ "$(id -u)" != 0 ]; then
	echo "cluster: the kubelet and containerd need root; run as root" >&2
	exit 1
fi
if [ "$1" = up ]; then
	scripts/kubernetes/deps.sh >&2
fi
mkdir -p _out/kubernetes
go build -o _out/kubernetes/k8s-cluster ./integration/kubernetes/cmd/k8s-cluster
exec _out/kubernetes/k8s-cluster "$1" -repo "$PWD" "${@:2}"
