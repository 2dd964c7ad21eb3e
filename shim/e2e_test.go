package shim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secrun/secrun/internal/testenv"
	"golang.org/x/sys/unix"
)

// statusCmd prints the kernel's view of the container process.
var statusCmd = []string{"/bin/sh", "-c", "cat /proc/self/status; id -u"}

// procStatus parses /proc/self/status lines and the trailing `id -u`.
type procStatus map[string]string

func parseStatus(t *testing.T, out string) procStatus {
	t.Helper()
	st := procStatus{}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if k, v, ok := strings.Cut(l, ":"); ok {
			st[k] = strings.TrimSpace(v)
		}
	}
	st["id -u"] = strings.TrimSpace(lines[len(lines)-1])
	if st["CapBnd"] == "" {
		t.Fatalf("no /proc/self/status in output:\n%s", out)
	}
	return st
}

func (s procStatus) mask(t *testing.T, key string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s[key], 16, 64)
	if err != nil {
		t.Fatalf("%s = %q: %v", key, s[key], err)
	}
	return v
}

const capNetBindService = 1 << 10

func TestE2EHardenRestricted(t *testing.T) {
	testenv.RequireContainers(t)
	bin := testenv.Build(t)
	// Without the ambient opt-in a non-root process keeps NET_BIND_SERVICE
	// in its bounding set only, as under containerd; with it, the
	// capability is effective.
	for _, tc := range []struct {
		ambient bool
		effPrm  uint64
	}{{false, 0}, {true, capNetBindService}} {
		t.Run(fmt.Sprintf("ambient=%v", tc.ambient), func(t *testing.T) {
			env, audit := testenv.WriteConfig(t, fmt.Sprintf(`
policies:
  restricted:
    mode: harden
    runAsUser: 1000
    runAsGroup: 1000
    ambientCapabilities: %v
`, tc.ambient))
			b := testenv.NewBundle(t, statusCmd...)
			root := testenv.StateRoot(t)
			id := testenv.ContainerID(t)
			r := testenv.Run(t, env, filepath.Join(bin, "secrun-restricted"), "--root", root, "run", "--bundle", b.Dir, id)
			if r.Code != 0 {
				t.Fatalf("secrun-restricted run: exit %d\n%s", r.Code, r.Stderr)
			}
			st := parseStatus(t, r.Stdout)
			if m := st.mask(t, "CapBnd"); m != capNetBindService {
				t.Errorf("CapBnd = %#x, want NET_BIND_SERVICE alone (%#x)", m, capNetBindService)
			}
			for _, k := range []string{"CapEff", "CapPrm"} {
				if m := st.mask(t, k); m != tc.effPrm {
					t.Errorf("%s = %#x, want %#x", k, m, tc.effPrm)
				}
			}
			if tc.ambient && st.mask(t, "CapAmb") != capNetBindService {
				t.Errorf("CapAmb = %s, want NET_BIND_SERVICE", st["CapAmb"])
			}
			if st["NoNewPrivs"] != "1" || st["Seccomp"] != "2" || st["id -u"] != "1000" {
				t.Errorf("NoNewPrivs %s Seccomp %s uid %s, want 1, 2, 1000", st["NoNewPrivs"], st["Seccomp"], st["id -u"])
			}
			line := lastAuditLine(t, audit)
			if line["decision"] != "hardened" || line["policy"] != "restricted" || line["container"] != id {
				t.Errorf("audit line %v", line)
			}
		})
	}
}

func TestE2ERestrictedRefusesRootWithoutUID(t *testing.T) {
	testenv.RequireContainers(t)
	bin := testenv.Build(t)
	env, _ := testenv.WriteConfig(t, "policies:\n  restricted:\n    mode: harden\n")
	b := testenv.NewBundle(t, statusCmd...)
	before, _ := os.ReadFile(b.Path())
	r := testenv.Run(t, env, filepath.Join(bin, "secrun-restricted"), "--root", testenv.StateRoot(t), "run", "-b", b.Dir, testenv.ContainerID(t))
	if r.Code == 0 {
		t.Fatalf("a root container ran under runAsNonRoot:\n%s", r.Stdout)
	}
	if !strings.Contains(r.Stderr, "runAsNonRoot") || !strings.Contains(r.Stderr, "runAsUser") {
		t.Errorf("refusal does not say runAsNonRoot needs a uid: %s", r.Stderr)
	}
	if after, _ := os.ReadFile(b.Path()); !bytes.Equal(before, after) {
		t.Error("a refused create changed config.json")
	}
}

