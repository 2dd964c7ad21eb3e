package syscalls_test

import (
	"runtime"
	"slices"
	"sort"
	"testing"

	libseccomp "github.com/seccomp/libseccomp-golang"
	"github.com/secrun/secrun/internal/syscalls"
	"github.com/secrun/secrun/internal/syscalls/fromlibseccomp"
)

// TestTableIsLibseccomps: the generated table for this architecture is
// exactly what this machine's libseccomp resolves, name for name and
// number for number, through the call runc makes
// (seccomp_syscall_resolve_name on the native architecture). A newer
// libseccomp that knows more names fails here until the table is
// regenerated (go generate ./internal/syscalls).
func TestTableIsLibseccomps(t *testing.T) {
	native, err := libseccomp.GetNativeArch()
	if err != nil {
		t.Fatalf("libseccomp native architecture: %v", err)
	}
	if got := syscalls.Arch; got != native.String() {
		t.Fatalf("table is for %q, libseccomp's native architecture is %s (GOARCH %s)", got, native, runtime.GOARCH)
	}
	names, err := fromlibseccomp.Candidates(fromlibseccomp.Header)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 300 {
		t.Fatalf("only %d candidate names from libseccomp; the test cannot judge", len(names))
	}
	regen := "; regenerate: go generate ./internal/syscalls (table from libseccomp " + syscalls.LibseccompVersion + ", this machine has " + fromlibseccomp.Version() + ")"
	resolved := 0
	for _, n := range names {
		nr, err := libseccomp.GetSyscallFromName(n)
		got, ok := syscalls.Lookup(n)
		switch {
		case err != nil && ok:
			t.Errorf("table knows %q (%d), libseccomp does not%s", n, got.Nr, regen)
		case err == nil && !ok:
			t.Errorf("libseccomp resolves %q to %d, the table does not know it%s", n, nr, regen)
		case err == nil && got.Nr != int(nr):
			t.Errorf("%q: table says %d, libseccomp %d%s", n, got.Nr, nr, regen)
		}
		if err == nil {
			resolved++
		}
	}
	if resolved != len(syscalls.All()) {
		t.Errorf("libseccomp resolves %d names, the table has %d%s", resolved, len(syscalls.All()), regen)
	}
	// Names whose existence the policy's checks lean on, as sanity.
	for _, n := range []string{"unshare", "mount", "bpf", "ptrace", "mkdirat"} {
		if s, ok := syscalls.Lookup(n); !ok || !s.Real() {
			t.Errorf("%q should be a real syscall here, got %+v %v", n, s, ok)
		}
	}
	for _, n := range []string{"mkdirt", "", "MOUNT", "mount "} {
		if syscalls.Known(n) {
			t.Errorf("%q must not be known", n)
		}
	}
}

// TestAllSorted: Lookup's binary search needs the table sorted and
// without duplicates.
func TestAllSorted(t *testing.T) {
	all := syscalls.All()
	for i := 1; i < len(all); i++ {
		if all[i-1].Name >= all[i].Name {
			t.Fatalf("table not strictly sorted at %d: %q, %q", i, all[i-1].Name, all[i].Name)
		}
	}
}

func TestNames(t *testing.T) {
	names := syscalls.Names()
	if len(names) == 0 || !sort.StringsAreSorted(names) {
		t.Fatalf("Names() is empty or unsorted: %d names", len(names))
	}
	for _, n := range names {
		if sc, ok := syscalls.Lookup(n); !ok || !sc.Real() {
			t.Errorf("%s: listed but not a real syscall here", n)
		}
	}
	for _, sc := range syscalls.All() {
		if sc.Real() != slices.Contains(names, sc.Name) {
			t.Errorf("%s (nr %d): Names disagrees with Real", sc.Name, sc.Nr)
		}
	}
}
