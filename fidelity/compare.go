// Package fidelity compares the config.json containerd handed a runtime
// for a Pod's container with what `secrunctl translate` makes of the same
// Pod, on every security field. Each difference is either explained, by
// an entry of Explanations (with its reason and the upstream source), or
// unexplained: a translate bug, or a node fact the comparison was not told.
package fidelity

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Difference is one security field on which the captured and the
// translated spec disagree.
type Difference struct {
	// Field is the config.json field, "process.capabilities.bounding",
	// "linux.namespaces[network]", "linux.seccomp.syscalls".
	Field string `json:"field"`
	// Captured and Translated render the two values; for sets, what
	// only that side holds.
	Captured   string `json:"captured"`
	Translated string `json:"translated"`
	// Explanation is the ID of the entry of Explanations that accounts
	// for the difference; "" when none does.
	Explanation string `json:"explanation,omitempty"`
	Reason      string `json:"reason,omitempty"`
	Source      string `json:"source,omitempty"`

	// onlyCaptured and onlyTranslated are the set elements behind the
	// rendering, for the explanations to look at.
	onlyCaptured, onlyTranslated []string
}

// Explained reports whether an explanation accounts for d.
func (d Difference) Explained() bool { return d.Explanation != "" }

// Fields names every field Compare looks at, in order, for reports and
// the documentation. linux.devices, linux.resources.devices and mounts
// are compared for privileged containers only: elsewhere they are the
// kubelet's volumes and containerd's defaults, not a security decision.
var Fields = []string{
	"process.user.uid", "process.user.gid", "process.user.additionalGids",
	"process.capabilities.bounding", "process.capabilities.effective", "process.capabilities.inheritable",
	"process.capabilities.permitted", "process.capabilities.ambient",
	"process.noNewPrivileges", "root.readonly", "linux.sysctl",
	"linux.seccomp", "linux.seccomp.defaultAction", "linux.seccomp.defaultErrnoRet", "linux.seccomp.architectures", "linux.seccomp.syscalls",
	"process.apparmorProfile", "process.selinuxLabel", "linux.mountLabel",
	"linux.maskedPaths", "linux.readonlyPaths", "linux.namespaces",
	"linux.devices", "linux.resources.devices", "mounts",
}

// Compare returns the differences between captured (containerd's) and
// translated (secrunctl's) on the fields of Fields. privileged selects
// the device and mount comparison.
func Compare(captured, translated *specs.Spec, privileged bool) []Difference {
	c, t := view(captured), view(translated)
	var out []Difference
	scalar := func(field string, a, b any) {
		ra, rb := render(a), render(b)
		if ra != rb {
			out = append(out, Difference{Field: field, Captured: ra, Translated: rb})
		}
	}
	set := func(field string, a, b []string) {
		onlyA, onlyB := setDiff(a, b)
		if len(onlyA) == 0 && len(onlyB) == 0 {
			return
		}
		out = append(out, Difference{
			Field: field, Captured: renderOnly(onlyA), Translated: renderOnly(onlyB),
			onlyCaptured: onlyA, onlyTranslated: onlyB,
		})
	}

	scalar("process.user.uid", c.proc.User.UID, t.proc.User.UID)
	scalar("process.user.gid", c.proc.User.GID, t.proc.User.GID)
	set("process.user.additionalGids", ids(c.proc.User.AdditionalGids), ids(t.proc.User.AdditionalGids))
	cc, tc := c.caps(), t.caps()
	set("process.capabilities.bounding", cc.Bounding, tc.Bounding)
	set("process.capabilities.effective", cc.Effective, tc.Effective)
	set("process.capabilities.inheritable", cc.Inheritable, tc.Inheritable)
	set("process.capabilities.permitted", cc.Permitted, tc.Permitted)
	set("process.capabilities.ambient", cc.Ambient, tc.Ambient)
	scalar("process.noNewPrivileges", c.proc.NoNewPrivileges, t.proc.NoNewPrivileges)
	scalar("root.readonly", c.root.Readonly, t.root.Readonly)
	set("linux.sysctl", sysctls(c.linux.Sysctl), sysctls(t.linux.Sysctl))
	out = append(out, compareSeccomp(c.linux.Seccomp, t.linux.Seccomp)...)
	scalar("process.apparmorProfile", c.proc.ApparmorProfile, t.proc.ApparmorProfile)
	scalar("process.selinuxLabel", selinuxShape(c.proc.SelinuxLabel), selinuxShape(t.proc.SelinuxLabel))
	scalar("linux.mountLabel", selinuxShape(c.linux.MountLabel), selinuxShape(t.linux.MountLabel))
	set("linux.maskedPaths", c.linux.MaskedPaths, t.linux.MaskedPaths)
	set("linux.readonlyPaths", c.linux.ReadonlyPaths, t.linux.ReadonlyPaths)
	out = append(out, compareNamespaces(c.linux.Namespaces, t.linux.Namespaces)...)
	if privileged {
		set("linux.devices", devices(c.linux.Devices), devices(t.linux.Devices))
		set("linux.resources.devices", deviceRules(c.linux.Resources), deviceRules(t.linux.Resources))
		out = append(out, compareMounts(captured.Mounts, translated.Mounts)...)
	}
	return out
}