// privileged makes the bundle what containerd makes of privileged: true.
func privileged(b *testenv.Bundle) {
	all := []any{}
	for _, c := range []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_CHOWN", "CAP_KILL", "CAP_AUDIT_WRITE", "CAP_NET_BIND_SERVICE"} {
		all = append(all, c)
	}
	caps := b.Config["process"].(map[string]any)["capabilities"].(map[string]any)
	for _, set := range []string{"bounding", "effective", "permitted"} {
		caps[set] = all
	}
	linux := b.Config["linux"].(map[string]any)
	delete(linux, "maskedPaths")
	delete(linux, "readonlyPaths")
}

func TestE2EEnforceRefusesPrivileged(t *testing.T) {
	testenv.RequireContainers(t)
	bin := testenv.Build(t)
	env, audit := testenv.WriteConfig(t, "")
	b := testenv.NewBundle(t, statusCmd...)
	privileged(b)
	b.Save(t)
	before, _ := os.ReadFile(b.Path())
	logFile := filepath.Join(t.TempDir(), "log.json")
	id := testenv.ContainerID(t)
	r := testenv.Run(t, env, filepath.Join(bin, "secrun-baseline"), "--root", testenv.StateRoot(t), "--log", logFile, "--log-format", "json", "run", "--bundle", b.Dir, id)
	if r.Code == 0 {
		t.Fatal("a privileged container ran under baseline enforce")
	}
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "privileged") || !strings.Contains(lines[0], "fix:") || !strings.Contains(lines[0], id) {
		t.Errorf("stderr is not one line naming the rule and fix:\n%s", r.Stderr)
	}
	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	// containerd reports the last error-level line of runc's log.
	var entry map[string]string
	for _, l := range strings.Split(strings.TrimSpace(string(logged)), "\n") {
		var e map[string]string
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("runtime log line is not runc JSON: %v\n%s", err, l)
		}
		if e["level"] == "error" {
			entry = e
		}
	}
	if entry["msg"] != lines[0] || entry["time"] == "" {
		t.Errorf("runtime log's last error %v, want msg %q", entry, lines[0])
	}
	if after, _ := os.ReadFile(b.Path()); !bytes.Equal(before, after) {
		t.Error("a refused create changed config.json")
	}
	if line := lastAuditLine(t, audit); line["decision"] != "refused" {
		t.Errorf("audit line %v", line)
	}
}

func TestE2EUnknownFieldsSurvive(t *testing.T) {
	testenv.RequireContainers(t)
	bin := testenv.Build(t)
	env, _ := testenv.WriteConfig(t, "policies:\n  restricted:\n    mode: harden\n    runAsUser: 1000\n")
	b := testenv.NewBundle(t, "/bin/true")
	b.Config["org.example.future"] = map[string]any{"keep": []any{"me", 1.5}}
	b.Config["process"].(map[string]any)["futureKnob"] = "on"
	b.Save(t)
	id := testenv.ContainerID(t)
	root := testenv.StateRoot(t)
	r := testenv.Run(t, env, filepath.Join(bin, "secrun-restricted"), "--root", root, "create", "--bundle", b.Dir, id)
	if r.Code != 0 {
		t.Fatalf("create: %s", r.Stderr)
	}
	b.Load(t)
	if _, ok := b.Config["org.example.future"]; !ok {
		t.Error("unknown top-level field lost")
	}
	if b.Config["process"].(map[string]any)["futureKnob"] != "on" {
		t.Error("unknown process field lost")
	}
	if b.Config["process"].(map[string]any)["user"].(map[string]any)["uid"] != float64(1000) {
		t.Error("the rewrite did not happen")
	}
}

func TestE2EExecProcessIsHardened(t *testing.T) {
	secrun, env, root, id := runningRestricted(t)
	// What `kubectl exec` into a container could ask for if nothing
	// checked the process: root, every capability, escalation allowed.
	proc := map[string]any{
		"args": statusCmd, "cwd": "/", "user": map[string]any{"uid": 0, "gid": 0},
		"env":          []string{"PATH=/bin"},
		"capabilities": map[string]any{"bounding": []string{"CAP_SYS_ADMIN", "CAP_NET_BIND_SERVICE"}, "effective": []string{"CAP_SYS_ADMIN"}, "permitted": []string{"CAP_SYS_ADMIN"}},
	}
	pf := filepath.Join(t.TempDir(), "process.json")
	raw, _ := json.Marshal(proc)
	os.WriteFile(pf, raw, 0o600)
	r := testenv.Run(t, env, secrun, "--root", root, "exec", "--process", pf, id)
	if r.Code != 0 {
		t.Fatalf("exec: %s", r.Stderr)
	}
	st := parseStatus(t, r.Stdout)
	if st.mask(t, "CapEff")&(1<<21) != 0 || st.mask(t, "CapBnd")&(1<<21) != 0 {
		t.Errorf("exec kept CAP_SYS_ADMIN: CapEff %s CapBnd %s", st["CapEff"], st["CapBnd"])
	}
	if st["id -u"] != "1000" || st["NoNewPrivs"] != "1" {
		t.Errorf("exec uid %s NoNewPrivs %s, want 1000 and 1", st["id -u"], st["NoNewPrivs"])
	}
	// exec --cap cannot be rewritten, so it is refused.
	r = testenv.Run(t, env, secrun, "--root", root, "exec", "--cap", "CAP_SYS_ADMIN", id, "/bin/true")
	if r.Code == 0 || !strings.Contains(r.Stderr, "SYS_ADMIN") {
		t.Errorf("exec --cap CAP_SYS_ADMIN: exit %d, %s", r.Code, r.Stderr)
	}
}

