package seccompagent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/conformance/probe/report"
	"github.com/secrun/secrun/internal/testenv"
	"github.com/secrun/secrun/seccompadvise"
	"github.com/secrun/secrun/seccompagent"
	"github.com/secrun/secrun/spec"
)

// The agent runs in a child process (this test binary, re-executed), so
// that a test can stop and kill it as an admin's node would.
const (
	agentSocketEnv = "SECRUN_TEST_AGENT_SOCKET"
	agentStateEnv  = "SECRUN_TEST_AGENT_STATE"
)

func TestMain(m *testing.M) {
	if sock := os.Getenv(agentSocketEnv); sock != "" {
		a, err := seccompagent.Listen(seccompagent.Config{Socket: sock, StateDir: os.Getenv(agentStateEnv), Log: os.Stderr, FlushInterval: 100 * time.Millisecond})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		if err := a.Serve(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type agent struct {
	socket, state string
	cmd           *exec.Cmd
	log           *os.File
}

// startAgent runs the agent and waits until its socket answers.
func startAgent(t *testing.T) *agent {
	t.Helper()
	dir := t.TempDir()
	a := &agent{socket: filepath.Join(dir, "run", "agent.sock"), state: filepath.Join(dir, "records")}
	var err error
	if a.log, err = os.Create(filepath.Join(dir, "agent.log")); err != nil {
		t.Fatal(err)
	}
	a.cmd = exec.Command(os.Args[0], "-test.run=^$")
	a.cmd.Env = append(os.Environ(), agentSocketEnv+"="+a.socket, agentStateEnv+"="+a.state)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.cmd.Process.Kill()
		a.cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(a.log.Name())
			t.Logf("agent log:\n%s", b)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", a.socket); err == nil {
			c.Close()
			return a
		}
	}
	t.Fatal("the agent's socket never answered")
	return nil
}

func (a *agent) record(t *testing.T, id string) *seccompagent.Record {
	t.Helper()
	p, err := seccompagent.RecordPath(a.state, id)
	if err != nil {
		t.Fatal(err)
	}
	var last error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		r, err := seccompagent.Load(p)
		if err == nil && r.Ended != nil {
			return r
		}
		last = err
	}
	// Where the agent is stuck goes to its log, which the cleanup prints.
	a.cmd.Process.Signal(syscall.SIGQUIT)
	time.Sleep(300 * time.Millisecond)
	t.Fatalf("no finished record for %s: %v", id, last)
	return nil
}

// container is a bundle with busybox and the probe, run through
// secrun-custom under the given policy document.
type container struct {
	t      *testing.T
	bin    string
	bundle *testenv.Bundle
	root   string
	env    []string
}

func newContainer(t *testing.T, policyDoc string, args ...string) *container {
	t.Helper()
	testenv.RequireContainers(t)
	bin := testenv.Build(t)
	b := testenv.NewBundle(t, args...)
	probe, err := os.ReadFile(testenv.BuildProbe(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.Dir, "rootfs", "probe"), probe, 0o755); err != nil {
		t.Fatal(err)
	}
	env, _ := testenv.WriteConfig(t, policyDoc)
	return &container{t: t, bin: filepath.Join(bin, "secrun-custom"), bundle: b, root: testenv.StateRoot(t), env: env}
}

func (c *container) run(id string) testenv.Result {
	c.t.Helper()
	return testenv.Run(c.t, c.env, c.bin, "--root", c.root, "run", "--bundle", c.bundle.Dir, id)
}

func policyDoc(agentMode, socket string) string {
	doc := "policies:\n  custom:\n    preset: baseline\n    mode: harden\n    seccomp: RuntimeDefault\n"
	if agentMode != "" {
		doc += fmt.Sprintf("    seccompAgent: {mode: %s, socket: %s}\n", agentMode, socket)
	}
	return doc
}

// The calls RuntimeDefault blocks that the tests make, and what the probe
// names them.
var blockedOps = []string{report.OpSeccompKeyctl, report.OpSeccompAddKey, report.OpSeccompUnshareUserns, report.OpSeccompPersonality,
	report.OpSeccompCloneNewns, report.OpSeccompClone3, report.OpSeccompIOUringSetup}

