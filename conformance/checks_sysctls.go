package conformance

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/secrun/secrun/conformance/probe/report"
)

// The sysctls checks of the suite (checks.go has the types they share).

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
