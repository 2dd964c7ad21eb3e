package spec

import (
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Sysctls are a Pod-level setting (they go on the sandbox), but every
// container that joins the sandbox's namespaces is affected, so secrun
// checks them wherever a bundle carries them.
//
// The rules follow the kubelet, with three deliberate differences, all
// stricter or clearer:
//   - a name this package does not know is refused with a suggestion: the
//     kubelet lets an allowlisted glob pass a misspelt name through to runc,
//     whose "no such file" error does not say what was meant;
//   - kernel.domainname (UTS namespace, which runc allows but Kubernetes
//     does not) may be allowlisted, and then needs a UTS namespace of the
//     container's own; kernel.hostname is never allowed, because the spec's
//     hostname field sets it and the two would fight;
//   - a namespace entry whose path is the namespace secrun itself runs in is
//     treated as the host's, like a missing entry.

//go:generate go run ./internal/gensysctl -o sysctl_names.txt

// sysctlNamesText lists the sysctls that exist (see internal/gensysctl).
//
//go:embed sysctl_names.txt
var sysctlNamesText string

// Errors a sysctl check wraps, for callers that sort refusals by kind.
var (
	ErrSysctlName     = errors.New("invalid sysctl name")
	ErrSysctlValue    = errors.New("invalid sysctl value")
	ErrSysctlUnknown  = errors.New("unknown sysctl")
	ErrSysctlNode     = errors.New("node-level sysctl")
	ErrSysctlHostNS   = errors.New("sysctl of a namespace shared with the host")
	ErrSysctlUnsafe   = errors.New("unsafe sysctl")
	ErrSysctlHostname = errors.New("hostname sysctl")
	ErrSysctlPolicy   = errors.New("invalid sysctl policy")
)

// SysctlPolicy decides which namespaced sysctls a container may set. The
// zero value allows exactly the safe set of the newest Kubernetes version
// this package knows.
type SysctlPolicy struct {
	// KubernetesVersion picks the safe set, e.g. "1.31" or "v1.31.2": a
	// sysctl joins the safe set in the release that made it safe, and a
	// node must not accept what its kubelet would refuse. "" means the
	// newest version known here.
	KubernetesVersion string

	// AllowedUnsafe is the node admin's allowlist (kubelet
	// --allowed-unsafe-sysctls): exact names, or a prefix ending in "*"
	// ("net.core.*", "kernel.shm*"). "/" separators are accepted. Every
	// entry must stay within namespaced sysctls. An exact entry also
	// vouches that the sysctl exists, so names from kernel modules that
	// were not loaded where sysctl_names.txt was generated can be allowed;
	// a glob does not, so it cannot let a misspelt name through.
	AllowedUnsafe []string
}

// SysctlClass says which namespace isolates a sysctl.
type SysctlClass int

const (
	// NotNamespaced sysctls are node-wide: setting one from a container
	// changes the host. The zero value, so unknown means refused.
	NotNamespaced SysctlClass = iota
	IPCNamespace
	NetNamespace
	UTSNamespace
)

func (c SysctlClass) String() string {
	switch c {
	case IPCNamespace:
		return "ipc"
	case NetNamespace:
		return "network"
	case UTSNamespace:
		return "uts"
	default:
		return "not namespaced"
	}
}

func (c SysctlClass) nsType() specs.LinuxNamespaceType {
	switch c {
	case IPCNamespace:
		return specs.IPCNamespace
	case NetNamespace:
		return specs.NetworkNamespace
	case UTSNamespace:
		return specs.UTSNamespace
	}
	return ""
}

// hostFlag names the Pod field that puts a container in the host's
// namespace of that kind, for error messages.
func (c SysctlClass) hostFlag() string {
	switch c {
	case IPCNamespace:
		return "hostIPC"
	case NetNamespace:
		return "hostNetwork"
	}
	return "a shared UTS namespace"
}

// NormalizeSysctlName returns name with '.' separators. sysctl(8) accepts
// '/' as the separator too, and then a '.' inside a component (a VLAN
// interface "eth0.100") is written '/'. Like the kubelet, the first
// separator in the name tells which convention it uses: if it is '/', every
// '/' and '.' swap; otherwise the name is returned unchanged.
func NormalizeSysctlName(name string) string {
	i := strings.IndexAny(name, "./")
	if i < 0 || name[i] == '.' {
		return name
	}
	b := []byte(name)
	for j, c := range b {
		switch c {
		case '.':
			b[j] = '/'
		case '/':
			b[j] = '.'
		}
	}
	return string(b)
}

// ClassifySysctl says which namespace isolates name ('.' or '/' form),
// using the kubelet's table plus the UTS entries runc knows.
func ClassifySysctl(name string) SysctlClass {
	name = NormalizeSysctlName(name)
	switch {
	case name == "kernel.sem",
		strings.HasPrefix(name, "kernel.shm"),
		strings.HasPrefix(name, "kernel.msg"),
		strings.HasPrefix(name, "fs.mqueue."):
		return IPCNamespace
	case strings.HasPrefix(name, "net."):
		return NetNamespace
	case name == "kernel.domainname", name == "kernel.hostname":
		return UTSNamespace
	}
	return NotNamespaced
}

// safeSysctls lists each safe sysctl with the Kubernetes 1.x minor release
// that made it safe, in that order.
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

func NewestKnownMinor() int { return safeSysctls[len(safeSysctls)-1].since }

// parseKubernetesMinor accepts "1.31", "v1.31", "1.31.2" and pre-release
// or build suffixes ("1.31.0-rc.1", "1.31.2+k3s1"), returning 31. ""
// means the newest minor this package knows.
func ParseKubernetesMinor(v string) (int, error) {
	if v == "" {
		return NewestKnownMinor(), nil
	}
	s := strings.TrimPrefix(v, "v")
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != "1" {
		return 0, fmt.Errorf("%w: Kubernetes version %q: want 1.<minor>, e.g. \"1.31\"", ErrSysctlPolicy, v)
	}
	var minor int
	for i, p := range parts[1:] {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p != strconv.Itoa(n) {
			return 0, fmt.Errorf("%w: Kubernetes version %q: want 1.<minor>, e.g. \"1.31\"", ErrSysctlPolicy, v)
		}
		if i == 0 {
			minor = n
		}
	}
	return minor, nil
}

// SafeSysctls returns the sysctls the kubelet of k8sVersion allows without
// an allowlist ("" means the newest known version), oldest first.
func SafeSysctls(k8sVersion string) ([]string, error) {
	minor, err := ParseKubernetesMinor(k8sVersion)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range safeSysctls {
		if s.since <= minor {
			out = append(out, s.name)
		}
	}
	return out, nil
}

// safeSince returns the minor release that made name safe, or -1.
func safeSince(name string) int {
	for _, s := range safeSysctls {
		if s.name == name {
			return s.since
		}
	}
	return -1
}

// perInterfacePrefixes are the sysctl directories whose next component is a
// network interface; internal/gensysctl writes that component as "*".
var perInterfacePrefixes = []string{
	"net.ipv4.conf.", "net.ipv6.conf.", "net.ipv4.neigh.", "net.ipv6.neigh.", "net.mpls.conf.",
}

type sysctlTable struct {
	set  map[string]struct{}
	list []string // as in the file: sorted, interfaces as "*"
}

var (
	sysctlTableOnce sync.Once
	sysctlTab       *sysctlTable
)

// knownSysctls parses the embedded list on first use: most container
// starts carry no sysctls and should not pay for a 1000-entry map.
func knownSysctls() *sysctlTable {
	sysctlTableOnce.Do(func() {
		t := &sysctlTable{set: make(map[string]struct{}, 1024)}
		for line := range strings.Lines(sysctlNamesText) {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' {
				continue
			}
			t.set[line] = struct{}{}
			t.list = append(t.list, line)
		}
		sysctlTab = t
	})
	return sysctlTab
}

