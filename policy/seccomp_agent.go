package policy

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/internal/syscalls"
	"github.com/secrun/secrun/spec"
)

// SeccompAgent sends what a container's seccomp profile denies to the
// seccomp agent (`secrunctl seccomp-agent`) through the kernel's user
// notification, so that an admin learns what RuntimeDefault (or a
// Localhost profile) blocks without BPF or auditd.
type SeccompAgent struct {
	// Mode is what every confined container of the policy gets: record
	// (denied calls run and are recorded), explain (they fail with the
	// profile's errno and are recorded), record-all (every call is
	// recorded and runs: a learning run for a minimal profile), or empty
	// (only Pods that ask through the annotation).
	Mode string `json:"mode,omitempty"`
	// Socket is the agent's unix socket. Default
	// /run/secrun/seccomp-agent.sock.
	Socket string `json:"socket,omitempty"`
	// Fallback says what a create does when the agent does not answer:
	// fail (the default: the container does not start), or plain (it
	// starts with the profile it would have had, with a warning).
	Fallback string `json:"fallback,omitempty"`
	// AllowPodRecord lets a Pod ask for record or record-all by
	// annotation where the policy's mode is another. Both let every call
	// the profile denies run (record-all also sends every other call
	// through the agent), so without this a Pod may only ask for explain,
	// off, or the policy's own mode.
	AllowPodRecord bool `json:"allowPodRecord,omitempty"`
}

// DefaultSeccompAgentSocket is where the agent listens unless the policy
// names another socket.
const DefaultSeccompAgentSocket = "/run/secrun/seccomp-agent.sock"

// SeccompAgentAnnotation is the Pod (or, with "."+container name, the
// container) annotation that asks for an agent mode: record, explain or
// off.
const SeccompAgentAnnotation = "secrun.dev/seccomp-agent"

// RuleSeccompAgent names the rewrite in changes and refusals.
const RuleSeccompAgent Rule = "seccompAgent"

const (
	agentFallbackFail  = "fail"
	agentFallbackPlain = "plain"
	agentOff           = "off"
)

func (a *SeccompAgent) validate(policy string) error {
	if a == nil {
		return nil
	}
	switch a.Mode {
	case "", spec.AgentRecord, spec.AgentExplain, spec.AgentRecordAll:
	default:
		return fmt.Errorf("policy %s: seccompAgent.mode %q is not valid; use record, explain, record-all, or leave it out so that only Pods that ask get the agent", policy, a.Mode)
	}
	switch a.Fallback {
	case "", agentFallbackFail, agentFallbackPlain:
	default:
		return fmt.Errorf("policy %s: seccompAgent.fallback %q is not valid; use fail or plain", policy, a.Fallback)
	}
	if a.Socket != "" && !filepath.IsAbs(a.Socket) {
		return fmt.Errorf("policy %s: seccompAgent.socket %q must be an absolute path", policy, a.Socket)
	}
	return nil
}

func (a *SeccompAgent) socket() string {
	if a.Socket != "" {
		return a.Socket
	}
	return DefaultSeccompAgentSocket
}

// seccompAgentMode is the agent mode for s: the policy's, or what the
// Pod's annotation asks, which may only tighten it. record is the weakest
// mode (denied calls run); explain and off enforce the profile alike.
func (p *Policy) seccompAgentMode(s *specs.Spec) (string, error) {
	a := p.SeccompAgent
	key := SeccompAgentAnnotation
	ask, ok := s.Annotations[key]
	if name := ContainerName(s); name != "" {
		if v, found := s.Annotations[key+"."+name]; found {
			key, ask, ok = key+"."+name, v, true
		}
	}
	base := ""
	if a != nil {
		base = a.Mode
	}
	if !ok {
		return base, nil
	}
	switch ask {
	case agentOff:
		return "", nil
	case spec.AgentExplain, spec.AgentRecord, spec.AgentRecordAll:
	default:
		return "", fmt.Errorf("annotation %s: %q is not a seccomp agent mode; use explain, record, record-all or off", key, ask)
	}
	if a == nil {
		return "", fmt.Errorf("annotation %s: policy %s has no seccomp agent; ask the admin for a RuntimeClass whose policy sets seccompAgent", key, p.Name)
	}
	if ask == spec.AgentExplain || spec.AgentContinues(base) || a.AllowPodRecord {
		return ask, nil
	}
	return "", fmt.Errorf("annotation %s: %s would let every call the seccomp profile denies run; a Pod annotation may only tighten its container (explain or off), or the admin sets seccompAgent.allowPodRecord", key, ask)
}

