package spec

import (
	"fmt"
	"math"
	"slices"
	"testing"

	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// verdictOf is SeccompAnswer, failing on overlapping rules: the rewrite
// must never build rules whose order libseccomp would decide.
func verdictOf(t *testing.T, p *specs.LinuxSeccomp, name string, args ...uint64) Denial {
	t.Helper()
	d, ambiguous := SeccompAnswer(p, name, args)
	if ambiguous {
		t.Fatalf("%s%v: overlapping rules with different actions", name, args)
	}
	return d
}

func runtimeDefaultFor(t *testing.T, caps ...string) *specs.LinuxSeccomp {
	t.Helper()
	p, err := mobyseccomp.GetDefaultProfile(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSeccompNotifyIsTheProfileWithNotifyForDenials: for every call the
// test makes up, the rewritten filter notifies exactly what RuntimeDefault
// denies and does to everything else what RuntimeDefault does; the
// metadata names the denial the agent answers with in explain mode.
func TestSeccompNotifyIsTheProfileWithNotifyForDenials(t *testing.T) {
	names := []string{"read", "write", "close", "keyctl", "add_key", "ptrace", "clone", "clone3", "unshare", "personality", "socket", "io_uring_setup", "mount", "getpid", "bpf"}
	values := []uint64{0, 1, 2, 3, 7, 8, 16, 39, 40, 41, 45, 46, 0x20000, 0x20008, 0x40000, 0xfffffffe, 0xffffffff, 0x100000000, math.MaxUint64,
		unix.CLONE_NEWUSER, unix.CLONE_NEWNS | unix.CLONE_FS | uint64(unix.SIGCHLD), unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND, unix.CLONE_NEWNET}
	for _, mode := range []string{AgentRecord, AgentExplain} {
		for _, caps := range [][]string{nil, {"CAP_SYS_ADMIN"}} {
			t.Run(fmt.Sprintf("%s/%v", mode, caps), func(t *testing.T) {
				orig := runtimeDefaultFor(t, caps...)
				got, plan, err := WithSeccompNotify(orig, names, AgentMetadata{Mode: mode, Profile: SeccompRuntimeDefault}, "/run/agent.sock")
				if err != nil {
					t.Fatal(err)
				}
				if got.ListenerPath != "/run/agent.sock" {
					t.Errorf("listenerPath = %q", got.ListenerPath)
				}
				meta, err := ParseAgentMetadata(got.ListenerMetadata)
				if err != nil {
					t.Fatal(err)
				}
				if meta.Mode != mode || meta.Default != (Denial{Action: specs.ActErrno, Errno: 1}) {
					t.Errorf("metadata %+v", meta)
				}
				notified := 0
				for _, n := range names {
					for _, v := range values {
						before := verdictOf(t, orig, n, v)
						after := verdictOf(t, got, n, v)
						switch {
						case n == "write":
							if after != before {
								t.Errorf("write(%#x): %s, want the profile's %s", v, after, before)
							}
						case denies(before.Action):
							notified++
							if after.Action != specs.ActNotify {
								t.Errorf("%s(%#x): denied %s by the profile, %s after the rewrite; want notify", n, v, before, after)
							} else if d := meta.DenialFor(n, []uint64{v}); d != before {
								t.Errorf("%s(%#x): metadata says the profile answers %s, it answers %s", n, v, d, before)
							}
						case after != before:
							t.Errorf("%s(%#x): allowed by the profile (%s), %s after the rewrite", n, v, before, after)
						}
					}
				}
				if notified == 0 {
					t.Fatal("no call the test made is denied; the test cannot judge")
				}
				if plan.Notified == 0 || len(plan.Kept) != 0 {
					t.Errorf("plan %s", plan)
				}
			})
		}
	}
}

func TestSeccompNotifyExplainKeepsKills(t *testing.T) {
	p := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"read", "close"}, Action: specs.ActAllow},
		{Names: []string{"reboot"}, Action: specs.ActKillProcess},
	}}
	for mode, wantReboot := range map[string]specs.LinuxSeccompAction{AgentExplain: specs.ActKillProcess, AgentRecord: specs.ActNotify} {
		got, plan, err := WithSeccompNotify(p, []string{"read", "reboot", "keyctl"}, AgentMetadata{Mode: mode}, "/s")
		if err != nil {
			t.Fatal(err)
		}
		if a := verdictOf(t, got, "reboot").Action; a != wantReboot {
			t.Errorf("%s: reboot %s, want %s (plan %s)", mode, a, wantReboot, plan)
		}
		if a := verdictOf(t, got, "keyctl").Action; a != specs.ActNotify {
			t.Errorf("%s: keyctl %s", mode, a)
		}
		if a := verdictOf(t, got, "read").Action; a != specs.ActAllow {
			t.Errorf("%s: read %s", mode, a)
		}
	}
}

