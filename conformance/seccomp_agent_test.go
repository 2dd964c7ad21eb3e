package conformance

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrun/secrun/conformance/probe/report"
	"github.com/secrun/secrun/internal/testenv"
	"github.com/secrun/secrun/policy"
)

// agentDerive runs the policy simulation of a case under a policy of
// config and derives the container's checks.
func agentDerive(t *testing.T, config, pol, caseName string) *containerRun {
	t.Helper()
	h := testHost()
	cfg, err := policy.ParseConfig([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cfg.Policy(pol)
	if err != nil {
		t.Fatal(err)
	}
	sc := caseSC(t, caseName)
	req, err := deriveRequested(h, sc)
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{host: h, kind: kindSecrun}
	final := &derivation{m: req.m.clone(), covered: cloneCovered(req.covered)}
	cr := &containerRun{caseName: caseName, container: "app", sc: sc, policy: &policySim{p: p}, requested: req, final: final}
	if err := cr.policy.apply(h, final, sc, s.confined); err != nil {
		t.Fatal(err)
	}
	if err := s.deriveChecks(cr); err != nil {
		t.Fatal(err)
	}
	return cr
}

func checkNamed(cr *containerRun, name string) *check {
	for _, ch := range cr.checks {
		if ch.Name == name {
			return ch
		}
	}
	return nil
}

// The annotation asks, the policy decides: record and explain under the
// suite's own policies, with the checks each mode implies.
func TestSeccompAgentChecks(t *testing.T) {
	cfg := GeneratedConfig("runc", "off", "/nonexistent", "/nonexistent/agent.sock")
	rec := agentDerive(t, cfg, "baseline", "seccomp-agent-record")
	if rec.final.m.SeccompAgent != "record" {
		t.Fatalf("record case: agent mode %q", rec.final.m.SeccompAgent)
	}
	if ch := checkNamed(rec, report.OpSeccompKeyctl); ch == nil || ch.Expected != "allowed" || ch.brk != agentOffBreaker {
		t.Errorf("record: seccomp.keyctl must run, shown failing without the agent: %+v", ch)
	}
	if ch := checkNamed(rec, "seccomp.agent.keyctl"); ch == nil || ch.Expected != "keyctl in the record, answer continued" || ch.brk != agentOffBreaker {
		t.Errorf("record: seccomp.agent.keyctl: %+v", ch)
	}
	if ch := checkNamed(rec, "seccomp.agent.clone3"); ch == nil {
		t.Error("record: no check that clone3 is recorded")
	}
	// What the profile allows is not the agent's business: every record
	// check is for an op the profile denies.
	prof, err := (&suite{host: testHost()}).profileFor(rec.final.m)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range rec.checks {
		if op, ok := strings.CutPrefix(ch.Name, "seccomp.agent."); ok && opFilterVerdict(prof, "seccomp."+op).allowed {
			t.Errorf("%s: the profile allows the op, yet it has a record check", ch.Name)
		}
	}

	exp := agentDerive(t, cfg, "baseline", "seccomp-agent-explain")
	if exp.final.m.SeccompAgent != "explain" {
		t.Fatalf("explain case: agent mode %q", exp.final.m.SeccompAgent)
	}
	if ch := checkNamed(exp, report.OpSeccompKeyctl); ch == nil || ch.Expected != "denied (EPERM)" || ch.brk != agentRecordBreaker {
		t.Errorf("explain: seccomp.keyctl must fail with EPERM, shown failing against a record agent: %+v", ch)
	}
	if ch := checkNamed(exp, "seccomp.agent.clone3"); ch == nil || ch.Expected != "clone3 in the record, answer ENOSYS" {
		t.Errorf("explain: clone3 is RuntimeDefault's ENOSYS: %+v", ch)
	}

	// A policy whose agent is explain-only lets a Pod tighten, not loosen;
	// one without an agent refuses the annotation. Neither is modelled
	// as a run: the container is listed, with why.
	explainOnly := "policies:\n  baseline:\n    mode: harden\n    seccompAgent:\n      mode: explain\n"
	if cr := agentDerive(t, explainOnly, "baseline", "seccomp-agent-record"); cr.final.unmodelled == "" || !strings.Contains(cr.final.unmodelled, "does not let a Pod ask") {
		t.Errorf("record asked under an explain-only agent: %q", cr.final.unmodelled)
	}
	if cr := agentDerive(t, explainOnly, "baseline", "seccomp-runtime-default"); cr.final.m.SeccompAgent != "explain" {
		t.Errorf("the policy's own mode applies to Pods that do not ask: %q", cr.final.m.SeccompAgent)
	}
	if cr := agentDerive(t, "policies:\n  baseline:\n    mode: harden\n", "baseline", "seccomp-agent-explain"); !strings.Contains(cr.final.unmodelled, "has no seccompAgent") {
		t.Errorf("explain asked under a policy without an agent: %q", cr.final.unmodelled)
	}
	// Nothing to notify without a filter that denies anything (baseline
	// harden would give the container RuntimeDefault).
	noDefault := "policies:\n  baseline:\n    mode: harden\n    seccomp: Unconfined\n    seccompAgent:\n      mode: explain\n"
	if cr := agentDerive(t, noDefault, "baseline", "seccomp-unconfined"); cr.final.m.SeccompAgent != "" || checkNamed(cr, "seccomp.agent.keyctl") != nil {
		t.Errorf("an unconfined container got the agent: %q", cr.final.m.SeccompAgent)
	}
}

// TestSuiteSeccompAgent runs the record and explain cases for real:
// through secrun and runc with the agent the suite starts, then their
// validity, where each agent check must fail against its twin.
func TestSuiteSeccompAgent(t *testing.T) {
	testenv.RequireContainers(t)
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("skipped: the go tool is needed to build the probe")
	}
	t.Setenv(policy.ConfigEnv, "")
	secrun := filepath.Join(testenv.Build(t), "secrun")
	secrunctl := filepath.Join(t.TempDir(), "secrunctl")
	cmd := exec.Command("go", "build", "-o", secrunctl, "./cmd/secrunctl")
	cmd.Dir = testenv.ModuleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/secrunctl: %v\n%s", err, out)
	}
	for _, validity := range []bool{false, true} {
		opts := Options{SecrunBinary: secrun, SecrunctlBinary: secrunctl, Validity: validity,
			ModuleRoot: testenv.ModuleRoot(), Cases: []string{"seccomp-agent-record", "seccomp-agent-explain"},
			ReportDir: filepath.Join(t.TempDir(), "report"), WorkDir: filepath.Join(t.TempDir(), "work")}
		res, err := Run(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		if res.Failed > 0 {
			var sum strings.Builder
			res.WriteSummary(&sum)
			t.Errorf("validity %v: %s\n%s", validity, res.CountLine(), sum.String())
		}
		for id, observed := range map[string]string{
			"seccomp-agent-record/app/seccomp.keyctl":        "allowed",
			"seccomp-agent-record/app/seccomp.agent.keyctl":  "keyctl",
			"seccomp-agent-explain/app/seccomp.keyctl":       "denied (EPERM)",
			"seccomp-agent-explain/app/seccomp.agent.clone3": "clone3",
		} {
			c := find(res, id)
			switch {
			case c == nil || c.Status != StatusPass:
				t.Errorf("validity %v: %s: %+v", validity, id, c)
			case !validity && !strings.Contains(c.Observed, observed):
				t.Errorf("%s observed %q, want %q", id, c.Observed, observed)
			case validity && c.Twin == "":
				t.Errorf("%s validated without a twin", id)
			}
		}
	}
}
