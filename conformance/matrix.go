package conformance

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// A matrix is one suite run per row (the VM runs secrun with runc and
// with crun, and bare runc and crun to compare), combined into one
// verdict and one set of reports: `secrunctl conformance matrix`. Each
// row is the report directory of one `secrunctl conformance` run; its
// report.json (validity.json for a --validity run) is the only schema
// read.

// MatrixRowStatusFile is where the plumbing that ran a row writes the
// suite's exit status (scripts/vm/guest-run.sh): a suite that failed
// before writing its report leaves nothing else behind.
const MatrixRowStatusFile = "status"

// MatrixOptions select what the matrix gates on.
type MatrixOptions struct {
	// Comparison names rows that are shown but do not gate (bare
	// runtimes, expected to fail what secrun enforces).
	Comparison []string
	// Require lists settings every gating row must have run, none
	// skipped (Result.Verify).
	Require []Setting
	// CgroupV2 requires each gating row's node to have had a pure
	// cgroup v2 hierarchy.
	CgroupV2 bool
	// Facts are shown with the report (the VM's kernel, accelerator,
	// timings), in order.
	Facts []Fact
}

// Fact is one name=value line about where the matrix ran.
type Fact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Matrix is the combined result.
type Matrix struct {
	Pass     bool        `json:"pass"`
	Problems []string    `json:"problems"`
	Require  []Setting   `json:"require,omitempty"`
	Facts    []Fact      `json:"facts,omitempty"`
	Rows     []MatrixRow `json:"rows"`
}

// MatrixRow is one suite run.
type MatrixRow struct {
	Name   string `json:"name"`
	Gating bool   `json:"gating"`
	// Exit is the suite's exit status, when the row's plumbing wrote it.
	Exit     *int     `json:"exit,omitempty"`
	Problems []string `json:"problems,omitempty"`
	Report   *Result  `json:"report,omitempty"`
}

// ReadFacts reads name=value lines (a shell-sourceable env file).
func ReadFacts(path string) ([]Fact, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("facts: %w", err)
	}
	defer f.Close()
	var out []Fact
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("facts %s: %q is not name=value", path, line)
		}
		out = append(out, Fact{Name: k, Value: strings.Trim(v, `'"`)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("facts %s: %w", path, err)
	}
	return out, nil
}

// BuildMatrix reads each row directory (named after its last element)
// and decides the verdict: every gating row wrote a report that Verify
// accepts and exited 0, and at least one row gates.
func BuildMatrix(dirs []string, opts MatrixOptions) (*Matrix, error) {
	m := &Matrix{Require: opts.Require, Facts: opts.Facts, Problems: []string{}}
	seen := map[string]bool{}
	for _, dir := range dirs {
		name := filepath.Base(filepath.Clean(dir))
		if seen[name] {
			return nil, fmt.Errorf("row %s given twice (rows are named after their directory)", name)
		}
		seen[name] = true
		m.Rows = append(m.Rows, readRow(dir, name, !slices.Contains(opts.Comparison, name), opts))
	}
	for _, c := range opts.Comparison {
		if !seen[c] {
			return nil, fmt.Errorf("--comparison %s names no row (rows: %s)", c, strings.Join(slices.Sorted(maps.Keys(seen)), ", "))
		}
	}
	gating := 0
	for _, r := range m.Rows {
		if !r.Gating {
			continue
		}
		gating++
		for _, p := range r.Problems {
			m.Problems = append(m.Problems, r.Name+": "+p)
		}
	}
	if gating == 0 {
		m.Problems = append(m.Problems, "no gating row")
	}
	m.Pass = len(m.Problems) == 0
	return m, nil
}

