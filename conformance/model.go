package conformance

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/secrun/secrun/conformance/probe/report"
	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/spec"
)

// Setting is a row of the summary table: one security setting of the
// user's text.
type Setting string

const (
	SettingCapabilities Setting = "capabilities"
	SettingNoNewPrivs   Setting = "no_new_privs"
	SettingUser         Setting = "user"
	SettingGroups       Setting = "groups"
	SettingReadOnlyRoot Setting = "readOnlyRootFilesystem"
	SettingSysctls      Setting = "sysctls"
	SettingSeccomp      Setting = "seccomp"
	SettingAppArmor     Setting = "apparmor"
	SettingProcMount    Setting = "procMount"
	SettingPrivileged   Setting = "privileged"
	SettingSELinux      Setting = "selinux"
)

// Settings lists every setting in summary-table order.
var Settings = []Setting{
	SettingCapabilities, SettingNoNewPrivs, SettingUser, SettingGroups,
	SettingReadOnlyRoot, SettingSysctls, SettingSeccomp, SettingAppArmor,
	SettingProcMount, SettingPrivileged, SettingSELinux,
}

// defaultCapabilities is what containerd gives a container that asks for
// nothing (containerd pkg/oci/spec.go defaultUnixCaps). It is the
// suite's own copy on purpose: an
// expectation must not move when secrun's list does.
var defaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// kubeletMaskedPaths and kubeletReadonlyPaths are procMount Default as
// the kubelet defines it (pkg/securitycontext/util.go).
var (
	kubeletMaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/proc/scsi", "/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
	kubeletReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// Seccomp kinds of a model.
const (
	seccompNone           = ""
	seccompRuntimeDefault = spec.SeccompRuntimeDefault
	seccompLocalhost      = spec.SeccompLocalhost
)

// model is what the kernel must enforce on one container: the security
// context of the manifest, as containerd and the kubelet turn it into a
// process, and then what the node's secrun policy does to it. Checks
// compare the probe's report against it, and the validity mode turns a
// (deliberately broken) copy of it back into a bundle.
type model struct {
	Privileged bool
	// Caps is the bounding set, and the effective and permitted sets of a
	// root process; OCI names ordered by number.
	Caps []string
	// Ambient raises Caps into the inheritable and ambient sets, which is
	// what makes them effective for a non-root process.
	Ambient bool
	NNP     bool
	UID     uint32
	GID     uint32
	// Groups are the supplementary groups (primary gid included).
	Groups       []uint32
	ReadOnlyRoot bool
	Seccomp      string
	// SeccompLocalhost names the Localhost profile file.
	SeccompLocalhost string
	// SeccompAgent is the seccomp agent mode the filter's denials go
	// to (record, record-all or explain; "" for none): see
	// seccomp_agent.go.
	SeccompAgent string
	// Sysctls uses dotted names.
	Sysctls map[string]string
	// SandboxSysctls are what the CRI runtime sets on the Pod's sandbox
	// on its own (hostEnv.SandboxSysctls): not checked, but they change
	// what other checks can show.
	SandboxSysctls map[string]string
	// Masked and Readonly are the /proc paths hidden and read-only; both
	// empty means an unmasked /proc.
	Masked   []string
	Readonly []string
	// SysRW and HostDevices are what privileged mode adds.
	SysRW       bool
	HostDevices bool
	// AppArmor is the kind (RuntimeDefault, Localhost) and AppArmorName
	// the Localhost profile.
	AppArmor     string
	AppArmorName string
	SELinuxLabel string
}

func (m *model) clone() *model {
	c := *m
	c.Caps = slices.Clone(m.Caps)
	c.Groups = slices.Clone(m.Groups)
	c.Sysctls = maps.Clone(m.Sysctls)
	c.SandboxSysctls = maps.Clone(m.SandboxSysctls)
	c.Masked = slices.Clone(m.Masked)
	c.Readonly = slices.Clone(m.Readonly)
	return &c
}

func (m *model) hasCap(c string) bool { return slices.Contains(m.Caps, c) }

// sysctl is a sysctl's value inside the container: the Pod's own, else
// the one the runtime gives every sandbox.
func (m *model) sysctl(name string) (value string, ok, bySandbox bool) {
	if v, ok := m.Sysctls[name]; ok {
		return v, true, false
	}
	v, ok := m.SandboxSysctls[name]
	return v, ok, ok
}

// effectiveCaps is what a process of this model holds after its execve:
// root keeps the permitted set; anyone else only what the ambient set
// carries (kubernetes#56374).
func (m *model) effectiveCaps() []string {
	if m.UID == 0 || m.Ambient {
		return slices.Clone(m.Caps)
	}
	return []string{}
}

func (m *model) capEffective(c string) bool { return slices.Contains(m.effectiveCaps(), c) }

func (m *model) setCap(c string, on bool) {
	m.Caps = slices.DeleteFunc(m.Caps, func(x string) bool { return x == c })
	if on {
		m.Caps = sortCaps(append(m.Caps, c))
	}
}

// unmasked reports whether /proc is left as the kernel shows it.
func (m *model) unmasked() bool { return len(m.Masked) == 0 && len(m.Readonly) == 0 }

// normalizeCap returns the OCI name of a Kubernetes capability name.
func normalizeCap(name string) (string, error) {
	n, ok := report.CapNumber(strings.TrimSpace(name))
	// CapNumber also accepts "CAP_<n>"; a manifest must use names.
	if !ok || report.CapName(n) == fmt.Sprintf("CAP_%d", n) {
		return "", fmt.Errorf("unknown capability %q", name)
	}
	return report.CapName(n), nil
}

// sortCaps orders and deduplicates capability names by number.
func sortCaps(caps []string) []string {
	out := slices.Clone(caps)
	slices.SortFunc(out, func(a, b string) int {
		na, _ := report.CapNumber(a)
		nb, _ := report.CapNumber(b)
		return na - nb
	})
	return slices.Compact(out)
}

// derivation collects the model of one container and why each part is
// what it is, for the report.
type derivation struct {
	m *model
	// covered maps each setting the checks look at to the reason: the
	// manifest field, or the policy rule, that makes it worth checking.
	covered map[Setting][]string
	notes   []string
	// refusal is set when the container must not start.
	refusal *refusal
	// unmodelled, when set, is why the suite cannot say what the
	// runtime does with the container: it is listed, not run.
	unmodelled string
	// uidKnown is false when no passwd entry names the uid (only for notes).
	policy *policySim
}

// refusal is a container the runtime under test must refuse.
type refusal struct {
	Policy string
	Mode   string
	// Rules are secrun's rule names, in the order secrun checks them.
	Rules []policy.Rule
}

// ruleList renders rules for messages.
func ruleList(rules []policy.Rule) string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = string(r)
	}
	return strings.Join(out, ", ")
}

