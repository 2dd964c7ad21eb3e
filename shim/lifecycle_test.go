package shim_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrun/secrun/internal/testenv"
	"github.com/secrun/secrun/shim"
)

// A container started through secrun-<policy> can be inspected, killed
// and deleted through the same binary whatever happens to config.yaml
// afterwards, while create refuses with one line: fail closed means
// nothing new starts, not that nothing can be stopped.
func TestE2ELifecycleWithBrokenConfig(t *testing.T) {
	runc := testenv.RequireContainers(t)
	bin := testenv.Build(t)
	fakeRan := filepath.Join(t.TempDir(), "fake-ran")
	fake := filepath.Join(t.TempDir(), "fake-runc")
	os.WriteFile(fake, []byte("#!/bin/sh\ntouch "+fakeRan+"\nexit 0\n"), 0o755)
	for _, tc := range []struct {
		name    string
		binary  string
		initial string
		// breakIt spoils the configuration and returns the env to use after.
		breakIt func(t *testing.T, cfg string, env []string) []string
		// refusal is what create must say afterwards; "" for a config that
		// still works, where create and features rightly use the new
		// runtime and only the old container must not.
		refusal string
		// execRuns: exec still has its policy (only the runtime changed),
		// and enters the container through the runtime that created it.
		execRuns bool
	}{
		{"invalid YAML", "secrun-baseline", "", rewrite("policies: [\n"), "not valid YAML", false},
		{"policy removed", "secrun-web", "policies:\n  web:\n    preset: baseline\n", rewrite(""), `policy "web" is not defined`, false},
		{"runtime missing", "secrun-baseline", "", rewrite("runtime: /nonexistent/runc\n"), "/nonexistent/runc", true},
		{"runtime changed", "secrun-baseline", "", rewrite("runtime: " + fake + "\n"), "", true},
		{"SECRUN_CONFIG names a missing file", "secrun-baseline", "", func(t *testing.T, _ string, env []string) []string {
			return append(env, "SECRUN_CONFIG=/nonexistent/secrun.yaml") // the later one wins
		}, "/nonexistent/secrun.yaml", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := testenv.WriteConfig(t, tc.initial)
			cfg := strings.TrimPrefix(env[0], "SECRUN_CONFIG=")
			stateDir := strings.TrimPrefix(env[1], "SECRUN_STATE_DIR=")
			secrun := filepath.Join(bin, tc.binary)
			b := testenv.NewBundle(t, "/bin/sleep", "60")
			root := testenv.StateRoot(t)
			id := testenv.ContainerID(t)
			log := filepath.Join(b.Dir, "log.json")
			global := []string{"--root", root, "--log", log, "--log-format", "json"}
			if r := testenv.Run(t, env, secrun, append(global, "run", "-d", "--bundle", b.Dir, id)...); r.Code != 0 {
				t.Fatalf("run -d: %s", r.Stderr)
			}
			env = tc.breakIt(t, cfg, env)

			if tc.refusal != "" {
				b2 := testenv.NewBundle(t, "/bin/true")
				r := testenv.Run(t, env, secrun, append(global, "create", "--bundle", b2.Dir, id+"-new")...)
				if r.Code == 0 || !strings.Contains(r.Stderr, tc.refusal) || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
					t.Errorf("create with the broken config: exit %d, stderr %q; want one line saying %q", r.Code, r.Stderr, tc.refusal)
				}
			}

			r := testenv.Run(t, env, secrun, append(global, "exec", id, "/bin/sh", "-c", "echo in-container")...)
			if got := r.Code == 0 && strings.TrimSpace(r.Stdout) == "in-container"; got != tc.execRuns {
				t.Errorf("exec: exit %d, stdout %q, stderr %q; want it to run: %v", r.Code, r.Stdout, r.Stderr, tc.execRuns)
			}
			// state's stdout is parsed with stderr merged in (go-runc): both
			// must be runc's alone.
			if st, r := state(t, env, secrun, global, id); st != "running" || r.Stderr != "" {
				t.Fatalf("state: %q, exit %d, stderr %q", st, r.Code, r.Stderr)
			}
			if r := testenv.Run(t, env, secrun, append(global, "kill", id, "KILL")...); r.Code != 0 {
				t.Fatalf("kill: exit %d: %s", r.Code, r.Stderr)
			}
			waitStopped(t, env, secrun, global, id)
			if r := testenv.Run(t, env, secrun, append(global, "delete", id)...); r.Code != 0 {
				t.Fatalf("delete: exit %d: %s", r.Code, r.Stderr)
			}
			if r := testenv.Run(t, nil, runc, "--root", root, "state", id); r.Code == 0 {
				t.Errorf("the container is still there: %s", r.Stdout)
			}
			if left, _ := filepath.Glob(filepath.Join(stateDir, "*", id+".json")); len(left) != 0 {
				t.Errorf("delete left the record %v", left)
			}
			if _, err := os.Stat(fakeRan); err == nil {
				t.Error("a lifecycle command ran the newly configured runtime instead of the one that created the container")
			}
			if tc.refusal == "" {
				return
			}
			// features is passed through exactly: containerd parses it.
			got := testenv.Run(t, env, secrun, "features")
			want := testenv.Run(t, nil, runc, "features")
			if got.Stdout != want.Stdout || got.Code != want.Code || got.Stderr != want.Stderr {
				t.Errorf("features through secrun differs from runc's:\n%q %q\nvs\n%q %q", got.Stdout, got.Stderr, want.Stdout, want.Stderr)
			}
		})
	}
}

