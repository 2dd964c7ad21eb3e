#!/usr/bin/env bash
# The containerd suite (make test-containerd): installs containerd and
# crictl, then runs secrun behind a real containerd: ctr and CRI Pods
# through the handlers `secrunctl install containerd` writes. The daemon,
# its state, sockets, CNI configuration and logs live in a temporary
# directory. Pods get their network from the repository's CNI plugin
# (integration/loopnet): 127.0.0.0/8 inside each Pod's own namespace, no
# bridge, nothing on the host.
# Needs root. Installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

if [ "$(id -u)" != 0 ]; then
	echo "containerd-test: containerd and its containers need root; run as root" >&2
	exit 1
fi
start=$SECONDS

scripts/install-deps.sh

need=()
command -v containerd >/dev/null 2>&1 || need+=(containerd)
if [ ${#need[@]} -gt 0 ]; then
	echo "containerd-test: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# Debian's package starts no daemon without systemd; the suite starts
	# its own containerd and never touches a system one.
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# crictl from the Go module proxy, cached in GOBIN ($HOME/go/bin) so CI
# can keep it between runs. `go install pkg@version` leaves go.mod alone.
gobin=$(go env GOBIN)
gobin=${gobin:-$(go env GOPATH)/bin}
export PATH=$gobin:$PATH
if ! command -v crictl >/dev/null 2>&1; then
	echo "containerd-test: installing crictl v1.37.0 into $gobin"
	go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0
fi
echo "containerd-test: dependencies ready in $((SECONDS - start))s (containerd $(containerd --version | cut -d' ' -f3), $(command -v crictl))"

t=$SECONDS
go test -race -count=1 ./install/ ./deploy/
go test -race -count=1 -run 'InstallContainerd|UninstallMissing' ./cmd/secrunctl/
echo "containerd-test: installer and manifest tests in $((SECONDS - t))s"

t=$SECONDS
# -v: the log shows what ctr and crictl printed for each refusal, and the
# kernel's view inside each container. containerd's own log is printed
# only when a test fails.
SECRUN_CONTAINERD_TEST=1 go test -race -count=1 -timeout 5m -v ./integration/containerd/
echo "containerd-test: containerd suite in $((SECONDS - t))s; total $((SECONDS - start))s"
