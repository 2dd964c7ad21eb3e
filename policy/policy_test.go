package policy

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

// fakeAppArmor stands in for the node's AppArmor.
type fakeAppArmor struct {
	enabled bool
	loaded  map[string]bool
}

func (f *fakeAppArmor) Enabled() bool                      { return f.enabled }
func (f *fakeAppArmor) IsLoaded(name string) (bool, error) { return f.loaded[name], nil }
func (f *fakeAppArmor) LoadDefault(name string) error {
	if f.loaded == nil {
		f.loaded = map[string]bool{}
	}
	f.loaded[name] = true
	return nil
}

func noAppArmor() *Env { return &Env{AppArmor: &fakeAppArmor{}} }

// runcSpec is the bundle `runc spec` writes: the starting point of the
// issue's acceptance test.
func runcSpec(t testing.TB) *specs.Spec {
	t.Helper()
	b, err := os.ReadFile("testdata/runc-spec.json")
	if err != nil {
		t.Fatal(err)
	}
	s := &specs.Spec{}
	if err := json.Unmarshal(b, s); err != nil {
		t.Fatal(err)
	}
	return s
}

// privilegedSpec is what containerd makes of privileged: true.
func privilegedSpec(t testing.TB) *specs.Spec {
	s := runcSpec(t)
	all := spec.AllCapabilities()
	s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
	s.Linux.Resources = &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}}
	return s
}

func builtin(t testing.TB, name string, mode Mode) *Policy {
	t.Helper()
	c, err := ParseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Policy(name)
	if err != nil {
		t.Fatal(err)
	}
	cp := *p
	if mode != "" {
		cp.Mode = mode
	}
	return &cp
}

func rulesOf(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, string(f.Rule))
	}
	return out
}

func TestPresetsLoad(t *testing.T) {
	c, err := ParseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.PolicyNames(); !slices.Equal(got, []string{"baseline", "privileged", "restricted"}) {
		t.Errorf("policies = %v", got)
	}
	r, _ := c.Policy("restricted")
	if !r.RunAsNonRoot || !r.NoNewPrivileges || !r.RequireSeccomp || !r.RestrictSysctls || r.ProcMount != "Default" {
		t.Errorf("restricted lacks baseline or its own settings: %+v", r)
	}
	if !slices.Equal(r.allowedCaps, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Errorf("restricted allowed caps = %v", r.allowedCaps)
	}
	if c.DefaultPolicy != "baseline" || c.Runtime != "runc" {
		t.Errorf("defaults: policy %q runtime %q", c.DefaultPolicy, c.Runtime)
	}
}

