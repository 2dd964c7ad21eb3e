package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// secrunctl builds this command once per test binary.
func secrunctl(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "secrunctl-test-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "secrunctl")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err, string(out)}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

func runcSpecBundle(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	raw, err := os.ReadFile("../../policy/testdata/runc-spec.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestExplainRestricted(t *testing.T) {
	bin := secrunctl(t)
	b := runcSpecBundle(t)
	before, _ := os.ReadFile(filepath.Join(b, "config.json"))
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("policies:\n  restricted:\n    mode: harden\n    runAsUser: 1000\n"), 0o600)

	out, err := exec.Command(bin, "--config", cfg, "explain", "--policy", "restricted", b).CombinedOutput()
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	for _, want := range []string{"policy restricted (harden): hardened", "change:  capabilities", "change:  runAsNonRoot", "change:  seccomp"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
	// The hardened config it would write, and the bundle left alone.
	out, err = exec.Command(bin, "--config", cfg, "explain", "--policy", "restricted", "--config-json", b).Output()
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Process struct {
			User struct{ UID int } `json:"user"`
		} `json:"process"`
	}
	if err := json.Unmarshal(out, &s); err != nil || s.Process.User.UID != 1000 {
		t.Errorf("--config-json: uid %d, %v", s.Process.User.UID, err)
	}
	if after, _ := os.ReadFile(filepath.Join(b, "config.json")); string(after) != string(before) {
		t.Error("explain changed the bundle")
	}
}

func TestExplainRefusalExitCode(t *testing.T) {
	bin := secrunctl(t)
	b := runcSpecBundle(t)
	cmd := exec.Command(bin, "explain", "--policy", "restricted", "--mode", "enforce", "--json", b)
	cmd.Env = append(os.Environ(), "SECRUN_CONFIG=")
	out, err := cmd.Output()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 3 {
		t.Fatalf("explain of a refused bundle: err %v, want exit 3\n%s", err, out)
	}
	var res struct {
		Decision string
		Findings []struct{ Rule string }
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if res.Decision != "refused" || len(res.Findings) == 0 {
		t.Errorf("decision %q findings %v", res.Decision, res.Findings)
	}
}

func TestPolicyShowAndList(t *testing.T) {
	bin := secrunctl(t)
	cmd := exec.Command(bin, "policy", "show", "restricted")
	cmd.Env = append(os.Environ(), "SECRUN_CONFIG=")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "runAsNonRoot: true") || !strings.Contains(string(out), "seccomp: RuntimeDefault") {
		t.Errorf("policy show restricted: %v\n%s", err, out)
	}
	cmd = exec.Command(bin, "policy", "show", "restrictd")
	cmd.Env = append(os.Environ(), "SECRUN_CONFIG=")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "did you mean restricted?") {
		t.Errorf("policy show of a typo: %v\n%s", err, out)
	}
}

// TestExplainRunc: explain checks the config secrun would write as runc's
// create does, and a config runc refuses exits 3 with runc's reason and
// the field.
func TestExplainRunc(t *testing.T) {
	bin := secrunctl(t)
	b := runcSpecBundle(t)
	os.Mkdir(filepath.Join(b, "rootfs"), 0o755)
	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, append([]string{"explain", "--policy", "privileged"}, append(args, b)...)...)
		cmd.Env = append(os.Environ(), "SECRUN_CONFIG=")
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := run()
	if code != 0 || !strings.Contains(out, "runc:    accepts the config") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	// A hostname without a UTS namespace of its own: runc refuses it.
	raw, _ := os.ReadFile(filepath.Join(b, "config.json"))
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	linux := doc["linux"].(map[string]any)
	var kept []any
	for _, n := range linux["namespaces"].([]any) {
		if n.(map[string]any)["type"] != "uts" {
			kept = append(kept, n)
		}
	}
	linux["namespaces"] = kept
	doc["hostname"] = "web"
	raw, _ = json.Marshal(doc)
	if err := os.WriteFile(filepath.Join(b, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = run()
	if code != 3 || !strings.Contains(out, "runc:    runc would refuse this config.json: hostname: unable to set hostname without a private UTS namespace") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	out, code = run("--json")
	var res struct {
		Runc struct {
			Accepted bool
			Field    string
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 3 || res.Runc.Accepted || res.Runc.Field != "hostname" {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
}
