// Package kubernetes runs secrun on a real Kubernetes node: a kubelet, an
// API server and containerd (2.x, and Debian's 1.6), Pods selecting
// secrun's RuntimeClasses, secrun's refusal in the Pod's events, the
// rollout manifests of deploy/ applied for real, and the host checked
// unchanged afterwards (sysctls, iptables, cgroups, the kubelet's default
// directories).
//
// It runs only with SECRUN_KUBERNETES_TEST=1, as root, once
// scripts/kubernetes/build.sh has built the tools; `make test-kubernetes`
// does both. See docs/kubernetes.md.
package kubernetes

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrun/secrun/integration/kubernetes/cluster"
	"github.com/secrun/secrun/internal/testenv"
)

const (
	// EnableEnv turns the suite on: it starts daemons and takes minutes.
	EnableEnv = "SECRUN_KUBERNETES_TEST"
	// RowsEnv picks rows by name (comma-separated), e.g. containerd-2.x.
	RowsEnv = "SECRUN_K8S_ROWS"
	// KeepEnv=1 keeps each row's directory (logs, configs) for a look.
	KeepEnv = "SECRUN_K8S_KEEP"
	// baseDir holds one directory per row; short, for unix sockets.
	baseDir = "/tmp/secrun-k8s"
	// ns is the namespace of the suite's Pods.
	ns = "secrun-harness"
)

func TestMain(m *testing.M) {
	// The kubelet's mount-namespace helper is this binary re-executed.
	cluster.NamespaceHelper()
	os.Exit(m.Run())
}

var start = time.Now()

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "k8s %7.1fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

// rowResult is one row of the summary table.
type rowResult struct {
	row      string
	steps    []cluster.Step
	tests    []testResult
	note     string
	fidelity string
	// suite holds the conformance suite's count lines on this node.
	suite []string
}

type testResult struct {
	name   string
	took   time.Duration
	passed bool
	detail string
}

func requireSuite(t *testing.T) {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	skip := func(msg string) {
		if ci {
			t.Fatal(msg)
		}
		t.Skip("skipped: " + msg)
	}
	if os.Getenv(EnableEnv) != "1" {
		// Not even under CI: `go test ./...` must not start a cluster.
		t.Skipf("skipped: the Kubernetes suite starts a cluster; run `make test-kubernetes` (or set %s=1 as root)", EnableEnv)
	}
	if os.Geteuid() != 0 {
		skip("the kubelet and containerd need root")
	}
}

