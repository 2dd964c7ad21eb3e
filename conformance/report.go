package conformance

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/secrun/secrun/policy"
)

// Result is a finished suite run.
type Result struct {
	// Mode is "conformance" or "validity".
	Mode        string            `json:"mode"`
	Runtime     string            `json:"runtime"`
	RuntimeKind string            `json:"runtimeKind"`
	Delegate    string            `json:"delegate"`
	Config      string            `json:"secrunConfig,omitempty"`
	Host        HostInfo          `json:"host"`
	Started     time.Time         `json:"started"`
	Duration    float64           `json:"durationSeconds"`
	Passed      int               `json:"passed"`
	Failed      int               `json:"failed"`
	Skipped     int               `json:"skipped"`
	Containers  []ContainerResult `json:"containers"`
	// NotApplicable lists checks this node cannot make meaningful (a
	// /proc file the kernel lacks, a kernel without modules): they are
	// not checks, and are not counted.
	NotApplicable []string `json:"notApplicable,omitempty"`
	WorkDir       string   `json:"workDir,omitempty"`
}

// HostInfo is what the node offered.
type HostInfo struct {
	Kernel   string `json:"kernel"`
	AppArmor bool   `json:"apparmor"`
	SELinux  bool   `json:"selinux"`
	HeldCaps int    `json:"heldCapabilities"`
	// CgroupV2 says /sys/fs/cgroup is a pure cgroup v2 hierarchy.
	CgroupV2 bool `json:"cgroupV2"`
}

// ContainerResult is one container of one case.
type ContainerResult struct {
	Case      string        `json:"case"`
	File      string        `json:"file"`
	Workload  string        `json:"workload"`
	Container string        `json:"container"`
	Runtime   string        `json:"runtime"`
	Policy    string        `json:"policy,omitempty"`
	Mode      string        `json:"policyMode,omitempty"`
	Refusal   []policy.Rule `json:"expectedRefusal,omitempty"`
	// Derivation says how the expectations were reached.
	Derivation    []string      `json:"derivation"`
	Warnings      []string      `json:"translationWarnings,omitempty"`
	Error         string        `json:"error,omitempty"`
	Run           *RunInfo      `json:"run,omitempty"`
	Checks        []CheckResult `json:"checks"`
	NotApplicable []string      `json:"notApplicable,omitempty"`
}

// RunInfo is the container run of a conformance result.
type RunInfo struct {
	Runtime  string  `json:"runtime"`
	ExitCode int     `json:"exitCode"`
	Error    string  `json:"error,omitempty"`
	Stderr   string  `json:"stderr,omitempty"`
	Seconds  float64 `json:"seconds"`
}

// CheckResult is one check's outcome.
type CheckResult struct {
	ID          string   `json:"id"`
	Setting     Setting  `json:"setting"`
	Description string   `json:"description"`
	Expected    string   `json:"expected"`
	Because     []string `json:"derivedFrom,omitempty"`
	Status      Status   `json:"status"`
	Observed    string   `json:"observed,omitempty"`
	Message     string   `json:"message,omitempty"`
	// Twin describes the non-enforcing bundle of the validity mode.
	Twin string `json:"twin,omitempty"`
}

func newResult(cr *containerRun, ch *check) CheckResult {
	r := CheckResult{ID: ch.ID, Setting: ch.Setting, Description: ch.Description, Expected: ch.Expected, Because: ch.Because}
	if ch.skip != "" {
		r.Status, r.Message = StatusSkip, ch.skip
	}
	return r
}

func (r *CheckResult) apply(v verdict) {
	r.Status, r.Observed, r.Message = v.Status, v.Observed, v.Message
}

func runInfo(o *observation, d time.Duration, runtime string) *RunInfo {
	ri := &RunInfo{Runtime: runtime, ExitCode: o.exit, Seconds: d.Seconds()}
	if o.runErr != nil {
		ri.Error = o.runErr.Error()
	}
	if len(o.stderr) > 4096 {
		ri.Stderr = o.stderr[len(o.stderr)-4096:]
	} else {
		ri.Stderr = o.stderr
	}
	return ri
}

