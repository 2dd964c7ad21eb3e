package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/secrun/secrun/internal/testenv"
)

// Flags of one target are refused for the other, with the reason, and
// before anything runs.
func TestConformanceTargetFlags(t *testing.T) {
	bin := secrunctl(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"conformance", "--node", "n1"}, "--node is for --target kubernetes"},
		{[]string{"conformance", "--runtime-class", "secrun-baseline"}, "--runtime-class is for --target kubernetes"},
		{[]string{"conformance", "--target", "kubernetes", "--runtime", "runc"}, "--runtime does not apply to --target kubernetes"},
		{[]string{"conformance", "--target", "kubernetes", "--policy-for-all"}, "--policy-for-all does not apply"},
		{[]string{"conformance", "--target", "kubernetes", "--kubectl", "/nonexistent/kubectl"}, `kubectl "/nonexistent/kubectl"`},
		{[]string{"conformance", "--target", "vm"}, `target "vm": want bundle or kubernetes`},
	} {
		out, err := exec.Command(bin, tc.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("secrunctl %s: %v\n%s\nwant %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
}

// conformance image writes the probe image archive and prints its
// reference, the same for the same probe.
func TestConformanceImage(t *testing.T) {
	bin := secrunctl(t)
	dir := t.TempDir()
	probe := testenv.BuildProbe(t)
	var refs []string
	for _, name := range []string{"a.tar", "b.tar"} {
		out, err := exec.Command(bin, "conformance", "image", "--probe", probe, "-o", filepath.Join(dir, name)).Output()
		if err != nil {
			t.Fatalf("conformance image: %v", err)
		}
		refs = append(refs, strings.TrimSpace(string(out)))
	}
	if !regexp.MustCompile(`^secrun\.local/probe:[0-9a-f]{12}$`).MatchString(refs[0]) || refs[0] != refs[1] {
		t.Errorf("references %q", refs)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "a.tar"))
	b, _ := os.ReadFile(filepath.Join(dir, "b.tar"))
	if len(a) == 0 || string(a) != string(b) {
		t.Errorf("archives differ or are empty (%d, %d bytes)", len(a), len(b))
	}
	if out, err := exec.Command(bin, "conformance", "image", "-o", filepath.Join(dir, "c.tar"), "--probe", filepath.Join(dir, "a.tar")).CombinedOutput(); err == nil {
		t.Errorf("a non-ELF probe was accepted: %s", out)
	}
}
