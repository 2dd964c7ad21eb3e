package policy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

// permissiveProfile denies by default but allows what RuntimeDefault
// forbids a container without SYS_ADMIN: enough to mount and unshare.
func permissiveProfile(extra ...string) *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls: []specs.LinuxSyscall{
			{Names: append([]string{"read", "write", "exit_group"}, extra...), Action: specs.ActAllow},
		},
	}
}

func TestSeccompFloor(t *testing.T) {
	for name, tc := range map[string]struct {
		profile func(s *specs.Spec) *specs.LinuxSeccomp
		refused bool
		// hardened: a filter that confines nothing (default LOG) is no
		// filter, and harden gives it RuntimeDefault instead.
		hardened bool
	}{
		"RuntimeDefault":  {profile: func(s *specs.Spec) *specs.LinuxSeccomp { return s.Linux.Seccomp }, refused: false},
		"a strict subset": {profile: func(*specs.Spec) *specs.LinuxSeccomp { return permissiveProfile() }, refused: false},
		"allows unshare and mount": {profile: func(*specs.Spec) *specs.LinuxSeccomp {
			return permissiveProfile("unshare", "mount", "setns", "bpf", "ptrace")
		}, refused: true},
		"allows clone3 (ENOSYS'd)": {profile: func(*specs.Spec) *specs.LinuxSeccomp { return permissiveProfile("clone3") }, refused: true},
		"default action log": {profile: func(*specs.Spec) *specs.LinuxSeccomp {
			p := permissiveProfile()
			p.DefaultAction = specs.ActLog
			return p
		}, refused: true, hardened: true},
		"notify default": {profile: func(*specs.Spec) *specs.LinuxSeccomp {
			p := permissiveProfile()
			p.DefaultAction = specs.ActNotify
			return p
		}, refused: true},
		"trace lets a tracer allow": {profile: func(*specs.Spec) *specs.LinuxSeccomp {
			p := permissiveProfile()
			p.DefaultAction = specs.ActTrace
			return p
		}, refused: true},
		"spec-allow flag": {profile: func(*specs.Spec) *specs.LinuxSeccomp {
			p := permissiveProfile()
			p.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagSpecAllow}
			return p
		}, refused: true},
		"clone without the flag mask": {profile: func(*specs.Spec) *specs.LinuxSeccomp { return permissiveProfile("clone") }, refused: true},
		"clone with more conditions than RuntimeDefault's": {profile: func(s *specs.Spec) *specs.LinuxSeccomp {
			p := permissiveProfile()
			for _, r := range s.Linux.Seccomp.Syscalls {
				if len(r.Names) == 1 && r.Names[0] == "clone" && r.Action == specs.ActAllow {
					r.Args = append(r.Args, specs.LinuxSeccompArg{Index: 1, Value: 0, Op: specs.OpEqualTo})
					p.Syscalls = append(p.Syscalls, r)
				}
			}
			return p
		}, refused: false},
		"personality with any value": {profile: func(*specs.Spec) *specs.LinuxSeccomp { return permissiveProfile("personality") }, refused: true},
		"errno rules only narrow": {profile: func(*specs.Spec) *specs.LinuxSeccomp {
			p := permissiveProfile()
			p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"mount"}, Action: specs.ActErrno})
			return p
		}, refused: false},
	} {
		t.Run(name, func(t *testing.T) {
			for _, mode := range []Mode{Enforce, Harden} {
				s, env := cleanSpec(t)
				s.Linux.Seccomp = tc.profile(s)
				out := builtin(t, "restricted", mode).Decide(env, s)
				if mode == Harden && tc.hardened {
					if out.Refused() || !spec.Confined(s) {
						t.Fatalf("harden: decision %s, confined %v", out.Decision, spec.Confined(s))
					}
					continue
				}
				if out.Refused() != tc.refused {
					t.Fatalf("%s: decision %s, findings %v", mode, out.Decision, out.Findings)
				}
				if tc.refused && !hasRule(out.Findings, "seccomp") {
					t.Fatalf("%s: refused, but not for seccomp: %v", mode, out.Findings)
				}
				// baseline does not hold filters to RuntimeDefault.
				s, env = cleanSpec(t)
				s.Linux.Seccomp = tc.profile(s)
				if out := builtin(t, "baseline", mode).Decide(env, s); out.Refused() && tc.profile(s).DefaultAction != specs.ActLog {
					t.Fatalf("baseline %s refused: %v", mode, out.Findings)
				}
			}
		})
	}
}

func TestSeccompFloorLocalhost(t *testing.T) {
	// A profile the admin placed below the profile root passes whatever
	// it allows; the same profile with one more syscall does not.
	s, env := cleanSpec(t)
	p := permissiveProfile("unshare")
	b, _ := json.Marshal(p)
	if err := os.MkdirAll(filepath.Join(env.SeccompProfileRoot, "team"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(env.SeccompProfileRoot, "team", "unshare.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	s.Linux.Seccomp = p
	if out := builtin(t, "restricted", Enforce).Decide(env, s); out.Refused() {
		t.Fatalf("an admin's Localhost profile was refused: %v", out.Findings)
	}
	s, env2 := cleanSpec(t)
	env2.SeccompProfileRoot = env.SeccompProfileRoot
	s.Linux.Seccomp = permissiveProfile("unshare", "mount")
	if out := builtin(t, "restricted", Enforce).Decide(env2, s); !out.Refused() {
		t.Fatal("a profile that is not the admin's passed")
	}
}

func TestSeccompFloorHardenRegenerates(t *testing.T) {
	// containerd generates RuntimeDefault for the capabilities it gives;
	// harden drops some, and the profile is then regenerated for the
	// capabilities left, not refused.
	s, env := cleanSpec(t)
	all := spec.AllCapabilities()
	s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: all, Permitted: slices.Clone(all), Effective: slices.Clone(all)}
	if err := spec.WithRuntimeDefaultSeccomp()(s); err != nil {
		t.Fatal(err)
	}
	out := builtin(t, "restricted", Harden).Decide(env, s)
	if out.Refused() {
		t.Fatalf("refused: %v %v", out.Findings, out.Err)
	}
	want, _ := spec.RuntimeDefaultFor(s)
	if len(spec.SeccompWithin(s.Linux.Seccomp, want)) != 0 {
		t.Error("the profile was not regenerated for the final capabilities")
	}
}