// A container without a record (created before secrun kept records, or
// by bare runc) is still reached, through the configured runtime, with a
// warning in the runtime log and nothing on stderr.
func TestE2ELifecycleWithoutRecord(t *testing.T) {
	testenv.RequireContainers(t)
	bin := testenv.Build(t)
	env, _ := testenv.WriteConfig(t, "")
	b := testenv.NewBundle(t, "/bin/sleep", "60")
	root := testenv.StateRoot(t)
	id := testenv.ContainerID(t)
	log := filepath.Join(b.Dir, "log.json")
	global := []string{"--root", root, "--log", log, "--log-format", "json"}
	if r := testenv.Run(t, nil, "runc", append(global, "run", "-d", "--bundle", b.Dir, id)...); r.Code != 0 {
		t.Fatalf("runc run -d: %s", r.Stderr)
	}
	secrun := filepath.Join(bin, "secrun-baseline")
	if st, r := state(t, env, secrun, global, id); st != "running" || r.Stderr != "" {
		t.Fatalf("state: %q, stderr %q", st, r.Stderr)
	}
	raw, _ := os.ReadFile(log)
	if !strings.Contains(string(raw), "no record of the runtime that created container "+id) {
		t.Errorf("runtime log lacks the fallback warning:\n%s", raw)
	}
	if r := testenv.Run(t, env, secrun, append(global, "delete", "-f", id)...); r.Code != 0 {
		t.Fatalf("delete -f: %s", r.Stderr)
	}
}

func rewrite(body string) func(*testing.T, string, []string) []string {
	return func(t *testing.T, cfg string, env []string) []string {
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return env
	}
}

func state(t *testing.T, env []string, secrun string, global []string, id string) (string, testenv.Result) {
	t.Helper()
	r := testenv.Run(t, env, secrun, append(global, "state", id)...)
	var s struct{ Status string }
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &s) != nil {
		return "", r
	}
	return s.Status, r
}

// waitStopped polls until the killed container is stopped; the bound only
// turns a container that never stops into a failure.
func waitStopped(t *testing.T, env []string, secrun string, global []string, id string) {
	t.Helper()
	for i := 0; i < 300; i++ {
		st, r := state(t, env, secrun, global, id)
		if st == "stopped" {
			return
		}
		if st == "" {
			t.Fatalf("state while stopping: exit %d, %q %q", r.Code, r.Stdout, r.Stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the container did not stop after kill KILL")
}

// Which commands may run without the policy, and which must have it.
func TestStartsNothing(t *testing.T) {
	for args, want := range map[string]bool{
		"state x": true, "kill x KILL": true, "delete -f x": true, "ps x": true,
		"events --stats x": true, "pause x": true, "resume x": true, "update --memory 1 x": true,
		"list": true, "features": true, "checkpoint x": true, "start x": true, "spec": true,
		"--version": true, "--help": true, "create --help": true, "": true,
		"create x": false, "run x": false, "exec x sh": false, "restore x": false,
		"exec --process p.json x": false, "frobnicate x": false,
	} {
		inv, err := shim.ParseArgs(strings.Fields(args))
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if got := inv.StartsNothing(); got != want {
			t.Errorf("%q: StartsNothing = %v, want %v", args, got, want)
		}
	}
}
