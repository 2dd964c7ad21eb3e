package shim_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/secrun/secrun/internal/testenv"
)

// filesSetup is a bundle with a good config.json, a delegate that records
// that it ran, and a config.yaml naming both.
func filesSetup(t *testing.T, extraConfig string) (secrun string, env []string, bundle, ran string) {
	t.Helper()
	bin := testenv.Build(t)
	work := t.TempDir()
	ran = filepath.Join(work, "delegate-ran")
	delegate := filepath.Join(work, "fake-runc")
	os.WriteFile(delegate, []byte("#!/bin/sh\ntouch "+ran+"\n"), 0o755)
	good, err := os.ReadFile("../policy/testdata/runc-spec.json")
	if err != nil {
		t.Fatal(err)
	}
	bundle = t.TempDir()
	os.WriteFile(filepath.Join(bundle, "config.json"), good, 0o644)
	env, _ = testenv.WriteConfig(t, "runtime: "+delegate+"\npolicies:\n  restricted:\n    mode: harden\n    runAsUser: 1000\n"+extraConfig)
	return filepath.Join(bin, "secrun-restricted"), env, bundle, ran
}

func mkfifo(t *testing.T, p string) string {
	t.Helper()
	os.Remove(p)
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A FIFO at any path secrun opens fails at once with an error naming the
// path; no input makes secrun hang. testenv.Run's deadline turns a hang
// into a failure.
func TestFilesFIFO(t *testing.T) {
	// Each of these is refused before the delegate runs.
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, secrun string, env []string, b string) (fifo string, r testenv.Result)
	}{
		{"config.json", func(t *testing.T, secrun string, env []string, b string) (string, testenv.Result) {
			p := mkfifo(t, filepath.Join(b, "config.json"))
			return p, testenv.Run(t, env, secrun, "create", "--bundle", b, "id")
		}},
		{"process.json", func(t *testing.T, secrun string, env []string, b string) (string, testenv.Result) {
			p := mkfifo(t, filepath.Join(b, "process.json"))
			return p, testenv.Run(t, env, secrun, "exec", "--process", p, "id")
		}},
		{"SECRUN_CONFIG", func(t *testing.T, secrun string, _ []string, b string) (string, testenv.Result) {
			p := mkfifo(t, filepath.Join(t.TempDir(), "config.yaml"))
			return p, testenv.Run(t, []string{"SECRUN_CONFIG=" + p}, secrun, "create", "--bundle", b, "id")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secrun, env, b, ran := filesSetup(t, "")
			p, r := tc.run(t, secrun, env, b)
			if r.Code == 0 || !strings.Contains(r.Stderr, p+" is a FIFO") {
				t.Errorf("exit %d, stderr %q", r.Code, r.Stderr)
			}
			if _, err := os.Stat(ran); err == nil {
				t.Error("the delegate ran")
			}
		})
	}
	t.Run("runtime log", func(t *testing.T) {
		secrun, env, b, _ := filesSetup(t, "")
		os.WriteFile(filepath.Join(b, "config.json"), []byte("{"), 0o644) // refused: secrun writes the log
		p := mkfifo(t, filepath.Join(b, "log.json"))
		r := testenv.Run(t, env, secrun, "--log", p, "--log-format", "json", "create", "--bundle", b, "id")
		if r.Code == 0 || !strings.Contains(r.Stderr, "invalid JSON") || !strings.Contains(r.Stderr, p+" is a FIFO") {
			t.Errorf("exit %d, stderr %q", r.Code, r.Stderr)
		}
	})
	t.Run("audit log", func(t *testing.T) {
		p := mkfifo(t, filepath.Join(t.TempDir(), "audit.log"))
		secrun, env, b, ran := filesSetup(t, "auditLog: "+p+"\n")
		r := testenv.Run(t, env, secrun, "create", "--bundle", b, "id")
		// The audit log is a record, not the enforcement: the create goes on
		// with a warning.
		if r.Code != 0 || !strings.Contains(r.Stderr, "audit log "+p) || !strings.Contains(r.Stderr, "FIFO") {
			t.Errorf("exit %d, stderr %q", r.Code, r.Stderr)
		}
		if _, err := os.Stat(ran); err != nil {
			t.Error("the delegate did not run")
		}
	})
}

// A symlink at the audit log's path, or at the runtime log in the bundle,
// is refused, and the file it points to stays as it was.
func TestFilesLogSymlinksRefused(t *testing.T) {
	target := filepath.Join(t.TempDir(), "shadow")
	os.WriteFile(target, []byte("root:x:0:0::/root:/bin/sh\n"), 0o600)
	auditDir := t.TempDir()
	audit := filepath.Join(auditDir, "audit.log")
	if err := os.Symlink(target, audit); err != nil {
		t.Fatal(err)
	}
	secrun, env, b, _ := filesSetup(t, "auditLog: "+audit+"\n")
	log := filepath.Join(b, "log.json")
	if err := os.Symlink(target, log); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(b, "config.json"), []byte(`{"process":{"cwd":"/"},"Process":{"cwd":"/"}}`), 0o644)
	r := testenv.Run(t, env, secrun, "--log", log, "create", "--bundle", b, "id")
	if r.Code == 0 || !strings.Contains(r.Stderr, `key "Process" at $ collides with "process"`) {
		t.Errorf("exit %d, stderr %q", r.Code, r.Stderr)
	}
	for _, p := range []string{audit, log} {
		if !strings.Contains(r.Stderr, p+" is a symlink") {
			t.Errorf("no warning that %s is a symlink: %q", p, r.Stderr)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "root:x:0:0::/root:/bin/sh\n" {
		t.Errorf("the link's target changed: %q", b)
	}
}
