package policy

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

func agentPolicy(t *testing.T, doc string) *Policy {
	t.Helper()
	c, err := ParseConfig([]byte("policies:\n  agent:\n    preset: baseline\n    mode: harden\n    seccomp: RuntimeDefault\n" + doc))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Policy("agent")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// agentEnv answers the reachability probe with err.
func agentEnv(err error) *Env {
	e := noAppArmor()
	e.SeccompAgentReachable = func(string) error { return err }
	return e
}

func notifyMeta(t *testing.T, s *specs.Spec) *spec.AgentMetadata {
	t.Helper()
	if s.Linux == nil || s.Linux.Seccomp == nil || s.Linux.Seccomp.ListenerPath == "" {
		t.Fatal("no listenerPath: the filter was not handed to the agent")
	}
	m, err := spec.ParseAgentMetadata(s.Linux.Seccomp.ListenerMetadata)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSeccompAgentRewritesRuntimeDefault(t *testing.T) {
	p := agentPolicy(t, "    seccompAgent: {mode: explain, socket: /run/test/agent.sock}\n")
	s := runcSpec(t)
	out := p.Decide(agentEnv(nil), s)
	if out.Refused() {
		t.Fatalf("refused: %v", out.Error())
	}
	m := notifyMeta(t, s)
	if m.Mode != spec.AgentExplain || m.Policy != "agent" || m.Profile != spec.SeccompRuntimeDefault || m.Arch == "" {
		t.Errorf("metadata %+v", m)
	}
	if s.Linux.Seccomp.ListenerPath != "/run/test/agent.sock" {
		t.Errorf("listenerPath %q", s.Linux.Seccomp.ListenerPath)
	}
	if d, _ := spec.SeccompAnswer(s.Linux.Seccomp, "keyctl", nil); d.Action != specs.ActNotify {
		t.Errorf("keyctl: %s, want notify", d)
	}
	if d, _ := spec.SeccompAnswer(s.Linux.Seccomp, "write", nil); d.Action != specs.ActAllow {
		t.Errorf("write: %s, want allow", d)
	}
	found := false
	for _, c := range out.Changes {
		found = found || (c.Rule == RuleSeccompAgent && strings.Contains(c.Message, "explain via /run/test/agent.sock"))
	}
	if !found {
		t.Errorf("no seccompAgent change in %v", out.Changes)
	}
}

func TestSeccompAgentUnreachable(t *testing.T) {
	down := errors.New("connect: connection refused")
	t.Run("fail", func(t *testing.T) {
		s := runcSpec(t)
		out := agentPolicy(t, "    seccompAgent: {mode: record}\n").Decide(agentEnv(down), s)
		if !out.Refused() {
			t.Fatal("created with the agent down")
		}
		msg := out.Error()
		for _, w := range []string{"seccompAgent record", DefaultSeccompAgentSocket, "connection refused", "secrunctl seccomp-agent", "fallback: plain"} {
			if !strings.Contains(msg, w) {
				t.Errorf("refusal %q lacks %q", msg, w)
			}
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("refusal is more than one line: %q", msg)
		}
	})
	t.Run("plain", func(t *testing.T) {
		s := runcSpec(t)
		out := agentPolicy(t, "    seccompAgent: {mode: record, fallback: plain}\n").Decide(agentEnv(down), s)
		if out.Refused() {
			t.Fatalf("refused: %v", out.Error())
		}
		if !spec.Confined(s) || s.Linux.Seccomp.ListenerPath != "" {
			t.Error("fallback plain did not keep the plain profile")
		}
		if len(out.Warnings) == 0 || !strings.Contains(strings.Join(out.Warnings, "\n"), "fallback: plain") {
			t.Errorf("no warning: %v", out.Warnings)
		}
	})
}

func TestSeccompAgentReachableProbe(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "a.sock")
	if err := AgentReachable(sock); err == nil {
		t.Fatal("a missing socket answers")
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if err := AgentReachable(sock); err != nil {
		t.Errorf("a listening socket does not answer: %v", err)
	}
	l.Close()
	if err := AgentReachable(sock); err == nil {
		t.Error("a closed listener answers")
	}
}

func TestSeccompAgentAnnotationOnlyTightens(t *testing.T) {
	for name, tc := range map[string]struct {
		policy, podWide, own string
		want, err            string
	}{
		"policy mode":                 {policy: "{mode: record}", want: "record"},
		"record to explain":           {policy: "{mode: record}", podWide: "explain", want: "explain"},
		"record to off":               {policy: "{mode: record}", podWide: "off"},
		"opt-in explain":              {policy: "{}", podWide: "explain", want: "explain"},
		"container overrides":         {policy: "{mode: record}", podWide: "explain", own: "off"},
		"explain to record refused":   {policy: "{mode: explain}", podWide: "record", err: "may only tighten"},
		"opt-in record refused":       {policy: "{}", own: "record", err: "allowPodRecord"},
		"opt-in record allowed":       {policy: "{allowPodRecord: true}", own: "record", want: "record"},
		"record to record-all":        {policy: "{mode: record}", own: "record-all", want: "record-all"},
		"explain to record-all":       {policy: "{mode: explain}", own: "record-all", err: "record-all would let"},
		"no agent":                    {podWide: "explain", err: "has no seccomp agent"},
		"no agent off":                {podWide: "off"},
		"bad value":                   {policy: "{}", podWide: "loud", err: `"loud" is not a seccomp agent mode`},
		"nothing asked, no agent set": {},
	} {
		t.Run(name, func(t *testing.T) {
			doc := ""
			if tc.policy != "" {
				doc = "    seccompAgent: " + tc.policy + "\n"
			}
			p := agentPolicy(t, doc)
			s := runcSpec(t)
			s.Annotations = map[string]string{"io.kubernetes.cri.container-name": "app"}
			if tc.podWide != "" {
				s.Annotations[SeccompAgentAnnotation] = tc.podWide
			}
			if tc.own != "" {
				s.Annotations[SeccompAgentAnnotation+".app"] = tc.own
			}
			got, err := p.seccompAgentMode(s)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				out := p.Decide(agentEnv(nil), s)
				if !out.Refused() {
					t.Error("Decide did not refuse a loosening annotation")
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("mode %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestSeccompAgentLeavesAuditAndSandbox(t *testing.T) {
	p := agentPolicy(t, "    seccompAgent: {mode: record}\n")
	s := runcSpec(t)
	s.Annotations = map[string]string{"io.kubernetes.cri.container-type": "sandbox"}
	s.Process.Args = []string{"/pause"}
	if out := p.Decide(agentEnv(nil), s); out.Refused() || s.Linux.Seccomp == nil || s.Linux.Seccomp.ListenerPath != "" {
		t.Errorf("sandbox: refused %v, listener %v", out.Refused(), s.Linux.Seccomp)
	}
	p.Mode = Audit
	s = runcSpec(t)
	if p.Decide(agentEnv(nil), s); s.Linux.Seccomp != nil {
		t.Error("audit mode rewrote the bundle")
	}
}

func TestSeccompAgentConfigErrors(t *testing.T) {
	for doc, want := range map[string]string{
		"{mode: loud}":       `seccompAgent.mode "loud" is not valid`,
		"{fallback: open}":   `seccompAgent.fallback "open" is not valid`,
		"{socket: rel.sock}": `must be an absolute path`,
		"{sockt: /x}":        `unknown field "sockt"`,
	} {
		_, err := ParseConfig([]byte("policies:\n  web:\n    mode: enforce\n    seccompAgent: " + doc + "\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", doc, err, want)
		}
	}
}

// BenchmarkDecideWithSeccompAgent is a create under a policy whose
// containers go to the agent: the notify rewrite on top of the decision
// (the reachability connect is stubbed; it is one connect(2)).
func BenchmarkDecideWithSeccompAgent(b *testing.B) {
	c, err := ParseConfig([]byte("policies:\n  agent:\n    preset: baseline\n    mode: harden\n    seccomp: RuntimeDefault\n    seccompAgent: {mode: explain}\n"))
	if err != nil {
		b.Fatal(err)
	}
	p, err := c.Policy("agent")
	if err != nil {
		b.Fatal(err)
	}
	env := agentEnv(nil)
	b.ReportAllocs()
	for b.Loop() {
		s := runcSpec(b)
		if out := p.Decide(env, s); out.Refused() {
			b.Fatal(out.Error())
		}
	}
}
