package seccompnames

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

// TestTableMatchesLibseccomp regenerates the table with this machine's
// libseccomp (the library runc compiles filters with) and compares: a
// table that lags the library would leave new syscalls out of the agent's
// rules, where they keep the profile's default action unseen.
func TestTableMatchesLibseccomp(t *testing.T) {
	out := filepath.Join(t.TempDir(), "names_gen.go")
	cmd := exec.Command("go", "run", "gen.go", "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run gen.go: %v\n%s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("names_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("names_gen.go differs from what this machine's libseccomp resolves; run go generate ./internal/seccompnames")
	}
}

func TestNames(t *testing.T) {
	arch := Native(runtime.GOARCH)
	if arch == "" {
		t.Skipf("no table for GOARCH %s", runtime.GOARCH)
	}
	names, err := Names(arch)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"read", "write", "clone", "keyctl", "personality"} {
		if !slices.Contains(names, n) {
			t.Errorf("%s: %s missing", arch, n)
		}
	}
	if !slices.IsSorted(names) {
		t.Error("names are not sorted")
	}
	names[0] = "mutated"
	if again, _ := Names(arch); again[0] == "mutated" {
		t.Error("Names hands out the table itself")
	}
	if _, err := Names("SCMP_ARCH_NONE"); err == nil {
		t.Error("an unknown architecture has names")
	}
	if len(Arches()) < 2 {
		t.Errorf("Arches() = %v", Arches())
	}
}