func (s *suite) result(runs []*containerRun, start time.Time) *Result {
	res := &Result{
		Mode: s.modeName(), Runtime: s.runtime, RuntimeKind: s.kind, Delegate: s.delegate,
		Started: start, Duration: time.Since(start).Seconds(),
		Host: HostInfo{Kernel: fmt.Sprintf("%d.%d", s.host.Kernel[0], s.host.Kernel[1]), AppArmor: s.host.AppArmor, SELinux: s.host.SELinux, HeldCaps: len(s.host.HeldCaps), CgroupV2: s.host.CgroupV2},
	}
	if s.kind == kindSecrun {
		res.Config = s.configPath
	}
	for _, cr := range runs {
		c := ContainerResult{
			Case: cr.caseName, File: cr.file, Workload: cr.workload, Container: cr.container,
			Runtime: cr.runtime, Derivation: cr.final.notes, Warnings: cr.warnings,
			Run: cr.run, Checks: cr.results, NotApplicable: cr.notApplicable,
		}
		if cr.policy != nil {
			c.Policy, c.Mode = cr.policy.name(), cr.policy.mode()
		}
		if r := cr.final.refusal; r != nil {
			c.Refusal = r.Rules
		}
		if cr.setupErr != nil {
			c.Error = cr.setupErr.Error()
		}
		for _, r := range cr.results {
			switch r.Status {
			case StatusPass:
				res.Passed++
			case StatusSkip:
				res.Skipped++
			default:
				res.Failed++
			}
		}
		if cr.setupErr != nil && len(cr.results) == 0 {
			// A container whose manifest failed before any check was
			// derived still fails the run.
			res.Failed++
			c.Checks = append(c.Checks, CheckResult{ID: cr.id() + "/setup", Status: StatusFail, Message: cr.setupErr.Error()})
		}
		for _, n := range cr.notApplicable {
			if !slices.Contains(res.NotApplicable, n) {
				res.NotApplicable = append(res.NotApplicable, n)
			}
		}
		res.Containers = append(res.Containers, c)
	}
	slices.Sort(res.NotApplicable)
	return res
}

// All returns every check result in order.
func (r *Result) All() []CheckResult {
	var out []CheckResult
	for _, c := range r.Containers {
		out = append(out, c.Checks...)
	}
	return out
}

// CountLine is the last line of a run: "conformance: 57 passed, 0
// failed, 2 skipped".
func (r *Result) CountLine() string {
	return fmt.Sprintf("%s: %d passed, %d failed, %d skipped", r.Mode, r.Passed, r.Failed, r.Skipped)
}

