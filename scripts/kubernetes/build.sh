#!/usr/bin/env bash
# Builds the tools of `make test-kubernetes` from the Go module proxy, at
# the versions in versions.env, into $SECRUN_K8S_CACHE/<tool>-<version>/
# (default /var/cache/secrun/kubernetes): outside the clone, so a second
# run reuses them. A tool whose directory is complete is not rebuilt.
# Builds run one at a time under nice: the machine is shared.
#
#   scripts/kubernetes/build.sh          build what is missing
#   scripts/kubernetes/build.sh --print  print the cache directory and exit
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${SECRUN_K8S_CACHE:-/var/cache/secrun/kubernetes}
export PATH=/usr/local/go/bin:$PATH
# Reproducible paths in panics; no VCS stamping of the throwaway modules.
export GOFLAGS="-trimpath -buildvcs=false"

if [ "${1:-}" = --print ]; then
	echo "$cache"
	exit 0
fi

# tool NAME VERSION CGO FUNCTION: runs FUNCTION with $out set to a fresh
# directory, then moves it into place; the marker file says it finished.
tool() {
	local name=$1 version=$2 cgo=$3 fn=$4
	local dest=$cache/$name-$version
	if [ -f "$dest/.complete" ]; then
		echo "build: $name $version cached in $dest"
		return
	fi
	local t=$SECONDS
	echo "build: $name $version ..."
	rm -rf "$dest.tmp"
	mkdir -p "$dest.tmp"
	out=$dest.tmp CGO_ENABLED=$cgo "$fn" "$version"
	date -u +%FT%TZ >"$dest.tmp/.complete"
	rm -rf "$dest"
	mv "$dest.tmp" "$dest"
	echo "build: $name $version built in $((SECONDS - t))s into $dest"
}

gobuild() { nice -n 19 go "$@"; }

kine() { GOBIN=$out gobuild install "github.com/k3s-io/kine@$1"; }

# Without the btrfs snapshotter: it needs btrfs headers and the tests use
# overlayfs.
containerd() {
	GOBIN=$out gobuild install -tags no_btrfs \
		"github.com/containerd/containerd/v2/cmd/containerd@$1" \
		"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$1" \
		"github.com/containerd/containerd/v2/cmd/ctr@$1"
}

crictl() { GOBIN=$out gobuild install "sigs.k8s.io/cri-tools/cmd/crictl@$1"; }

# runc's seccomp support is cgo with libseccomp (libseccomp-dev).
runc() { GOBIN=$out gobuild install -tags seccomp "github.com/opencontainers/runc@$1"; }

# k8s.io/kubernetes is not meant to be required: its go.mod replaces its
# staging modules (k8s.io/api, client-go, ... ) with ./staging/src
# directories, which a dependent module cannot see. A throwaway module
# requires it and replaces each of those with the published module of the
# same release (v0.X.Y for v1.X.Y); then one `go build` makes all the
# binaries, sharing the packages they have in common. The controller
# manager and the scheduler are there for the rollout test: a DaemonSet and
# a Job need their controllers, and their Pods the scheduler.
kubernetes() {
	local v=$1 src=$cache/src/kubernetes-$1
	rm -rf "$src"
	mkdir -p "$src"
	local gomod
	gomod=$(cd "$src" && go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
	[ -f "$gomod" ] || { echo "build: go mod download k8s.io/kubernetes@$v gave no go.mod" >&2; return 1; }
	{
		echo "module secrun.test/kubernetes-build"
		echo
		echo "go 1.26"
		echo
		echo "require k8s.io/kubernetes $v"
		echo
		sed -n 's#^[[:space:]]*\(replace[[:space:]]\+\)\{0,1\}\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#replace \2 => \2 '"$KUBERNETES_STAGING_VERSION"'#p' "$gomod"
	} >"$src/go.mod"
	local n
	n=$(grep -c '^replace' "$src/go.mod")
	echo "build: kubernetes $v through $src/go.mod with $n staging replaces"
	[ "$n" -gt 20 ] || { echo "build: expected the staging replaces of k8s.io/kubernetes' go.mod, found $n" >&2; return 1; }
	local pkgs=(k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
		k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
	(cd "$src" && go get "${pkgs[@]/%/@$v}")
	# Without these the binaries call themselves v0.0.0-master, and the
	# node reports that version.
	local minor=${v#v1.}
	minor=${minor%%.*}
	local pre=k8s.io/component-base/version
	local ld="-s -w -X $pre.gitVersion=$v -X $pre.gitMajor=1 -X $pre.gitMinor=$minor -X $pre.gitTreeState=clean"
	ld+=" -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
	(cd "$src" && gobuild build -ldflags "$ld" -o "$out/" "${pkgs[@]}")
}

start=$SECONDS
mkdir -p "$cache"
tool kine "$KINE_VERSION" 1 kine
tool containerd "$CONTAINERD_VERSION" 1 containerd
tool crictl "$CRICTL_VERSION" 0 crictl
tool runc "$RUNC_VERSION" 1 runc
tool kubernetes "$KUBERNETES_VERSION" 0 kubernetes
echo "build: all tools ready in $cache in $((SECONDS - start))s"
