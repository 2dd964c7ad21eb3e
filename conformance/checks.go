package conformance

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/conformance/probe/report"
	"github.com/secrun/secrun/spec"
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
	if d.covered(SettingCapabilities) {
		if err := d.capabilityChecks(); err != nil {
			return err
		}
	}
	if d.covered(SettingNoNewPrivs) {
		d.nnpChecks()
	}
	if d.covered(SettingUser) {
		d.userChecks()
	}
	if d.covered(SettingGroups) {
		d.groupChecks()
	}
	if d.covered(SettingReadOnlyRoot) {
		d.readOnlyChecks()
	}
	if d.covered(SettingSysctls) {
		d.sysctlChecks()
	}
	if d.covered(SettingSeccomp) {
		if err := d.seccompChecks(); err != nil {
			return err
		}
	}
	if d.covered(SettingProcMount) {
		d.procChecks()
	}
	if d.covered(SettingPrivileged) {
		d.privilegedChecks()
	}
	if d.covered(SettingAppArmor) {
		d.appArmorChecks()
	}
	if d.covered(SettingSELinux) {
		d.selinuxChecks()
	}
	c.checks, c.notApplicable = d.checks, d.notChecks
	return nil
}

// ---- refusal ----

func (d *deriver) refusalCheck(r *refusal) {
	setting := ruleSetting[r.Rules[0]]
	rule := r.Rules[0]
	d.c.final.cover(setting, fmt.Sprintf("policy %s (%s) refuses: %s", r.Policy, r.Mode, strings.Join(r.Rules, ", ")))
	d.add(&check{
		Name:        "refused." + rule,
		Setting:     setting,
		Description: fmt.Sprintf("secrun policy %s (%s) refuses the container, naming the rule %s and a fix", r.Policy, r.Mode, rule),
		Expected:    fmt.Sprintf("non-zero exit before the container starts; stderr names policy %s, rule %s, and a fix", r.Policy, rule),
		eval: func(o *observation) verdict {
			if o.rep != nil {
				return failf("the container ran", "policy %s should have refused it (%s)", r.Policy, strings.Join(r.Rules, ", "))
			}
			if o.exit == 0 && o.runErr == nil {
				return failf("exit 0", "the runtime exited 0 without running the probe")
			}
			if o.runErr != nil && strings.TrimSpace(o.stderr) == "" {
				return failf("", "the container did not run, but no refusal says why: %v", o.runErr)
			}
			msg := lastLine(o.stderr)
			want := []string{"policy " + r.Policy, rule, "fix"}
			for _, w := range want {
				if !strings.Contains(o.stderr, w) {
					return failf(msg, "refused, but the message does not name %q", w)
				}
			}
			return pass("refused: " + msg)
		},
		brk: &breaker{key: "requested", desc: "the bundle the manifest asks for, run by the delegate without the policy", requested: true},
	})
	if d.s.kube != nil {
		d.add(kubeEventCheck(r, setting))
	}
}

// ---- capabilities ----

func capsText(caps []string) string {
	if len(caps) == 0 {
		return "none"
	}
	return capList(caps)
}

