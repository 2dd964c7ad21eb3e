package spec

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/secrun/secrun/spec/spectest"

	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func withCaps(caps ...string) *specs.Spec {
	return &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
		Bounding: caps, Effective: caps, Permitted: caps,
	}}}
}

func TestWithRuntimeDefaultSeccompFollowsCapabilities(t *testing.T) {
	plain := withDefaultCaps()
	if err := WithRuntimeDefaultSeccomp()(plain); err != nil {
		t.Fatal(err)
	}
	p := plain.Linux.Seccomp
	if p.DefaultAction != specs.ActErrno {
		t.Fatalf("defaultAction = %s, want SCMP_ACT_ERRNO", p.DefaultAction)
	}
	for _, name := range []string{"mount", "setns", "reboot"} {
		if slices.Contains(spectest.Allowed(p), name) {
			t.Errorf("without SYS_ADMIN and SYS_BOOT the default profile must not allow %s", name)
		}
	}
	// Without SYS_ADMIN, clone3 (whose flags seccomp cannot inspect) must
	// fail with ENOSYS so that libc falls back to clone, which is allowed
	// only without namespace flags.
	clone3 := false
	for _, sc := range p.Syscalls {
		if slices.Contains(sc.Names, "clone3") && sc.Action == specs.ActErrno && sc.ErrnoRet != nil && *sc.ErrnoRet == uint(syscall.ENOSYS) {
			clone3 = true
		}
		if slices.Contains(sc.Names, "clone") && sc.Action == specs.ActAllow && len(sc.Args) == 0 {
			t.Error("clone allowed without an argument filter and without SYS_ADMIN")
		}
	}
	if !clone3 {
		t.Error("no clone3 ENOSYS rule without SYS_ADMIN")
	}
	if !Confined(plain) {
		t.Fatal("a RuntimeDefault spec must count as confined")
	}

	admin := withDefaultCaps()
	if err := WithCapabilities([]string{"SYS_ADMIN", "SYS_BOOT"}, nil)(admin); err != nil {
		t.Fatal(err)
	}
	if err := WithRuntimeDefaultSeccomp()(admin); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mount", "setns", "reboot"} {
		if !slices.Contains(spectest.Allowed(admin.Linux.Seccomp), want) {
			t.Errorf("with SYS_ADMIN and SYS_BOOT in bounding the profile must allow %s", want)
		}
	}
}

func TestWithRuntimeDefaultSeccompWithoutProcess(t *testing.T) {
	// moby's generator reads the bounding set unguarded; a bare spec must
	// get the no-capability profile, not a panic.
	s := &specs.Spec{}
	if err := WithRuntimeDefaultSeccomp()(s); err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp == nil || s.Process != nil {
		t.Fatalf("seccomp %v, process %v: want a profile and the spec's process untouched", s.Linux.Seccomp, s.Process)
	}
}