// splitInterface splits a per-interface name into the name with "*" in
// place of the interface, and the interface. ok is false for other names.
func splitInterface(name string) (pattern, iface string, ok bool) {
	for _, p := range perInterfacePrefixes {
		rest, found := strings.CutPrefix(name, p)
		if !found {
			continue
		}
		iface, tail, found := strings.Cut(rest, ".")
		if !found || iface == "" || tail == "" {
			return "", "", false
		}
		return p + "*." + tail, iface, true
	}
	return "", "", false
}

// SysctlKnown reports whether name ('.' or '/' form) is a sysctl this
// package knows exists. Per-interface names are known for any interface
// name the kernel could accept.
func SysctlKnown(name string) bool {
	name = NormalizeSysctlName(name)
	if strings.Contains(name, "*") {
		return false // the table's interface placeholder is not a name
	}
	t := knownSysctls()
	if _, ok := t.set[name]; ok {
		return true
	}
	pattern, iface, ok := splitInterface(name)
	if !ok || !validInterfaceName(iface) {
		return false
	}
	_, ok = t.set[pattern]
	return ok
}

// validInterfaceName checks an interface component in its sysctl spelling
// ('.' written as '/'): at most IFNAMSIZ-1 bytes, no whitespace, not a
// path trick.
func validInterfaceName(iface string) bool {
	if len(iface) == 0 || len(iface) > 15 || iface == "*" {
		return false
	}
	for _, part := range strings.Split(iface, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return !strings.ContainsAny(iface, " \t:")
}

// suggestSysctl finds the known sysctl name is most likely a typo of,
// keeping the interface the caller wrote in per-interface names.
func suggestSysctl(name string) string {
	t := knownSysctls()
	if pattern, iface, ok := splitInterface(name); ok {
		if s := Suggest(pattern, t.list); s != "" {
			return strings.Replace(s, "*", iface, 1)
		}
	}
	s := Suggest(name, t.list)
	if strings.Contains(s, "*") {
		// The typo was in the interface part's parent; show a real
		// spelling rather than the table's placeholder.
		s = strings.Replace(s, "*", "eth0", 1)
	}
	return s
}

// checkSysctlName refuses names that cannot be a sysctl at all. runc turns
// the name into a path below /proc/sys, so anything that could step out of
// it is refused here too, before any table lookup.
func checkSysctlName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrSysctlName)
	}
	if len(name) > 253 {
		return fmt.Errorf("%w: %d characters, more than 253", ErrSysctlName, len(name))
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || r == '=' || r == '*' {
			return fmt.Errorf("%w: %q contains %q", ErrSysctlName, name, r)
		}
	}
	for _, comp := range strings.Split(name, ".") {
		for _, part := range strings.Split(comp, "/") {
			if part == "" || part == ".." {
				return fmt.Errorf("%w: %q has an empty or \"..\" component", ErrSysctlName, name)
			}
		}
	}
	return nil
}