func TestCheckRuncSpec(t *testing.T) {
	cases := []struct {
		policy string
		want   []string
	}{
		{"privileged", nil},
		// runc's default bundle is baseline-clean: no seccomp is allowed
		// there (only harden adds one).
		{"baseline", nil},
		{"restricted", []string{"capabilities", "runAsNonRoot", "seccomp"}},
	}
	for _, tc := range cases {
		t.Run(tc.policy, func(t *testing.T) {
			got := rulesOf(Refusing(builtin(t, tc.policy, "").Check(noAppArmor(), runcSpec(t))))
			if !slices.Equal(got, tc.want) {
				t.Errorf("findings = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCheckPrivileged(t *testing.T) {
	for _, name := range []string{"baseline", "restricted"} {
		got := rulesOf(builtin(t, name, "").Check(noAppArmor(), privilegedSpec(t)))
		for _, want := range []string{"privileged", "devices", "capabilities", "procMount"} {
			if !slices.Contains(got, want) {
				t.Errorf("%s: findings %v lack %s", name, got, want)
			}
		}
	}
	if got := builtin(t, "privileged", "").Check(noAppArmor(), privilegedSpec(t)); len(got) != 0 {
		t.Errorf("privileged policy found %v", got)
	}
}

func TestHardenRestricted(t *testing.T) {
	p := builtin(t, "restricted", Harden)
	uid := int64(1000)
	p.RunAsUser = &uid
	s := runcSpec(t)
	out := p.Decide(noAppArmor(), s)
	if out.Decision != "hardened" {
		t.Fatalf("decision %s: %v %v", out.Decision, out.Findings, out.Err)
	}
	c := s.Process.Capabilities
	for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
		if !slices.Equal(set, []string{"CAP_NET_BIND_SERVICE"}) {
			t.Errorf("%s = %v", name, set)
		}
	}
	if len(c.Ambient) > 1 || len(c.Inheritable) > 0 {
		t.Errorf("ambient %v inheritable %v", c.Ambient, c.Inheritable)
	}
	if !s.Process.NoNewPrivileges || s.Process.User.UID != 1000 {
		t.Errorf("nnp %v uid %d", s.Process.NoNewPrivileges, s.Process.User.UID)
	}
	if !spec.Confined(s) {
		t.Error("no seccomp after hardening")
	}
	if left := Refusing(p.Check(noAppArmor(), s)); len(left) != 0 {
		t.Errorf("hardened bundle still breaks the policy: %v", left)
	}
}

func TestHardenRefusesRootWithoutUID(t *testing.T) {
	out := builtin(t, "restricted", Harden).Decide(noAppArmor(), runcSpec(t))
	if !out.Refused() || !slices.Contains(rulesOf(out.Findings), "runAsNonRoot") {
		t.Fatalf("outcome %s %v", out.Decision, out.Findings)
	}
	if !strings.Contains(out.Findings[0].String(), "runAsUser") {
		t.Errorf("finding does not say how to fix: %s", out.Findings[0])
	}
}

func TestHardenNeverFixesPrivileged(t *testing.T) {
	out := builtin(t, "baseline", Harden).Decide(noAppArmor(), privilegedSpec(t))
	if !out.Refused() || out.Findings[0].Rule != "privileged" {
		t.Fatalf("outcome %s %v", out.Decision, rulesOf(out.Findings))
	}
}

func TestAuditChangesNothing(t *testing.T) {
	s := runcSpec(t)
	before, _ := json.Marshal(s)
	out := builtin(t, "restricted", Audit).Decide(noAppArmor(), s)
	after, _ := json.Marshal(s)
	if string(before) != string(after) {
		t.Error("audit mode changed the spec")
	}
	if out.Decision != "audited" || len(out.Findings) == 0 || out.Refused() {
		t.Errorf("audit outcome %s %v", out.Decision, out.Findings)
	}
}

func TestSandboxIsHardenedNotRefused(t *testing.T) {
	s := runcSpec(t)
	s.Annotations = map[string]string{"io.kubernetes.cri.container-type": "sandbox"}
	s.Process.Args = []string{"/pause"}
	out := builtin(t, "restricted", Enforce).Decide(noAppArmor(), s)
	if out.Refused() {
		t.Fatalf("sandbox refused: %v", out.Findings)
	}
	if !s.Process.NoNewPrivileges || !spec.Confined(s) {
		t.Error("sandbox not hardened")
	}
	// pause needs no root: harden runs it as the pause image's user.
	if s.Process.User.UID != 65535 || s.Process.User.GID != 65535 {
		t.Errorf("sandbox user %d:%d, want 65535:65535", s.Process.User.UID, s.Process.User.GID)
	}
}

func TestSandboxClaims(t *testing.T) {
	for name, tc := range map[string]struct {
		args   []string
		edit   func(*specs.Spec)
		refuse string
	}{
		// Only the pause command is believed: anything else that calls
		// itself a sandbox is checked, and refused, as a container.
		"fake sandbox running a shell": {args: []string{"sh"}, refuse: "capabilities"},
		"CRI-O annotation, shell":      {args: []string{"sh"}, edit: func(s *specs.Spec) { s.Annotations = map[string]string{"io.kubernetes.cri-o.ContainerType": "sandbox"} }, refuse: "capabilities"},
		// A real sandbox still cannot have what no rewrite fixes.
		"pause in the host network": {args: []string{"/pause"}, edit: func(s *specs.Spec) {
			s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace })
		}, refuse: "hostNamespaces"},
	} {
		t.Run(name, func(t *testing.T) {
			s := runcSpec(t)
			s.Annotations = map[string]string{"io.kubernetes.cri.container-type": "sandbox"}
			s.Process.Args = tc.args
			if tc.edit != nil {
				tc.edit(s)
			}
			out := builtin(t, "restricted", Enforce).Decide(noAppArmor(), s)
			if !out.Refused() || !hasRule(out.Findings, tc.refuse) {
				t.Fatalf("decision %s findings %v, want refused for %s", out.Decision, out.Findings, tc.refuse)
			}
		})
	}
}

func hasRule(fs []Finding, rule string) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Rule == Rule(rule) })
}