// TestE2EContainerdCommandLine runs containerd's exact create command
// line (as its runc shim sends it) through secrun, with a console socket
// that receives the pty, then starts the container and reads its output.
func TestE2EContainerdCommandLine(t *testing.T) {
	testenv.RequireContainers(t)
	bin := testenv.Build(t)
	env, _ := testenv.WriteConfig(t, "policies:\n  restricted:\n    mode: harden\n    runAsUser: 1000\n    ambientCapabilities: true\n")
	b := testenv.NewBundle(t, statusCmd...)
	b.Config["process"].(map[string]any)["terminal"] = true
	b.Save(t)
	root := testenv.StateRoot(t)
	id := testenv.ContainerID(t)
	work := t.TempDir()
	sock := filepath.Join(work, "pty.sock")
	ptys := receivePTY(t, sock)
	secrun := filepath.Join(bin, "secrun-restricted")
	args := []string{"--root", root, "--log", filepath.Join(b.Dir, "log.json"), "--log-format", "json"}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		args = append(args, "--systemd-cgroup")
	}
	args = append(args, "--rootless=false", "create", "--bundle="+b.Dir, "--pid-file", filepath.Join(work, "init.pid"), "--console-socket", sock, id)
	r := testenv.Run(t, env, secrun, args...)
	if r.Code != 0 {
		t.Fatalf("create: exit %d: %s", r.Code, r.Stderr)
	}
	if pid, err := os.ReadFile(filepath.Join(work, "init.pid")); err != nil || len(pid) == 0 {
		t.Fatalf("no pid file: %v", err)
	}
	var pty *os.File
	select {
	case pty = <-ptys:
	case <-time.After(10 * time.Second):
		t.Fatal("no pty arrived on the console socket")
	}
	defer pty.Close()
	if r := testenv.Run(t, env, secrun, "--root", root, "start", id); r.Code != 0 {
		t.Fatalf("start: %s", r.Stderr)
	}
	var out bytes.Buffer
	buf := make([]byte, 4096)
	pty.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, err := pty.Read(buf)
		out.Write(buf[:n])
		if err != nil || strings.Contains(out.String(), "\n1000") {
			break
		}
	}
	st := parseStatus(t, strings.ReplaceAll(out.String(), "\r", ""))
	if st.mask(t, "CapEff") != capNetBindService || st["NoNewPrivs"] != "1" || st["Seccomp"] != "2" {
		t.Errorf("policy not applied: CapEff %s NoNewPrivs %s Seccomp %s", st["CapEff"], st["NoNewPrivs"], st["Seccomp"])
	}
	if r := testenv.Run(t, env, secrun, "--root", root, "delete", "-f", id); r.Code != 0 {
		t.Errorf("delete through secrun: %s", r.Stderr)
	}
}

// receivePTY listens on a console socket as containerd does and hands
// over the pty master runc sends with SCM_RIGHTS.
func receivePTY(t *testing.T, path string) <-chan *os.File {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan *os.File, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		oob := make([]byte, unix.CmsgSpace(4))
		buf := make([]byte, 4096)
		_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) == 0 {
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) == 0 {
			return
		}
		ch <- os.NewFile(uintptr(fds[0]), "pty-master")
	}()
	return ch
}

