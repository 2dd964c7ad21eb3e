package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestWrapperStaysLean: secrun runs on every container start, so what it
// links is kept small. The Kubernetes API types and runc's libcontainer
// (which secrunctl uses to check bundles) must never reach it, nor the
// Kubernetes translation (kubespec): the wrapper applies policy to OCI
// documents, it does not translate Pods.
func TestWrapperStaysLean(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list printed %d packages; the test cannot judge", len(deps))
	}
	for _, forbidden := range []string{"k8s.io/", "github.com/opencontainers/runc/", "github.com/secrun/secrun/runccheck", "github.com/secrun/secrun/manifest", "github.com/secrun/secrun/fidelity", "github.com/secrun/secrun/kubespec",
		// The seccomp agent and its advice are secrunctl's: the wrapper only
		// rewrites the profile (policy/seccomp_agent.go).
		"github.com/secrun/secrun/seccompagent", "github.com/secrun/secrun/seccompadvise"} {
		for _, d := range deps {
			if strings.HasPrefix(d, forbidden) {
				t.Errorf("cmd/secrun links %s (prefix %s)", d, forbidden)
			}
		}
	}
}

// TestWrapperLinksNoCgo: secrun runs on every container start and on any
// node's libc, so it is a static binary with no cgo (make build uses
// CGO_ENABLED=0). Asked with cgo enabled, so that a package that would
// pull cgo in when it is available (libseccomp-golang, os/user, net) is
// caught here rather than silently built without it.
func TestWrapperLinksNoCgo(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{len .CgoFiles}}", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 10 {
		t.Fatalf("go list printed %d packages; the test cannot judge", len(lines))
	}
	for _, l := range lines {
		pkg, n, _ := strings.Cut(l, " ")
		switch {
		case pkg == "runtime/cgo" || pkg == "C":
			t.Errorf("cmd/secrun links %s", pkg)
		case strings.HasPrefix(pkg, "github.com/seccomp/libseccomp-golang"):
			t.Errorf("cmd/secrun links %s: use internal/syscalls for syscall names", pkg)
		case n != "0":
			t.Errorf("cmd/secrun links %s, which has %s cgo files", pkg, n)
		}
	}
}
