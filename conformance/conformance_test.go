package conformance

import (
	"bytes"
	"context"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/internal/testenv"
	"github.com/secrun/secrun/manifest"
	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/spec"
)

func testHost() *hostEnv {
	return &hostEnv{
		HeldCaps: []string{"CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_KILL"},
		Kernel:   [2]int{6, 1},
		exists:   func(string) bool { return true },
	}
}

func caseSC(t *testing.T, name string) effectiveSC {
	t.Helper()
	cases, err := LoadCases("")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if c.Name != name {
			continue
		}
		views, err := parsePodViews(c.Data)
		if err != nil {
			t.Fatal(err)
		}
		ps, ann := views[0].podSpec()
		return mergeSecurityContext(ps, ann, &ps.Containers[0])
	}
	t.Fatalf("no case %s", name)
	return effectiveSC{}
}

// Every built-in case is a manifest the translator accepts and the suite
// can read.
func TestCasesParse(t *testing.T) {
	cases, err := LoadCases("")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 20 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		ws, err := manifest.Parse(c.Data)
		if err != nil {
			t.Errorf("%s: manifest.Parse: %v", c.Name, err)
			continue
		}
		views, err := parsePodViews(c.Data)
		if err != nil || len(views) != len(ws) {
			t.Errorf("%s: %d views (%v) for %d workloads", c.Name, len(views), err, len(ws))
		}
	}
}

func TestDeriveCapabilities(t *testing.T) {
	h := testHost()
	d, err := deriveRequested(h, caseSC(t, "capabilities-example"))
	if err != nil {
		t.Fatal(err)
	}
	if d.m.hasCap("CAP_CHOWN") || !d.m.hasCap("CAP_NET_ADMIN") || len(d.m.Caps) != len(defaultCapabilities) {
		t.Errorf("add NET_ADMIN, drop CHOWN: caps %v", d.m.Caps)
	}
	if d, _ = deriveRequested(h, caseSC(t, "capabilities-drop-all")); len(d.m.Caps) != 0 {
		t.Errorf("drop ALL: caps %v", d.m.Caps)
	}
	d, _ = deriveRequested(h, caseSC(t, "privileged"))
	if !slices.Equal(d.m.Caps, sortCaps(h.HeldCaps)) || !d.m.unmasked() || d.m.Seccomp != seccompNone || !d.m.SysRW {
		t.Errorf("privileged: %+v", d.m)
	}
	d, _ = deriveRequested(h, caseSC(t, "allow-privilege-escalation-false"))
	if !d.m.NNP || d.m.UID != 1000 || d.m.GID != 1000 || !slices.Equal(d.m.Groups, []uint32{1000, 2500}) {
		t.Errorf("allowPrivilegeEscalation false, runAsUser 1000: %+v", d.m)
	}
	if _, err := deriveRequested(h, effectiveSC{Capabilities: &spec.Capabilities{Add: []string{"NET_ADMN"}}}); err == nil {
		t.Error("a misspelt capability was accepted")
	}
}

