package shim_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrun/secrun/internal/testenv"
)

// Every bad input gets a clear error, secrun exits before the delegate
// runs, and no file changes. The delegate here is a script that records
// that it ran, so "before the delegate" is observed, not assumed.
func TestBadInput(t *testing.T) {
	bin := testenv.Build(t)
	work := t.TempDir()
	ran := filepath.Join(work, "delegate-ran")
	delegate := filepath.Join(work, "fake-runc")
	os.WriteFile(delegate, []byte("#!/bin/sh\ntouch "+ran+"\n"), 0o755)
	good, err := os.ReadFile("../policy/testdata/runc-spec.json")
	if err != nil {
		t.Fatal(err)
	}
	config := func(extra string) []string {
		env, _ := testenv.WriteConfig(t, "runtime: "+delegate+"\npolicies:\n  restricted:\n    mode: harden\n    runAsUser: 1000\n"+extra)
		return env
	}

	cases := []struct {
		name  string
		setup func(t *testing.T, bundle string) // writes the bundle
		env   func(t *testing.T) []string
		args  func(bundle string) []string
		want  string
	}{
		{name: "truncated config.json", setup: writeConfig(good[:len(good)/2]), want: "invalid JSON"},
		{name: "empty config.json", setup: writeConfig(nil), want: "invalid JSON"},
		{name: "non-object config.json", setup: writeConfig([]byte(`["process"]`)), want: "must be a JSON object"},
		{name: "non-UTF-8 config.json", setup: writeConfig([]byte("{\"hostname\":\"\xff\"}")), want: "UTF-8"},
		{name: "huge config.json", setup: writeConfig(append(append([]byte(`{"x":"`), bytes.Repeat([]byte("a"), 17<<20)...), `"}`...)), want: "larger than"},
		{name: "config.json is a symlink", setup: func(t *testing.T, b string) {
			target := filepath.Join(t.TempDir(), "real.json")
			os.WriteFile(target, good, 0o644)
			os.Symlink(target, filepath.Join(b, "config.json"))
		}, want: "symlink"},
		{name: "config.json is a directory", setup: func(t *testing.T, b string) { os.Mkdir(filepath.Join(b, "config.json"), 0o755) }, want: "not a regular file"},
		{name: "missing bundle", setup: func(t *testing.T, b string) {}, args: func(b string) []string {
			return []string{"create", "--bundle", filepath.Join(b, "nope"), "id"}
		}, want: "no such file"},
		{name: "malformed policy file", setup: writeConfig(good), env: func(t *testing.T) []string { return config("    bogus: [") }, want: "not valid YAML"},
		{name: "unknown policy field", setup: writeConfig(good), env: func(t *testing.T) []string { return config("    runAsUer: 3\n") }, want: "did you mean runAsUser?"},
		{name: "oversized annotation", setup: writeConfig(withAnnotation(t, good, "secrun.dev/security-context", `{"runAsUser":1000,"x":"`+strings.Repeat("a", 20000)+`"}`)), want: "bytes"},
		{name: "malformed annotation", setup: writeConfig(withAnnotation(t, good, "secrun.dev/security-context", `{"runAsUser":`)), want: "secrun.dev/security-context"},
		{name: "loosening annotation", setup: writeConfig(withAnnotation(t, good, "secrun.dev/security-context", `{"privileged":true}`)), want: "privileged"},
		{name: "Localhost seccomp with ..", setup: writeConfig(withAnnotation(t, good, "secrun.dev/security-context", `{"seccompProfile":{"type":"Localhost","localhostProfile":"../../etc/passwd"}}`)), want: `may not contain ".."`},
		{name: "Localhost seccomp absolute", setup: writeConfig(withAnnotation(t, good, "secrun.dev/security-context", `{"seccompProfile":{"type":"Localhost","localhostProfile":"/etc/passwd"}}`)), want: "must be relative"},
		{name: "process.json with extra capabilities under enforce", setup: writeConfig(good),
			env: func(t *testing.T) []string {
				env, _ := testenv.WriteConfig(t, "runtime: "+delegate+"\npolicies:\n  restricted:\n    mode: enforce\n")
				return env
			},
			args: func(b string) []string {
				p := filepath.Join(b, "process.json")
				os.WriteFile(p, []byte(`{"cwd":"/","args":["sh"],"user":{"uid":1000,"gid":1000},"noNewPrivileges":true,"capabilities":{"bounding":["CAP_SYS_ADMIN"],"effective":["CAP_SYS_ADMIN"],"permitted":["CAP_SYS_ADMIN"]}}`), 0o600)
				return []string{"exec", "--process", p, "id"}
			}, want: "SYS_ADMIN"},
		{name: "config.json with Process beside process", setup: writeConfig([]byte(strings.Replace(string(good), `"process"`, `"Process": {"cwd": "/", "user": {"uid": 0, "gid": 0}}, "process"`, 1))), want: `key "Process" at $ is not spelled like the field "process"`},
		{name: "config.json with the Kelvin sign in a field", setup: writeConfig([]byte(strings.Replace(string(good), `"maskedPaths"`, "\"mas\u212aedPaths\"", 1))), want: "is not spelled like the field \"maskedPaths\""},
		{name: "process.json with User beside user", setup: writeConfig(good),
			args: func(b string) []string {
				p := filepath.Join(b, "process.json")
				os.WriteFile(p, []byte(`{"cwd":"/","args":["sh"],"user":{"uid":1000,"gid":1000},"User":{"uid":0,"gid":0}}`), 0o600)
				return []string{"exec", "--process", p, "id"}
			}, want: `key "User" at $ collides with "user"`},
		{name: "flag without value", setup: writeConfig(good), args: func(b string) []string { return []string{"create", "--bundle"} }, want: "needs a value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(ran)
			b := t.TempDir()
			tc.setup(t, b)
			before := snapshot(t, b)
			env := config("")
			if tc.env != nil {
				env = tc.env(t)
			}
			args := []string{"create", "--bundle", b, "id"}
			if tc.args != nil {
				args = tc.args(b)
				before = snapshot(t, b)
			}
			r := testenv.Run(t, env, filepath.Join(bin, "secrun-restricted"), args...)
			if r.Code == 0 {
				t.Fatalf("bad input accepted; stderr %q", r.Stderr)
			}
			if !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("error %q does not say %q", r.Stderr, tc.want)
			}
			if n := strings.Count(strings.TrimSpace(r.Stderr), "\n"); n != 0 {
				t.Errorf("error is %d lines, want one:\n%s", n+1, r.Stderr)
			}
			if _, err := os.Stat(ran); err == nil {
				t.Error("the delegate ran")
			}
			if after := snapshot(t, b); after != before {
				t.Errorf("bundle changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func writeConfig(body []byte) func(*testing.T, string) {
	return func(t *testing.T, b string) {
		if err := os.WriteFile(filepath.Join(b, "config.json"), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func withAnnotation(t *testing.T, cfg []byte, k, v string) []byte {
	t.Helper()
	s := strings.Replace(string(cfg), `"ociVersion"`, `"annotations": {`+quote(k)+`: `+quote(v)+`}, "ociVersion"`, 1)
	return []byte(s)
}

func quote(s string) string {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// snapshot is every file below dir with its mode and content hash.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "%s %s", rel, info.Mode())
		if info.Mode().IsRegular() {
			raw, _ := os.ReadFile(p)
			fmt.Fprintf(&b, " %x", sha256.Sum256(raw))
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}