// applySeccompAgent hands what s's filter denies to the agent, as the
// last rewrite of a create (after every check passed on the plain
// profile, which the notify rules would count as allowing). A sandbox's
// pause process is left alone: it is the runtime's, not the workload.
func (p *Policy) applySeccompAgent(env *Env, mode Mode, s *specs.Spec) ([]Change, error) {
	if mode == Audit || (env != nil && env.sandbox) {
		return nil, nil
	}
	am, err := p.seccompAgentMode(s)
	if err != nil || am == "" {
		return nil, err
	}
	if !spec.Confined(s) {
		env.warn("seccompAgent: the container has no seccomp filter that denies anything, so the agent has nothing to see")
		return nil, nil
	}
	a := p.SeccompAgent
	sock := a.socket()
	fail := func(err error) ([]Change, error) {
		if a.Fallback == agentFallbackPlain {
			env.warn(fmt.Sprintf("seccompAgent: %v; the container runs with its plain seccomp profile (fallback: plain)", err))
			return nil, nil
		}
		return nil, fmt.Errorf("seccompAgent %s: %w; start the agent (secrunctl seccomp-agent, deploy/seccomp-agent/) or set seccompAgent.fallback: plain", am, err)
	}
	reach := AgentReachable
	if env != nil && env.SeccompAgentReachable != nil {
		reach = env.SeccompAgentReachable
	}
	if err := reach(sock); err != nil {
		return fail(fmt.Errorf("the agent socket %s does not answer: %w", sock, err))
	}
	plan, err := RewriteForAgent(s, am, p.Name, profileName(env, s), sock)
	if err != nil {
		return nil, fmt.Errorf("seccompAgent %s: %w", am, err)
	}
	return []Change{{Rule: RuleSeccompAgent, Message: fmt.Sprintf("%s via %s: %s", am, sock, plan)}}, nil
}

// RewriteForAgent points s's filter at the agent on sock in mode: every
// call it denies, for every name the native architecture has, becomes a
// notification (spec.WithSeccompNotify), with the record's metadata. The
// names are libseccomp's for the architecture secrun is built for
// (internal/syscalls), so 32-bit compat calls keep the profile's own
// answer (docs/seccomp-agent.md). The
// conformance suite's validity controls run bare runtimes through it, so
// they reach the agent as a secrun create does.
func RewriteForAgent(s *specs.Spec, mode, policyName, profile, sock string) (spec.NotifyPlan, error) {
	meta := spec.AgentMetadata{Mode: mode, Policy: policyName, Profile: profile, Arch: syscalls.Arch}
	if s.Process != nil && s.Process.Capabilities != nil {
		meta.Capabilities = s.Process.Capabilities.Bounding
	}
	out, plan, err := spec.WithSeccompNotify(s.Linux.Seccomp, syscalls.Names(), meta, sock)
	if err != nil {
		return plan, err
	}
	s.Linux.Seccomp = out
	return plan, nil
}

// profileName says which profile the container would have run with, for
// the agent's record and `secrunctl seccomp why`.
func profileName(env *Env, s *specs.Spec) string {
	if spec.IsRuntimeDefaultFor(s.Linux.Seccomp, s) {
		return spec.SeccompRuntimeDefault
	}
	if rel := spec.LocalhostProfileOf(profileRoot(env), s.Linux.Seccomp, s); rel != "" {
		return spec.SeccompLocalhost + "/" + rel
	}
	return "bundle"
}

// AgentReachable connects to the agent's socket and hangs up: a socket
// file left by an agent that died answers ECONNREFUSED, which a stat
// would not tell. The agent reads the empty connection and drops it. The
// connect does not block: a full backlog (EAGAIN) is an agent that is
// there and busy.
func AgentReachable(path string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINPROGRESS) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("connect: %s", strings.TrimPrefix(err.Error(), "connect: "))
	}
	return nil
}