// rows are the containerd versions the same kubelet runs against.
func rows(t *testing.T, tools *cluster.Tools) []cluster.Row {
	all := cluster.Rows(tools)
	want := os.Getenv(RowsEnv)
	if want == "" {
		return all
	}
	var out []cluster.Row
	for _, r := range all {
		if strings.Contains(","+want+",", ","+r.Name+",") {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s=%q names no row (containerd-2.x, containerd-1.6)", RowsEnv, want)
	}
	return out
}

func TestKubernetes(t *testing.T) {
	requireSuite(t)
	repo := testenv.ModuleRoot()
	tools, err := cluster.FindTools(repo)
	if err != nil {
		t.Fatal(err)
	}
	before, err := cluster.SnapshotHost()
	if err != nil {
		t.Fatal(err)
	}
	logf("host before: %s", before.Summary())
	var results []*rowResult
	for _, row := range rows(t, tools) {
		res := &rowResult{row: row.Name}
		results = append(results, res)
		t.Run(row.Name, func(t *testing.T) { runRow(t, repo, tools, row, res) })
	}
	after, err := cluster.SnapshotHost()
	if err != nil {
		t.Fatal(err)
	}
	hostOK := true
	for _, d := range before.Diff(after) {
		hostOK = false
		t.Errorf("the host changed: %s", d)
	}
	logf("host after: %s; unchanged: %v", after.Summary(), hostOK)
	printSummary(t, results, hostOK)
}

func runRow(t *testing.T, repo string, tools *cluster.Tools, row cluster.Row, res *rowResult) {
	out := filepath.Join(repo, "_out", "kubernetes", row.Name)
	if err := os.RemoveAll(out); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(baseDir, row.Name)
	c, err := cluster.Up(cluster.Options{
		Repo: repo, Tools: tools, Row: row, Dir: dir, Out: out,
		SecrunConfig: agentConfig(filepath.Join(dir, "seccomp-agent.sock")),
		Capture:      true, Log: logf,
	})
	defer func() {
		if t.Failed() && c != nil {
			for _, d := range []string{"kubelet", "containerd"} {
				t.Logf("%s log (tail):\n%s", d, c.Log(d, 40))
			}
		}
		if err := c.Down(os.Getenv(KeepEnv) == "1"); err != nil {
			t.Errorf("tear down: %v", err)
		}
		res.steps = c.Steps()
	}()
	if err != nil {
		if note := knownLimitation(row, c); note != "" {
			res.note = note
		}
		t.Fatalf("cluster up: %v", err)
	}
	logf("%s: cluster up; KUBECONFIG=%s", row.Name, c.Kubeconfig)
	if r := c.Kubectl("create", "namespace", ns); r.Code != 0 {
		t.Fatalf("create namespace: %s", r)
	}
	s := &suite{c: c, row: row, res: res}
	s.run(t, "runtimeclasses-and-handlers", s.testRuntimeClasses)
	s.run(t, "restricted-pod-runs", s.testRestrictedPod)
	s.run(t, "privileged-pod-runs", s.testPrivilegedPod)
	s.run(t, "baseline-refusal-in-events", s.testRefusal)
	if row.ConfigVersion == 3 {
		s.run(t, "user-namespace-pod", s.testUserNamespace)
	}
	s.run(t, "captured-config-json", s.testCaptured)
	s.run(t, "translate-fidelity", s.testFidelity)
	s.run(t, "conformance-suite", s.testConformanceSuite)
	s.run(t, "rollout-daemonset-and-job", s.testRollout)
}

// agentConfig gives every preset a seccomp agent on socket that only
// Pods that ask for it use (secrun.dev/seccomp-agent): the conformance
// suite's seccomp-agent cases run recorded Pods end to end, with the
// agent the suite starts on this node.
func agentConfig(socket string) string {
	var b strings.Builder
	b.WriteString("policies:\n")
	for _, p := range []string{"privileged", "baseline", "restricted"} {
		fmt.Fprintf(&b, "  %s:\n    seccompAgent:\n      socket: %s\n      allowPodRecord: true\n", p, socket)
	}
	return b.String()
}

type suite struct {
	c   *cluster.Cluster
	row cluster.Row
	res *rowResult
}

func (s *suite) run(t *testing.T, name string, fn func(t *testing.T)) {
	begin := time.Now()
	logf("%s: test %s ...", s.row.Name, name)
	ok := t.Run(name, fn)
	took := time.Since(begin)
	logf("%s: test %s %s in %v", s.row.Name, name, map[bool]string{true: "passed", false: "FAILED"}[ok], took.Round(time.Millisecond))
	s.res.tests = append(s.res.tests, testResult{name: name, took: took, passed: ok})
}

// knownLimitation explains a row that cannot run for a reason outside
// secrun, from the kubelet's own words.
func knownLimitation(row cluster.Row, c *cluster.Cluster) string {
	if c == nil {
		return ""
	}
	for _, line := range strings.Split(c.Log("kubelet", 400), "\n") {
		l := strings.ToLower(line)
		if strings.Contains(l, "runtime") && (strings.Contains(l, "not supported") || strings.Contains(l, "unsupported") || strings.Contains(l, "minimum")) {
			return "kubelet: " + strings.TrimSpace(line)
		}
	}
	return ""
}

func printSummary(t *testing.T, results []*rowResult, hostOK bool) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-16s %-62s %10s  %s\n", "row", "step / test", "time", "result")
	passed, failed := 0, 0
	for _, r := range results {
		for _, s := range r.steps {
			st := "ok"
			if s.Err != nil {
				st = "FAILED: " + firstLine(s.Err.Error())
			}
			fmt.Fprintf(&b, "%-16s %-62s %9.1fs  %s\n", r.row, s.Name, s.Took.Seconds(), st)
		}
		for _, x := range r.tests {
			st := "passed"
			if x.passed {
				passed++
			} else {
				failed++
				st = "FAILED"
			}
			fmt.Fprintf(&b, "%-16s %-62s %9.1fs  %s\n", r.row, "test "+x.name, x.took.Seconds(), st)
		}
		for _, l := range r.suite {
			fmt.Fprintf(&b, "%-16s %s\n", r.row, l)
		}
		if r.fidelity != "" {
			fmt.Fprintf(&b, "%-16s fidelity: %s\n", r.row, r.fidelity)
		}
		if r.note != "" {
			fmt.Fprintf(&b, "%-16s known limitation: %s\n", r.row, r.note)
		}
	}
	fmt.Fprintf(&b, "%-16s %-62s %10s  %v\n", "host", "sysctls, iptables, cgroups, kubelet paths unchanged", "", hostOK)
	fmt.Fprintf(&b, "kubernetes: %d passed, %d failed\n", passed, failed)
	fmt.Print(b.String())
	os.MkdirAll(filepath.Join(testenv.ModuleRoot(), "_out", "kubernetes"), 0o755)
	os.WriteFile(filepath.Join(testenv.ModuleRoot(), "_out", "kubernetes", "summary.txt"), []byte(b.String()), 0o644)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}