func setEqual(got, want []string) (missing, extra []string) {
	for _, w := range want {
		if !report.HasCap(got, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if !report.HasCap(want, g) {
			extra = append(extra, g)
		}
	}
	return missing, extra
}

func compareCaps(set string, got, want []string) verdict {
	missing, extra := setEqual(got, want)
	if len(missing)+len(extra) == 0 {
		return pass(capsText(got))
	}
	return failf(capsText(got), "%s set: missing %s, extra %s", set, capsText(missing), capsText(extra))
}

// toggleOne returns the twin that changes one capability of the set: it
// removes the first expected one, or grants CAP_CHOWN to a process that
// must hold none (in every set, so that even a non-root process holds it).
func toggleOne(m *model) *breaker {
	if len(m.effectiveCaps()) > 0 {
		c := m.effectiveCaps()[0]
		return &breaker{key: "cap-off:" + c, desc: "the bundle keeps " + c,
			model: func(m *model) { m.setCap(c, false) }}
	}
	return grantCap("CAP_CHOWN")
}

func grantCap(c string) *breaker {
	return &breaker{key: "cap-on:" + c, desc: "the bundle grants " + c + " (bounding, permitted, effective, and ambient for a non-root user)",
		model: func(m *model) {
			m.setCap(c, true)
			m.Ambient = m.Ambient || m.UID != 0
		}}
}

func (d *deriver) capabilityChecks() error {
	m := d.m
	d.add(&check{
		Name:        "caps.bounding",
		Setting:     SettingCapabilities,
		Description: "the bounding set is exactly what the securityContext and policy leave",
		Expected:    capsText(m.Caps),
		eval: func(o *observation) verdict {
			rep, v := o.started()
			if v != nil {
				return *v
			}
			return compareCaps("bounding", rep.Caps.Bounding, m.Caps)
		},
		brk: func() *breaker {
			if len(m.Caps) > 0 {
				c := m.Caps[0]
				return &breaker{key: "cap-off:" + c, desc: "the bundle keeps " + c, model: func(m *model) { m.setCap(c, false) }}
			}
			return grantCap("CAP_CHOWN")
		}(),
	})
	eff := m.effectiveCaps()
	why := "root keeps its permitted set"
	if m.UID != 0 && !m.Ambient {
		why = fmt.Sprintf("uid %d: added capabilities never reach a non-root process's effective set without ambient (kubernetes#56374)", m.UID)
	}
	d.add(&check{
		Name:        "caps.effective",
		Setting:     SettingCapabilities,
		Description: "the effective and permitted sets hold what the process may use; " + why,
		Expected:    capsText(eff),
		eval: func(o *observation) verdict {
			rep, v := o.started()
			if v != nil {
				return *v
			}
			if v := compareCaps("effective", rep.Caps.Effective, eff); v.Status != StatusPass {
				return v
			}
			return compareCaps("permitted", rep.Caps.Permitted, eff)
		},
		brk: toggleOne(m),
	})
	var inh []string
	if m.Ambient {
		inh = m.Caps
	}
	d.add(&check{
		Name:        "caps.inheritable",
		Setting:     SettingCapabilities,
		Description: "inheritable and ambient sets stay empty unless the policy opts into ambient capabilities (CVE-2022-24769)",
		Expected:    capsText(inh),
		eval: func(o *observation) verdict {
			rep, v := o.started()
			if v != nil {
				return *v
			}
			if v := compareCaps("inheritable", rep.Caps.Inheritable, inh); v.Status != StatusPass {
				return v
			}
			return compareCaps("ambient", rep.Caps.Ambient, inh)
		},
		brk: func() *breaker {
			if m.Ambient {
				return &breaker{key: "ambient-off", desc: "the bundle leaves the ambient set empty", model: func(m *model) { m.Ambient = false }}
			}
			return &breaker{key: "ambient-on", desc: "the bundle fills inheritable and ambient sets",
				model: func(m *model) {
					if len(m.Caps) == 0 {
						m.setCap("CAP_CHOWN", true)
					}
					m.Ambient = true
				}}
		}(),
	})
	return d.capBehaviourChecks()
}

// interestingCaps are the capabilities whose behaviour is probed: those
// the manifest names, every one when it adds or drops ALL or is
// privileged, and those the policy took away.
func (d *deriver) interestingCaps() []string {
	var out []string
	sc := d.c.sc
	all := sc.Privileged
	if c := sc.Capabilities; c != nil {
		for _, n := range append(slices.Clone(c.Add), c.Drop...) {
			if strings.EqualFold(n, "ALL") {
				all = true
				continue
			}
			if cn, err := normalizeCap(n); err == nil {
				out = append(out, cn)
			}
		}
	}
	// Those the policy changed, either way: the Kubernetes target derives
	// the same checks from the requested model too (policyDependence).
	for _, c := range d.req.Caps {
		if !d.m.hasCap(c) {
			out = append(out, c)
		}
	}
	for _, c := range d.m.Caps {
		if !d.req.hasCap(c) {
			out = append(out, c)
		}
	}
	if all {
		for _, co := range capOps {
			out = append(out, co.cap)
		}
	}
	return sortCaps(out)
}

func (d *deriver) capBehaviourChecks() error {
	m := d.m
	h := d.s.host
	interesting := d.interestingCaps()
	for _, co := range capOps {
		if !slices.Contains(interesting, co.cap) {
			continue
		}
		granted := m.capEffective(co.cap)
		for _, a := range co.also {
			granted = granted || (h.kernelAtLeast(6, 10) && m.capEffective(a))
		}
		if !m.capEffective(co.cap) && granted {
			d.notApplicable("%s: %s also grants it on this kernel, so its absence cannot be observed", co.op, strings.Join(co.also, ", "))
			continue
		}
		switch co.op {
		case report.OpCapKill:
			if !m.capEffective("CAP_SETUID") {
				d.notApplicable("%s: needs CAP_SETUID to create a process of another uid to signal", co.op)
				continue
			}
		case report.OpCapSysModule:
			if !h.Modules {
				d.notApplicable("%s: this kernel has no module support", co.op)
				continue
			}
		case report.OpCapSysPtrace:
			if b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil && strings.TrimSpace(string(b)) == "3" {
				d.notApplicable("%s: kernel.yama.ptrace_scope=3 forbids ptrace whatever the capability", co.op)
				continue
			}
		case report.OpCapNetBindService:
			if v, ok, bySandbox := m.sysctl("net.ipv4.ip_unprivileged_port_start"); ok {
				if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n <= 80 {
					why := "checked under sysctls"
					if bySandbox {
						why = "the node's runtime sets it on every Pod sandbox"
					}
					d.notApplicable("%s: net.ipv4.ip_unprivileged_port_start=%d makes port 80 unprivileged (%s)", co.op, n, why)
					continue
				}
			}
		}
		fv := opFilterVerdict(d.profile, co.op)
		// The default AppArmor profile (moby's template, as containerd
		// loads it) denies mount(2) whatever the capabilities; the LSM
		// hook runs after seccomp and before the capability check.
		aaDenies := fv.allowed && co.op == report.OpCapSysAdminMount && m.AppArmor == spec.AppArmorRuntimeDefault
		allow := granted && fv.allowed && !aaDenies
		errnos := co.denied
		switch {
		case !fv.allowed:
			errnos = []string{fv.errno}
		case aaDenies:
			errnos = []string{"EACCES"}
		}
		desc := fmt.Sprintf("%s: the kernel %s it (%s)", co.op, map[bool]string{true: "allows", false: "denies"}[allow], co.cap)
		var brk *breaker
		switch {
		case aaDenies:
			desc = fmt.Sprintf("%s: the default AppArmor profile denies mount (EACCES)%s", co.op, map[bool]string{true: " although " + co.cap + " is held", false: ""}[granted])
			brk = &breaker{key: "cap-on:" + co.cap + "+apparmor-off", desc: "the bundle grants " + co.cap + " and sets no AppArmor profile",
				model: func(m *model) {
					grantCap(co.cap).model(m)
					m.AppArmor, m.AppArmorName = "", ""
				}}
		case allow:
			caps := append([]string{co.cap}, co.also...)
			brk = &breaker{key: "cap-off:" + strings.Join(caps, "+"), desc: "the bundle drops " + capList(caps),
				model: func(m *model) {
					for _, c := range caps {
						m.setCap(c, false)
					}
				}}
		case granted:
			desc = fmt.Sprintf("%s: the seccomp filter denies it although %s is held (%s)", co.op, co.cap, fv.rule)
			brk = &breaker{key: "seccomp-off", desc: "the bundle has no seccomp filter", model: func(m *model) { m.Seccomp = seccompNone }}
		default:
			g := grantCap(co.cap)
			// A filter generated for the granted capability allows the op;
			// one that denies it regardless must go as well, or the twin
			// would still deny and prove nothing.
			mm := m.clone()
			g.model(mm)
			p2, err := d.s.profileFor(mm)
			if err != nil {
				return err
			}
			if !opFilterVerdict(p2, co.op).allowed {
				inner := g.model
				g = &breaker{key: g.key + "+seccomp-off", desc: g.desc + ", without a seccomp filter",
					model: func(m *model) { inner(m); m.Seccomp = seccompNone }}
			}
			brk = g
		}
		d.add(&check{
			Name:        co.op,
			Setting:     SettingCapabilities,
			Description: desc,
			Expected:    expectText(allow, errnos),
			eval:        expectOp(co.op, allow, errnos),
			brk:         brk,
		})
	}
	return nil
}

// ---- no_new_privs ----

func (d *deriver) nnpChecks() {
	m := d.m
	want := 0
	if m.NNP {
		want = 1
	}
	toggle := &breaker{key: "nnp-toggle", desc: fmt.Sprintf("the bundle sets noNewPrivileges %v", !m.NNP), model: func(m *model) { m.NNP = !m.NNP }}
	d.add(&check{
		Name:        "no_new_privs",
		Setting:     SettingNoNewPrivs,
		Description: "the kernel's no_new_privs flag matches allowPrivilegeEscalation and the policy",
		Expected:    strconv.Itoa(want),
		eval: func(o *observation) verdict {
			rep, v := o.started()
			if v != nil {
				return *v
			}
			got := strconv.Itoa(rep.NoNewPrivs)
			if rep.NoNewPrivs != want {
				return failf(got, "NoNewPrivs is %d, expected %d", rep.NoNewPrivs, want)
			}
			return pass(got)
		},
		brk: toggle,
	})
	if m.UID == 0 {
		d.notApplicable("nnp.setuid: a root process cannot show a setuid escalation")
		return
	}
	d.add(&check{
		Name:    report.OpNNPSetuid,
		Setting: SettingNoNewPrivs,
		Description: fmt.Sprintf("uid %d executing a setuid-root copy of the probe %s euid 0", m.UID,
			map[bool]string{true: "does not get", false: "gets"}[m.NNP]),
		Expected: map[bool]string{true: "escalation blocked", false: "escalation works (euid=0)"}[m.NNP],
		eval: func(o *observation) verdict {
			op, v := o.opOf(report.OpNNPSetuid)
			if v != nil {
				return *v
			}
			got := map[bool]string{true: "escalated", false: "blocked"}[op.OK] + ": " + op.Detail
			if op.OK == m.NNP {
				return failf(got, "expected escalation %s", map[bool]string{true: "blocked", false: "to work"}[m.NNP])
			}
			return pass(got)
		},
		brk: toggle,
	})
}

// ---- user and groups ----

func (d *deriver) userChecks() {
	m := d.m
	otherUID := uint32(0)
	if m.UID == 0 {
		otherUID = 1000
	}
	d.add(&check{
		Name:        "uid",
		Setting:     SettingUser,
		Description: "the process runs as the uid runAsUser (or the image, or the policy) gives",
		Expected:    strconv.Itoa(int(m.UID)),
		eval: func(o *observation) verdict {
			rep, v := o.started()
			if v != nil {
				return *v
			}
			got := fmt.Sprintf("uid=%d euid=%d", rep.UID, rep.EUID)
			if rep.UID != int(m.UID) || rep.EUID != int(m.UID) {
				return failf(got, "expected uid %d", m.UID)
			}
			return pass(got)
		},
		brk: &breaker{key: "uid", desc: fmt.Sprintf("the bundle runs uid %d", otherUID), model: func(m *model) { m.UID = otherUID }},
	})
	otherGID := uint32(0)
	if m.GID == 0 {
		otherGID = 1000
	}
	d.add(&check{
		Name:        "gid",
		Setting:     SettingUser,
		Description: "the primary group is runAsGroup, or the user's group in the image's /etc/passwd",
		Expected:    strconv.Itoa(int(m.GID)),
		eval: func(o *observation) verdict {
			rep, v := o.started()
			if v != nil {
				return *v
			}
			got := fmt.Sprintf("gid=%d egid=%d", rep.GID, rep.EGID)
			if rep.GID != int(m.GID) || rep.EGID != int(m.GID) {
				return failf(got, "expected gid %d", m.GID)
			}
			return pass(got)
		},
		brk: &breaker{key: "gid", desc: fmt.Sprintf("the bundle runs gid %d", otherGID), model: func(m *model) { m.GID = otherGID }},
	})
	nonRoot := d.c.sc.RunAsNonRoot != nil && *d.c.sc.RunAsNonRoot
	if d.c.policy != nil && d.c.policy.p.RunAsNonRoot && d.c.policy.p.Mode != "audit" {
		nonRoot = true
	}
	if nonRoot {
		d.add(&check{
			Name:        "runAsNonRoot",
			Setting:     SettingUser,
			Description: "runAsNonRoot: the process is not root",
			Expected:    "uid != 0",
			eval: func(o *observation) verdict {
				rep, v := o.started()
				if v != nil {
					return *v
				}
				got := fmt.Sprintf("uid=%d", rep.UID)
				if rep.UID == 0 || rep.EUID == 0 {
					return failf(got, "the process runs as root")
				}
				return pass(got)
			},
			brk: &breaker{key: "uid0", desc: "the bundle runs uid 0", model: func(m *model) { m.UID = 0 }},
		})
	}
}

func (d *deriver) groupChecks() {
	m := d.m
	want := m.Groups
	d.add(&check{
		Name:        "groups",
		Setting:     SettingGroups,
		Description: "supplementary groups are the primary gid, the image's memberships (Merge), supplementalGroups and fsGroup",
		Expected:    idList(want),
		eval: func(o *observation) verdict {
			rep, v := o.started()
			if v != nil {
				return *v
			}
			got := make([]uint32, 0, len(rep.Groups))
			for _, g := range rep.Groups {
				got = append(got, uint32(g))
			}
			slices.Sort(got)
			got = slices.Compact(got)
			if !slices.Equal(got, want) {
				return failf(idList(got), "expected groups %s", idList(want))
			}
			return pass(idList(got))
		},
		brk: &breaker{key: "groups", desc: "the bundle drops the supplementary groups",
			model: func(m *model) {
				if slices.Equal(m.Groups, []uint32{m.GID}) {
					m.Groups = append(m.Groups, 4242)
					return
				}
				m.Groups = []uint32{m.GID}
			}},
	})
}

func idList(ids []uint32) string {
	s := make([]string, len(ids))
	for i, v := range ids {
		s[i] = strconv.Itoa(int(v))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// ---- readOnlyRootFilesystem ----

func (d *deriver) readOnlyChecks() {
	m := d.m
	if m.UID != 0 {
		// A non-root user is refused by DAC first (EACCES), which says
		// nothing about the mount.
		d.notApplicable("fs.rootfs_write: a non-root process is refused by file permissions before the read-only mount")
	} else {
		errnos := []string{"EROFS"}
		d.add(&check{
			Name:        report.OpFSRootfsWrite,
			Setting:     SettingReadOnlyRoot,
			Description: fmt.Sprintf("creating a file in / %s", map[bool]string{true: "fails with EROFS", false: "works"}[m.ReadOnlyRoot]),
			Expected:    expectText(!m.ReadOnlyRoot, errnos),
			eval:        expectOp(report.OpFSRootfsWrite, !m.ReadOnlyRoot, errnos),
			brk: &breaker{key: "rootfs-rw-toggle", desc: fmt.Sprintf("the bundle sets root.readonly %v", !m.ReadOnlyRoot),
				model: func(m *model) { m.ReadOnlyRoot = !m.ReadOnlyRoot }},
		})
	}
	if m.ReadOnlyRoot {
		d.add(&check{
			Name:        report.OpFSScratchWrite,
			Setting:     SettingReadOnlyRoot,
			Description: "a writable volume (tmpfs /tmp) stays writable under a read-only root",
			Expected:    "allowed",
			eval:        expectOp(report.OpFSScratchWrite, true, nil),
			brk:         &breaker{key: "tmp-ro", desc: "the bundle mounts /tmp read-only", spec: readOnlyTmp},
		})
	}
}

func readOnlyTmp(s *specs.Spec) error {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == "/tmp" {
			s.Mounts[i].Options = append(s.Mounts[i].Options, "ro")
			return nil
		}
	}
	return fmt.Errorf("no /tmp mount to make read-only")
}

// ---- sysctls ----

// presettable are sysctls the suite may write in its own scratch
// namespaces to tell a leak from a coincidence. Each is namespaced (the
// Kubernetes safe set) and takes a single integer; anything else could
// reach the host if the kernel did not namespace it.
var presettable = []string{
	"kernel.shm_rmid_forced", "net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.tcp_syncookies", "net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_slow_start_after_idle",
	"net.ipv4.tcp_notsent_lowat",
}

// altValue is a valid value different from v, for presettable sysctls.
func altValue(name, v string) (string, bool) {
	if !slices.Contains(presettable, name) {
		return "", false
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return "", false
	}
	// Down by one stays within every range these take (0/1 flags
	// included); 0 goes up.
	if n > 0 {
		return strconv.Itoa(n - 1), true
	}
	return strconv.Itoa(n + 1), true
}

func normValue(v string) string { return strings.Join(strings.Fields(v), " ") }

func (d *deriver) sysctlChecks() {
	m := d.m
	for _, name := range sortedKeys(m.Sysctls) {
		val := m.Sysctls[name]
		alt, hasAlt := altValue(name, val)
		inside := &breaker{key: "sysctl-off:" + name, desc: "the bundle does not set " + name,
			model: func(m *model) { delete(m.Sysctls, name) }}
		if hasAlt {
			inside = &breaker{key: "sysctl-alt:" + name, desc: fmt.Sprintf("the bundle sets %s=%s", name, alt),
				model: func(m *model) { m.Sysctls[name] = alt }}
		}
		d.add(&check{
			Name:        "sysctl.value:" + name,
			Setting:     SettingSysctls,
			Description: fmt.Sprintf("inside the Pod, %s reads %s", name, val),
			Expected:    val,
			eval: func(o *observation) verdict {
				rep, v := o.started()
				if v != nil {
					return *v
				}
				if e, ok := rep.SysctlErrors[name]; ok {
					return failf("unreadable", "%s could not be read: %s", name, e)
				}
				got, ok := rep.Sysctls[name]
				if !ok {
					return failf("", "the probe did not report %s", name)
				}
				if normValue(got) != normValue(val) {
					return failf(got, "%s is %q, expected %q", name, got, val)
				}
				return pass(got)
			},
			brk: inside,
		})
		d.add(&check{
			Name:    "sysctl.isolated:" + name,
			Setting: SettingSysctls,
			Description: fmt.Sprintf("%s stays inside the Pod's namespace: the namespace the runtime runs in, and the host, keep their value", name) +
				map[bool]string{true: " (the suite's scratch namespace is preset to a different value so a leak shows)", false: ""}[hasAlt],
			Expected: "outside value unchanged",
			eval: func(o *observation) verdict {
				if _, v := o.started(); v != nil {
					return *v
				}
				out, ok := o.outer[name]
				if !ok {
					return failf("", "no outside sample of %s", name)
				}
				host := o.host[name]
				got := fmt.Sprintf("outside %q → %q, host %q → %q", out.before, out.after, host.before, host.after)
				if normValue(host.before) != normValue(host.after) {
					return failf(got, "the HOST's %s changed", name)
				}
				if normValue(out.before) != normValue(out.after) {
					return failf(got, "%s leaked out of the Pod's namespace", name)
				}
				if normValue(out.before) == normValue(val) {
					return skipf("the outside namespace already holds %s=%s, so a leak would not show", name, val)
				}
				return pass(got)
			},
			brk: &breaker{key: "sysctl-shared-ns", desc: "the container shares the network and IPC namespaces the suite watches", joinOuter: true},
		})
	}
	// ip_unprivileged_port_start is the one the user's example sets to
	// make low ports usable without CAP_NET_BIND_SERVICE: show it.
	if v, ok := m.Sysctls["net.ipv4.ip_unprivileged_port_start"]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err == nil && n <= 80 && !m.capEffective("CAP_NET_BIND_SERVICE") {
			d.add(&check{
				Name:        "sysctl.effect:" + report.OpCapNetBindService,
				Setting:     SettingSysctls,
				Description: fmt.Sprintf("net.ipv4.ip_unprivileged_port_start=%d lets a process without CAP_NET_BIND_SERVICE bind port 80", n),
				Expected:    "allowed",
				eval:        expectOp(report.OpCapNetBindService, true, nil),
				brk: &breaker{key: "sysctl-off:net.ipv4.ip_unprivileged_port_start", desc: "the bundle does not set net.ipv4.ip_unprivileged_port_start",
					model: func(m *model) { delete(m.Sysctls, "net.ipv4.ip_unprivileged_port_start") }},
			})
		}
	}
}

// ---- seccomp ----

func (d *deriver) seccompChecks() error {
	m := d.m
	h := d.s.host
	mode := 0
	var brk *breaker
	if d.profile != nil {
		mode = 2
		brk = &breaker{key: "seccomp-off", desc: "the bundle has no seccomp filter", model: func(m *model) { m.Seccomp = seccompNone }}
	} else {
		brk = &breaker{key: "seccomp-default", desc: "the bundle has the RuntimeDefault filter", model: func(m *model) { m.Seccomp = seccompRuntimeDefault }}
	}
	kind := m.Seccomp
	if kind == seccompNone {
		kind = "no filter"
	} else if kind == seccompLocalhost {
		kind += " " + m.SeccompLocalhost
	}
	d.add(&check{
		Name:        "seccomp.mode",
		Setting:     SettingSeccomp,
		Description: "the kernel's seccomp mode matches the profile (" + kind + ")",
		Expected:    map[int]string{0: "0 (disabled)", 2: "2 (filter)"}[mode],
		eval: func(o *observation) verdict {
			rep, v := o.started()
			if v != nil {
				return *v
			}
			got := strconv.Itoa(rep.Seccomp)
			if rep.Seccomp != mode {
				return failf(got, "seccomp mode %d, expected %d", rep.Seccomp, mode)
			}
			return pass(got)
		},
		brk: brk,
	})
	for _, op := range seccompOps {
		switch op {
		case report.OpSeccompKexecLoad:
			if h.Kexec && !m.capEffective("CAP_SYS_BOOT") {
				d.notApplicable("%s: without CAP_SYS_BOOT the kernel's own EPERM hides the filter's", op)
				continue
			}
		case report.OpSeccompOpenByHandleAt:
			if !h.kernelAtLeast(6, 10) && !m.capEffective("CAP_DAC_READ_SEARCH") {
				d.notApplicable("%s: before Linux 6.10 the kernel's own EPERM hides the filter's", op)
				continue
			}
		case report.OpSeccompUnshareUserns:
			if h.MaxUserNS == 0 {
				d.notApplicable("%s: user.max_user_namespaces=0 refuses user namespaces whatever the filter", op)
				continue
			}
		}
		fv := opFilterVerdict(d.profile, op)
		var b *breaker
		switch {
		case fv.allowed && op == report.OpSeccompCloneNewns:
			// Refusing clone outright would stop every process start;
			// only the namespace flag is refused.
			b = &breaker{key: "seccomp-deny:clone-newns", desc: "the bundle's filter also denies clone with CLONE_NEWNS", spec: denyCloneNewns}
		case fv.allowed:
			names := []string{}
			for _, c := range opSyscalls[op] {
				names = append(names, c.name)
			}
			b = &breaker{key: "seccomp-deny:" + strings.Join(names, "+"), desc: "the bundle's filter also denies " + strings.Join(names, ", "),
				spec: denySyscalls(names...)}
		default:
			b = &breaker{key: "seccomp-off", desc: "the bundle has no seccomp filter", model: func(m *model) { m.Seccomp = seccompNone }}
		}
		errnos := []string{fv.errno}
		desc := fmt.Sprintf("%s is %s by the filter (%s)", op, map[bool]string{true: "allowed", false: "denied"}[fv.allowed], fv.rule)
		d.add(&check{
			Name:        op,
			Setting:     SettingSeccomp,
			Description: desc,
			Expected:    expectText(fv.allowed, errnos),
			eval:        expectOp(op, fv.allowed, errnos),
			brk:         b,
		})
	}
	d.add(&check{
		Name:        report.OpSeccompNormal,
		Setting:     SettingSeccomp,
		Description: "everyday syscalls (getpid, open/read, pipe, stat) keep working under the filter",
		Expected:    "allowed",
		eval:        expectOp(report.OpSeccompNormal, true, nil),
		brk:         &breaker{key: "seccomp-deny:pipe2+pipe", desc: "the bundle's filter denies pipe2", spec: denySyscalls("pipe2", "pipe")},
	})
	return nil
}

// denySyscalls makes the bundle's filter (or a new allow-by-default one)
// refuse the named syscalls with EPERM. Other rules for the same names
// go, so that no allow rule competes with the denial.
func denySyscalls(names ...string) func(s *specs.Spec) error {
	return func(s *specs.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Seccomp == nil {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
		}
		p := s.Linux.Seccomp
		var kept []specs.LinuxSyscall
		for _, r := range p.Syscalls {
			r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return slices.Contains(names, n) })
			if len(r.Names) > 0 {
				kept = append(kept, r)
			}
		}
		eperm := uint(1)
		p.Syscalls = append(kept, specs.LinuxSyscall{Names: slices.Clone(names), Action: specs.ActErrno, ErrnoRet: &eperm})
		return nil
	}
}