func TestWithLocalhostSeccomp(t *testing.T) {
	arch, sub, goArch := spectest.NativeArch(t)
	outside := filepath.Join(t.TempDir(), "outside.json")
	if err := os.WriteFile(outside, []byte(spectest.OCIProfile), 0o644); err != nil {
		t.Fatal(err)
	}
	root := spectest.ProfileRoot(t, map[string]string{
		"oci.json":             spectest.OCIProfile,
		"profiles/docker.json": spectest.DockerProfile(arch, sub, goArch),
		"typo.json":            `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","mkdirr"],"action":"SCMP_ACT_ALLOW"}]}`,
		"empty.json":           ``,
		"nothing.json":         `{}`,
		"null-rule.json":       `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[null]}`,
		"string-rule.json":     `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":["read"]}`,
		"no-names.json":        `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"action":"SCMP_ACT_ALLOW"}]}`,
		"both-arches.json":     `{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}`,
		"not-json.json":        `defaultAction: SCMP_ACT_ERRNO`,
		"dir.json/placeholder": ``,
	})
	if err := os.Symlink(outside, filepath.Join(root, "link-out.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../"+strings.TrimPrefix(outside, "/"), filepath.Join(root, "link-up.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("oci.json", filepath.Join(root, "link-in.json")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo.json"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, file string
		caps       []string
		errHas     string
		check      func(t *testing.T, p *specs.LinuxSeccomp)
	}{
		{name: "OCI form is taken as written", file: "oci.json", check: func(t *testing.T, p *specs.LinuxSeccomp) {
			if !slices.Equal(spectest.Allowed(p), []string{"read", "write", "exit_group"}) || !slices.Equal(p.Architectures, []specs.Arch{specs.ArchX86_64}) {
				t.Fatalf("profile changed: %+v", p)
			}
		}},
		{name: "a link inside the root is followed", file: "link-in.json"},
		{name: "Docker form without SYS_ADMIN", file: "profiles/docker.json", caps: DefaultCapabilities, check: func(t *testing.T, p *specs.LinuxSeccomp) {
			got := spectest.Allowed(p)
			want := []string{"read", "write", "exit_group", "chmod", "getpid", "gettid"}
			if !slices.Equal(got, want) {
				t.Fatalf("allowed = %v, want %v (includes.caps SYS_ADMIN must be absent, excludes.caps present, arch rules filtered)", got, want)
			}
			if wantArch := append([]specs.Arch{arch}, sub...); !slices.Equal(p.Architectures, wantArch) {
				t.Fatalf("architectures = %v, want %v from archMap", p.Architectures, wantArch)
			}
			if p.DefaultErrnoRet == nil || *p.DefaultErrnoRet != 1 {
				t.Fatalf("defaultErrnoRet lost: %v", p.DefaultErrnoRet)
			}
		}},
		{name: "Docker form with SYS_ADMIN in bounding", file: "profiles/docker.json", caps: append(slices.Clone(DefaultCapabilities), "CAP_SYS_ADMIN"), check: func(t *testing.T, p *specs.LinuxSeccomp) {
			got := spectest.Allowed(p)
			if !slices.Contains(got, "mount") || !slices.Contains(got, "umount2") {
				t.Fatalf("includes.caps CAP_SYS_ADMIN rule missing with SYS_ADMIN in bounding: %v", got)
			}
			if slices.Contains(got, "chmod") {
				t.Fatalf("excludes.caps CAP_SYS_ADMIN rule present with SYS_ADMIN in bounding: %v", got)
			}
		}},
		{name: "path traversal", file: "../x.json", errHas: `may not contain ".."`},
		{name: "traversal in the middle", file: "profiles/../../x.json", errHas: `may not contain ".."`},
		{name: "absolute path", file: "/etc/passwd", errHas: "must be relative"},
		{name: "empty name", file: "", errHas: "localhostProfile is empty"},
		{name: "an absolute symlink out of the root stays inside it", file: "link-out.json", errHas: "no such file"},
		{name: "a relative symlink out of the root stays inside it", file: "link-up.json", errHas: "no such file"},
		{name: "missing file", file: "nope.json", errHas: "no such file"},
		{name: "a FIFO is not read", file: "fifo.json", errHas: "not a regular file"},
		{name: "a directory is not a profile", file: "dir.json", errHas: "not a regular file"},
		{name: "typo in a syscall name", file: "typo.json", errHas: "unknown syscall name(s) mkdirr"},
		{name: "empty file", file: "empty.json", errHas: "not a seccomp profile"},
		{name: "a profile that confines nothing", file: "nothing.json", errHas: "would confine nothing"},
		{name: "null rule", file: "null-rule.json", errHas: "syscalls[0] must be an object"},
		{name: "string rule", file: "string-rule.json", errHas: "syscalls[0] must be an object"},
		{name: "rule without names", file: "no-names.json", errHas: "syscalls[0] names no syscall"},
		{name: "architectures and archMap", file: "both-arches.json", errHas: "both 'architectures' and 'archMap'"},
		{name: "YAML is not JSON", file: "not-json.json", errHas: "not a seccomp profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caps := tt.caps
			if caps == nil {
				caps = DefaultCapabilities
			}
			s := withCaps(caps...)
			err := WithLocalhostSeccomp(root, tt.file)(s)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want one containing %q", err, tt.errHas)
				}
				if !strings.Contains(err.Error(), "seccompProfile Localhost") {
					t.Errorf("error %q does not name the setting", err)
				}
				if s.Linux != nil && s.Linux.Seccomp != nil {
					t.Fatal("a refused profile was installed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, s.Linux.Seccomp)
			}
		})
	}
}

func TestWithLocalhostSeccompMissingRoot(t *testing.T) {
	err := WithLocalhostSeccomp(filepath.Join(t.TempDir(), "none"), "p.json")(withDefaultCaps())
	if err == nil || !strings.Contains(err.Error(), "open profile root") {
		t.Fatalf("err = %v", err)
	}
}

func TestWithUnconfinedSeccompAndConfined(t *testing.T) {
	s := withDefaultCaps()
	if err := WithUnconfinedSeccomp()(s); err != nil || Confined(s) {
		t.Fatalf("unconfined on a bare spec: err %v confined %v", err, Confined(s))
	}
	s.Linux = &specs.Linux{Seccomp: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}}
	if Confined(s) {
		t.Fatal("a filter that allows by default is not confinement")
	}
	s.Linux.Seccomp.DefaultAction = specs.ActKillProcess
	if !Confined(s) {
		t.Fatal("kill-process by default is confinement")
	}
	if err := WithUnconfinedSeccomp()(s); err != nil || s.Linux.Seccomp != nil {
		t.Fatal("Unconfined must remove the filter")
	}
}

