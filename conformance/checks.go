package conformance

import (
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/secrun/secrun/conformance/probe/report"
)

// Status is a check's result.
type Status string

const (
	StatusPass Status = "pass"
	StatusFail Status = "fail"
	StatusSkip Status = "skip"
)

// verdict is one evaluation of a check against one container.
type verdict struct {
	Status   Status
	Observed string
	Message  string
}

func pass(observed string) verdict { return verdict{Status: StatusPass, Observed: observed} }
func failf(observed, format string, args ...any) verdict {
	return verdict{Status: StatusFail, Observed: observed, Message: fmt.Sprintf(format, args...)}
}
func skipf(format string, args ...any) verdict {
	return verdict{Status: StatusSkip, Message: fmt.Sprintf(format, args...)}
}

// check is one expectation about one container. Its expectation comes
// from the manifest and the policy (see deriveRequested and policySim);
// eval compares it with what the probe saw; brk describes the twin
// bundle where the setting is deliberately not enforced, against which
// the validity mode shows that the check fails.
type check struct {
	ID          string
	Name        string
	Setting     Setting
	Description string
	Expected    string
	Because     []string
	// skip, when set, is why the check cannot run on this node.
	skip string
	eval func(o *observation) verdict
	brk  *breaker
}

// breaker builds a check's non-enforcing twin from the container's model:
// model edits the model before it becomes a bundle, spec edits the bundle
// afterwards, joinOuter puts the container into a namespace the suite
// watches (for sysctl leaks), and requested starts from what the manifest
// asked instead of what the policy allows (the twin of a refusal).
type breaker struct {
	key       string
	desc      string
	model     func(m *model)
	spec      func(s *specs.Spec) error
	joinOuter bool
	requested bool
}

// observation is what one run of a container showed.
type observation struct {
	rep    *report.Report
	exit   int
	stdout string
	stderr string
	runErr error
	// outer and host hold sysctl values around the run: outer in the
	// namespace the container must not write to, host on the node.
	outer map[string]sample
	host  map[string]sample
	// attempted, when set, is the probe ops the run asked for (a
	// validity twin asks only for the ops its checks read). An op outside
	// it reads as a skip, never as a failure: a twin must not validate a
	// check by leaving its op out.
	attempted map[string]bool
	// reads, when set, collects the ops an evaluation asks for.
	reads map[string]bool
	// event is the Kubernetes event that reported the container's failure
	// (the Kubernetes target only).
	event string
	// containerID is the runtime's id of the container (the seccomp
	// agent keeps its record under it).
	containerID string
}

type sample struct {
	before, after string
	preset        bool
}

