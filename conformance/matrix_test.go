package conformance

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// writeRow writes a row directory as a suite run leaves it.
func writeRow(t *testing.T, root, name string, r *Result, exit string) string {
	t.Helper()
	dir := filepath.Join(root, name)
	if r != nil {
		if err := r.WriteReports(dir); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if exit != "" {
		if err := os.WriteFile(filepath.Join(dir, MatrixRowStatusFile), []byte(exit+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestMatrix(t *testing.T) {
	aa := CheckResult{ID: "c/app/apparmor.label", Setting: SettingAppArmor, Status: StatusPass}
	aaFail := aa
	aaFail.Status, aaFail.Message = StatusFail, "unconfined"
	aaSkip := aa
	aaSkip.Status, aaSkip.Message = StatusSkip, reasonNoAppArmor
	good := verifyResult(aa)
	good.Host.CgroupV2 = true
	bad := verifyResult(aaFail)
	skipped := verifyResult(aaSkip)
	require := []Setting{SettingAppArmor}
	for _, tc := range []struct {
		name    string
		rows    map[string]*Result
		exits   map[string]string
		opts    MatrixOptions
		problem string // "" = the matrix passes
	}{
		{name: "gating row passes, comparison row fails", rows: map[string]*Result{"secrun": good, "runc": bad}, opts: MatrixOptions{Comparison: []string{"runc"}, Require: require, CgroupV2: true}},
		{name: "gating row fails a check", rows: map[string]*Result{"secrun": bad}, problem: "secrun: 1 checks failed"},
		{name: "required setting skipped", rows: map[string]*Result{"secrun": skipped}, opts: MatrixOptions{Require: require}, problem: "apparmor is required"},
		{name: "no report", rows: map[string]*Result{"secrun": nil}, exits: map[string]string{"secrun": "2"}, problem: "secrun: no report"},
		{name: "exit status without a failed check", rows: map[string]*Result{"secrun": good}, exits: map[string]string{"secrun": "1"}, problem: "exited 1"},
		{name: "no cgroup v2", rows: map[string]*Result{"secrun": skipped}, opts: MatrixOptions{CgroupV2: true}, problem: "cgroup v2"},
		{name: "no gating row", rows: map[string]*Result{"runc": good}, opts: MatrixOptions{Comparison: []string{"runc"}}, problem: "no gating row"},
	} {
		root := t.TempDir()
		var dirs []string
		for _, name := range []string{"secrun", "runc"} {
			if r, ok := tc.rows[name]; ok {
				dirs = append(dirs, writeRow(t, root, name, r, tc.exits[name]))
			}
		}
		m, err := BuildMatrix(dirs, tc.opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := strings.Join(m.Problems, "\n")
		switch {
		case tc.problem == "" && !m.Pass:
			t.Errorf("%s: failed: %s", tc.name, got)
		case tc.problem != "" && (m.Pass || !strings.Contains(got, tc.problem)):
			t.Errorf("%s: pass %v, problems %q; want one saying %q", tc.name, m.Pass, got, tc.problem)
		}
		out := filepath.Join(root, "out")
		if err := m.WriteReports(out); err != nil {
			t.Fatal(err)
		}
		checkMatrixTAP(t, tc.name, filepath.Join(out, "report.tap"))
		b, err := os.ReadFile(filepath.Join(out, "report.junit.xml"))
		if err != nil {
			t.Fatal(err)
		}
		var j junitSuites
		if err := xml.Unmarshal(b, &j); err != nil || len(j.Suites) != len(dirs) {
			t.Errorf("%s: junit: %d suites for %d rows (%v)", tc.name, len(j.Suites), len(dirs), err)
		}
	}
	// A --validity row leaves validity.json.
	v := verifyResult(aa)
	v.Mode = "validity"
	m, err := BuildMatrix([]string{writeRow(t, t.TempDir(), "secrun", v, "0")}, MatrixOptions{Require: require})
	if err != nil || !m.Pass || m.Rows[0].Report == nil || m.Rows[0].Report.Mode != "validity" {
		t.Errorf("a validity row: %v, %+v", err, m)
	}
	if _, err := BuildMatrix([]string{t.TempDir()}, MatrixOptions{Comparison: []string{"bare"}}); err == nil {
		t.Error("a --comparison that names no row was accepted")
	}
}

var tapPoint = regexp.MustCompile(`^(not )?ok (\d+) - `)

// checkMatrixTAP: TAP 13, a plan that matches the test points, numbered
// in order, and a comparison row's failures marked TODO.
func checkMatrixTAP(t *testing.T, name, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if lines[0] != "TAP version "+strconv.Itoa(TAPVersion) || TAPVersion != 13 {
		t.Errorf("%s: first line %q", name, lines[0])
	}
	n := 0
	for _, l := range lines {
		mm := tapPoint.FindStringSubmatch(l)
		if mm == nil {
			continue
		}
		n++
		if mm[2] != strconv.Itoa(n) {
			t.Errorf("%s: test point %s out of order: %q", name, mm[2], l)
		}
		if strings.HasPrefix(l, "not ok") && strings.Contains(l, "runc: ") && !strings.Contains(l, "# TODO") {
			t.Errorf("%s: a comparison row's failure counts: %q", name, l)
		}
	}
	if lines[1] != "1.."+strconv.Itoa(n) {
		t.Errorf("%s: plan %q for %d test points", name, lines[1], n)
	}
}