func TestValidateSeccomp(t *testing.T) {
	if err := ValidateSeccomp(nil); err != nil {
		t.Fatal(err)
	}
	ok := &specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{{Names: []string{"read", "openat"}}}}
	if err := ValidateSeccomp(ok); err != nil {
		t.Fatal(err)
	}
	bad := &specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{{Names: []string{"read", "opnat", "clone4"}}}}
	err := ValidateSeccomp(bad)
	if err == nil || !strings.Contains(err.Error(), "opnat, clone4") {
		t.Fatalf("err = %v, want both unknown names listed", err)
	}
}

// FuzzLocalhostSeccomp feeds arbitrary profile bodies through the
// Localhost path: whatever the file holds, the option returns an error or
// a profile, never a panic.
func FuzzLocalhostSeccomp(f *testing.F) {
	f.Add([]byte(spectest.OCIProfile))
	f.Add([]byte(spectest.DockerProfile(specs.ArchX86_64, []specs.Arch{specs.ArchX86}, "amd64")))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[null]}`))
	f.Add([]byte(`{"syscalls":[{"name":"read","names":["write"]}]}`))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["x"],"includes":{"minKernel":"0.0"}}]}`))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"excludes":{"minKernel":"99.1","caps":["CAP_SYS_ADMIN"]}}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	root := f.TempDir()
	path := filepath.Join(root, "p.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*specs.Spec{withDefaultCaps(), {}, {Process: &specs.Process{}}} {
			if err := WithLocalhostSeccomp(root, "p.json")(s); err == nil && (s.Linux == nil || s.Linux.Seccomp == nil) {
				t.Fatalf("no error and no profile for %q", body)
			}
		}
	})
}

// TestRuntimeDefaultCache: the cached profiles are moby's, for every
// bounding set, and what callers get is theirs to change.
func TestRuntimeDefaultCache(t *testing.T) {
	for _, caps := range [][]string{nil, {}, DefaultCapabilities, {"CAP_SYS_ADMIN"}, {"CAP_SYS_PTRACE", "CAP_SYS_ADMIN"}, {"CAP_BPF", "CAP_PERFMON", "CAP_SYS_NICE"}} {
		s := withCaps(caps...)
		for range 2 { // a miss, then a hit
			got, err := RuntimeDefaultFor(s)
			if err != nil {
				t.Fatal(err)
			}
			want, err := mobyseccomp.GetDefaultProfile(withBounding(s))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("caps %v: cached RuntimeDefault differs from moby's", caps)
			}
			// A caller that edits its copy must not reach the cache.
			got.Syscalls[0].Names[0] = "changed"
			got.Syscalls[0].Names = append(got.Syscalls[0].Names, "appended")
			if got.Syscalls[0].ErrnoRet != nil {
				*got.Syscalls[0].ErrnoRet = 99
			}
			got.Syscalls = got.Syscalls[:1]
		}
		why, err := SeccompWithinRuntimeDefaultFor(mustDefault(t, s), s)
		if err != nil || len(why) != 0 {
			t.Fatalf("caps %v: RuntimeDefault is not within itself: %v %v", caps, why, err)
		}
		// The short cut for the floor itself answers what the index does.
		if why := indexFloor(mustDefault(t, s)).within(mustDefault(t, s), runtimeDefaultVariants); len(why) != 0 {
			t.Fatalf("caps %v: the index finds RuntimeDefault outside itself: %v", caps, why)
		}
		weaker := mustDefault(t, s)
		weaker.Syscalls = append(weaker.Syscalls, specs.LinuxSyscall{Names: []string{"bpf"}, Action: specs.ActAllow})
		if why, _ := SeccompWithinRuntimeDefaultFor(weaker, s); len(why) == 0 && !slices.Contains(caps, "CAP_SYS_ADMIN") && !slices.Contains(caps, "CAP_BPF") {
			t.Fatalf("caps %v: bpf allowed beyond RuntimeDefault passes", caps)
		}
	}
}

func mustDefault(t *testing.T, s *specs.Spec) *specs.LinuxSeccomp {
	t.Helper()
	p, err := mobyseccomp.GetDefaultProfile(withBounding(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
