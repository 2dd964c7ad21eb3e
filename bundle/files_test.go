package bundle

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A FIFO as config.json or process.json would block open(2) forever
// without O_NONBLOCK. The deadline only turns a hang into a failure.
func TestLoadFIFORefused(t *testing.T) {
	for _, name := range []string{"config.json", "process.json"} {
		p := filepath.Join(t.TempDir(), name)
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := Load[specs.Spec](p)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "FIFO") || !strings.Contains(err.Error(), p) {
				t.Errorf("%s: err = %v, want it to name the path and say FIFO", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("Load of a FIFO %s hung", name)
		}
	}
}

// Temporary files of dead writers go at the next Save; a live writer's
// stays, and so does anything that only looks similar.
func TestStaleTempsRemoved(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, `{"process":{"cwd":"/","user":{"uid":0,"gid":0}}}`, 0o644)
	dead := deadPid(t)
	live := exec.Command("sleep", "60")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { live.Process.Kill(); live.Wait() }()
	mk := func(name string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	stale := mk(".config.json.secrun-" + strconv.Itoa(dead) + "-123456")
	oldStyle := mk(".config.json.secrun-3987654321") // CreateTemp's suffix, above pid_max
	liveTmp := mk(".config.json.secrun-" + strconv.Itoa(live.Process.Pid) + "-42")
	other := mk(".process.json.secrun-" + strconv.Itoa(dead) + "-1")
	unrelated := mk("config.json.secrun-" + strconv.Itoa(dead))

	d, err := Load[specs.Spec](p)
	if err != nil {
		t.Fatal(err)
	}
	d.Value.Process.User.UID = 1000
	if _, err := d.Save(); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]bool{stale: false, oldStyle: false, liveTmp: true, other: true, unrelated: true} {
		if _, err := os.Lstat(f); (err == nil) != want {
			t.Errorf("%s: exists = %v, want %v", filepath.Base(f), err == nil, want)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".config.json.secrun-*"))
	if len(left) != 1 {
		t.Errorf("temporary files now %v, want only the live one", left)
	}
}

// deadPid is the pid of a process that has exited and been reaped.
func deadPid(t *testing.T) int {
	t.Helper()
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	return c.Process.Pid
}