func TestE2EPassThrough(t *testing.T) {
	runc := testenv.RequireContainers(t)
	bin := testenv.Build(t)
	env, audit := testenv.WriteConfig(t, "")
	secrun := filepath.Join(bin, "secrun-restricted")
	for _, args := range [][]string{{"--version"}, {"features"}, {"--help"}, {"spec", "--help"}} {
		want := testenv.Run(t, nil, runc, args...)
		got := testenv.Run(t, env, secrun, args...)
		if got.Stdout != want.Stdout || got.Code != want.Code {
			t.Errorf("secrun %v differs from runc:\n%s\nvs\n%s", args, got.Stdout, want.Stdout)
		}
	}
	root := testenv.StateRoot(t)
	got := testenv.Run(t, env, secrun, "--root", root, "state", "no-such-container")
	want := testenv.Run(t, nil, runc, "--root", root, "state", "no-such-container")
	// runc's message carries the time to the second, which may tick
	// between the two commands.
	untimed := regexp.MustCompile(`time="[^"]*"`)
	if got.Code != want.Code || got.Code == 0 || untimed.ReplaceAllString(got.Stderr, "") != untimed.ReplaceAllString(want.Stderr, "") {
		t.Errorf("state of a missing container: secrun %d %q, runc %d %q", got.Code, got.Stderr, want.Code, want.Stderr)
	}
	if b, _ := os.ReadFile(audit); len(b) != 0 {
		t.Errorf("pass-through commands wrote audit lines: %s", b)
	}
}

func TestE2EBrokenConfigFailsClosed(t *testing.T) {
	testenv.RequireContainers(t)
	bin := testenv.Build(t)
	env, _ := testenv.WriteConfig(t, "policies:\n  restricted:\n    mode: harden\n    runAsUer: 5\n")
	b := testenv.NewBundle(t, "/bin/true")
	before, _ := os.ReadFile(b.Path())
	r := testenv.Run(t, env, filepath.Join(bin, "secrun-restricted"), "--root", testenv.StateRoot(t), "run", "--bundle", b.Dir, testenv.ContainerID(t))
	if r.Code == 0 || !strings.Contains(r.Stderr, "did you mean runAsUser?") {
		t.Errorf("broken config: exit %d, %s", r.Code, r.Stderr)
	}
	if after, _ := os.ReadFile(b.Path()); !bytes.Equal(before, after) {
		t.Error("config.json changed")
	}
	r = testenv.Run(t, []string{"SECRUN_CONFIG=/nonexistent/secrun.yaml"}, filepath.Join(bin, "secrun"), "--root", testenv.StateRoot(t), "run", "--bundle", b.Dir, testenv.ContainerID(t))
	if r.Code == 0 || !strings.Contains(r.Stderr, "/nonexistent/secrun.yaml") {
		t.Errorf("missing named config: exit %d, %s", r.Code, r.Stderr)
	}
}

func lastAuditLine(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("audit line %q: %v", lines[len(lines)-1], err)
	}
	return m
}

// Exec flags that would loosen the container are refused before runc
// runs; flags that stay within the policy pass.
func TestE2EExecFlags(t *testing.T) {
	secrun, env, root, id := runningRestricted(t)
	for _, tc := range []struct {
		args []string
		want string // "" means allowed
	}{
		{[]string{"exec", "--user", "0", id, "/bin/id", "-u"}, "runAsNonRoot"},
		{[]string{"exec", "--no-new-privs=false", id, "/bin/true"}, "noNewPrivileges"},
		{[]string{"exec", "--cap", "CAP_NET_RAW", id, "/bin/true"}, "NET_RAW"},
		{[]string{"exec", "--cap", "NET_BIND_SERVICE", id, "/bin/true"}, ""},
		{[]string{"exec", "--user", "1000", id, "/bin/id", "-u"}, ""},
		{[]string{"exec", id, "/bin/id", "-u"}, ""},
	} {
		r := testenv.Run(t, env, secrun, append([]string{"--root", root}, tc.args...)...)
		switch {
		case tc.want == "" && r.Code != 0:
			t.Errorf("%v refused: %s", tc.args, r.Stderr)
		case tc.want != "" && (r.Code == 0 || !strings.Contains(r.Stderr, tc.want)):
			t.Errorf("%v: exit %d, stderr %q, want a refusal naming %s", tc.args, r.Code, r.Stderr, tc.want)
		}
	}
}

// runningRestricted starts a detached container through secrun-restricted
// (harden, uid 1000) for exec tests, and returns how to reach it.
func runningRestricted(t *testing.T) (secrun string, env []string, root, id string) {
	t.Helper()
	testenv.RequireContainers(t)
	bin := testenv.Build(t)
	env, _ = testenv.WriteConfig(t, "policies:\n  restricted:\n    mode: harden\n    runAsUser: 1000\n")
	b := testenv.NewBundle(t, "/bin/sleep", "30")
	root = testenv.StateRoot(t)
	id = testenv.ContainerID(t)
	secrun = filepath.Join(bin, "secrun-restricted")
	if r := testenv.Run(t, env, secrun, "--root", root, "run", "-d", "--bundle", b.Dir, id); r.Code != 0 {
		t.Fatalf("run -d: %s", r.Stderr)
	}
	return secrun, env, root, id
}
