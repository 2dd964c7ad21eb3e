package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/yaml"

	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/seccompagent"
	"github.com/secrun/secrun/shim"
	"github.com/secrun/secrun/spec"
)

func writeRecord(t *testing.T, dir string) {
	t.Helper()
	zero := uint(0)
	now := time.Now().UTC()
	rec := seccompagent.Record{Container: "abc123", Namespace: "shop", Pod: "web-1", ContainerName: "web", Mode: spec.AgentRecord,
		Profile: spec.SeccompRuntimeDefault, Started: now, Updated: now,
		Capabilities: []string{"CAP_NET_BIND_SERVICE"},
		Syscalls: []*seccompagent.Syscall{
			{Name: "keyctl", Count: 3, First: now, Last: now, Profile: spec.Denial{Action: specs.ActErrno, Errno: 1}, Answer: "continued", Comm: []string{"web"}},
			{Name: "unshare", Count: 1, First: now, Last: now, Profile: spec.Denial{Action: specs.ActErrno, Errno: 1}, Answer: "continued",
				Args: []string{"flags=CLONE_NEWUSER"}, KeyArg: &zero, Values: []uint64{unix.CLONE_NEWUSER}},
		}}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "abc123.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestSeccompWhyAndProfile(t *testing.T) {
	bin := secrunctl(t)
	state, out := t.TempDir(), t.TempDir()
	writeRecord(t, state)

	why, err := exec.Command(bin, "seccomp", "why", "--state", state, "shop/web-1").CombinedOutput()
	if err != nil {
		t.Fatalf("why: %v\n%s", err, why)
	}
	for _, w := range []string{"Pod shop/web-1", "keyctl", "flags=CLONE_NEWUSER", "SYS_ADMIN", "would have been blocked"} {
		if !strings.Contains(string(why), w) {
			t.Errorf("why lacks %q:\n%s", w, why)
		}
	}

	msg, err := exec.Command(bin, "seccomp", "profile", "--state", state, "--from-record", "abc123", "-o", out).CombinedOutput()
	if err != nil {
		t.Fatalf("profile: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(filepath.Join(out, "secrun-web.json"))
	if err != nil {
		t.Fatal(err)
	}
	var p specs.LinuxSeccomp
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if err := spec.ValidateSeccomp(&p); err != nil {
		t.Errorf("secrun would refuse the generated Localhost profile: %v", err)
	}
	for _, c := range []struct {
		name string
		args []uint64
		want bool
	}{{"keyctl", nil, true}, {"unshare", []uint64{unix.CLONE_NEWUSER}, true}, {"unshare", []uint64{unix.CLONE_NEWNET}, false}, {"bpf", nil, false}} {
		if d, _ := spec.SeccompAnswer(&p, c.name, c.args); d.Denies() == c.want {
			t.Errorf("%s%v: %s", c.name, c.args, d)
		}
	}
	y, err := os.ReadFile(filepath.Join(out, "secrun-web.seccompprofile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var spo struct {
		Kind     string
		Metadata struct{ Name, Namespace string }
		Spec     specs.LinuxSeccomp
	}
	if err := yaml.Unmarshal(y, &spo); err != nil || spo.Kind != "SeccompProfile" || spo.Metadata.Namespace != "shop" || len(spo.Spec.Syscalls) != len(p.Syscalls) {
		t.Errorf("SeccompProfile: %v %+v", err, spo.Metadata)
	}

	if msg, err := exec.Command(bin, "seccomp", "profile", "--state", state, "--from-record", "abc123", "--minimal", "-o", out).CombinedOutput(); err == nil || !strings.Contains(string(msg), "record-all") {
		t.Errorf("--minimal from a record-mode record: %v\n%s", err, msg)
	}
	if msg, err := exec.Command(bin, "seccomp", "why", "--state", state, "shop/nope").CombinedOutput(); err == nil || !strings.Contains(string(msg), "no record for Pod shop/nope") {
		t.Errorf("why for an unknown Pod: %v\n%s", err, msg)
	}
}

func TestSeccompWhyFromTheAuditLog(t *testing.T) {
	bin := secrunctl(t)
	state := t.TempDir()
	writeRecord(t, state)
	log := filepath.Join(t.TempDir(), "audit.log")
	lines := []shim.AuditRecord{
		{Time: "2026-12-01T10:00:00Z", Command: "create", Container: "abc123", Namespace: "shop", Pod: "web-1", ContainerName: "web",
			Policy: "restricted", Mode: policy.Harden, Decision: policy.Hardened, Changes: []policy.Change{
				{Rule: policy.RuleNoNewPrivileges, Message: "fixed: no_new_privs is off"},
				{Rule: policy.RuleSeccomp, Message: "fixed: no seccomp filter"},
				{Rule: policy.RuleSeccompAgent, Message: "record via /run/secrun/seccomp-agent.sock: 300 calls notified"}}},
		{Time: "2026-12-01T10:01:00Z", Command: "create", Container: "other", Policy: "restricted", Mode: policy.Enforce, Decision: policy.Refused,
			Findings: []policy.Finding{{Rule: policy.RuleSeccomp, Field: "linux.seccomp", Problem: "weaker than RuntimeDefault", Fix: "use RuntimeDefault"}}},
	}
	var text []byte
	for _, l := range lines {
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		text = append(append(text, b...), '\n')
	}
	// A torn last line, as a create killed mid-append leaves.
	text = append(text, `{"time":"2026-12-01T10:02`...)
	if err := os.WriteFile(log, text, 0o600); err != nil {
		t.Fatal(err)
	}

	// Both sources: the record's table, then secrun's seccomp changes only.
	out, err := exec.Command(bin, "seccomp", "why", "--state", state, "--audit-log", log, "abc123").CombinedOutput()
	if err != nil {
		t.Fatalf("why: %v\n%s", err, out)
	}
	for _, w := range []string{"keyctl", "secrun's audit log: 1 entries", "fixed: no seccomp filter", "record via /run/secrun/seccomp-agent.sock"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("why lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(string(out), "no_new_privs") {
		t.Errorf("why shows a change of another rule:\n%s", out)
	}
	// A record named by its file, or by its Pod, is still of container
	// abc123: the audit log's part is there too.
	for _, name := range []string{filepath.Join(state, "abc123.json"), "shop/web-1/web"} {
		out, err := exec.Command(bin, "seccomp", "why", "--state", state, "--audit-log", log, name).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "keyctl") || !strings.Contains(string(out), "fixed: no seccomp filter") {
			t.Errorf("why %s: %v\n%s", name, err, out)
		}
	}
	// The audit log alone: a container that never had the agent.
	out, err = exec.Command(bin, "seccomp", "why", "--state", state, "--audit-log", log, "other").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "no agent record") || !strings.Contains(string(out), "linux.seccomp: weaker than RuntimeDefault; fix: use RuntimeDefault") {
		t.Errorf("why from the audit log alone: %v\n%s", err, out)
	}
	// Neither: the record's error stands.
	if out, err := exec.Command(bin, "seccomp", "why", "--state", state, "--audit-log", log, "nothing").CombinedOutput(); err == nil || !strings.Contains(string(out), "no record") {
		t.Errorf("why for an unknown container: %v\n%s", err, out)
	}
}

func TestSeccompProfileFromDockerBase(t *testing.T) {
	// A Docker-form base, as moby's default.json is: its includes.caps
	// rule applies only to containers with that capability, and archMap
	// gives the architectures. The record holds no CAP_SYS_ADMIN, so the
	// generated profile must not allow mount.
	bin := secrunctl(t)
	state, out := t.TempDir(), t.TempDir()
	writeRecord(t, state)
	base := filepath.Join(t.TempDir(), "base.json")
	if err := os.WriteFile(base, []byte(`{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
  "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
              {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
  "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
               {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(bin, "seccomp", "profile", "--state", state, "--from-record", "abc123", "--base", base, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("profile --base: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(filepath.Join(out, "secrun-web.json"))
	if err != nil {
		t.Fatal(err)
	}
	var p specs.LinuxSeccomp
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Architectures) == 0 {
		t.Error("the base's archMap was dropped: the profile names no architecture")
	}
	for _, c := range []struct {
		name string
		want bool // allowed
	}{{"read", true}, {"keyctl", true}, {"mount", false}} {
		if d, _ := spec.SeccompAnswer(&p, c.name, nil); d.Denies() == c.want {
			t.Errorf("%s: %s", c.name, d)
		}
	}
	// A base that is no profile at all is refused, naming the flag.
	empty := filepath.Join(t.TempDir(), "empty.json")
	os.WriteFile(empty, []byte(`{}`), 0o600)
	if msg, err := exec.Command(bin, "seccomp", "profile", "--state", state, "--from-record", "abc123", "--base", empty, "-o", out).CombinedOutput(); err == nil || !strings.Contains(string(msg), "--base") {
		t.Errorf("profile --base {}: %v\n%s", err, msg)
	}
}