func readRow(dir, name string, gating bool, opts MatrixOptions) MatrixRow {
	r := MatrixRow{Name: name, Gating: gating}
	if b, err := os.ReadFile(filepath.Join(dir, MatrixRowStatusFile)); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			r.Exit = &n
		} else {
			r.Problems = append(r.Problems, fmt.Sprintf("%s holds %q, not an exit status", MatrixRowStatusFile, strings.TrimSpace(string(b))))
		}
	}
	// A --validity row writes validity.json instead.
	file := filepath.Join(dir, "report.json")
	if _, err := os.Stat(file); os.IsNotExist(err) {
		if _, verr := os.Stat(filepath.Join(dir, "validity.json")); verr == nil {
			file = filepath.Join(dir, "validity.json")
		}
	}
	rep, err := ReadResult(file)
	if err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("no report (%v)%s", err, logTail(dir)))
		return r
	}
	r.Report = rep
	if r.Exit != nil && *r.Exit != 0 && rep.Failed == 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("the suite exited %d with no failed check%s", *r.Exit, logTail(dir)))
	}
	if err := rep.Verify(opts.Require); err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			r.Problems = append(r.Problems, e)
		}
	}
	if opts.CgroupV2 && !rep.Host.CgroupV2 {
		r.Problems = append(r.Problems, "the node's /sys/fs/cgroup was not a pure cgroup v2 hierarchy")
	}
	return r
}

// logTail is the last line of the row's suite.log, for a row that
// failed without saying why in its report.
func logTail(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "suite.log"))
	if err != nil {
		return ""
	}
	s := lastLine(string(b))
	if len(s) > 200 {
		s = s[:200]
	}
	if s == "" {
		return ""
	}
	return "; suite.log ends: " + s
}

// counts is a row's pass, fail and skip counts.
func (r *MatrixRow) counts() (pass, fail, skip int) {
	if r.Report == nil {
		return 0, 0, 0
	}
	return r.Report.Passed, r.Report.Failed, r.Report.Skipped
}

// checkIDs is every check ID of the matrix, in first-seen order, and
// each row's status per ID.
func (m *Matrix) checkIDs() ([]string, []map[string]Status) {
	var ids []string
	seen := map[string]bool{}
	per := make([]map[string]Status, len(m.Rows))
	for i, r := range m.Rows {
		per[i] = map[string]Status{}
		if r.Report == nil {
			continue
		}
		for _, c := range r.Report.All() {
			if !seen[c.ID] {
				seen[c.ID] = true
				ids = append(ids, c.ID)
			}
			per[i][c.ID] = c.Status
		}
	}
	return ids, per
}

// WriteReports writes summary.md, report.tap, report.junit.xml and
// report.json to dir.
func (m *Matrix) WriteReports(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report dir: %w", err)
	}
	return writeReportFiles(dir, []reportFile{
		{"summary.md", func(w io.Writer) error { return m.WriteSummary(w, false) }},
		{"report.tap", m.WriteTAP},
		{"report.junit.xml", m.WriteJUnit},
		{"report.json", m.WriteJSON},
	})
}

// WriteJSON writes the matrix with each row's whole report.
func (m *Matrix) WriteJSON(w io.Writer) error { return writeIndentedJSON(w, m) }

// WriteTAP writes one TAP 13 stream: every row's checks, named
// "<row>: <check>", then one test point per gating row's problems. A
// comparison row's failures are TODO: shown, not counted.
func (m *Matrix) WriteTAP(w io.Writer) error {
	var buf strings.Builder
	n := 0
	for _, r := range m.Rows {
		todo := ""
		if !r.Gating {
			todo = "comparison row, not gating"
		}
		if r.Report != nil {
			for _, c := range r.Report.All() {
				n++
				writeTAPCheck(&buf, n, r.Name+": ", c, todo)
			}
		}
		n++
		st := CheckResult{ID: r.Name + ": row", Setting: "matrix", Description: "the suite ran and its report holds up", Status: StatusPass}
		if len(r.Problems) > 0 {
			st.Status, st.Message = StatusFail, strings.Join(r.Problems, "; ")
			st.Expected, st.Observed = "a report Verify accepts, exit 0", fmt.Sprintf("%d problems", len(r.Problems))
		}
		writeTAPCheck(&buf, n, "", st, todo)
	}
	if _, err := fmt.Fprintf(w, "TAP version %d\n1..%d\n%s", TAPVersion, n, buf.String()); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "# matrix: %s\n", m.verdict())
	return err
}

func (m *Matrix) verdict() string {
	if m.Pass {
		return "PASS"
	}
	return "FAIL"
}

