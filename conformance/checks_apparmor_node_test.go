package conformance

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/secrun/secrun/conformance/probe/report"
	"github.com/secrun/secrun/policy"
)

// nodeSuite is a bundle suite on a node with AppArmor (or without),
// enough to derive checks.
func nodeSuite(t *testing.T, kind string, appArmor bool) *suite {
	t.Helper()
	dir := t.TempDir()
	h := testHost()
	h.AppArmor = appArmor
	if appArmor {
		h.AppArmorParser = "/sbin/apparmor_parser"
		h.appArmorLoaded = func(string) bool { return false }
	}
	s := &suite{host: h, kind: kind, work: dir, probe: filepath.Join(dir, "p"), probeSUID: filepath.Join(dir, "ps"), runtime: "/bin/true"}
	for _, f := range []string{s.probe, s.probeSUID} {
		if err := os.WriteFile(f, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	if s.cfg, err = policy.ParseConfig([]byte(GeneratedConfig("runc", "off", "/nonexistent", "/nonexistent/agent.sock"))); err != nil {
		t.Fatal(err)
	}
	return s
}

func setupNamed(t *testing.T, s *suite, name string) *containerRun {
	t.Helper()
	cases, err := LoadCases("")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(cases, func(c Case) bool { return c.Name == name })
	if i < 0 {
		t.Fatalf("no case %s", name)
	}
	crs, err := s.setupCase(cases[i])
	if err != nil {
		t.Fatal(err)
	}
	return crs[0]
}

func checkNames(cr *containerRun) []string {
	var out []string
	for _, ch := range cr.checks {
		out = append(out, ch.Name)
	}
	return out
}

// The node-only AppArmor cases check AppArmor alone where the kernel has
// it, and are not applicable (not skipped) where it has not.
func TestAppArmorNodeCases(t *testing.T) {
	for _, tc := range []struct {
		name     string
		kind     string
		appArmor bool
		want     []string
		unload   bool
	}{
		{"apparmor-localhost-missing", kindSecrun, true, []string{"apparmor.missing_profile"}, false},
		{"apparmor-localhost-missing", kindBare, true, []string{"apparmor.missing_profile"}, false},
		{"apparmor-localhost-missing", kindSecrun, false, nil, false},
		{"apparmor-runtime-default-concurrent", kindSecrun, true, []string{report.OpAppArmorLabel, "apparmor.default_denied"}, true},
		{"apparmor-runtime-default-concurrent", kindBare, true, nil, false},
		{"apparmor-runtime-default-concurrent", kindSecrun, false, nil, false},
		{"apparmor-runtime-default", kindSecrun, true, []string{report.OpAppArmorLabel, "apparmor.default_denied"}, false},
	} {
		cr := setupNamed(t, nodeSuite(t, tc.kind, tc.appArmor), tc.name)
		got := slices.DeleteFunc(checkNames(cr), func(n string) bool { return !strings.HasPrefix(n, "apparmor.") })
		if tc.name == "apparmor-runtime-default" && len(got) == len(cr.checks) {
			t.Errorf("%s: only AppArmor checks", tc.name)
		}
		if tc.name != "apparmor-runtime-default" && len(got) != len(cr.checks) {
			t.Errorf("%s: checks %v besides AppArmor's", tc.name, checkNames(cr))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s (%s, AppArmor %v): checks %v, want %v", tc.name, tc.kind, tc.appArmor, got, tc.want)
		}
		if tc.want == nil && len(cr.notApplicable) == 0 {
			t.Errorf("%s (%s, AppArmor %v): no check and no reason why", tc.name, tc.kind, tc.appArmor)
		}
		if cr.unloadDefault != tc.unload {
			t.Errorf("%s (%s): unloadDefault %v, want %v", tc.name, tc.kind, cr.unloadDefault, tc.unload)
		}
		for _, ch := range cr.checks {
			if ch.skip != "" || ch.brk == nil {
				t.Errorf("%s: %s skips (%q) or has no twin", tc.name, ch.Name, ch.skip)
			}
		}
	}
}

// apparmor_parser missing on a kernel with AppArmor: a skip, and under
// CI=true a failure.
func TestAppArmorNodeParserMissing(t *testing.T) {
	s := nodeSuite(t, kindSecrun, true)
	s.host.AppArmorParser = ""
	t.Setenv("CI", "")
	cr := setupNamed(t, s, "apparmor-localhost-missing")
	if len(cr.checks) != 1 || !strings.Contains(cr.checks[0].skip, "apparmor_parser") {
		t.Fatalf("checks %v: want one skipping for apparmor_parser", checkNames(cr))
	}
	t.Setenv("CI", "true")
	cr = setupNamed(t, s, "apparmor-localhost-missing")
	if v := cr.checks[0].eval(&observation{}); cr.checks[0].skip != "" || v.Status != StatusFail {
		t.Fatalf("CI=true: skip %q, verdict %+v; want a failure", cr.checks[0].skip, v)
	}
}

func TestMissingProfileVerdicts(t *testing.T) {
	cr := setupNamed(t, nodeSuite(t, kindSecrun, true), "apparmor-localhost-missing")
	ch := cr.checks[0]
	for _, tc := range []struct {
		name string
		o    *observation
		want Status
	}{
		{"runc refuses", &observation{exit: 1, stderr: "runc run failed: unable to apply apparmor profile: apparmor failed to apply profile: write /proc/self/attr/apparmor/exec: no such file or directory"}, StatusPass},
		{"refused without a word", &observation{exit: 1}, StatusFail},
		{"the container ran", &observation{exit: 0, rep: &report.Report{AppArmor: "unconfined"}}, StatusFail},
		{"exit 0 without the probe", &observation{exit: 0}, StatusFail},
		{"timed out", &observation{exit: -1, runErr: os.ErrDeadlineExceeded}, StatusFail},
	} {
		if v := ch.eval(tc.o); v.Status != tc.want {
			t.Errorf("%s: %+v, want %s", tc.name, v, tc.want)
		}
	}
}

// One start that fails a check fails it.
func TestEveryStart(t *testing.T) {
	cr := setupNamed(t, nodeSuite(t, kindSecrun, true), "apparmor-runtime-default-concurrent")
	label := cr.checks[0]
	ok := &observation{rep: &report.Report{AppArmor: "secrun-default (enforce)"}}
	other := &observation{rep: &report.Report{AppArmor: "other (enforce)"}}
	if v := everyStart(label, []*observation{ok, ok, ok}); v.Status != StatusPass {
		t.Fatalf("every start confined: %+v", v)
	}
	v := everyStart(label, []*observation{ok, other, ok})
	if v.Status != StatusFail || !strings.Contains(v.Message, "start 2 of 3") {
		t.Fatalf("one start confined by another profile: %+v", v)
	}
	if _, err := concurrentStarts(map[string]string{concurrentStartsAnnotation: "1"}); err == nil || !strings.Contains(err.Error(), concurrentStartsAnnotation) {
		t.Fatalf("1 start accepted, or the error does not name the annotation: %v", err)
	}
}