func TestPolicySim(t *testing.T) {
	h := testHost()
	cfg, err := policy.ParseConfig([]byte(GeneratedConfig("runc", "off", "/nonexistent", "/nonexistent/agent.sock")))
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{host: h}
	apply := func(pol, c string) *derivation {
		t.Helper()
		p, err := cfg.Policy(pol)
		if err != nil {
			t.Fatal(err)
		}
		sc := caseSC(t, c)
		d, err := deriveRequested(h, sc)
		if err != nil {
			t.Fatal(err)
		}
		if err := (&policySim{p: p}).apply(h, d, sc, s.confined); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := apply("baseline", "capabilities-example")
	if d.refusal != nil || d.m.hasCap("CAP_NET_ADMIN") || d.m.Seccomp != seccompRuntimeDefault {
		t.Errorf("baseline harden: refusal %v, caps %v, seccomp %q", d.refusal, d.m.Caps, d.m.Seccomp)
	}
	if d := apply("baseline", "privileged"); d.refusal == nil || d.refusal.Rules[0] != "privileged" {
		t.Errorf("baseline harden must refuse privileged: %+v", d.refusal)
	}
	if d := apply("restricted", "restricted-root-refused"); d.refusal == nil || !slices.Equal(d.refusal.Rules, []policy.Rule{policy.RuleRunAsNonRoot}) {
		t.Errorf("restricted harden without runAsUser must refuse root: %+v", d.refusal)
	}
	d = apply("restricted", "pss-restricted")
	if d.refusal != nil || !slices.Equal(d.m.Caps, []string{"CAP_NET_BIND_SERVICE"}) || !d.m.NNP {
		t.Errorf("restricted: %+v %+v", d.refusal, d.m)
	}
	enforce, _ := policy.ParseConfig(nil)
	p, _ := enforce.Policy("baseline")
	sc := caseSC(t, "capabilities-example")
	d, _ = deriveRequested(h, sc)
	if err := (&policySim{p: p}).apply(h, d, sc, s.confined); err != nil || d.refusal == nil || d.refusal.Rules[0] != "capabilities" {
		t.Errorf("baseline enforce must refuse NET_ADMIN: %v %+v", err, d.refusal)
	}
}

// The evaluator reads moby's default profile the way the kernel applies
// it, including the capability-dependent rules.
func TestEvalFilter(t *testing.T) {
	profile := func(caps ...string) *specs.LinuxSeccomp {
		p, err := mobyseccomp.GetDefaultProfile(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	def := profile(defaultCapabilities...)
	for op, allowed := range map[string]bool{
		"seccomp.keyctl": false, "seccomp.ptrace": true, "seccomp.clone_newns": false,
		"seccomp.mount": false, "seccomp.personality": false, "seccomp.normal": true,
		"cap.net_raw": true, "cap.net_admin": true, "cap.chown": true,
	} {
		if v := opFilterVerdict(def, op); v.allowed != allowed {
			t.Errorf("RuntimeDefault %s: allowed=%v (%s), want %v", op, v.allowed, v.rule, allowed)
		}
	}
	if v := opFilterVerdict(def, "seccomp.keyctl"); v.errno != "EPERM" {
		t.Errorf("keyctl errno %q", v.errno)
	}
	if v := evalFilter(def, sc("clone", uint64(unix.SIGCHLD))); !v.allowed {
		t.Errorf("plain clone denied: %s", v.rule)
	}
	admin := profile(append(slices.Clone(defaultCapabilities), "CAP_SYS_ADMIN")...)
	if !opFilterVerdict(admin, "seccomp.mount").allowed || !opFilterVerdict(admin, "seccomp.clone_newns").allowed {
		t.Error("RuntimeDefault with CAP_SYS_ADMIN still denies mount or clone(CLONE_NEWNS)")
	}
	if !opFilterVerdict(nil, "seccomp.keyctl").allowed {
		t.Error("no filter denied keyctl")
	}
}

func TestDenyCloneNewns(t *testing.T) {
	s := &specs.Spec{Linux: &specs.Linux{}}
	if err := denyCloneNewns(s); err != nil {
		t.Fatal(err)
	}
	p := s.Linux.Seccomp
	if evalFilter(p, sc("clone", unix.CLONE_NEWNS|uint64(unix.SIGCHLD))).allowed {
		t.Error("clone(CLONE_NEWNS) allowed")
	}
	if !evalFilter(p, sc("clone", uint64(unix.SIGCHLD))).allowed {
		t.Error("plain clone denied")
	}
}

func TestReports(t *testing.T) {
	r := &Result{Mode: "conformance", Runtime: "runc", RuntimeKind: kindBare, Passed: 1, Failed: 1, Skipped: 1}
	r.Containers = []ContainerResult{{Case: "c", Container: "app", Checks: []CheckResult{
		{ID: "c/app/cap.chown", Setting: SettingCapabilities, Status: StatusPass, Expected: "denied (EPERM)"},
		{ID: "c/app/cap.net_admin", Setting: SettingCapabilities, Status: StatusFail, Expected: "allowed", Observed: "denied (EPERM)", Message: "the kernel refused # it"},
		{ID: "c/app/apparmor.label", Setting: SettingAppArmor, Status: StatusSkip, Message: reasonNoAppArmor},
	}}}
	var tap bytes.Buffer
	if err := r.WriteTAP(&tap); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TAP version 13\n1..3\n", "ok 1 - c/app/cap.chown", "not ok 2 - c/app/cap.net_admin", "ok 3 - c/app/apparmor.label [apparmor]", "# SKIP AppArmor not enabled in this kernel"} {
		if !strings.Contains(tap.String(), want) {
			t.Errorf("TAP lacks %q:\n%s", want, tap.String())
		}
	}
	var junit bytes.Buffer
	if err := r.WriteJUnit(&junit); err != nil {
		t.Fatal(err)
	}
	var parsed junitSuites
	if err := xml.Unmarshal(junit.Bytes(), &parsed); err != nil {
		t.Fatalf("JUnit XML does not parse: %v", err)
	}
	if parsed.Tests != 3 || parsed.Failures != 1 || parsed.Skipped != 1 {
		t.Errorf("JUnit counts %+v", parsed)
	}
	var sum bytes.Buffer
	r.WriteSummary(&sum)
	if !strings.Contains(sum.String(), "FAIL c/app/cap.net_admin") || !strings.Contains(sum.String(), "SKIP c/app/apparmor.label [apparmor]: AppArmor not enabled") {
		t.Errorf("summary:\n%s", sum.String())
	}
	if got := r.CountLine(); got != "conformance: 1 passed, 1 failed, 1 skipped" {
		t.Errorf("count line %q", got)
	}
}

// shortCases are the cases the short suite runs: a capability add and
// drop, a read-only root, sysctls (with their leak check), a refusal.
var shortCases = []string{"capabilities-example", "read-only-root-filesystem", "sysctls-example", "restricted-root-refused"}

func runShort(t *testing.T, opts Options, minPassed int) *Result {
	t.Helper()
	opts.Cases = shortCases
	opts.ModuleRoot = testenv.ModuleRoot()
	opts.ReportDir = filepath.Join(t.TempDir(), "report")
	opts.WorkDir = filepath.Join(t.TempDir(), "work")
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	var sum bytes.Buffer
	res.WriteSummary(&sum)
	if res.Failed > 0 || res.Passed < minPassed {
		t.Errorf("%s\n%s", res.CountLine(), sum.String())
	}
	for _, f := range []string{".json", ".tap", ".junit.xml"} {
		base := map[bool]string{true: "validity", false: "report"}[opts.Validity]
		if _, err := os.Stat(filepath.Join(opts.ReportDir, base+f)); err != nil {
			t.Errorf("report %s: %v", f, err)
		}
	}
	return res
}

func find(res *Result, id string) *CheckResult {
	for _, c := range res.All() {
		if c.ID == id {
			return &c
		}
	}
	return nil
}

// TestSuiteShort runs a few cases through secrun and through bare runc,
// and the validity mode for them, with real containers.
func TestSuiteShort(t *testing.T) {
	testenv.RequireContainers(t)
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("skipped: the go tool is needed to build the probe")
	}
	t.Setenv(policy.ConfigEnv, "")
	secrun := filepath.Join(testenv.Build(t), "secrun")

	t.Run("secrun", func(t *testing.T) {
		res := runShort(t, Options{SecrunBinary: secrun}, 60)
		// baseline harden drops the NET_ADMIN the Pod adds.
		if c := find(res, "capabilities-example/demo/cap.net_admin"); c == nil || c.Status != StatusPass || c.Expected != "denied (EPERM)" {
			t.Errorf("cap.net_admin through secrun-baseline: %+v", c)
		}
		if c := find(res, "restricted-root-refused/app/refused.runAsNonRoot"); c == nil || c.Status != StatusPass {
			t.Errorf("refusal: %+v", c)
		}
	})
	t.Run("runc", func(t *testing.T) {
		res := runShort(t, Options{Runtime: "runc"}, 10)
		for id, want := range map[string]string{
			"capabilities-example/demo/cap.net_admin": "allowed",
			"capabilities-example/demo/cap.chown":     "denied (EPERM)",
		} {
			if c := find(res, id); c == nil || c.Status != StatusPass || c.Observed != want {
				t.Errorf("%s against bare runc: %+v, want observed %q", id, c, want)
			}
		}
	})
	t.Run("validity", func(t *testing.T) {
		res := runShort(t, Options{SecrunBinary: secrun, Validity: true}, 60)
		for _, c := range res.All() {
			if c.Status == StatusPass && c.Twin == "" {
				t.Errorf("%s validated without a twin", c.ID)
			}
		}
	})
}

func TestRegistryRows(t *testing.T) {
	// Every conformance row the settings registry names is a row of the
	// summary, and every rule whose refusal the suite predicts counts in
	// one, so that a refusal never lands in an unnamed row.
	for _, st := range policy.Settings() {
		if st.Conformance != "" && !slices.Contains(Settings, Setting(st.Conformance)) {
			t.Errorf("setting %s names conformance row %q, which the summary lacks", st.Rule, st.Conformance)
		}
	}
	for rule := range ruleField {
		if ruleSetting(rule) == "" {
			t.Errorf("the suite predicts refusals by %s, but the registry gives it no conformance row", rule)
		}
	}
}