func (d *derivation) cover(s Setting, why string) {
	if d.covered == nil {
		d.covered = map[Setting][]string{}
	}
	if !slices.Contains(d.covered[s], why) {
		d.covered[s] = append(d.covered[s], why)
	}
}

func (d *derivation) note(format string, args ...any) {
	d.notes = append(d.notes, fmt.Sprintf(format, args...))
}

// deriveRequested builds the model of what the manifest asks for, with
// containerd's (internal/cri/opts/spec_opts.go) and the kubelet's
// (pkg/kubelet/kuberuntime/security_context.go) semantics: the bundle bare runc
// must enforce.
func deriveRequested(h *hostEnv, sc effectiveSC) (*derivation, error) {
	d := &derivation{m: &model{}}
	m := d.m

	// Capabilities.
	m.Privileged = sc.Privileged
	if sc.PrivilegedSet {
		d.cover(SettingPrivileged, fmt.Sprintf("securityContext.privileged: %v", sc.Privileged))
	}
	switch {
	case sc.Privileged:
		m.Caps = sortCaps(h.HeldCaps)
		d.cover(SettingCapabilities, "securityContext.privileged: true grants every capability the runtime holds")
		d.note("capabilities: privileged → every capability this node's root holds (%d)", len(m.Caps))
	default:
		set := slices.Clone(defaultCapabilities)
		if c := sc.Capabilities; c != nil {
			d.cover(SettingCapabilities, "securityContext.capabilities")
			add, err := normalizeCaps(c.Add)
			if err != nil {
				return nil, fmt.Errorf("capabilities.add: %w", err)
			}
			drop, err := normalizeCaps(c.Drop)
			if err != nil {
				return nil, fmt.Errorf("capabilities.drop: %w", err)
			}
			if slices.Contains(add, "ALL") {
				set = slices.Clone(h.HeldCaps)
			}
			if slices.Contains(drop, "ALL") {
				set = nil
			}
			for _, a := range add {
				if a != "ALL" {
					set = append(set, a)
				}
			}
			set = slices.DeleteFunc(set, func(x string) bool { return slices.Contains(drop, x) })
			d.note("capabilities: containerd default set, add %v, drop %v", c.Add, c.Drop)
		} else {
			d.note("capabilities: containerd default set (14)")
		}
		m.Caps = sortCaps(set)
	}

	// no_new_privs: only an explicit allowPrivilegeEscalation: false sets it.
	if ape := sc.AllowPrivilegeEscalation; ape != nil {
		d.cover(SettingNoNewPrivs, fmt.Sprintf("securityContext.allowPrivilegeEscalation: %v", *ape))
		m.NNP = !*ape
	}

	// User and groups, resolved against the probe image's /etc/passwd and
	// /etc/group, which the suite writes from the same tables.
	if sc.RunAsUser != nil {
		m.UID = uint32(*sc.RunAsUser)
		d.cover(SettingUser, fmt.Sprintf("runAsUser: %d", *sc.RunAsUser))
	}
	name, primary, known := lookupUID(m.UID)
	if known {
		m.GID = primary
	}
	if sc.RunAsGroup != nil {
		m.GID = uint32(*sc.RunAsGroup)
		d.cover(SettingUser, fmt.Sprintf("runAsGroup: %d", *sc.RunAsGroup))
	}
	if sc.RunAsNonRoot != nil {
		d.cover(SettingUser, fmt.Sprintf("runAsNonRoot: %v", *sc.RunAsNonRoot))
	}
	groups := []uint32{m.GID}
	if sc.SupplementalGroupsPolicy != "Strict" && known {
		groups = append(groups, memberships(name)...)
	}
	for _, g := range sc.SupplementalGroups {
		groups = append(groups, uint32(g))
	}
	if len(sc.SupplementalGroups) > 0 {
		d.cover(SettingGroups, fmt.Sprintf("supplementalGroups: %v", sc.SupplementalGroups))
	}
	if sc.FSGroup != nil {
		groups = append(groups, uint32(*sc.FSGroup))
		d.cover(SettingGroups, fmt.Sprintf("fsGroup: %d", *sc.FSGroup))
	}
	slices.Sort(groups)
	m.Groups = slices.Compact(groups)

	if ro := sc.ReadOnlyRootFilesystem; ro != nil {
		m.ReadOnlyRoot = *ro
		d.cover(SettingReadOnlyRoot, fmt.Sprintf("readOnlyRootFilesystem: %v", *ro))
	}

	if len(sc.Sysctls) > 0 {
		m.Sysctls = map[string]string{}
		for _, s := range sc.Sysctls {
			n := spec.NormalizeSysctlName(s.Name)
			m.Sysctls[n] = s.Value
			d.cover(SettingSysctls, fmt.Sprintf("sysctls: %s=%s", n, s.Value))
		}
	}

	for _, n := range sortedKeys(h.SandboxSysctls) {
		if _, own := m.Sysctls[n]; !own {
			if m.SandboxSysctls == nil {
				m.SandboxSysctls = map[string]string{}
			}
			m.SandboxSysctls[n] = h.SandboxSysctls[n]
			d.note("sysctls: the node's runtime sets %s=%s on every Pod sandbox", n, h.SandboxSysctls[n])
		}
	}

	// Seccomp: privileged containers get none; no profile means
	// Unconfined, as in containerd without the kubelet's seccompDefault.
	if p := sc.Seccomp; p != nil {
		d.cover(SettingSeccomp, "seccompProfile.type: "+p.Type)
	}
	switch {
	case sc.Privileged:
		d.cover(SettingSeccomp, "privileged containers run without seccomp")
	case sc.Seccomp == nil, sc.Seccomp.Type == spec.SeccompUnconfined:
	case sc.Seccomp.Type == spec.SeccompRuntimeDefault:
		m.Seccomp = seccompRuntimeDefault
	case sc.Seccomp.Type == spec.SeccompLocalhost:
		if sc.Seccomp.LocalhostProfile == nil {
			return nil, fmt.Errorf("seccompProfile Localhost without localhostProfile")
		}
		m.Seccomp, m.SeccompLocalhost = seccompLocalhost, *sc.Seccomp.LocalhostProfile
	default:
		return nil, fmt.Errorf("seccompProfile.type %q is not one the suite knows", sc.Seccomp.Type)
	}

	// procMount.
	pm := spec.ProcMountDefault
	if sc.ProcMount != nil {
		pm = *sc.ProcMount
		d.cover(SettingProcMount, "procMount: "+pm)
	}
	switch {
	case sc.Privileged:
		d.cover(SettingProcMount, "privileged containers see an unmasked /proc")
		m.SysRW, m.HostDevices = true, true
	case pm == spec.ProcMountDefault:
		m.Masked, m.Readonly = slices.Clone(kubeletMaskedPaths), slices.Clone(kubeletReadonlyPaths)
	}

	if sc.AppArmor == nil && !sc.Privileged && h.AppArmor {
		// containerd confines every unprivileged container with its
		// default profile where the kernel has AppArmor.
		m.AppArmor = spec.AppArmorRuntimeDefault
		d.cover(SettingAppArmor, "no appArmorProfile: the runtime's default profile applies (containerd)")
	}
	if p := sc.AppArmor; p != nil {
		d.cover(SettingAppArmor, "appArmorProfile.type: "+p.Type)
		switch p.Type {
		case spec.AppArmorRuntimeDefault:
			// containerd gives privileged containers no default profile.
			if !sc.Privileged {
				m.AppArmor = spec.AppArmorRuntimeDefault
			}
		case spec.AppArmorLocalhost:
			if p.LocalhostProfile != nil {
				m.AppArmor, m.AppArmorName = spec.AppArmorLocalhost, *p.LocalhostProfile
			}
		}
	}
	if o := sc.SELinux; o != nil && *o != (spec.SELinuxOptions{}) {
		d.cover(SettingSELinux, "seLinuxOptions")
		m.SELinuxLabel = selinuxLabel(*o)
	}
	return d, nil
}