func TestSeccompNotifyRefuses(t *testing.T) {
	for name, p := range map[string]*specs.LinuxSeccomp{
		"no filter":      nil,
		"allow default":  {DefaultAction: specs.ActAllow},
		"own listener":   {DefaultAction: specs.ActErrno, ListenerPath: "/elsewhere"},
		"own notify":     {DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}}},
		"denies nothing": {DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow}}},
	} {
		if _, _, err := WithSeccompNotify(p, []string{"read"}, AgentMetadata{Mode: AgentRecord}, "/s"); err == nil {
			t.Errorf("%s: rewritten", name)
		}
	}
	for _, bad := range []string{"", "{}", `{"secrun":2,"mode":"record"}`, `{"secrun":1,"mode":"allow"}`} {
		if _, err := ParseAgentMetadata(bad); err == nil {
			t.Errorf("metadata %q accepted", bad)
		}
	}
}

func TestComplementRanges(t *testing.T) {
	for _, tc := range []struct {
		in   []interval
		want []interval
	}{
		{nil, []interval{{0, math.MaxUint64}}},
		{[]interval{{0, math.MaxUint64}}, nil},
		{[]interval{{0, 2}, {7, 7}, {5, 8}}, []interval{{3, 4}, {9, math.MaxUint64}}},
		{[]interval{{3, math.MaxUint64}}, []interval{{0, 2}}},
	} {
		if got := complement(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("complement(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	// Blocks cover exactly the interval.
	iv := interval{9, 0x1ffff}
	for _, v := range []uint64{8, 9, 10, 15, 16, 0x1000, 0x1ffff, 0x20000} {
		in := false
		for _, a := range argsFor(0, iv) {
			if v&a.Value == a.ValueTwo {
				in = true
			}
		}
		if in != (v >= iv.lo && v <= iv.hi) {
			t.Errorf("%#x: in blocks %v", v, in)
		}
	}
}

// TestSeccompNotifyRecordAll: every name but write is notified, and the
// metadata tells, call by call, what the profile would have done.
func TestSeccompNotifyRecordAll(t *testing.T) {
	orig := runtimeDefaultFor(t)
	names := []string{"read", "write", "keyctl", "clone", "clone3", "personality", "socket"}
	got, _, err := WithSeccompNotify(orig, names, AgentMetadata{Mode: AgentRecordAll}, "/s")
	if err != nil {
		t.Fatal(err)
	}
	meta, err := ParseAgentMetadata(got.ListenerMetadata)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		for _, v := range []uint64{0, 8, 40, 0x40000, unix.CLONE_NEWUSER, unix.CLONE_VM} {
			after := verdictOf(t, got, n, v)
			before := verdictOf(t, orig, n, v)
			if n == "write" {
				if after != before {
					t.Errorf("write notified")
				}
				continue
			}
			if after.Action != specs.ActNotify {
				t.Errorf("%s(%#x): %s, want notify", n, v, after)
			}
			if d := meta.DenialFor(n, []uint64{v}); d != before {
				t.Errorf("%s(%#x): metadata says %s, the profile does %s", n, v, d, before)
			}
		}
	}
}