// opSyscall is the syscall each op's decisive call makes.
var opSyscall = map[string]string{
	report.OpSeccompKeyctl: "keyctl", report.OpSeccompAddKey: "add_key", report.OpSeccompUnshareUserns: "unshare",
	report.OpSeccompPersonality: "personality", report.OpSeccompCloneNewns: "clone", report.OpSeccompClone3: "clone3",
	report.OpSeccompIOUringSetup: "io_uring_setup", report.OpSeccompBPF: "bpf",
}

func probeReport(t *testing.T, out string) *report.Report {
	t.Helper()
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("probe output is not a report: %v\n%s", err, out)
	}
	return &r
}

func syscallOf(r *seccompagent.Record, name string) *seccompagent.Syscall {
	for _, s := range r.Syscalls {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// TestE2ERecord: under record, every call RuntimeDefault blocks runs and
// is in the record, with what RuntimeDefault would have answered.
func TestE2ERecord(t *testing.T) {
	testenv.RequireContainers(t)
	a := startAgent(t)
	c := newContainer(t, policyDoc(spec.AgentRecord, a.socket), append([]string{"/probe"}, append(blockedOps, report.OpSeccompNormal)...)...)
	id := testenv.ContainerID(t)
	res := c.run(id)
	if res.Code != 0 {
		t.Fatalf("exit %d: %s", res.Code, res.Stderr)
	}
	rep := probeReport(t, res.Stdout)
	if rep.Seccomp != 2 {
		t.Errorf("seccomp mode %d, want 2 (a filter)", rep.Seccomp)
	}
	rec := a.record(t, id)
	if rec.Mode != spec.AgentRecord || rec.Profile != spec.SeccompRuntimeDefault || rec.Policy != "custom" {
		t.Errorf("record header %+v", rec)
	}
	for _, op := range append(blockedOps, report.OpSeccompNormal) {
		o, ok := rep.Ops[op]
		if !ok || !o.OK {
			t.Errorf("%s under record: %+v, want it to run", op, o)
		}
	}
	for _, op := range blockedOps {
		sc := syscallOf(rec, opSyscall[op])
		if sc == nil {
			t.Errorf("%s (%s) is not in the record", op, opSyscall[op])
			continue
		}
		if sc.Answer != "continued" || !sc.Profile.Denies() || sc.Count == 0 || sc.First.IsZero() {
			t.Errorf("%s: record %+v", sc.Name, sc)
		}
	}
	if sc := syscallOf(rec, "unshare"); sc != nil && !strings.Contains(strings.Join(sc.Args, " "), "CLONE_NEWUSER") {
		t.Errorf("unshare's summary %v lacks CLONE_NEWUSER", sc.Args)
	}
	if sc := syscallOf(rec, "personality"); sc != nil && !strings.Contains(strings.Join(sc.Args, " "), "ADDR_NO_RANDOMIZE") {
		t.Errorf("personality's summary %v lacks ADDR_NO_RANDOMIZE", sc.Args)
	}
	if sc := syscallOf(rec, "clone3"); sc != nil && sc.Profile.Errno != uint(unix.ENOSYS) {
		t.Errorf("clone3: RuntimeDefault answers ENOSYS, the record says %s", sc.Profile)
	}
	for _, never := range []string{"write", "read", "getpid"} {
		if syscallOf(rec, never) != nil {
			t.Errorf("%s, which RuntimeDefault allows, was notified", never)
		}
	}
}

// TestE2EExplain: under explain, every op fails exactly as under plain
// RuntimeDefault (same errno), and the record has them all.
func TestE2EExplain(t *testing.T) {
	testenv.RequireContainers(t)
	args := append([]string{"/probe"}, append(blockedOps, report.OpSeccompNormal)...)
	plain := newContainer(t, policyDoc("", ""), args...)
	pres := plain.run(testenv.ContainerID(t) + "-plain")
	if pres.Code != 0 {
		t.Fatalf("plain: exit %d: %s", pres.Code, pres.Stderr)
	}
	want := probeReport(t, pres.Stdout)

	a := startAgent(t)
	c := newContainer(t, policyDoc(spec.AgentExplain, a.socket), args...)
	id := testenv.ContainerID(t)
	res := c.run(id)
	if res.Code != 0 {
		t.Fatalf("exit %d: %s", res.Code, res.Stderr)
	}
	got := probeReport(t, res.Stdout)
	rec := a.record(t, id)
	for _, op := range blockedOps {
		w, g := want.Ops[op], got.Ops[op]
		if w.OK {
			t.Errorf("%s runs under plain RuntimeDefault; the test needs calls it blocks", op)
		}
		if g.OK != w.OK || g.Errno != w.Errno {
			t.Errorf("%s: explain gave ok=%v %s, RuntimeDefault ok=%v %s", op, g.OK, g.Errno, w.OK, w.Errno)
		}
		sc := syscallOf(rec, opSyscall[op])
		if sc == nil {
			t.Errorf("%s is not in the record", opSyscall[op])
		} else if sc.Answer != w.Errno {
			t.Errorf("%s: the agent answered %s, RuntimeDefault %s", sc.Name, sc.Answer, w.Errno)
		}
	}
	if !got.Ops[report.OpSeccompNormal].OK {
		t.Errorf("everyday syscalls failed under explain: %+v", got.Ops[report.OpSeccompNormal])
	}
}

// TestE2EAgentAbsent: with the agent down a create fails closed with one
// line and writes nothing; with fallback: plain it runs the plain profile.
func TestE2EAgentAbsent(t *testing.T) {
	testenv.RequireContainers(t)
	sock := filepath.Join(t.TempDir(), "none.sock")
	c := newContainer(t, policyDoc(spec.AgentExplain, sock), "/probe", report.OpSeccompKeyctl)
	before, _ := os.ReadFile(c.bundle.Path())
	res := c.run(testenv.ContainerID(t))
	if res.Code == 0 {
		t.Fatal("a container started with its seccomp agent down")
	}
	lines := strings.Split(strings.TrimSpace(res.Stderr), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "seccompAgent explain") || !strings.Contains(lines[0], sock) || !strings.Contains(lines[0], "fallback: plain") {
		t.Errorf("refusal: %q", res.Stderr)
	}
	if after, _ := os.ReadFile(c.bundle.Path()); string(after) != string(before) {
		t.Error("a refused create changed config.json")
	}

	f := newContainer(t, strings.Replace(policyDoc(spec.AgentExplain, sock), "}", ", fallback: plain}", 1), "/probe", report.OpSeccompKeyctl)
	res = f.run(testenv.ContainerID(t) + "-fb")
	if res.Code != 0 {
		t.Fatalf("fallback plain: exit %d: %s", res.Code, res.Stderr)
	}
	if o := probeReport(t, res.Stdout).Ops[report.OpSeccompKeyctl]; o.OK || o.Errno != "EPERM" {
		t.Errorf("fallback plain: keyctl %+v, want RuntimeDefault's EPERM", o)
	}
}

// TestE2EAgentKilledMidRun: the agent is stopped while the container is
// blocked in a notified keyctl, then killed. The kernel answers the
// pending call with ENOSYS, and the next notified call too: the
// container never hangs.
func TestE2EAgentKilledMidRun(t *testing.T) {
	testenv.RequireContainers(t)
	a := startAgent(t)
	c := newContainer(t, policyDoc(spec.AgentExplain, a.socket), "/bin/sh", "-c",
		"while ! cat /go >/dev/null 2>&1; do sleep 0.05; done; /probe "+report.OpSeccompKeyctl+" "+report.OpSeccompAddKey)
	id := testenv.ContainerID(t)
	type result struct {
		out  string
		err  error
		code int
	}
	done := make(chan result, 1)
	go func() {
		var out, errb strings.Builder
		cmd := exec.Command(c.bin, "--root", c.root, "run", "--bundle", c.bundle.Dir, id)
		cmd.Env = append(os.Environ(), c.env...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		done <- result{out.String(), fmt.Errorf("%v: %s", err, errb.String()), cmd.ProcessState.ExitCode()}
	}()
	recPath, _ := seccompagent.RecordPath(a.state, id)
	waitFor(t, "the agent has the container's fd", func() bool { _, err := os.Stat(recPath); return err == nil })
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.bundle.Dir, "rootfs", "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the probe blocks in keyctl", func() bool { return blockedIn(c.root, id, unix.SYS_KEYCTL) })
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the container hangs after its agent died")
	}
	if r.code != 0 {
		t.Fatalf("exit %d: %v", r.code, r.err)
	}
	rep := probeReport(t, r.out)
	for _, op := range []string{report.OpSeccompKeyctl, report.OpSeccompAddKey} {
		if o := rep.Ops[op]; o.OK || o.Errno != "ENOSYS" {
			t.Errorf("%s after the agent died: %+v, want ENOSYS", op, o)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}

// blockedIn reports whether a thread of a process in container id sits
// in syscall nr (/proc/<tid>/syscall starts with the number).
func blockedIn(root, id string, nr int) bool {
	out, err := exec.Command("runc", "--root", root, "state", id).Output()
	if err != nil {
		return false
	}
	var st struct{ Pid int }
	if json.Unmarshal(out, &st) != nil || st.Pid == 0 {
		return false
	}
	pids := []int{st.Pid}
	for i := 0; i < len(pids) && i < 64; i++ {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pids[i]))
		for _, task := range tasks {
			if b, err := os.ReadFile(task + "/syscall"); err == nil && strings.HasPrefix(string(b), strconv.Itoa(nr)+" ") {
				return true
			}
			if b, err := os.ReadFile(task + "/children"); err == nil {
				for _, f := range strings.Fields(string(b)) {
					if p, err := strconv.Atoi(f); err == nil {
						pids = append(pids, p)
					}
				}
			}
		}
	}
	return false
}

// TestE2ERecordedProfileRunsTheWorkload is the done-when test: a
// workload that fails under RuntimeDefault runs under record, and the
// profile generated from its record makes it run under enforcement,
// where a syscall it never used is still denied. Three starts.
func TestE2ERecordedProfileRunsTheWorkload(t *testing.T) {
	testenv.RequireContainers(t)
	workload := []string{report.OpSeccompKeyctl, report.OpSeccompUnshareUserns, report.OpSeccompPersonality, report.OpSeccompClone3}
	never := []string{report.OpSeccompAddKey, report.OpSeccompBPF, report.OpSeccompIOUringSetup}
	// The workload fails (exit 1) when any of its calls is refused. In
	// the third start the never-used calls are probed after it, for the
	// report only (in the second they would be recorded, and allowed).
	script := func(probeNever bool) string {
		after := ""
		if probeNever {
			after = "echo ===; /probe " + strings.Join(never, " ") + "; "
		}
		return fmt.Sprintf(`w=$(/probe %s); echo "$w"; %scase "$w" in *'"ok": false'*) exit 1;; esac; exit 0`, strings.Join(workload, " "), after)
	}

	// 1. RuntimeDefault: the workload fails.
	c := newContainer(t, policyDoc("", ""), "/bin/sh", "-c", script(false))
	if res := c.run(testenv.ContainerID(t) + "-1"); res.Code != 1 {
		t.Fatalf("under RuntimeDefault the workload exited %d, want 1 (refused calls)\n%s%s", res.Code, res.Stdout, res.Stderr)
	}

	// 2. record: it runs, and the agent records what it needed.
	a := startAgent(t)
	c = newContainer(t, policyDoc(spec.AgentRecord, a.socket), "/bin/sh", "-c", script(false))
	id := testenv.ContainerID(t) + "-2"
	if res := c.run(id); res.Code != 0 {
		t.Fatalf("under record the workload exited %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	rec := a.record(t, id)

	// The generated profile, placed where the kubelet keeps Localhost
	// profiles (the policy's seccompProfileRoot).
	prof, _, err := seccompadvise.Profile(rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	seccompadvise.PruneUnknown(prof, func(n string) bool { _, err := libseccomp.GetSyscallFromName(n); return err == nil })
	body, err := seccompadvise.OCIJSON(prof)
	if err != nil {
		t.Fatal(err)
	}
	profRoot := t.TempDir()
	if err := os.WriteFile(filepath.Join(profRoot, "recorded.json"), body, 0o644); err != nil {
		t.Fatal(err)
	}

	// 3. The generated profile under enforcement: the workload runs, the
	// calls it never made stay denied.
	c = newContainer(t, "seccompProfileRoot: "+profRoot+"\n"+strings.Replace(policyDoc("", ""), "seccomp: RuntimeDefault", "seccomp: Localhost/recorded.json", 1), "/bin/sh", "-c", script(true))
	res := c.run(testenv.ContainerID(t) + "-3")
	if res.Code != 0 {
		t.Fatalf("under the generated profile the workload exited %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	_, after, ok := strings.Cut(res.Stdout, "===")
	if !ok {
		t.Fatalf("no never-used probe output:\n%s", res.Stdout)
	}
	rep := probeReport(t, after)
	if rep.Seccomp != 2 {
		t.Errorf("seccomp mode %d under the generated profile", rep.Seccomp)
	}
	for _, op := range never {
		if o := rep.Ops[op]; o.OK || o.Errno != "EPERM" {
			t.Errorf("%s, never used, under the generated profile: %+v, want EPERM", op, o)
		}
		if syscallOf(rec, opSyscall[op]) != nil {
			t.Errorf("%s is in the record of a workload that never called it", opSyscall[op])
		}
	}
}

// TestE2ERecordAllMinimalProfile: a record-all run sees every call the
// workload makes (runc's init after the filter included), and the
// minimal profile from it runs the workload under enforcement while a
// call it never made, even one RuntimeDefault allows, is denied.
func TestE2ERecordAllMinimalProfile(t *testing.T) {
	testenv.RequireContainers(t)
	a := startAgent(t)
	workload := []string{"/probe", report.OpSeccompKeyctl, report.OpSeccompUnshareUserns, report.OpSeccompNormal}
	c := newContainer(t, policyDoc(spec.AgentRecordAll, a.socket), workload...)
	id := testenv.ContainerID(t)
	res := c.run(id)
	if res.Code != 0 {
		t.Fatalf("record-all: exit %d: %s", res.Code, res.Stderr)
	}
	for op, o := range probeReport(t, res.Stdout).Ops {
		if !o.OK {
			t.Errorf("%s under record-all: %+v", op, o)
		}
	}
	rec := a.record(t, id)
	for _, name := range []string{"execve", "openat", "keyctl", "unshare"} {
		if syscallOf(rec, name) == nil {
			t.Errorf("record-all missed %s", name)
		}
	}
	if sc := syscallOf(rec, "openat"); sc != nil && sc.Profile.Denies() {
		t.Errorf("openat: the record says RuntimeDefault denies it (%s)", sc.Profile)
	}
	prof, err := seccompadvise.Minimal(rec)
	if err != nil {
		t.Fatal(err)
	}
	body, err := seccompadvise.OCIJSON(prof)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "minimal.json"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	// mount and add_key were never called, so they may not run.
	doc := "seccompProfileRoot: " + root + "\n" + strings.Replace(policyDoc("", ""), "seccomp: RuntimeDefault", "seccomp: Localhost/minimal.json", 1)
	c = newContainer(t, doc, append(workload, report.OpSeccompMount, report.OpSeccompAddKey)...)
	res = c.run(testenv.ContainerID(t) + "-min")
	if res.Code != 0 {
		t.Fatalf("under the minimal profile: exit %d: %s", res.Code, res.Stderr)
	}
	rep := probeReport(t, res.Stdout)
	for _, op := range []string{report.OpSeccompKeyctl, report.OpSeccompUnshareUserns, report.OpSeccompNormal} {
		if !rep.Ops[op].OK {
			t.Errorf("%s under the minimal profile: %+v", op, rep.Ops[op])
		}
	}
	for _, op := range []string{report.OpSeccompMount, report.OpSeccompAddKey} {
		if o := rep.Ops[op]; o.OK || o.Errno != "EPERM" {
			t.Errorf("%s, never used, under the minimal profile: %+v, want EPERM", op, o)
		}
	}
	// getcpu: allowed by RuntimeDefault, never called by the probe.
	if syscallOf(rec, "getcpu") != nil {
		t.Fatal("the probe called getcpu; pick another never-used syscall")
	}
	if d, _ := spec.SeccompAnswer(prof, "getcpu", nil); !d.Denies() {
		t.Error("the minimal profile allows getcpu, which the workload never called")
	}
}