func checkSysctlValue(name, value string) error {
	switch {
	case value == "":
		return fmt.Errorf("%s: %w: the value is empty; give the value to write", name, ErrSysctlValue)
	case strings.ContainsAny(value, "\n\r\x00"):
		return fmt.Errorf("%s: %w: %q contains a newline or NUL; a sysctl takes one line", name, ErrSysctlValue, value)
	}
	return nil
}

// Validate checks the policy itself: a bad version or an allowlist entry
// that would reach node-level sysctls is an admin error, reported as such
// rather than as a refusal of some Pod.
func (p SysctlPolicy) Validate() error {
	if _, err := ParseKubernetesMinor(p.KubernetesVersion); err != nil {
		return err
	}
	for _, raw := range p.AllowedUnsafe {
		if err := checkAllowPattern(raw); err != nil {
			return err
		}
	}
	return nil
}

func checkAllowPattern(raw string) error {
	e := NormalizeSysctlName(raw)
	prefix, glob := strings.CutSuffix(e, "*")
	bad := func(why string) error {
		return fmt.Errorf("%w: AllowedUnsafe entry %q %s", ErrSysctlPolicy, raw, why)
	}
	if strings.Contains(prefix, "*") {
		return bad("may only have \"*\" at its end")
	}
	if !glob {
		if err := checkSysctlName(e); err != nil {
			return bad(fmt.Sprintf("is not a sysctl name: %v", err))
		}
	}
	switch {
	case e == "kernel.hostname" || (glob && strings.HasPrefix("kernel.hostname", prefix) && ClassifySysctl(prefix) == UTSNamespace):
		return bad("would allow kernel.hostname; set the hostname field instead")
	case ClassifySysctl(prefix) == NotNamespaced:
		if glob {
			return bad("would match node-level sysctls; a pattern must start with a namespaced prefix such as net., kernel.shm, kernel.msg or fs.mqueue.")
		}
		return bad("names a node-level sysctl, which no container may set")
	}
	return nil
}

