package conformance

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/secrun/secrun/conformance/probe/report"
	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/seccompagent"
	"github.com/secrun/secrun/spec"
)

// The seccomp agent (`secrunctl seccomp-agent`, docs/seccomp-agent.md):
// under a policy's seccompAgent, or a Pod's secrun.dev/seccomp-agent
// annotation where the policy lets it ask, secrun hands every call the
// container's filter would deny to the agent. In record mode the call
// runs; in explain mode it fails with the errno the filter would have
// returned. Either way the agent writes it into the container's record,
// STATE/<container id>.json. The suite starts its own agent when a
// container needs one and nothing answers on the socket, and reads the
// records by container id.

// applyAgent decides the container's agent mode by the README's rules
// (docs/seccomp-agent.md "Configuration"): the policy's mode, or what the
// annotation asks, which may only tighten it: explain and off wherever
// the policy has a seccompAgent, record and record-all only where the
// policy's own mode lets denied calls run or allowPodRecord is set. A
// container without a filter that denies anything gets nothing.
func (ps *policySim) applyAgent(d *derivation, sc effectiveSC, confined func(*model) (bool, error)) error {
	p := ps.p
	by := fmt.Sprintf("policy %s (%s)", p.Name, p.Mode)
	base := ""
	if p.SeccompAgent != nil {
		base = p.SeccompAgent.Mode
	}
	mode := base
	switch ask := sc.SeccompAgent; {
	case ask == "":
	case p.SeccompAgent == nil:
		d.unmodelled = fmt.Sprintf("the Pod asks for seccomp agent mode %s, but %s has no seccompAgent, so secrun refuses the annotation; the suite checks the agent only under a policy that has one (its own configuration gives every preset one)", ask, by)
		return nil
	case ask == "off":
		mode = ""
	case ask == spec.AgentExplain || (spec.AgentContinues(ask) && (spec.AgentContinues(base) || p.SeccompAgent.AllowPodRecord)):
		mode = ask
	default:
		d.unmodelled = fmt.Sprintf("the Pod asks for seccomp agent mode %q, which %s does not let a Pod ask for (it refuses the annotation)", ask, by)
		return nil
	}
	if mode == "" {
		return nil
	}
	ok, err := confined(d.m)
	if err != nil {
		return err
	}
	if !ok {
		d.note("seccompAgent %s: the container has no filter that denies anything, so nothing goes to the agent", mode)
		return nil
	}
	d.m.SeccompAgent = mode
	d.cover(SettingSeccomp, fmt.Sprintf("%s sends what the seccomp filter denies to the agent (%s)", by, mode))
	d.note("seccomp: %s hands every call the filter denies to the seccomp agent in %s mode", by, mode)
	return nil
}

// agentSocket is the socket of the agent a policy's containers use.
func agentSocket(p *policy.Policy) string {
	if p.SeccompAgent != nil && p.SeccompAgent.Socket != "" {
		return p.SeccompAgent.Socket
	}
	return policy.DefaultSeccompAgentSocket
}

// agentSocket is the socket of the agent the container's policy uses.
func (c *containerRun) agentSocket() string {
	if c.policy == nil {
		return policy.DefaultSeccompAgentSocket
	}
	return agentSocket(c.policy.p)
}

// opVerdict is what the container sees of an op: the filter's verdict,
// except that under record the calls the filter denies run.
func (d *deriver) opVerdict(op string) filterVerdict {
	fv := opFilterVerdict(d.profile, op)
	if !fv.allowed && spec.AgentContinues(d.m.SeccompAgent) {
		return filterVerdict{allowed: true, rule: fv.rule + ", notified: the agent (" + d.m.SeccompAgent + ") lets it run"}
	}
	return fv
}

// deniedCall is the first of an op's syscalls the filter denies: the one
// the agent's record must show.
func deniedCall(p *specs.LinuxSeccomp, op string) string {
	for _, c := range opSyscalls[op] {
		if !evalFilter(p, c).allowed {
			return c.name
		}
	}
	return ""
}

// agentOps are the ops whose syscalls RuntimeDefault denies and the
// agent must see, beyond seccompOps: clone3 (ENOSYS without
// CAP_SYS_ADMIN, so that libc falls back to clone) and io_uring_setup.
var agentOps = []string{report.OpSeccompClone3, report.OpSeccompIOUringSetup}

// agentBreakers are the twins of the agent checks: the same container
// with its plain filter (no listener: nothing is notified, nothing
// recorded), and, for explain, an agent that answers as record does.
var (
	agentOffBreaker = &breaker{key: "seccomp-agent-off", desc: "the bundle has its plain seccomp filter, with no listener for the agent",
		model: func(m *model) { m.SeccompAgent = "" }}
	agentRecordBreaker = &breaker{key: "seccomp-agent-record", desc: "the bundle's filter notifies the agent in record mode, which lets denied calls run",
		model: func(m *model) { m.SeccompAgent = spec.AgentRecord }}
)

