// Package spectest holds the test doubles and fixtures that the tests of
// spec and of the packages built on it share: a node's AppArmor, seccomp
// profile roots and profiles in both formats.
package spectest

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// AppArmor is a node's AppArmor as the tests need it: on or off, some
// profiles loaded, a loader that may fail. It satisfies spec.AppArmorHost.
type AppArmor struct {
	mu      sync.Mutex
	On      bool
	Loaded  map[string]bool
	LoadErr error
	// Loads counts the profiles loaded.
	Loads int
}

// NewAppArmor returns a node whose AppArmor is on or off, with loaded.
func NewAppArmor(enabled bool, loaded ...string) *AppArmor {
	f := &AppArmor{On: enabled, Loaded: map[string]bool{}}
	for _, l := range loaded {
		f.Loaded[l] = true
	}
	return f
}

func (f *AppArmor) Enabled() bool { return f.On }

func (f *AppArmor) IsLoaded(name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Loaded[name], nil
}

func (f *AppArmor) LoadDefault(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.LoadErr != nil {
		return f.LoadErr
	}
	if f.Loaded == nil {
		f.Loaded = map[string]bool{}
	}
	if !f.Loaded[name] {
		f.Loads++
		f.Loaded[name] = true
	}
	return nil
}

// Allowed lists the syscalls a profile allows unconditionally (no
// argument filter), which is what a capability-dependent rule adds.
func Allowed(p *specs.LinuxSeccomp) []string {
	var out []string
	for _, sc := range p.Syscalls {
		if sc.Action == specs.ActAllow && len(sc.Args) == 0 {
			out = append(out, sc.Names...)
		}
	}
	return out
}

// Without returns set minus the named entries, order kept.
func Without[S ~[]E, E comparable](set S, drop ...E) S {
	return slices.DeleteFunc(slices.Clone(set), func(c E) bool { return slices.Contains(drop, c) })
}

// NativeArch is the seccomp name of the architecture the tests run on,
// its sub-architectures and GOARCH; other architectures skip.
func NativeArch(t *testing.T) (specs.Arch, []specs.Arch, string) {
	switch runtime.GOARCH {
	case "amd64":
		return specs.ArchX86_64, []specs.Arch{specs.ArchX86, specs.ArchX32}, "amd64"
	case "arm64":
		return specs.ArchAARCH64, []specs.Arch{specs.ArchARM}, "arm64"
	}
	t.Skip("no archMap fixture for", runtime.GOARCH)
	return "", nil, ""
}

// OCIProfile is a small profile in OCI form.
const OCIProfile = `{
  "defaultAction": "SCMP_ACT_ERRNO",
  "architectures": ["SCMP_ARCH_X86_64"],
  "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]
}`

// DockerProfile is in Docker's format: an archMap instead of
// architectures, and rules conditional on capabilities and arches.
func DockerProfile(arch specs.Arch, sub []specs.Arch, goArch string) string {
	subs := make([]string, len(sub))
	for i, s := range sub {
		subs[i] = `"` + string(s) + `"`
	}
	return `{
  "defaultAction": "SCMP_ACT_ERRNO",
  "defaultErrnoRet": 1,
  "archMap": [
    {"architecture": "` + string(arch) + `", "subArchitectures": [` + strings.Join(subs, ",") + `]},
    {"architecture": "SCMP_ARCH_S390X", "subArchitectures": ["SCMP_ARCH_S390"]}
  ],
  "syscalls": [
    {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["mount", "umount2"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
    {"names": ["chmod"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
    {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["` + goArch + `"]}},
    {"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}},
    {"name": "gettid", "action": "SCMP_ACT_ALLOW", "comment": "the old single-name form"}
  ]
}`
}

// ProfileRoot writes files (name -> body) below a new directory and
// returns it, as a kubelet seccomp root.
func ProfileRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// ErrorCase checks a table case's error: with want set, err must contain
// it and the case ends there (true); without, err must be nil and the
// case goes on to check its result (false).
func ErrorCase(t testing.TB, err error, want string) (done bool) {
	t.Helper()
	if want != "" {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want one containing %q", err, want)
		}
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	return false
}