func normalizeCaps(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if strings.EqualFold(strings.TrimSpace(n), "ALL") {
			out = append(out, "ALL")
			continue
		}
		c, err := normalizeCap(n)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// selinuxLabel fills what seLinuxOptions leaves out the way
// container-selinux labels containers.
func selinuxLabel(o spec.SELinuxOptions) string {
	pick := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	return strings.Join([]string{pick(o.User, "system_u"), pick(o.Role, "system_r"), pick(o.Type, "container_t"), pick(o.Level, "s0")}, ":")
}

// The probe image's users and groups. The rootfs files are written from
// these tables, and expectations read the same tables.
var (
	imageUsers = []struct {
		Name     string
		UID, GID uint32
	}{
		{"root", 0, 0},
		{"app", 1000, 1000},
		{"nobody", 65534, 65534},
	}
	imageGroups = []struct {
		Name    string
		GID     uint32
		Members []string
	}{
		{"root", 0, nil},
		{"app", 1000, nil},
		// A membership, so that supplementalGroupsPolicy Merge has
		// something to merge.
		{"probe-extra", 2500, []string{"app"}},
		{"nogroup", 65534, nil},
	}
)

func lookupUID(uid uint32) (name string, gid uint32, ok bool) {
	for _, u := range imageUsers {
		if u.UID == uid {
			return u.Name, u.GID, true
		}
	}
	return "", 0, false
}

func memberships(user string) []uint32 {
	var out []uint32
	for _, g := range imageGroups {
		if slices.Contains(g.Members, user) {
			out = append(out, g.GID)
		}
	}
	return out
}

func passwdFile() string {
	var b strings.Builder
	for _, u := range imageUsers {
		fmt.Fprintf(&b, "%s:x:%d:%d:%s:/:/probe\n", u.Name, u.UID, u.GID, u.Name)
	}
	return b.String()
}

func groupFile() string {
	var b strings.Builder
	for _, g := range imageGroups {
		fmt.Fprintf(&b, "%s:x:%d:%s\n", g.Name, g.GID, strings.Join(g.Members, ","))
	}
	return b.String()
}
