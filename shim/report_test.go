package shim

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrun/secrun/policy"
)

// runc writes its --log in JSON or in logrus text; containerd reads the
// JSON form, a human the text. secrun's line must parse as either.
func TestWriteRuntimeLog(t *testing.T) {
	dir := t.TempDir()
	msg := `secrun: policy restricted (enforce) refused container a: capabilities: "quoted"`
	j := filepath.Join(dir, "log.json")
	if err := writeRuntimeLog(j, "json", "error", msg); err != nil {
		t.Fatal(err)
	}
	var e map[string]string
	raw, _ := os.ReadFile(j)
	if err := json.Unmarshal(raw, &e); err != nil || e["msg"] != msg || e["level"] != "error" || e["time"] == "" {
		t.Errorf("json line %s: %v", raw, err)
	}
	txt := filepath.Join(dir, "log.txt")
	if err := writeRuntimeLog(txt, "text", "error", msg); err != nil {
		t.Fatal(err)
	}
	raw, _ = os.ReadFile(txt)
	if !strings.HasPrefix(string(raw), `time="`) || !strings.Contains(string(raw), `level=error msg="secrun: policy restricted (enforce) refused container a: capabilities: \"quoted\""`) {
		t.Errorf("text line %s", raw)
	}
	if err := writeRuntimeLog("", "json", "error", msg); err != nil {
		t.Errorf("no --log must be a no-op: %v", err)
	}
}

func TestRefusalIsOneLine(t *testing.T) {
	r := &refusal{policy: "baseline", mode: policy.Enforce, id: "c1", findings: []policy.Finding{
		{Rule: "privileged", Field: "process.capabilities", Problem: "privileged", Fix: "drop it"},
		{Rule: "devices", Field: "linux.resources.devices", Problem: "all devices", Fix: "remove"},
	}}
	twice := &refusal{policy: "baseline", mode: policy.Enforce, id: "c1", findings: []policy.Finding{
		{Rule: "privileged"}, {Rule: "devices"}, {Rule: "devices"}, {Rule: "mounts"},
	}}
	if got := twice.Error(); !strings.Contains(got, "(and 3 more: devices ×2, mounts;") {
		t.Errorf("rules are not counted once each: %s", got)
	}
	got := r.Error()
	if strings.Contains(got, "\n") || !strings.Contains(got, "policy baseline (enforce) refused container c1: privileged") ||
		!strings.Contains(got, "fix: drop it") || !strings.Contains(got, "and 1 more: devices") {
		t.Errorf("refusal = %q", got)
	}
	r = &refusal{policy: "baseline", mode: policy.Harden, err: errors.New("annotation x: bad")}
	if got := r.Error(); got != "policy baseline (harden) refused the container: annotation x: bad" {
		t.Errorf("refusal without id = %q", got)
	}
}

func TestFailPrintsOneLine(t *testing.T) {
	var b strings.Builder
	log := filepath.Join(t.TempDir(), "log.json")
	inv := &Invocation{Log: log, LogFormat: "json"}
	if code := fail(inv, &b, errors.New("first\nsecond part")); code != 1 {
		t.Errorf("exit %d", code)
	}
	if b.String() != "secrun: first second part\n" {
		t.Errorf("stderr %q", b.String())
	}
	raw, _ := os.ReadFile(log)
	if strings.Count(strings.TrimSpace(string(raw)), "\n") != 0 || !strings.Contains(string(raw), "first second part") {
		t.Errorf("log %q", raw)
	}
}
