package conformance

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/spec"
)

// policySim is the suite's reading of a secrun policy: what each field
// means by the README ("Policies and modes"), written apart from package
// policy's code, so that a bug in secrun fails a check instead of moving
// the expectation with it. Only loading the admin's file is shared: the
// fields are the configuration, not the behaviour under test.
type policySim struct {
	p *policy.Policy
}

func (ps *policySim) name() string { return ps.p.Name }
func (ps *policySim) mode() string { return string(ps.p.Mode) }

// ruleSetting is the summary row a refusal by rule counts in: the row the
// settings registry declares for it (policy/settings.go). Naming is
// shared with secrun; what each rule expects is not (see apply).
func ruleSetting(rule policy.Rule) Setting {
	st, _ := policy.Lookup(rule)
	return Setting(st.Conformance)
}

// ruleField is the config.json field each rule's refusal names, by the
// suite's own reading of runtime-spec config.md, so that a refusal naming
// the wrong field fails the check.
var ruleField = map[policy.Rule]string{
	policy.RulePrivileged:             "process.capabilities",
	policy.RuleHostNamespaces:         "linux.namespaces",
	policy.RuleDevices:                "linux.resources.devices",
	policy.RuleCapabilities:           "process.capabilities",
	policy.RuleNoNewPrivileges:        "process.noNewPrivileges",
	policy.RuleRunAsNonRoot:           "process.user.uid",
	policy.RuleReadOnlyRootFilesystem: "root.readonly",
	policy.RuleProcMount:              "linux.maskedPaths",
	policy.RuleSysctls:                "linux.sysctl",
	policy.RuleSELinux:                "process.selinuxLabel",
	policy.RuleAppArmor:               "process.apparmorProfile",
	policy.RuleSeccomp:                "linux.seccomp",
}

// apply turns the requested model into what the policy lets run: in
// enforce mode the model is unchanged or refused; in harden mode it is
// rewritten, and refused only for what no rewrite can fix; audit changes
// nothing. confined tells whether a Localhost seccomp profile refuses
// anything by default.
func (ps *policySim) apply(h *hostEnv, d *derivation, sc effectiveSC, confined func(*model) (bool, error)) error {
	p := ps.p
	m := d.m
	if p.Mode == policy.Audit {
		d.note("policy %s is in audit mode: it logs and changes nothing", p.Name)
		return nil
	}
	enforce, harden := p.Mode == policy.Enforce, p.Mode == policy.Harden
	by := fmt.Sprintf("policy %s (%s)", p.Name, p.Mode)
	var left []policy.Rule
	privAllowed := p.AllowPrivileged && m.Privileged

	if m.Privileged && !p.AllowPrivileged {
		left = append(left, policy.RulePrivileged)
	}
	if (sc.HostNetwork || sc.HostPID || sc.HostIPC) && !p.AllowHostNamespaces {
		left = append(left, policy.RuleHostNamespaces)
	}
	// privileged: true comes with an allow-all device cgroup.
	if m.Privileged && !p.AllowPrivileged {
		left = append(left, policy.RuleDevices)
	}

	allowed, err := normalizeCaps(p.AllowedCapabilities)
	if err != nil {
		return fmt.Errorf("%s allowedCapabilities: %w", by, err)
	}
	if p.AllowedCapabilities == nil || slices.Contains(allowed, "ALL") {
		allowed = nil
	}
	mustDrop, err := normalizeCaps(p.RequiredDropCapabilities)
	if err != nil {
		return fmt.Errorf("%s requiredDropCapabilities: %w", by, err)
	}
	if allowed != nil || len(mustDrop) > 0 {
		var forbidden []string
		for _, c := range m.Caps {
			if (allowed != nil && !slices.Contains(allowed, c)) || slices.Contains(mustDrop, c) || slices.Contains(mustDrop, "ALL") {
				forbidden = append(forbidden, c)
			}
		}
		d.cover(SettingCapabilities, by+" allows only "+capList(allowed))
		if len(forbidden) > 0 {
			switch {
			case enforce:
				left = append(left, policy.RuleCapabilities)
			case harden:
				m.Caps = slices.DeleteFunc(m.Caps, func(c string) bool { return slices.Contains(forbidden, c) })
				d.note("capabilities: %s drops %s", by, capList(forbidden))
			}
		}
	}

	if p.NoNewPrivileges {
		d.cover(SettingNoNewPrivs, by+" requires no_new_privs")
		if !m.NNP {
			if enforce {
				left = append(left, policy.RuleNoNewPrivileges)
			} else if harden {
				m.NNP = true
				d.note("no_new_privs: %s sets it", by)
			}
		}
	}

	if p.RunAsNonRoot {
		d.cover(SettingUser, by+" requires a non-root uid")
		if m.UID == 0 {
			switch {
			case enforce:
				left = append(left, policy.RuleRunAsNonRoot)
			case harden && p.RunAsUser != nil:
				m.UID = uint32(*p.RunAsUser)
				if p.RunAsGroup != nil {
					m.GID = uint32(*p.RunAsGroup)
				}
				d.note("user: %s runs the root container as uid %d gid %d", by, m.UID, m.GID)
			default:
				left = append(left, policy.RuleRunAsNonRoot)
			}
		}
	}

	if p.ReadOnlyRootFilesystem {
		d.cover(SettingReadOnlyRoot, by+" requires a read-only root")
		if !m.ReadOnlyRoot {
			if enforce {
				left = append(left, policy.RuleReadOnlyRootFilesystem)
			} else if harden {
				m.ReadOnlyRoot = true
				d.note("readOnlyRootFilesystem: %s sets it", by)
			}
		}
	}

	if p.ProcMount == spec.ProcMountDefault && !privAllowed {
		d.cover(SettingProcMount, by+" requires procMount Default")
		if m.unmasked() {
			if enforce {
				left = append(left, policy.RuleProcMount)
			} else if harden {
				m.Masked, m.Readonly = slices.Clone(kubeletMaskedPaths), slices.Clone(kubeletReadonlyPaths)
				d.note("procMount: %s masks /proc", by)
			}
		}
	}

	if p.RestrictSysctls && len(m.Sysctls) > 0 {
		minor, err := kubernetesMinor(p.KubernetesVersion)
		if err != nil {
			return fmt.Errorf("%s kubernetesVersion: %w", by, err)
		}
		for _, n := range sortedKeys(m.Sysctls) {
			if !sysctlSafe(n, minor) && !sysctlAllowlisted(n, p.AllowedUnsafeSysctls) {
				left = append(left, policy.RuleSysctls)
				break
			}
		}
	}

	if len(p.AllowedSELinuxTypes) > 0 && !slices.Contains(p.AllowedSELinuxTypes, spec.SELinuxType(m.SELinuxLabel)) {
		left = append(left, policy.RuleSELinux)
	}

	if h.AppArmor && p.AppArmor != "" && p.AppArmor != spec.AppArmorUnconfined && !privAllowed {
		d.cover(SettingAppArmor, by+" gives unconfined containers "+p.AppArmor)
		if m.AppArmor == "" {
			switch {
			case enforce && p.RequireAppArmor:
				left = append(left, policy.RuleAppArmor)
			case harden:
				kind, name, _ := strings.Cut(p.AppArmor, "/")
				m.AppArmor, m.AppArmorName = kind, name
				d.note("apparmor: %s applies %s", by, p.AppArmor)
			}
		}
	}

	if !privAllowed {
		ok, err := confined(m)
		if err != nil {
			return err
		}
		hasDefault := p.Seccomp != "" && p.Seccomp != spec.SeccompUnconfined
		if !ok && (p.RequireSeccomp || (harden && hasDefault)) {
			d.cover(SettingSeccomp, by+" requires a seccomp filter")
			switch {
			case harden && hasDefault:
				kind, file, _ := strings.Cut(p.Seccomp, "/")
				m.Seccomp, m.SeccompLocalhost = kind, file
				d.note("seccomp: %s applies %s, generated for the final capabilities", by, p.Seccomp)
			default:
				left = append(left, policy.RuleSeccomp)
			}
		}
	}

	if err := ps.applyAgent(d, sc, confined); err != nil {
		return err
	}

	if harden && p.AmbientCapabilities && m.UID != 0 && len(m.Caps) > 0 {
		m.Ambient = true
		d.note("capabilities: %s raises them into the ambient set for uid %d", by, m.UID)
	}

	if h.PodSandbox && slices.Contains(left, policy.RuleSysctls) {
		// secrun refuses the sandbox, which carries the Pod's sysctls,
		// before the container has a bundle (policy/intent.go IsSandbox:
		// a sandbox is refused for what no rewrite fixes).
		left = []policy.Rule{policy.RuleSysctls}
	}
	if len(left) > 0 {
		d.refusal = &refusal{Policy: p.Name, Mode: string(p.Mode), Rules: left}
		d.note("%s must refuse the container: %s", by, ruleList(left))
	}
	return nil
}

