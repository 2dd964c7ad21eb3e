package conformance

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/secrun/secrun/conformance/probe/report"
)

// A twin that asks the probe for fewer ops must never validate a check
// by leaving the check's op out.
func TestTwinOps(t *testing.T) {
	chown := &check{Name: report.OpCapChown, eval: expectOp(report.OpCapChown, false, []string{"EPERM"})}
	masked := &check{Name: "proc.masked:/proc/kcore", eval: func(o *observation) verdict {
		if _, v := o.opOf(report.PathOp(report.OpProcMasked, "/proc/kcore")); v != nil {
			return *v
		}
		return pass("")
	}}
	state := &check{Name: "user.uid", eval: func(o *observation) verdict {
		if _, v := o.started(); v != nil {
			return *v
		}
		return pass("")
	}}
	checks := []*check{chown, masked, state}
	if got, want := twinOps(checks, []int{0, 1, 2}), []string{report.OpCapChown, report.OpProcMasked}; !slices.Equal(got, want) {
		t.Fatalf("twinOps = %v, want %v", got, want)
	}
	if got := twinOps(checks, []int{2}); len(got) != 0 {
		t.Fatalf("a state check needs no op, got %v", got)
	}

	// The twin's probe ran no cap.chown: the check must not count as
	// failing against it, so validity refuses to validate it.
	twin := &observation{rep: &report.Report{Ops: map[string]report.Op{}}, attempted: map[string]bool{report.OpProcMasked: true}}
	if v := chown.eval(twin); v.Status != StatusSkip {
		t.Fatalf("an op the twin did not attempt: %+v, want a skip", v)
	}
	control := &observation{rep: &report.Report{Ops: map[string]report.Op{report.OpCapChown: {OK: false, Errno: "EPERM"}}}}
	if v := validityVerdict(chown, control, twin, &breaker{desc: "test"}); v.Status != StatusFail {
		t.Fatalf("validity with the op left out of the twin: %+v, want a failure", v)
	}
	// Without the attempted set (a full probe run), a missing op is a
	// probe defect and fails the check, as before.
	if v := chown.eval(&observation{rep: &report.Report{Ops: map[string]report.Op{}}}); v.Status != StatusFail {
		t.Fatalf("an op missing from a full run: %+v, want a failure", v)
	}
}

func TestSelectProbeOps(t *testing.T) {
	sp := &specs.Spec{Process: &specs.Process{Args: []string{"/probe", "-scratch", "/tmp", "all"}}}
	if err := selectProbeOps(sp, []string{"cap.chown", "proc.masked"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"/probe", "-scratch", "/tmp", "cap.chown", "proc.masked"}; !slices.Equal(sp.Process.Args, want) {
		t.Fatalf("args %v, want %v", sp.Process.Args, want)
	}
	if err := selectProbeOps(sp, nil); err == nil {
		t.Fatal("a probe command line without a trailing all was accepted")
	}
}