// allowed reports whether name matches an AllowedUnsafe entry; exact tells
// whether an exact (non-glob) entry matched.
func (p SysctlPolicy) allowed(name string) (ok, exact bool) {
	for _, raw := range p.AllowedUnsafe {
		e := NormalizeSysctlName(raw)
		if prefix, glob := strings.CutSuffix(e, "*"); glob {
			if strings.HasPrefix(name, prefix) {
				ok = true
			}
		} else if e == name {
			return true, true
		}
	}
	return ok, false
}

// Check decides whether a container may set sysctl name to value. name
// may use '/' separators. s supplies the namespaces; a nil s skips the
// namespace checks, for validating a request before a spec exists. The
// error names the sysctl and what would fix it.
func (p SysctlPolicy) Check(name, value string, s *specs.Spec) error {
	if err := p.Validate(); err != nil {
		return err
	}
	n := NormalizeSysctlName(name)
	if err := checkSysctlName(n); err != nil {
		return err
	}
	class := ClassifySysctl(n)
	if n == "kernel.hostname" {
		return fmt.Errorf("%s: %w: the container's hostname comes from the spec's hostname field (the Pod's hostname/subdomain); set that instead", n, ErrSysctlHostname)
	}
	allowed, vouched := p.allowed(n)
	if !SysctlKnown(n) && !(vouched && class != NotNamespaced) {
		if sug := suggestSysctl(n); sug != "" {
			if ClassifySysctl(sug) == NotNamespaced {
				return fmt.Errorf("%s: %w; did you mean %s? (that one is node-level, which no Pod may set)", n, ErrSysctlUnknown, sug)
			}
			return fmt.Errorf("%s: %w; did you mean %s?", n, ErrSysctlUnknown, sug)
		}
		return fmt.Errorf("%s: %w: no such sysctl is known; check the spelling (if it comes from a kernel module, the node admin can allow it by its exact name)", n, ErrSysctlUnknown)
	}
	if class == NotNamespaced {
		return fmt.Errorf("%s is a %w: it is not namespaced and would change the host; set it on the node, not in the Pod", n, ErrSysctlNode)
	}
	if err := checkSysctlValue(n, value); err != nil {
		return err
	}
	if s != nil {
		if err := checkSysctlNamespace(n, class, s); err != nil {
			return err
		}
	}
	minor, _ := ParseKubernetesMinor(p.KubernetesVersion) // checked by Validate
	if since := safeSince(n); since >= 0 && since <= minor {
		return nil
	}
	if allowed {
		return nil
	}
	return p.unsafeError(n, class, minor)
}