func capList(caps []string) string {
	if caps == nil {
		return "any capability"
	}
	if len(caps) == 0 {
		return "none"
	}
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = strings.TrimPrefix(c, "CAP_")
	}
	return strings.Join(out, ", ")
}

// safeSysctls is the Kubernetes safe set by the minor release that made
// each sysctl safe (kubernetes pkg/kubelet/sysctl/safe_sysctls.go and
// pod-security-admission policy/check_sysctls.go).
var safeSysctls = []struct {
	name  string
	since int
}{
	{"kernel.shm_rmid_forced", 0},
	{"net.ipv4.ip_local_port_range", 0},
	{"net.ipv4.tcp_syncookies", 0},
	{"net.ipv4.ping_group_range", 18},
	{"net.ipv4.ip_unprivileged_port_start", 22},
	{"net.ipv4.ip_local_reserved_ports", 27},
	{"net.ipv4.tcp_keepalive_time", 29},
	{"net.ipv4.tcp_fin_timeout", 29},
	{"net.ipv4.tcp_keepalive_intvl", 29},
	{"net.ipv4.tcp_keepalive_probes", 29},
	{"net.ipv4.tcp_rmem", 32},
	{"net.ipv4.tcp_wmem", 32},
	{"net.ipv4.tcp_slow_start_after_idle", 37},
	{"net.ipv4.tcp_notsent_lowat", 37},
}

func kubernetesMinor(v string) (int, error) {
	if v == "" {
		return safeSysctls[len(safeSysctls)-1].since, nil
	}
	s := strings.TrimPrefix(v, "v")
	major, rest, ok := strings.Cut(s, ".")
	if !ok || major != "1" {
		return 0, fmt.Errorf("%q is not a Kubernetes 1.x version", v)
	}
	minorStr, _, _ := strings.Cut(rest, ".")
	n, err := strconv.Atoi(minorStr)
	if err != nil {
		return 0, fmt.Errorf("%q is not a Kubernetes 1.x version", v)
	}
	return n, nil
}

func sysctlSafe(name string, minor int) bool {
	for _, s := range safeSysctls {
		if s.name == name && s.since <= minor {
			return true
		}
	}
	return false
}

func sysctlAllowlisted(name string, allow []string) bool {
	for _, a := range allow {
		a = spec.NormalizeSysctlName(a)
		if prefix, glob := strings.CutSuffix(a, "*"); glob && strings.HasPrefix(name, prefix) || a == name {
			return true
		}
	}
	return false
}