func TestAppArmorDefault(t *testing.T) {
	aa := &fakeAppArmor{enabled: true}
	s := runcSpec(t)
	out := builtin(t, "baseline", Harden).Decide(&Env{AppArmor: aa}, s)
	if out.Refused() || s.Process.ApparmorProfile != spec.DefaultAppArmorProfile || !aa.loaded[spec.DefaultAppArmorProfile] {
		t.Fatalf("outcome %s profile %q loaded %v", out.Decision, s.Process.ApparmorProfile, aa.loaded)
	}
	// Without AppArmor in the kernel the default is skipped, with a warning.
	s = runcSpec(t)
	out = builtin(t, "baseline", Harden).Decide(noAppArmor(), s)
	if out.Refused() || s.Process.ApparmorProfile != "" || len(out.Warnings) == 0 {
		t.Fatalf("outcome %s profile %q warnings %v", out.Decision, s.Process.ApparmorProfile, out.Warnings)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]struct{ doc, want string }{
		"unknown top field":    {"defaultPolcy: baseline", `unknown field "defaultPolcy": did you mean defaultPolicy?`},
		"unknown policy field": {"policies:\n  web:\n    preset: restricted\n    mode: harden\n    runAsUer: 5", `did you mean runAsUser?`},
		"bad mode":             {"policies:\n  web:\n    mode: strict", `mode "strict" is unknown`},
		"missing mode":         {"policies:\n  web:\n    noNewPrivileges: true", `mode is missing`},
		"bad default":          {"defaultPolicy: nope", `defaultPolicy "nope" is not defined`},
		"bad preset":           {"policies:\n  web:\n    preset: strictest\n    mode: enforce", `preset "strictest" is unknown`},
		"bad cap":              {"policies:\n  web:\n    mode: enforce\n    allowedCapabilities: [NET_ADMN]", `did you mean NET_ADMIN?`},
		"bad name":             {"policies:\n  Web_1:\n    mode: enforce", `a policy name may hold only`},
		"bad yaml":             {"policies: [", `not valid YAML`},
		"wrong type":           {"policies:\n  web:\n    mode: enforce\n    noNewPrivileges: yes-please", `noNewPrivileges`},
		"bad seccomp":          {"policies:\n  web:\n    mode: enforce\n    seccomp: Localhost", `seccomp "Localhost" is not valid`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestConfigLayering(t *testing.T) {
	c, err := ParseConfig([]byte(`
runtime: crun
defaultPolicy: web
policies:
  web:
    preset: restricted
    mode: harden
    runAsUser: 65534
    allowedUnsafeSysctls: ["net.core.*"]
  restricted:
    mode: audit
`))
	if err != nil {
		t.Fatal(err)
	}
	web, _ := c.Policy("web")
	if web.Mode != Harden || !web.RunAsNonRoot || *web.RunAsUser != 65534 || c.RuntimeFor(web) != "crun" {
		t.Errorf("web = %+v", web)
	}
	r, _ := c.Policy("restricted")
	if r.Mode != Audit || !r.NoNewPrivileges {
		t.Errorf("overridden restricted lost its preset: %+v", r)
	}
	if _, err := c.Policy("restrictd"); err == nil || !strings.Contains(err.Error(), "did you mean restricted?") {
		t.Errorf("unknown policy error = %v", err)
	}
}

func TestLoadConfigFailsClosed(t *testing.T) {
	t.Setenv(ConfigEnv, t.TempDir()+"/missing.yaml")
	if _, err := LoadConfig(); err == nil {
		t.Error("an explicitly named missing config loaded")
	}
	p := t.TempDir() + "/c.yaml"
	os.WriteFile(p, []byte("policies: {web: {mode: enforce, bogus: 1}}"), 0o600)
	t.Setenv(ConfigEnv, p)
	if _, err := LoadConfig(); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("malformed config: err = %v (must name the file)", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{"", "defaultPolicy: restricted", "policies:\n  web:\n    preset: restricted\n    mode: harden\n    runAsUser: 1000\n", "{\"runtime\":\"crun\"}"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		for _, n := range c.PolicyNames() {
			p, err := c.Policy(n)
			if err != nil || p.Validate() != nil {
				t.Fatalf("accepted config has an invalid policy %s: %v", n, err)
			}
			p.Check(noAppArmor(), runcSpec(t))
		}
	})
}

func TestNoNewPrivilegesFinding(t *testing.T) {
	s := runcSpec(t)
	s.Process.NoNewPrivileges = false
	if got := rulesOf(builtin(t, "restricted", "").Check(noAppArmor(), s)); !slices.Contains(got, "noNewPrivileges") {
		t.Errorf("findings %v lack noNewPrivileges", got)
	}
}

// A bundle hardened before a reboot names secrun's default profile, which
// the kernel no longer has: secrun loads it again rather than let runc
// fail obscurely.
func TestDefaultAppArmorReloaded(t *testing.T) {
	aa := &fakeAppArmor{enabled: true}
	s := runcSpec(t)
	s.Process.ApparmorProfile = spec.DefaultAppArmorProfile
	for _, mode := range []Mode{Enforce, Harden} {
		aa.loaded = nil
		if out := builtin(t, "baseline", mode).Decide(&Env{AppArmor: aa}, s); out.Refused() {
			t.Fatalf("%s: refused: %v", mode, out.Error())
		}
		if !aa.loaded[spec.DefaultAppArmorProfile] {
			t.Errorf("%s: the default profile was not loaded again", mode)
		}
	}
	aa.loaded = nil
	if out := builtin(t, "baseline", Enforce).DecideProcess(&Env{AppArmor: aa}, s.Process); out.Refused() || !aa.loaded[spec.DefaultAppArmorProfile] {
		t.Errorf("exec: refused %v, loaded %v", out.Refused(), aa.loaded)
	}
}

func TestApplyOrder(t *testing.T) {
	// The translation's order, as data: each pair is a constraint the
	// kubelet's and containerd's semantics need, and the whole order is
	// pinned so that a new constraint's effect is seen in review.
	got, err := ApplyOrder()
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{RuleCapabilities, RuleNoNewPrivileges, RuleUser, RuleReadOnlyRootFilesystem, RuleProcMount,
		RulePrivileged, RuleAmbient, RuleSysctls, RuleSELinux, RuleAppArmor, RuleSeccomp}
	if !slices.Equal(got, want) {
		t.Errorf("ApplyOrder() = %v\nwant %v", got, want)
	}
	at := func(r Rule) int { return slices.Index(got, r) }
	for _, st := range Settings() {
		for _, a := range st.ApplyAfter {
			if st.Translated && at(a) >= at(st.Rule) {
				t.Errorf("%s must apply after %s in %v", st.Rule, a, got)
			}
		}
	}
	if got[len(got)-1] != RuleSeccomp {
		t.Error("seccomp must apply last: the default profile depends on the final capabilities")
	}

	// Cycles and unknown names are errors, not a silent order.
	cyc := []Setting{{Rule: "a", ApplyAfter: []Rule{"b"}}, {Rule: "b", ApplyAfter: []Rule{"a"}}}
	if _, err := applyOrder(cyc, func(Setting) bool { return true }); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: %v", err)
	}
	if _, err := applyOrder([]Setting{{Rule: "a", ApplyAfter: []Rule{"nope"}}}, func(Setting) bool { return true }); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown: %v", err)
	}
	// A constraint on a setting outside the subset does not hold it up.
	sub, err := applyOrder(cyc, func(st Setting) bool { return st.Rule == "a" })
	if err != nil || !slices.Equal(sub, []Rule{"a"}) {
		t.Errorf("subset: %v %v", sub, err)
	}
}

func TestSettingsRegistry(t *testing.T) {
	// Every rule a finding can carry is declared once, with its OCI
	// fields; exec flags map to the settings that declare them.
	seen := map[Rule]bool{}
	for _, st := range Settings() {
		if seen[st.Rule] || len(st.OCI) == 0 || st.check == nil && !st.Translated {
			t.Errorf("setting %s: declared twice, or without OCI fields, or neither checked nor translated", st.Rule)
		}
		if st.fix != nil && st.check == nil {
			t.Errorf("setting %s: a fix without a check never runs", st.Rule)
		}
		seen[st.Rule] = true
		if len(st.ExecFlags) > 0 && !st.Process {
			t.Errorf("setting %s has exec flags but is not a process setting", st.Rule)
		}
	}
	if got := TouchedBy(ExecCap, ExecCwd); !got[RuleCapabilities] || !got[RuleProcessPaths] || len(got) != 2 {
		t.Errorf("TouchedBy(--cap, --cwd) = %v", got)
	}
	// A made-up setting needs one entry: Check, Harden and the exec
	// flags pick it up.
	saved := settings
	defer func() { settings = saved }()
	settings = append(slices.Clone(saved), Setting{Rule: "madeUp", OCI: []string{"hostname"}, Process: true, ExecFlags: []ExecFlag{"--made-up"},
		check: func(_ *Policy, _ *Env, s *specs.Spec) []Finding {
			if s.Hostname == "forbidden" {
				return []Finding{{Rule: "madeUp", Field: "hostname", Problem: "forbidden hostname", Fix: "rename"}}
			}
			return nil
		},
		fix: func(*Policy, *Env, *specs.Spec) spec.Option {
			return func(s *specs.Spec) error { s.Hostname = "fine"; return nil }
		}})
	s := runcSpec(t)
	s.Hostname = "forbidden"
	if !hasRule(builtin(t, "baseline", Enforce).Check(noAppArmor(), s), "madeUp") {
		t.Error("Check did not run the new setting")
	}
	builtin(t, "baseline", Harden).Decide(noAppArmor(), s)
	if s.Hostname != "fine" {
		t.Error("Harden did not apply the new setting's fix")
	}
	if !TouchedBy("--made-up")["madeUp"] {
		t.Error("the new setting's exec flag is not known")
	}
}
