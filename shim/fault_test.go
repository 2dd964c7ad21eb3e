package shim_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrun/secrun/internal/testenv"
)

func faultSetup(t *testing.T, delegateScript string) (bin string, env []string, bundle string, orig []byte) {
	t.Helper()
	bin = testenv.Build(t)
	work := t.TempDir()
	delegate := filepath.Join(work, "fake-runc")
	if delegateScript != "" {
		os.WriteFile(delegate, []byte("#!/bin/sh\n"+delegateScript+"\n"), 0o755)
	}
	env, _ = testenv.WriteConfig(t, "runtime: "+delegate+"\npolicies:\n  restricted:\n    mode: harden\n    runAsUser: 1000\n")
	orig, err := os.ReadFile("../policy/testdata/runc-spec.json")
	if err != nil {
		t.Fatal(err)
	}
	bundle = t.TempDir()
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), orig, 0o644); err != nil {
		t.Fatal(err)
	}
	return bin, env, bundle, orig
}

func TestFaultDelegateMissing(t *testing.T) {
	bin, env, b, orig := faultSetup(t, "")
	r := testenv.Run(t, env, filepath.Join(bin, "secrun-restricted"), "create", "--bundle", b, "id")
	if r.Code == 0 || !strings.Contains(r.Stderr, "delegate runtime") {
		t.Errorf("missing delegate: exit %d %q", r.Code, r.Stderr)
	}
	if now, _ := os.ReadFile(filepath.Join(b, "config.json")); !bytes.Equal(now, orig) {
		t.Error("config.json changed although nothing could run")
	}
}

// The delegate's exit status and output are the caller's: secrun execs it.
func TestFaultDelegateFails(t *testing.T) {
	bin, env, b, _ := faultSetup(t, `echo "runc says no" >&2; exit 7`)
	r := testenv.Run(t, env, filepath.Join(bin, "secrun-restricted"), "create", "--bundle", b, "id")
	if r.Code != 7 || !strings.Contains(r.Stderr, "runc says no") {
		t.Errorf("failing delegate: exit %d %q, want 7 and its message", r.Code, r.Stderr)
	}
}

// A write that fails for lack of space (RLIMIT_FSIZE makes the kernel say
// EFBIG, as a full disk says ENOSPC, without mounting anything) leaves the
// old config.json whole and no temporary file behind.
func TestFaultNoSpace(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("skipped: prlimit (util-linux) is not installed")
	}
	bin, env, b, orig := faultSetup(t, "exit 0")
	r := testenv.Run(t, env, "prlimit", "--fsize=2048", filepath.Join(bin, "secrun-restricted"), "create", "--bundle", b, "id")
	if r.Code == 0 {
		t.Fatal("create succeeded although config.json could not be written")
	}
	if !strings.Contains(r.Stderr, "write") {
		t.Errorf("error %q does not say the write failed", r.Stderr)
	}
	if now, _ := os.ReadFile(filepath.Join(b, "config.json")); !bytes.Equal(now, orig) {
		t.Error("config.json changed")
	}
	if left, _ := filepath.Glob(filepath.Join(b, ".config.json.secrun-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// secrun killed at any moment of a create leaves config.json the old
// document or the new one, whole, never a part.
func TestFaultKilledMidRewrite(t *testing.T) {
	bin, env, b, orig := faultSetup(t, "exit 0")
	p := filepath.Join(b, "config.json")
	var sawOld, sawNew int
	for i := 0; i < 40; i++ {
		os.WriteFile(p, orig, 0o644)
		cmd := exec.Command(filepath.Join(bin, "secrun-restricted"), "create", "--bundle", b, "id")
		cmd.Env = append(os.Environ(), env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.IntN(6000)) * time.Microsecond)
		cmd.Process.Kill()
		cmd.Wait()
		now, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal(now, &v); err != nil {
			t.Fatalf("kill %d left a broken config.json: %v", i, err)
		}
		if bytes.Equal(now, orig) {
			sawOld++
		} else {
			if uid := v["process"].(map[string]any)["user"].(map[string]any)["uid"]; uid != float64(1000) {
				t.Fatalf("kill %d left a config that is neither old nor hardened (uid %v)", i, uid)
			}
			sawNew++
		}
	}
	t.Logf("after 40 kills: %d old, %d new", sawOld, sawNew)
	// A kill between the temporary file's creation and its rename leaves
	// the file; the next create that rewrites removes every dead writer's.
	os.WriteFile(p, orig, 0o644)
	if r := testenv.Run(t, env, filepath.Join(bin, "secrun-restricted"), "create", "--bundle", b, "id"); r.Code != 0 {
		t.Fatalf("create after the kills: %s", r.Stderr)
	}
	if left, _ := filepath.Glob(filepath.Join(b, ".config.json.secrun-*")); len(left) != 0 {
		t.Errorf("temporary files of killed creates left after the next create: %v", left)
	}
}