// started returns the probe report, or the verdict that explains why
// there is none.
func (o *observation) started() (*report.Report, *verdict) {
	if o.rep != nil {
		return o.rep, nil
	}
	msg := fmt.Sprintf("the container did not run (exit %d)", o.exit)
	if o.runErr != nil {
		msg = "the container did not run: " + o.runErr.Error()
	}
	if s := lastLine(o.stderr); s != "" {
		msg += ": " + s
	}
	v := failf("", "%s", msg)
	return nil, &v
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// opOf returns a probe op result or a verdict for its absence or skip.
func (o *observation) opOf(name string) (report.Op, *verdict) {
	if o.reads != nil {
		o.reads[name] = true
	}
	rep, v := o.started()
	if v != nil {
		return report.Op{}, v
	}
	op, ok := rep.Ops[name]
	if !ok && o.attempted != nil && !o.attempted[probeOp(name)] {
		v := skipf("the probe was not asked for op %s", name)
		return op, &v
	}
	if !ok {
		v := failf("", "the probe did not report op %s", name)
		return op, &v
	}
	if op.Skipped {
		v := skipf("the probe could not attempt %s: %s", name, op.Detail)
		return op, &v
	}
	return op, nil
}

func describeOp(op report.Op) string {
	if op.OK {
		if op.Errno != "" {
			return "allowed (" + op.Errno + " after the permission check)"
		}
		return "allowed"
	}
	if op.Errno == "" {
		return "denied"
	}
	return "denied (" + op.Errno + ")"
}

// expectOp checks an op: allowed, or denied with one of errnos ("" in
// errnos accepts a denial without errno).
func expectOp(name string, allow bool, errnos []string) func(*observation) verdict {
	return func(o *observation) verdict {
		op, v := o.opOf(name)
		if v != nil {
			return *v
		}
		got := describeOp(op)
		switch {
		case allow && op.OK:
			return pass(got)
		case allow:
			return failf(got, "the kernel refused it: %s", op.Detail)
		case op.OK:
			return failf(got, "the kernel allowed it: %s", op.Detail)
		case !slices.Contains(errnos, op.Errno):
			return failf(got, "denied with %q, expected %s: %s", op.Errno, errnoList(errnos), op.Detail)
		}
		return pass(got)
	}
}

func errnoList(errnos []string) string {
	var out []string
	for _, e := range errnos {
		if e == "" {
			e = "no errno"
		}
		out = append(out, e)
	}
	return strings.Join(out, " or ")
}

func expectText(allow bool, errnos []string) string {
	if allow {
		return "allowed"
	}
	return "denied (" + errnoList(errnos) + ")"
}

// capOp ties a probe op to the capability it needs.
type capOp struct {
	op  string
	cap string
	// also lists other capabilities that grant the op.
	also []string
	// denied are the errnos of a denial (README of the probe).
	denied []string
}

var capOps = []capOp{
	{report.OpCapChown, "CAP_CHOWN", nil, []string{"EPERM"}},
	{report.OpCapDacOverride, "CAP_DAC_OVERRIDE", nil, []string{"EACCES"}},
	// Since Linux 6.10 CAP_SYS_ADMIN over the mount also lets
	// open_by_handle_at through.
	{report.OpCapDacReadSearch, "CAP_DAC_READ_SEARCH", []string{"CAP_SYS_ADMIN"}, []string{"EPERM"}},
	{report.OpCapFowner, "CAP_FOWNER", nil, []string{"EPERM"}},
	{report.OpCapFsetid, "CAP_FSETID", nil, []string{""}},
	{report.OpCapKill, "CAP_KILL", nil, []string{"EPERM"}},
	{report.OpCapSetgid, "CAP_SETGID", nil, []string{"EPERM"}},
	{report.OpCapSetuid, "CAP_SETUID", nil, []string{"EPERM"}},
	{report.OpCapSetpcap, "CAP_SETPCAP", nil, []string{"EPERM"}},
	{report.OpCapNetBindService, "CAP_NET_BIND_SERVICE", nil, []string{"EACCES"}},
	{report.OpCapNetRaw, "CAP_NET_RAW", nil, []string{"EPERM"}},
	{report.OpCapNetAdmin, "CAP_NET_ADMIN", nil, []string{"EPERM"}},
	{report.OpCapSysChroot, "CAP_SYS_CHROOT", nil, []string{"EPERM"}},
	{report.OpCapMknod, "CAP_MKNOD", nil, []string{"EPERM"}},
	{report.OpCapSysAdminMount, "CAP_SYS_ADMIN", nil, []string{"EPERM"}},
	{report.OpCapSysAdminHostname, "CAP_SYS_ADMIN", nil, []string{"EPERM"}},
	{report.OpCapSysTime, "CAP_SYS_TIME", nil, []string{"EPERM"}},
	{report.OpCapSysPtrace, "CAP_SYS_PTRACE", nil, []string{"EPERM"}},
	{report.OpCapSysModule, "CAP_SYS_MODULE", nil, []string{"EPERM"}},
	{report.OpCapAuditWrite, "CAP_AUDIT_WRITE", nil, []string{"EPERM"}},
	{report.OpCapSetfcap, "CAP_SETFCAP", nil, []string{"EPERM"}},
}

// deriver derives one container's checks.
type deriver struct {
	s         *suite
	c         *containerRun
	m         *model // final model: what the runtime under test must enforce
	req       *model // what the manifest asks
	profile   *specs.LinuxSeccomp
	checks    []*check
	notChecks []string
}

func (d *deriver) add(ch *check) {
	ch.ID = d.c.id() + "/" + ch.Name
	ch.Because = d.c.final.covered[ch.Setting]
	if ch.skip == "" {
		ch.skip = d.settingSkip(ch.Setting)
	}
	d.checks = append(d.checks, ch)
}

// notApplicable records a check this node cannot make meaningful; it is
// reported once, not counted.
func (d *deriver) notApplicable(format string, args ...any) {
	d.notChecks = append(d.notChecks, fmt.Sprintf(format, args...))
}

func (d *deriver) settingSkip(s Setting) string {
	switch s {
	case SettingAppArmor:
		if !d.s.host.AppArmor {
			return reasonNoAppArmor
		}
	case SettingSELinux:
		if !d.s.host.SELinux {
			return reasonNoSELinux
		}
	}
	return ""
}

func (d *deriver) covered(s Setting) bool { return len(d.c.final.covered[s]) > 0 }

// checkDerivers is the registration table of the suite's checks: each
// setting's checks live in checks_<setting>.go and are derived, in this
// order, for every container whose model covers the setting. A new
// setting's checks need one entry here.
var checkDerivers = []struct {
	setting Setting
	derive  func(*deriver) error
}{
	{SettingCapabilities, (*deriver).capabilityChecks},
	{SettingNoNewPrivs, func(d *deriver) error { d.nnpChecks(); return nil }},
	{SettingUser, func(d *deriver) error { d.userChecks(); return nil }},
	{SettingGroups, func(d *deriver) error { d.groupChecks(); return nil }},
	{SettingReadOnlyRoot, func(d *deriver) error { d.readOnlyChecks(); return nil }},
	{SettingSysctls, func(d *deriver) error { d.sysctlChecks(); return nil }},
	{SettingSeccomp, (*deriver).seccompChecks},
	{SettingProcMount, func(d *deriver) error { d.procChecks(); return nil }},
	{SettingPrivileged, func(d *deriver) error { d.privilegedChecks(); return nil }},
	{SettingAppArmor, func(d *deriver) error { d.appArmorChecks(); return nil }},
	{SettingAppArmor, func(d *deriver) error { d.appArmorDefaultChecks(); return nil }},
	{SettingSELinux, func(d *deriver) error { d.selinuxChecks(); return nil }},
}

// deriveChecks builds every check of a container that starts, or the one
// refusal check of a container that must not.
func (s *suite) deriveChecks(c *containerRun) error {
	d := &deriver{s: s, c: c, m: c.final.m, req: c.requested.m}
	if r := c.final.refusal; r != nil {
		d.refusalCheck(r)
		c.checks, c.notApplicable = d.checks, d.notChecks
		return nil
	}
	p, err := s.profileFor(d.m)
	if err != nil {
		return err
	}
	d.profile = p
	for _, r := range checkDerivers {
		if !d.covered(r.setting) {
			continue
		}
		if err := r.derive(d); err != nil {
			return err
		}
	}
	c.checks, c.notApplicable = d.checks, d.notChecks
	return nil
}