// agentChecks are, per op the filter denies, that the agent's record for
// the container holds the op's syscall with the agent's answer.
func (d *deriver) agentChecks(ops []string) {
	mode := d.m.SeccompAgent
	for _, op := range ops {
		fv := opFilterVerdict(d.profile, op)
		if fv.allowed {
			continue
		}
		call := deniedCall(d.profile, op)
		answer := "continued"
		if !spec.AgentContinues(mode) {
			answer = fv.errno
		}
		d.add(&check{
			Name:        "seccomp.agent." + strings.TrimPrefix(op, "seccomp."),
			Setting:     SettingSeccomp,
			Description: fmt.Sprintf("the seccomp agent (%s) records %s for the container, answered %s (%s)", mode, call, answer, fv.rule),
			Expected:    fmt.Sprintf("%s in the record, answer %s", call, answer),
			eval:        d.s.expectRecorded(op, call, mode, answer),
			brk:         agentOffBreaker,
		})
	}
}

// expectRecorded reads the container's record: the op must have been
// attempted (so that a twin that left it out reads as a skip), and the
// record must hold the syscall with the answer.
func (s *suite) expectRecorded(op, call, mode, answer string) func(*observation) verdict {
	return func(o *observation) verdict {
		if _, v := o.opOf(op); v != nil {
			return *v
		}
		if o.containerID == "" {
			return failf("", "the run has no container id to find the agent's record by")
		}
		rec, path, err := s.agentRecords.wait(o.containerID, call)
		if err != nil {
			return failf("no record", "the agent wrote no record for container %s: %v", o.containerID, err)
		}
		if rec.Mode != mode {
			return failf("mode "+rec.Mode, "%s records mode %q, expected %q", path, rec.Mode, mode)
		}
		i := slices.IndexFunc(rec.Syscalls, func(c *seccompagent.Syscall) bool { return c.Name == call })
		if i < 0 {
			var names []string
			for _, c := range rec.Syscalls {
				names = append(names, c.Name)
			}
			return failf("not recorded", "%s does not hold %s (it holds %s)", path, call, orDash(strings.Join(names, ", ")))
		}
		c := rec.Syscalls[i]
		got := fmt.Sprintf("%s ×%d, answer %s", call, c.Count, c.Answer)
		if c.Answer != answer {
			return failf(got, "the agent answered %s, expected %s", c.Answer, answer)
		}
		return pass(got)
	}
}

// recordWait is how long a check waits for the agent to write a syscall
// it has not written yet: the agent writes a syscall's first appearance
// soon after the call, apart from answering it, and counts every second
// (--flush-interval). A container's wait is paid once: later checks of
// the same container read what is there.
const recordWait = 4 * time.Second

// agentRecords reads the agent's records by container id.
type agentRecords struct {
	dir      string
	mu       sync.Mutex
	deadline map[string]time.Time
}