// denyCloneNewns makes clone fail with EPERM when CLONE_NEWNS is set and
// work otherwise, replacing the filter's own clone rules.
func denyCloneNewns(s *specs.Spec) error {
	if err := denySyscalls("clone")(s); err != nil {
		return err
	}
	p := s.Linux.Seccomp
	p.Syscalls = p.Syscalls[:len(p.Syscalls)-1]
	eperm := uint(1)
	newns := uint64(unix.CLONE_NEWNS)
	p.Syscalls = append(p.Syscalls,
		specs.LinuxSyscall{Names: []string{"clone"}, Action: specs.ActErrno, ErrnoRet: &eperm,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: newns, ValueTwo: newns, Op: specs.OpMaskedEqual}}},
		specs.LinuxSyscall{Names: []string{"clone"}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: newns, ValueTwo: 0, Op: specs.OpMaskedEqual}}},
	)
	return nil
}

// ---- procMount ----

func (d *deriver) procChecks() {
	m := d.m
	h := d.s.host
	for _, p := range kubeletMaskedPaths {
		if !h.pathExists(p) {
			d.notApplicable("%s: %s does not exist on this kernel", report.OpProcMasked, p)
			continue
		}
		masked := slices.Contains(m.Masked, p)
		key := report.PathOp(report.OpProcMasked, p)
		var brk *breaker
		if masked {
			brk = &breaker{key: "masked-off", desc: "the bundle has no maskedPaths", model: func(m *model) { m.Masked = nil }}
		} else {
			brk = &breaker{key: "masked-on:" + p, desc: "the bundle masks " + p,
				model: func(m *model) { m.Masked = append(m.Masked, p) }}
		}
		d.add(&check{
			Name:        key,
			Setting:     SettingProcMount,
			Description: fmt.Sprintf("%s is %s", p, map[bool]string{true: "masked (procMount Default)", false: "visible (unmasked /proc)"}[masked]),
			Expected:    map[bool]string{true: "masked", false: "not masked"}[masked],
			eval: func(o *observation) verdict {
				op, v := o.opOf(key)
				if v != nil {
					return *v
				}
				isMasked := !op.OK && strings.Contains(op.Detail, "masked by")
				isOpen := strings.Contains(op.Detail, "not masked")
				switch {
				case masked && isMasked, !masked && isOpen:
					return pass(op.Detail)
				case masked:
					return failf(op.Detail, "%s is not masked", p)
				}
				return failf(op.Detail, "%s is masked", p)
			},
			brk: brk,
		})
	}
	if m.UID != 0 || !m.capEffective("CAP_DAC_OVERRIDE") {
		// Opening a file for writing checks permissions before the
		// mount's read-only flag: only a process that passes them can
		// show EROFS.
		d.notApplicable("%s: a process without uid 0 and CAP_DAC_OVERRIDE is refused by file permissions before the read-only mount", report.OpProcReadonly)
		return
	}
	for _, p := range kubeletReadonlyPaths {
		if !h.pathExists(p) {
			d.notApplicable("%s: %s does not exist on this kernel", report.OpProcReadonly, p)
			continue
		}
		ro := slices.Contains(m.Readonly, p)
		key := report.PathOp(report.OpProcReadonly, p)
		var brk *breaker
		if ro {
			brk = &breaker{key: "readonly-off", desc: "the bundle has no readonlyPaths", model: func(m *model) { m.Readonly = nil }}
		} else {
			brk = &breaker{key: "readonly-on:" + p, desc: "the bundle makes " + p + " read-only",
				model: func(m *model) { m.Readonly = append(m.Readonly, p) }}
		}
		errnos := []string{"EROFS"}
		d.add(&check{
			Name:        key,
			Setting:     SettingProcMount,
			Description: fmt.Sprintf("%s is %s", p, map[bool]string{true: "read-only (opening for writing fails with EROFS)", false: "writable (unmasked /proc)"}[ro]),
			Expected:    expectText(!ro, errnos),
			eval:        expectOp(key, !ro, errnos),
			brk:         brk,
		})
	}
}