// WriteSummary prints the table of setting by result and the failures
// and skips with their reasons; CountLine is meant to follow it as the
// last line.
func (r *Result) WriteSummary(w io.Writer) {
	type row struct{ pass, fail, skip int }
	rows := map[Setting]*row{}
	for _, s := range Settings {
		rows[s] = &row{}
	}
	var fails, skips []CheckResult
	for _, c := range r.All() {
		rw := rows[c.Setting]
		if rw == nil {
			rw = &row{}
			rows[c.Setting] = rw
		}
		switch c.Status {
		case StatusPass:
			rw.pass++
		case StatusSkip:
			rw.skip++
			skips = append(skips, c)
		default:
			rw.fail++
			fails = append(fails, c)
		}
	}
	what := map[string]string{"conformance": "passed", "validity": "validated"}[r.Mode]
	fmt.Fprintf(w, "%s against %s (%s)\n", strings.ToUpper(r.Mode[:1])+r.Mode[1:], r.Runtime, r.RuntimeKind)
	fmt.Fprintf(w, "%-24s %9s %7s %8s\n", "setting", what, "failed", "skipped")
	var total row
	for _, s := range Settings {
		rw := rows[s]
		fmt.Fprintf(w, "%-24s %9d %7d %8d\n", s, rw.pass, rw.fail, rw.skip)
		total.pass += rw.pass
		total.fail += rw.fail
		total.skip += rw.skip
	}
	fmt.Fprintf(w, "%-24s %9d %7d %8d\n", "total", total.pass, total.fail, total.skip)
	if len(fails) > 0 {
		fmt.Fprintf(w, "\nfailed:\n")
		for _, c := range fails {
			fmt.Fprintf(w, "  FAIL %s [%s]: %s\n", c.ID, c.Setting, c.Description)
			fmt.Fprintf(w, "       expected %s; observed %s", c.Expected, orDash(c.Observed))
			if c.Message != "" {
				fmt.Fprintf(w, "; %s", c.Message)
			}
			fmt.Fprintln(w)
		}
	}
	if len(skips) > 0 {
		fmt.Fprintf(w, "\nskipped:\n")
		for _, c := range skips {
			fmt.Fprintf(w, "  SKIP %s [%s]: %s\n", c.ID, c.Setting, c.Message)
		}
	}
	if len(r.NotApplicable) > 0 {
		fmt.Fprintf(w, "\nnot checkable on this node (not counted):\n")
		for _, n := range r.NotApplicable {
			fmt.Fprintf(w, "  - %s\n", n)
		}
	}
	if r.WorkDir != "" {
		fmt.Fprintf(w, "\nbundles kept in %s\n", r.WorkDir)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteReports writes <mode>.json, <mode>.tap and <mode>.junit.xml
// (report.* for conformance, validity.* for the validity mode) to dir.
func (r *Result) WriteReports(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report dir: %w", err)
	}
	base := "report"
	if r.Mode == "validity" {
		base = "validity"
	}
	return writeReportFiles(dir, []reportFile{
		{base + ".json", r.WriteJSON},
		{base + ".tap", r.WriteTAP},
		{base + ".junit.xml", r.WriteJUnit},
	})
}

// reportFile is one report a writer produces.
type reportFile struct {
	name  string
	write func(io.Writer) error
}

func writeReportFiles(dir string, files []reportFile) error {
	for _, out := range files {
		p := filepath.Join(dir, out.name)
		f, err := os.Create(p)
		if err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := out.write(f); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

// WriteJSON writes the whole result.
func (r *Result) WriteJSON(w io.Writer) error { return writeIndentedJSON(w, r) }

func writeIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// TAPVersion is the version of every TAP stream secrun writes: the
// suite's reports and the VM matrix (`secrunctl conformance matrix`).
const TAPVersion = 13

// WriteTAP writes TAP version 13, with a YAML block per failure.
func (r *Result) WriteTAP(w io.Writer) error {
	all := r.All()
	fmt.Fprintf(w, "TAP version %d\n1..%d\n", TAPVersion, len(all))
	for i, c := range all {
		writeTAPCheck(w, i+1, "", c, "")
	}
	_, err := fmt.Fprintf(w, "# %s\n", r.CountLine())
	return err
}

// writeTAPCheck writes test point n for c, its description after prefix;
// todo, when set, marks a failure as a TODO (not counted against the run).
func writeTAPCheck(w io.Writer, n int, prefix string, c CheckResult, todo string) {
	desc := tapEscape(fmt.Sprintf("%s%s [%s] %s", prefix, c.ID, c.Setting, c.Description))
	switch c.Status {
	case StatusPass:
		fmt.Fprintf(w, "ok %d - %s\n", n, desc)
	case StatusSkip:
		fmt.Fprintf(w, "ok %d - %s # SKIP %s\n", n, desc, tapEscape(c.Message))
	default:
		if todo != "" {
			desc += " # TODO " + tapEscape(todo)
		}
		fmt.Fprintf(w, "not ok %d - %s\n", n, desc)
		fmt.Fprintf(w, "  ---\n  expected: %s\n  observed: %s\n  message: %s\n", yamlQuote(c.Expected), yamlQuote(c.Observed), yamlQuote(c.Message))
		if c.Twin != "" {
			fmt.Fprintf(w, "  twin: %s\n", yamlQuote(c.Twin))
		}
		fmt.Fprintf(w, "  ...\n")
	}
}

func tapEscape(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "#", `\#`)
}

func yamlQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     float64      `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     float64     `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

// WriteJUnit writes one testsuite per container, one testcase per check.
func (r *Result) WriteJUnit(w io.Writer) error {
	out := junitSuites{Name: "secrun-" + r.Mode, Time: r.Duration}
	out.add(r.junitSuites(""))
	return out.write(w)
}

// junitSuites is one testsuite per container, each named after prefix.
func (r *Result) junitSuites(prefix string) []junitSuite {
	var suites []junitSuite
	for _, c := range r.Containers {
		name := c.Case + "/" + c.Container
		st := junitSuite{Name: prefix + name}
		if c.Run != nil {
			st.Time = c.Run.Seconds
		}
		for _, ch := range c.Checks {
			jc := junitCase{Name: strings.TrimPrefix(ch.ID, name+"/"), Classname: "secrun." + string(ch.Setting),
				SystemOut: fmt.Sprintf("%s\nexpected: %s\nobserved: %s", ch.Description, ch.Expected, ch.Observed)}
			st.Tests++
			switch ch.Status {
			case StatusPass:
			case StatusSkip:
				st.Skipped++
				jc.Skipped = &junitMessage{Message: ch.Message}
			default:
				st.Failures++
				jc.Failure = &junitMessage{Message: ch.Message, Body: fmt.Sprintf("expected %s; observed %s", ch.Expected, ch.Observed)}
			}
			st.Cases = append(st.Cases, jc)
		}
		suites = append(suites, st)
	}
	return suites
}

func (out *junitSuites) add(suites []junitSuite) {
	for _, st := range suites {
		out.Tests += st.Tests
		out.Failures += st.Failures
		out.Skipped += st.Skipped
		out.Suites = append(out.Suites, st)
	}
}

func (out *junitSuites) write(w io.Writer) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