// WriteJUnit writes every row's containers as test suites named
// "<row>: <case>/<container>", and a failing suite for a row without a
// report.
func (m *Matrix) WriteJUnit(w io.Writer) error {
	out := junitSuites{Name: "secrun-conformance-matrix"}
	for _, r := range m.Rows {
		if r.Report == nil {
			out.add([]junitSuite{{Name: r.Name, Tests: 1, Failures: 1, Cases: []junitCase{{
				Name: "report", Classname: "secrun.matrix", Failure: &junitMessage{Message: strings.Join(r.Problems, "; ")},
			}}}})
			continue
		}
		out.Time += r.Report.Duration
		out.add(r.Report.junitSuites(r.Name + ": "))
	}
	return out.write(w)
}

// WriteSummary writes the verdict, the row table, the check-by-row table
// (brief: only the checks that did not pass in a gating row, at most 40)
// and the facts, in Markdown.
func (m *Matrix) WriteSummary(w io.Writer, brief bool) error {
	fmt.Fprintf(w, "# secrun conformance matrix\n\n")
	if m.Pass {
		fmt.Fprintf(w, "**PASS**: every gating row passed")
		if len(m.Require) > 0 {
			fmt.Fprintf(w, "; its %s checks ran, none skipped", joinSettings(m.Require))
		}
		fmt.Fprintf(w, ".\n")
	} else {
		fmt.Fprintf(w, "**FAIL**\n")
	}
	for _, p := range m.Problems {
		fmt.Fprintf(w, "- %s\n", p)
	}
	fmt.Fprintf(w, "\n| row | runtime | gating | exit | pass | fail | skip | seconds |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range m.Rows {
		p, f, s := r.counts()
		rt, secs := "-", "-"
		if r.Report != nil {
			rt = "`" + r.Report.Runtime + "`"
			if r.Report.RuntimeKind == kindSecrun {
				rt += " -> `" + r.Report.Delegate + "`"
			}
			secs = fmt.Sprintf("%.1f", r.Report.Duration)
		}
		exit := "-"
		if r.Exit != nil {
			exit = strconv.Itoa(*r.Exit)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %d | %d | %d | %s |\n", r.Name, rt, map[bool]string{true: "yes", false: "no (comparison)"}[r.Gating], exit, p, f, s, secs)
	}
	ids, per := m.checkIDs()
	if brief {
		ids = slices.DeleteFunc(ids, func(id string) bool {
			for i, r := range m.Rows {
				if st, ok := per[i][id]; r.Gating && ok && st != StatusPass {
					return false
				}
			}
			return true
		})
	}
	more := 0
	if brief && len(ids) > 40 {
		ids, more = ids[:40], len(ids)-40
	}
	if len(ids) > 0 {
		what := "Checks by row"
		if brief {
			what = "Checks that did not pass in a gating row (summary.md has every check)"
		}
		fmt.Fprintf(w, "\n%s (pass / FAIL / skip / - not run):\n\n| check |", what)
		for _, r := range m.Rows {
			fmt.Fprintf(w, " %s |", r.Name)
		}
		fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---|", len(m.Rows)))
		for _, id := range ids {
			fmt.Fprintf(w, "| %s |", strings.ReplaceAll(id, "|", `\|`))
			for i := range m.Rows {
				st, ok := per[i][id]
				switch {
				case !ok:
					fmt.Fprint(w, " - |")
				case st == StatusFail:
					fmt.Fprint(w, " FAIL |")
				default:
					fmt.Fprintf(w, " %s |", st)
				}
			}
			fmt.Fprintln(w)
		}
		if more > 0 {
			fmt.Fprintf(w, "| ... %d more |%s\n", more, strings.Repeat(" |", len(m.Rows)))
		}
	}
	if len(m.Facts) > 0 {
		fmt.Fprintf(w, "\n| fact | value |\n|---|---|\n")
		for _, f := range m.Facts {
			fmt.Fprintf(w, "| %s | %s |\n", f.Name, strings.ReplaceAll(f.Value, "|", `\|`))
		}
	}
	return nil
}

func joinSettings(s []Setting) string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = string(v)
	}
	return strings.Join(out, ", ")
}
