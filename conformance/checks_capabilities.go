package conformance

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/secrun/secrun/conformance/probe/report"
	"github.com/secrun/secrun/spec"
)

// The capabilities checks of the suite (checks.go has the types they share).

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
		fv := d.opVerdict(co.op)
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
