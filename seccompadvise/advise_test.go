package seccompadvise

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/seccompagent"
	"github.com/secrun/secrun/spec"
)

func u(v uint) *uint { return &v }

var eperm = spec.Denial{Action: specs.ActErrno, Errno: 1}

func record() *seccompagent.Record {
	return &seccompagent.Record{Container: "c1", Mode: spec.AgentRecord, Profile: spec.SeccompRuntimeDefault, Syscalls: []*seccompagent.Syscall{
		{Name: "keyctl", Count: 2, Profile: eperm},
		{Name: "unshare", Count: 1, Profile: eperm, KeyArg: u(0), Values: []uint64{unix.CLONE_NEWUSER}, Args: []string{"flags=CLONE_NEWUSER"}},
		{Name: "clone3", Count: 5, Profile: spec.Denial{Action: specs.ActErrno, Errno: uint(unix.ENOSYS)}},
	}}
}

func answer(p *specs.LinuxSeccomp, name string, args ...uint64) bool {
	d, _ := spec.SeccompAnswer(p, name, args)
	return !d.Denies()
}

// TestProfileAllowsExactlyWhatWasUsed: the recorded calls run, the same
// syscalls with other arguments and syscalls never used stay denied, and
// RuntimeDefault's own allowances stay.
func TestProfileAllowsExactlyWhatWasUsed(t *testing.T) {
	p, adds, err := Profile(record(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(adds) != 3 {
		t.Errorf("additions %v", adds)
	}
	for _, ok := range []struct {
		name string
		args []uint64
		want bool
	}{
		{"keyctl", nil, true},
		{"clone3", nil, true},
		{"unshare", []uint64{unix.CLONE_NEWUSER}, true},
		{"unshare", []uint64{unix.CLONE_NEWNET}, false},
		{"add_key", nil, false},
		{"bpf", nil, false},
		{"read", nil, true},
	} {
		if got := answer(p, ok.name, ok.args...); got != ok.want {
			t.Errorf("%s%v allowed = %v, want %v", ok.name, ok.args, got, ok.want)
		}
	}
	y, err := SPOYAML(p, "secrun-c1", "default")
	if err != nil || !strings.Contains(string(y), "kind: SeccompProfile") || !strings.Contains(string(y), "keyctl") {
		t.Errorf("SPO YAML: %v\n%s", err, y)
	}
}

func TestMinimalNeedsRecordAll(t *testing.T) {
	if _, err := Minimal(record()); err == nil || !strings.Contains(err.Error(), "record-all") {
		t.Fatalf("err = %v", err)
	}
	rec := record()
	rec.Mode = spec.AgentRecordAll
	rec.Syscalls = append(rec.Syscalls, &seccompagent.Syscall{Name: "read", Profile: spec.Denial{Action: specs.ActAllow}})
	p, err := Minimal(rec)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"read": true, "write": true, "keyctl": true, "openat": false, "getpid": false} {
		if got := answer(p, name); got != want {
			t.Errorf("%s allowed = %v, want %v", name, got, want)
		}
	}
}

func TestWhyNamesTheCapability(t *testing.T) {
	b, err := Why(record())
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 3 || b[0].Name != "clone3" {
		t.Fatalf("blocked %v", b)
	}
	for _, x := range b {
		hasAdmin := strings.Contains(strings.Join(x.Capabilities, ","), "SYS_ADMIN")
		if want := x.Name != "keyctl"; hasAdmin != want {
			t.Errorf("%s: capabilities %v", x.Name, x.Capabilities)
		}
	}
	var out strings.Builder
	WriteWhy(&out, record(), b)
	if !strings.Contains(out.String(), "would have been blocked") || !strings.Contains(out.String(), "flags=CLONE_NEWUSER") {
		t.Errorf("why:\n%s", out.String())
	}
}