// ---- privileged ----

func (d *deriver) privilegedChecks() {
	m := d.m
	h := d.s.host
	var devBrk *breaker
	if m.HostDevices {
		devBrk = &breaker{key: "devices-off", desc: "the bundle passes no host devices and denies all devices", spec: func(s *specs.Spec) error {
			s.Linux.Devices = nil
			if s.Linux.Resources == nil {
				s.Linux.Resources = &specs.LinuxResources{}
			}
			s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
			return nil
		}}
	} else if h.BlockDevice != "" {
		devBrk = &breaker{key: "devices-on", desc: "the bundle passes the host block device " + h.BlockDevice, spec: addHostDevice(h.BlockDevice)}
	}
	if devBrk == nil {
		d.notApplicable("%s: no host block device to leak into a twin", report.OpPrivDevices)
	} else {
		d.add(&check{
			Name:        report.OpPrivDevices,
			Setting:     SettingPrivileged,
			Description: fmt.Sprintf("host devices are %s", map[bool]string{true: "visible and openable (privileged)", false: "not reachable"}[m.HostDevices]),
			Expected:    map[bool]string{true: "a sensitive device opens", false: "no sensitive device opens"}[m.HostDevices],
			eval: func(o *observation) verdict {
				op, v := o.opOf(report.OpPrivDevices)
				if v != nil {
					return *v
				}
				if op.OK != m.HostDevices {
					return failf(op.Detail, "expected host devices %s", map[bool]string{true: "reachable", false: "unreachable"}[m.HostDevices])
				}
				return pass(op.Detail)
			},
			brk: devBrk,
		})
	}
	d.add(&check{
		Name:        report.OpPrivSysRW,
		Setting:     SettingPrivileged,
		Description: fmt.Sprintf("/sys is mounted %s", map[bool]string{true: "read-write (privileged)", false: "read-only"}[m.SysRW]),
		Expected:    map[bool]string{true: "rw", false: "ro"}[m.SysRW],
		eval: func(o *observation) verdict {
			op, v := o.opOf(report.OpPrivSysRW)
			if v != nil {
				return *v
			}
			if op.OK != m.SysRW {
				return failf(op.Detail, "expected /sys %s", map[bool]string{true: "read-write", false: "read-only"}[m.SysRW])
			}
			return pass(op.Detail)
		},
		brk: &breaker{key: "sys-toggle", desc: fmt.Sprintf("the bundle mounts /sys %s", map[bool]string{true: "read-only", false: "read-write"}[m.SysRW]),
			model: func(m *model) { m.SysRW = !m.SysRW }},
	})
}

