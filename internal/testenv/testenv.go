// Package testenv builds the secrun binaries and real OCI bundles for tests
// that start real containers with runc. Tests that cannot run here (not
// root, no runc) skip with the reason.
package testenv

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireContainers skips t unless real containers can run here. Under
// CI=true a missing requirement fails the test instead: CI installs what
// the tests need, so a skip there would hide a broken setup.
func RequireContainers(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "starting containers needs root")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		Missing(t, "runc is not installed (apt-get install runc)")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		Missing(t, "/bin/busybox missing (apt-get install busybox-static)")
	}
	return runc
}

// Missing ends t for a requirement this machine lacks: a skip with the
// reason, or a failure under CI=true.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", why)
	}
	t.Skip("skipped: " + why)
}

// ModuleRoot is the repository root.
func ModuleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ConformanceCase is one manifest of conformance/cases.
type ConformanceCase struct {
	Name string // file name without .yaml
	Data []byte
}

// ConformanceCases reads every conformance case, in name order: the Pods
// the suite runs are the widest set of real manifests the tests have.
func ConformanceCases(t testing.TB) []ConformanceCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(ModuleRoot(), "conformance", "cases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no conformance cases: %v", err)
	}
	out := make([]ConformanceCase, 0, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ConformanceCase{Name: strings.TrimSuffix(filepath.Base(f), ".yaml"), Data: b})
	}
	return out
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Build compiles ./cmd/secrun once per test binary and returns the
// directory holding secrun and a secrun-<policy> link per preset.
func Build(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "secrun-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, "secrun"), "./cmd/secrun")
		cmd.Dir = ModuleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		for _, p := range []string{"privileged", "baseline", "restricted", "custom", "web"} {
			if err := os.Symlink("secrun", filepath.Join(buildDir, "secrun-"+p)); err != nil {
				buildErr = err
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

var (
	probeOnce sync.Once
	probePath string
	probeErr  error
)

// BuildProbe compiles the conformance probe (./conformance/probe) once per
// test binary, static as the suite builds it, and returns its path.
func BuildProbe(t testing.TB) string {
	t.Helper()
	probeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "secrun-probe-")
		if err != nil {
			probeErr = err
			return
		}
		probePath = filepath.Join(dir, "probe")
		cmd := exec.Command("go", "build", "-trimpath", "-o", probePath, "./conformance/probe")
		cmd.Dir = ModuleRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			probeErr = fmt.Errorf("build the probe: %v\n%s", err, out)
		}
	})
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	return probePath
}

// Bundle is an OCI bundle on disk whose rootfs holds busybox.
type Bundle struct {
	Dir    string
	Config map[string]any
}

// NewBundle runs `runc spec` in a fresh directory, puts busybox in the
// rootfs and sets the process to run args without a terminal.
func NewBundle(t testing.TB, args ...string) *Bundle {
	t.Helper()
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "cat", "id", "grep", "sleep", "touch", "echo", "true"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(rootfs, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "etc", "group"), []byte("root:x:0:\nnogroup:x:65534:\napp:x:1000:\n"), 0o644)
	cmd := exec.Command("runc", "spec")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	b := &Bundle{Dir: dir}
	b.Load(t)
	proc := b.Config["process"].(map[string]any)
	proc["terminal"] = false
	if len(args) > 0 {
		proc["args"] = args
	}
	b.Save(t)
	return b
}

// Path is the bundle's config.json.
func (b *Bundle) Path() string { return filepath.Join(b.Dir, "config.json") }

// Load reads config.json into b.Config.
func (b *Bundle) Load(t testing.TB) {
	t.Helper()
	raw, err := os.ReadFile(b.Path())
	if err != nil {
		t.Fatal(err)
	}
	b.Config = map[string]any{}
	if err := json.Unmarshal(raw, &b.Config); err != nil {
		t.Fatal(err)
	}
}

// Save writes b.Config to config.json.
func (b *Bundle) Save(t testing.TB) {
	t.Helper()
	raw, err := json.MarshalIndent(b.Config, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.Path(), raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Result is a finished command.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs a binary with args and env additions, with a deadline so a
// wedged container fails the test instead of hanging CI. Output goes to
// files, not pipes: a detached container inherits them and would keep a
// pipe open long after the command returned.
func Run(t testing.TB, env []string, bin string, args ...string) Result {
	t.Helper()
	dir := t.TempDir()
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s %s: timed out", bin, strings.Join(args, " "))
	}
	out, _ := os.ReadFile(stdout.Name())
	errb, _ := os.ReadFile(stderr.Name())
	return Result{Stdout: string(out), Stderr: string(errb), Code: cmd.ProcessState.ExitCode()}
}

// StateRoot returns a runc --root directory that is cleaned up, with every
// container in it force-deleted, when the test ends.
func StateRoot(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	t.Cleanup(func() {
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			exec.Command("runc", "--root", root, "delete", "-f", e.Name()).Run()
		}
	})
	return root
}

// ContainerID makes a container id unique to this test run.
func ContainerID(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return '-'
	}, t.Name())
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return fmt.Sprintf("secrun-%d-%s", os.Getpid(), name)
}

// WriteConfig writes a secrun config.yaml and returns the env that points
// secrun at it, with the audit log in the test's directory.
func WriteConfig(t testing.TB, body string) (env []string, audit string) {
	t.Helper()
	dir := t.TempDir()
	audit = filepath.Join(dir, "audit.log")
	if !strings.Contains(body, "auditLog:") {
		body = "auditLog: " + audit + "\n" + body
	}
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"SECRUN_CONFIG=" + p, StateDirEnv(t)}, audit
}

// StateDirEnv keeps secrun's per-container records (internal/runstate) in
// a directory of the test's instead of the host's /run/secrun.
func StateDirEnv(t testing.TB) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "secrun-state")
	return "SECRUN_STATE_DIR=" + d
}
