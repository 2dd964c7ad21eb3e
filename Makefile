# secrun: make targets. `make conformance` and `make test` are the README's
# two commands; both install what they need on a fresh Debian machine.

GO        ?= go
BIN       := bin
GOFLAGS   ?=
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: all build deps test test-unit test-race vet fmt-check lint fuzz conformance demo bench clean install

all: build

deps:
	@scripts/install-deps.sh

# secrun is static (no cgo): it runs on every container start, on any
# node's libc, without a dynamic link (cmd/secrun/deps_test.go holds it).
build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS) -o $(BIN)/secrun ./cmd/secrun
	$(GO) build $(GOFLAGS) -o $(BIN)/secrunctl ./cmd/secrunctl
	@for p in privileged baseline restricted; do ln -sf secrun $(BIN)/secrun-$$p; done

# Everything CI checks: formatting, vet, the unit and integration tests
# (real runc, real containers) under the race detector, and a short fuzz.
test: deps fmt-check vet
	$(GO) test -race -count=1 ./...
	@scripts/fuzz-smoke.sh 5s

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Longer fuzzing: make fuzz FUZZTIME=10m
FUZZTIME ?= 1m
fuzz:
	@scripts/fuzz-smoke.sh $(FUZZTIME)

# The conformance suite: every case (conformance/cases, Kubernetes Pods)
# through secrun to real runc, each check an attempted operation, then the
# validity mode that shows every check failing against a bundle that does
# not enforce its setting. Summary on stdout, reports in _out/conformance.
conformance: deps build
	@scripts/conformance.sh

# The same bundle run through bare runc and through secrun-restricted,
# with the kernel's view of each process.
demo: deps build
	@scripts/demo.sh

# Overhead against bare runc, measured in the same run; see scripts/bench.sh.
bench: deps build
	@scripts/bench.sh

install: build
	install -D -m 0755 $(BIN)/secrun /usr/local/bin/secrun
	install -D -m 0755 $(BIN)/secrunctl /usr/local/bin/secrunctl
	@for p in privileged baseline restricted; do ln -sf secrun /usr/local/bin/secrun-$$p; done

clean:
	rm -rf $(BIN)

# The conformance suite inside a disposable QEMU VM (Debian kernel with
# AppArmor, cgroup v2; runc and crun from Debian), so that AppArmor profiles,
# sysctls and cgroups never touch this machine. Matrix: secrun with runc and
# with crun as delegate, bare runc and crun for comparison. Needs root; see
# docs/vm.md. Reports in _out/conformance-vm.
.PHONY: conformance-vm
conformance-vm: deps build
	@scripts/vm/run.sh

# secrun behind a real containerd (Debian's package, started on its own
# socket, root and state): ctr and CRI Pods through the handlers
# `secrunctl install containerd` writes, the policy checked inside the
# containers, refusals checked in the client's output. Also the installer
# and deploy/ manifest tests. Needs root; installs containerd and crictl.
# Pods get their network from integration/loopnet (127.0.0.0/8 inside
# each Pod's namespace). See scripts/containerd-test.sh.
.PHONY: test-containerd
test-containerd:
	@scripts/containerd-test.sh

# The project's Vagrantfile brought up with vagrant-libvirt on this machine,
# offline: a box built from Debian packages (cached), binaries built here,
# libvirt and QEMU in private mount and network namespaces (no libvirt
# network, loopback only), the suite run in the VM, reports in
# _out/conformance-vagrant, failing on any failed or skipped AppArmor
# check. The VM and libvirtd are gone afterwards. Needs root; installs
# vagrant, vagrant-libvirt, libvirt, QEMU and mmdebstrap. See docs/vm.md.
.PHONY: test-vagrant
test-vagrant: deps
	@scripts/vagrant/run.sh

# secrun on a real Kubernetes node: kubelet, kube-apiserver (kine as its
# storage), controller manager and scheduler on loopback, containerd 2.x
# and Debian's 1.6 as rows, Pods through secrun's RuntimeClasses, the
# deploy/ rollout manifests applied for real, the host checked unchanged.
# Builds the pinned tools once (scripts/kubernetes/versions.env) into
# /var/cache/secrun/kubernetes. Needs root. See docs/kubernetes.md.
.PHONY: test-kubernetes
test-kubernetes:
	@scripts/kubernetes/test.sh