func addHostDevice(path string) func(s *specs.Spec) error {
	return func(s *specs.Spec) error {
		var st fileStat
		if err := statDevice(path, &st); err != nil {
			return err
		}
		mode := os.FileMode(0o660)
		zero := uint32(0)
		s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{Path: path, Type: "b", Major: st.major, Minor: st.minor, FileMode: &mode, UID: &zero, GID: &zero})
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: &st.major, Minor: &st.minor, Access: "r"})
		return nil
	}
}

// ---- AppArmor and SELinux ----

// appArmorDenyPath is the file the suite's Localhost AppArmor profile
// forbids writing; the probe image holds it writable for everyone.
const appArmorDenyPath = "/secrun-apparmor-denied"

func (d *deriver) appArmorChecks() {
	m := d.m
	want := m.AppArmor
	d.add(&check{
		Name:        report.OpAppArmorLabel,
		Setting:     SettingAppArmor,
		Description: "the process is confined by the AppArmor profile the Pod names (" + map[bool]string{true: strings.TrimSpace(m.AppArmor + " " + m.AppArmorName), false: "unconfined"}[want != ""] + ")",
		Expected:    map[bool]string{true: "confined, enforce mode", false: "unconfined"}[want != ""],
		eval: func(o *observation) verdict {
			rep, v := o.started()
			if v != nil {
				return *v
			}
			got := rep.AppArmor
			confined := got != "" && got != "unconfined"
			switch {
			case want == "" && !confined:
				return pass(got)
			case want == "":
				return failf(got, "the process is confined")
			case !confined || !strings.HasSuffix(got, "(enforce)"):
				return failf(got, "expected an enforcing profile")
			case want == "Localhost" && !strings.HasPrefix(got, m.AppArmorName+" "):
				return failf(got, "expected profile %s", m.AppArmorName)
			}
			return pass(got)
		},
		brk: &breaker{key: "apparmor-toggle", desc: "the bundle sets no AppArmor profile", model: func(m *model) {
			if m.AppArmor == "" {
				m.AppArmor = "RuntimeDefault"
			} else {
				m.AppArmor, m.AppArmorName = "", ""
			}
		}},
	})
	if want == "Localhost" && m.AppArmorName == appArmorProfileName {
		errnos := []string{"EACCES"}
		d.add(&check{
			Name:        report.OpAppArmorDenied,
			Setting:     SettingAppArmor,
			Description: "the Localhost profile's deny rule stops a write to " + appArmorDenyPath + " that file permissions allow",
			Expected:    expectText(false, errnos),
			eval:        expectOp(report.OpAppArmorDenied, false, errnos),
			brk:         &breaker{key: "apparmor-toggle", desc: "the bundle sets no AppArmor profile", model: func(m *model) { m.AppArmor, m.AppArmorName = "", "" }},
		})
	}
}

func (d *deriver) selinuxChecks() {
	m := d.m
	want := m.SELinuxLabel
	d.add(&check{
		Name:        "selinux.label",
		Setting:     SettingSELinux,
		Description: "the process runs with the SELinux type seLinuxOptions gives",
		Expected:    want,
		eval: func(o *observation) verdict {
			rep, v := o.started()
			if v != nil {
				return *v
			}
			wantType := typeOf(want)
			if typeOf(rep.SELinux) != wantType {
				return failf(rep.SELinux, "expected type %s", wantType)
			}
			return pass(rep.SELinux)
		},
		brk: &breaker{key: "selinux-off", desc: "the bundle sets no SELinux label", model: func(m *model) { m.SELinuxLabel = "" }},
	})
}

func typeOf(label string) string {
	parts := strings.SplitN(label, ":", 4)
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