func (p SysctlPolicy) unsafeError(n string, class SysctlClass, minor int) error {
	version := "1." + strconv.Itoa(minor)
	why := "it is not in the safe set of Kubernetes " + version
	if since := safeSince(n); since > minor {
		why += fmt.Sprintf(" (it is safe from 1.%d)", since)
	}
	how := fmt.Sprintf("the node admin must allowlist %q", n)
	if class != UTSNamespace {
		if i := strings.LastIndexByte(n, '.'); i > 0 {
			how += fmt.Sprintf(" or a pattern such as %q", n[:i+1]+"*")
		}
	}
	return fmt.Errorf("%s: %w: %s; %s (kubelet --allowed-unsafe-sysctls, secrun AllowedUnsafe) or remove it from the Pod", n, ErrSysctlUnsafe, why, how)
}

// checkSysctlNamespace refuses a namespaced sysctl when the container
// would share that namespace with the host: either the spec has no entry
// for it, or its path is the namespace secrun itself runs in. A path to
// another namespace (the Pod sandbox's) is fine: the sysctl then applies
// to the Pod.
func checkSysctlNamespace(n string, class SysctlClass, s *specs.Spec) error {
	t := class.nsType()
	ns := Namespace(s, t)
	if ns != nil && (ns.Path == "" || !IsHostNamespace(t, ns.Path)) {
		return nil
	}
	where := "the spec has no " + string(t) + " namespace"
	if ns != nil {
		where = fmt.Sprintf("its %s namespace path %s is the host's", t, ns.Path)
	}
	fix := "remove the sysctl or give the Pod its own " + string(t) + " namespace (no " + class.hostFlag() + ")"
	return fmt.Errorf("%s: %w: it belongs to the %s namespace, but %s, so it would change the host; %s", n, ErrSysctlHostNS, class, where, fix)
}

// WithSysctls checks every sysctl against p and the spec's namespaces,
// then writes them all to linux.sysctl under their '.' names; if any is
// refused, nothing is written and the error lists every refusal. It must
// come after the options that set namespaces.
func WithSysctls(p SysctlPolicy, sysctls map[string]string) Option {
	return func(s *specs.Spec) error {
		if len(sysctls) == 0 {
			return nil
		}
		if err := p.Validate(); err != nil {
			return err
		}
		norm, errs := normalizeSysctls(sysctls)
		for _, n := range slices.Sorted(maps.Keys(norm)) {
			if err := p.Check(n, norm[n], s); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		l := ensureLinux(s)
		if l.Sysctl == nil {
			l.Sysctl = make(map[string]string, len(norm))
		}
		for k := range l.Sysctl {
			if _, ok := norm[NormalizeSysctlName(k)]; ok {
				delete(l.Sysctl, k) // drop a '/' spelling the new entry replaces
			}
		}
		for n, v := range norm {
			l.Sysctl[n] = v
		}
		return nil
	}
}

// normalizeSysctls rewrites names to '.' form. Two spellings of one sysctl
// are an error: which value wins would depend on map order.
func normalizeSysctls(in map[string]string) (map[string]string, []error) {
	out := make(map[string]string, len(in))
	spelt := make(map[string]string, len(in))
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(in)) {
		n := NormalizeSysctlName(k)
		if prev, dup := spelt[n]; dup {
			errs = append(errs, fmt.Errorf("%s: %w: set twice, as %q and %q; keep one", n, ErrSysctlName, prev, k))
			continue
		}
		spelt[n] = k
		out[n] = in[k]
	}
	return out, errs
}

// CheckSpecSysctls checks the sysctls a bundle already carries, for node
// policy enforcement on specs secrun did not build. It returns every
// refusal, in name order, or nil.
func CheckSpecSysctls(p SysctlPolicy, s *specs.Spec) []error {
	if s == nil || s.Linux == nil || len(s.Linux.Sysctl) == 0 {
		return nil
	}
	if err := p.Validate(); err != nil {
		return []error{err}
	}
	norm, errs := normalizeSysctls(s.Linux.Sysctl)
	for _, n := range slices.Sorted(maps.Keys(norm)) {
		if err := p.Check(n, norm[n], s); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