// specView has non-nil parts, so that a missing block compares as an
// empty one: containerd and secrun leave out different empty blocks.
type specView struct {
	proc  *specs.Process
	root  *specs.Root
	linux *specs.Linux
}

func view(s *specs.Spec) specView {
	v := specView{proc: &specs.Process{}, root: &specs.Root{}, linux: &specs.Linux{}}
	if s == nil {
		return v
	}
	if s.Process != nil {
		v.proc = s.Process
	}
	if s.Root != nil {
		v.root = s.Root
	}
	if s.Linux != nil {
		v.linux = s.Linux
	}
	return v
}

func (v specView) caps() specs.LinuxCapabilities {
	if v.proc.Capabilities == nil {
		return specs.LinuxCapabilities{}
	}
	return *v.proc.Capabilities
}

func render(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func renderOnly(list []string) string {
	if len(list) == 0 {
		return "(nothing more)"
	}
	return "only here: " + strings.Join(list, ", ")
}

// setDiff returns what only a holds and what only b holds, sorted, with
// repeats counted once.
func setDiff(a, b []string) (onlyA, onlyB []string) {
	in := func(list []string) map[string]bool {
		m := make(map[string]bool, len(list))
		for _, x := range list {
			m[x] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	for x := range ma {
		if !mb[x] {
			onlyA = append(onlyA, x)
		}
	}
	for x := range mb {
		if !ma[x] {
			onlyB = append(onlyB, x)
		}
	}
	slices.Sort(onlyA)
	slices.Sort(onlyB)
	return onlyA, onlyB
}

func ids(list []uint32) []string {
	out := make([]string, len(list))
	for i, g := range list {
		out[i] = fmt.Sprint(g)
	}
	return out
}

func sysctls(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, strings.ReplaceAll(k, "/", ".")+"="+m[k])
	}
	return out
}

// mcsLevel is the shape of go-selinux's random per-Pod level,
// "s0:c123,c456".
var mcsLevel = regexp.MustCompile(`^s0:c[0-9]+,c[0-9]+$`)

// selinuxShape replaces a random MCS pair by a placeholder: containerd
// draws one per Pod, so two runs never agree on the numbers, only on
// there being a pair. Whether a container shares its sandbox's pair is
// checked separately (see SandboxLevelMismatch).
func selinuxShape(label string) string {
	parts := strings.SplitN(label, ":", 4)
	if len(parts) == 4 && mcsLevel.MatchString(parts[3]) {
		parts[3] = "s0:<per-Pod MCS pair>"
		return strings.Join(parts, ":")
	}
	return label
}

// compareSeccomp compares the filter's presence, its defaults, its
// architectures and its rules. Rules are normalised to one entry per
// syscall name with its action, errno and argument conditions, so that
// the same filter grouped differently compares equal.
func compareSeccomp(c, t *specs.LinuxSeccomp) []Difference {
	if c == nil && t == nil {
		return nil
	}
	if c == nil || t == nil {
		return []Difference{{Field: "linux.seccomp", Captured: presence(c != nil), Translated: presence(t != nil)}}
	}
	var out []Difference
	if c.DefaultAction != t.DefaultAction {
		out = append(out, Difference{Field: "linux.seccomp.defaultAction", Captured: string(c.DefaultAction), Translated: string(t.DefaultAction)})
	}
	if a, b := render(c.DefaultErrnoRet), render(t.DefaultErrnoRet); a != b {
		out = append(out, Difference{Field: "linux.seccomp.defaultErrnoRet", Captured: a, Translated: b})
	}
	arches := func(s *specs.LinuxSeccomp) []string {
		var l []string
		for _, a := range s.Architectures {
			l = append(l, string(a))
		}
		return l
	}
	for _, d := range []struct {
		field string
		a, b  []string
	}{
		{"linux.seccomp.architectures", arches(c), arches(t)},
		{"linux.seccomp.syscalls", SyscallRules(c), SyscallRules(t)},
	} {
		if onlyA, onlyB := setDiff(d.a, d.b); len(onlyA)+len(onlyB) > 0 {
			out = append(out, Difference{Field: d.field, Captured: renderOnly(onlyA), Translated: renderOnly(onlyB), onlyCaptured: onlyA, onlyTranslated: onlyB})
		}
	}
	return out
}

func presence(b bool) string {
	if b {
		return "a filter"
	}
	return "none"
}

// SyscallRules normalises a filter's rules to "name action[errno] args"
// strings, one per syscall name.
func SyscallRules(s *specs.LinuxSeccomp) []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, r := range s.Syscalls {
		rule := string(r.Action)
		if r.ErrnoRet != nil {
			rule += fmt.Sprintf("(errno %d)", *r.ErrnoRet)
		}
		for _, a := range r.Args {
			rule += fmt.Sprintf(" arg%d%s%d", a.Index, a.Op, a.Value)
			if a.ValueTwo != 0 {
				rule += fmt.Sprintf("/%d", a.ValueTwo)
			}
		}
		for _, n := range r.Names {
			out = append(out, n+" "+rule)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// compareNamespaces compares the namespace types and, per type, whether
// it is joined by path or new. The paths themselves name processes of one
// node at one moment and are not compared.
func compareNamespaces(c, t []specs.LinuxNamespace) []Difference {
	state := func(list []specs.LinuxNamespace) map[specs.LinuxNamespaceType]string {
		m := map[specs.LinuxNamespaceType]string{}
		for _, n := range list {
			if n.Path != "" {
				m[n.Type] = "joined"
			} else {
				m[n.Type] = "new"
			}
		}
		return m
	}
	mc, mt := state(c), state(t)
	types := slices.Collect(maps.Keys(mc))
	for k := range mt {
		if _, ok := mc[k]; !ok {
			types = append(types, k)
		}
	}
	slices.Sort(types)
	var out []Difference
	for _, typ := range types {
		a, b := mc[typ], mt[typ]
		if a == b {
			continue
		}
		if a == "" {
			a = "absent (the runtime's own)"
		}
		if b == "" {
			b = "absent (the runtime's own)"
		}
		out = append(out, Difference{Field: "linux.namespaces[" + string(typ) + "]", Captured: a, Translated: b})
	}
	return out
}

func devices(list []specs.LinuxDevice) []string {
	out := make([]string, len(list))
	for i, d := range list {
		out[i] = fmt.Sprintf("%s %s %d:%d", d.Path, d.Type, d.Major, d.Minor)
	}
	return out
}

func deviceRules(r *specs.LinuxResources) []string {
	if r == nil {
		return nil
	}
	var out []string
	for _, d := range r.Devices {
		verb := "deny"
		if d.Allow {
			verb = "allow"
		}
		typ := d.Type
		if typ == "" {
			typ = "a"
		}
		num := func(p *int64) string {
			if p == nil {
				return "*"
			}
			return fmt.Sprint(*p)
		}
		out = append(out, fmt.Sprintf("%s %s %s:%s %s", verb, typ, num(d.Major), num(d.Minor), d.Access))
	}
	return out
}

// compareMounts compares each destination's type and options (sorted).
// Sources are left out: they name files of one node, such as the
// sandbox's /dev/shm.
func compareMounts(c, t []specs.Mount) []Difference {
	key := func(list []specs.Mount) []string {
		var out []string
		for _, m := range list {
			opts := slices.Clone(m.Options)
			slices.Sort(opts)
			out = append(out, fmt.Sprintf("%s %s [%s]", m.Destination, m.Type, strings.Join(opts, ",")))
		}
		return out
	}
	onlyC, onlyT := setDiff(key(c), key(t))
	if len(onlyC)+len(onlyT) == 0 {
		return nil
	}
	return []Difference{{Field: "mounts", Captured: renderOnly(onlyC), Translated: renderOnly(onlyT), onlyCaptured: onlyC, onlyTranslated: onlyT}}
}