func (r *agentRecords) wait(id, call string) (*seccompagent.Record, string, error) {
	if r == nil || r.dir == "" {
		return nil, "", errors.New("no seccomp agent state directory is known (--seccomp-agent-state)")
	}
	path, err := seccompagent.RecordPath(r.dir, id)
	if err != nil {
		return nil, "", err
	}
	r.mu.Lock()
	if r.deadline == nil {
		r.deadline = map[string]time.Time{}
	}
	until, ok := r.deadline[id]
	if !ok {
		until = time.Now().Add(recordWait)
		r.deadline[id] = until
	}
	r.mu.Unlock()
	for {
		rec, err := seccompagent.Load(path)
		if err == nil && slices.ContainsFunc(rec.Syscalls, func(c *seccompagent.Syscall) bool { return c.Name == call }) {
			return rec, path, nil
		}
		if time.Now().After(until) {
			return rec, path, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// defaultAgentState is where `secrunctl seccomp-agent` keeps its
// records unless told otherwise (its --state default, deploy/seccomp-agent).
const defaultAgentState = "/var/lib/secrun/seccomp-agent"

// agentProc is the agent the suite started.
type agentProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// agentSockets lists the sockets of the containers that will run with
// the agent.
func agentSockets(runs []*containerRun) []string {
	var out []string
	for _, cr := range runs {
		if cr.final.m.SeccompAgent == "" || cr.policy == nil || cr.setupErr != nil || !anyRunnable(cr.checks) {
			continue
		}
		if sock := agentSocket(cr.policy.p); !slices.Contains(out, sock) {
			out = append(out, sock)
		}
	}
	return out
}

// startAgent makes sure an agent answers where the containers that need
// one will look, starting `secrunctl seccomp-agent` as a child when
// nothing does. The records are read from that agent's state directory,
// or, for an agent the suite did not start, Options.SeccompAgentState.
func (s *suite) startAgent(runs []*containerRun) error {
	s.agentRecords = &agentRecords{dir: s.opts.SeccompAgentState}
	socks := agentSockets(runs)
	switch {
	case len(socks) == 0:
		if s.agentRecords.dir == "" {
			s.agentRecords.dir = filepath.Join(s.work, "seccomp-agent")
		}
		return nil
	case len(socks) > 1:
		return fmt.Errorf("the containers use seccomp agents on %d sockets (%s); the suite serves one: give the policies one seccompAgent.socket", len(socks), strings.Join(socks, ", "))
	}
	sock := socks[0]
	if agentAnswers(sock) {
		if s.agentRecords.dir == "" {
			s.agentRecords.dir = defaultAgentState
		}
		fmt.Fprintf(s.opts.Log, "conformance: a seccomp agent answers on %s; reading its records from %s\n", sock, s.agentRecords.dir)
		return nil
	}
	bin, err := s.secrunctl()
	if err != nil {
		return err
	}
	state := filepath.Join(s.work, "seccomp-agent")
	s.agentRecords.dir = state
	logPath := filepath.Join(s.work, "seccomp-agent.log")
	if s.opts.ReportDir != "" {
		// The Kubernetes target writes its reports only at the end.
		if err := os.MkdirAll(s.opts.ReportDir, 0o755); err != nil {
			return fmt.Errorf("report directory: %w", err)
		}
		logPath = filepath.Join(s.opts.ReportDir, "seccomp-agent.log")
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("seccomp agent log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "seccomp-agent", "--socket", sock, "--state", state)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The suite's own process group: whatever stops the suite's group (a
	// terminal's ^C, a harness's timeout) stops the agent with it, and
	// SIGINT and SIGTERM make it write its records first.
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the seccomp agent (%s seccomp-agent): %w", bin, err)
	}
	a := &agentProc{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); close(a.done) }()
	s.agent = a
	for deadline := time.Now().Add(10 * time.Second); !agentAnswers(sock); {
		select {
		case <-a.done:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("the seccomp agent (%s seccomp-agent --socket %s) exited at start: %s", bin, sock, strings.TrimSpace(string(b)))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the seccomp agent does not answer on %s after 10s (log %s)", sock, logPath)
		}
	}
	fmt.Fprintf(s.opts.Log, "conformance: started the seccomp agent (pid %d) on %s, records in %s\n", cmd.Process.Pid, sock, state)
	return nil
}

// stopAgent ends the agent the suite started, by its pid: SIGTERM (it
// writes its records and closes the notify fds), then SIGKILL.
func (s *suite) stopAgent() {
	a := s.agent
	if a == nil {
		return
	}
	s.agent = nil
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}

// agentAnswers reports whether something accepts a connection on sock,
// by the check secrun makes before a create (a full backlog counts as
// there).
func agentAnswers(sock string) bool { return policy.AgentReachable(sock) == nil }

// secrunctl finds the binary with the seccomp-agent command: the one
// given, the running program when it is secrunctl, the one next to
// secrun, or secrunctl on PATH.
func (s *suite) secrunctl() (string, error) {
	if s.opts.SecrunctlBinary != "" {
		return s.opts.SecrunctlBinary, nil
	}
	if exe, err := os.Executable(); err == nil && filepath.Base(exe) == "secrunctl" {
		return exe, nil
	}
	if s.kind == kindSecrun && s.runtime != "" {
		if p := filepath.Join(filepath.Dir(s.runtime), "secrunctl"); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("secrunctl"); err == nil {
		return p, nil
	}
	return "", errors.New("a container needs the seccomp agent and none answers on its socket, but secrunctl (which runs it) is not found next to secrun or on PATH; pass --secrunctl, or start `secrunctl seccomp-agent` yourself")
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// withAgent rewrites a bundle's filter for the model's agent mode, as
// secrun's policy does last: the validity mode's controls and twins run
// with the bare delegate and must reach the same agent.
func withAgent(sp *specs.Spec, m *model, sock string) error {
	if m.SeccompAgent == "" || sp.Linux == nil || sp.Linux.Seccomp == nil {
		return nil
	}
	if _, err := policy.RewriteForAgent(sp, m.SeccompAgent, "conformance-control", m.Seccomp, sock); err != nil {
		return fmt.Errorf("seccomp agent rewrite: %w", err)
	}
	return nil
}
