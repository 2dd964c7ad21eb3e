package spec

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultCapabilities is the set containerd (and Docker) give a container
// that asks for nothing: the baseline Kubernetes users expect.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

var knownCaps = sync.OnceValues(func() ([]string, map[string]capability.Cap) {
	list := capability.ListKnown()
	names := make([]string, 0, len(list))
	byName := make(map[string]capability.Cap, len(list))
	for _, c := range list {
		n := "CAP_" + strings.ToUpper(c.String())
		names = append(names, n)
		byName[n] = c
	}
	return names, byName
})

// KnownCapabilities lists every capability name secrun knows, CAP_ prefixed.
func KnownCapabilities() []string {
	names, _ := knownCaps()
	return slices.Clone(names)
}

// NormalizeCapability turns a Kubernetes-style name ("net_admin",
// "NET_ADMIN", "CAP_NET_ADMIN") into the OCI form ("CAP_NET_ADMIN"). An
// unknown name is an error with a suggestion: runc only warns and drops it,
// which turns a typo into a silently missing privilege.
func NormalizeCapability(name string) (string, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if n == "" {
		return "", fmt.Errorf("empty capability name")
	}
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	names, byName := knownCaps()
	if _, ok := byName[n]; ok {
		return n, nil
	}
	msg := fmt.Sprintf("unknown capability %q", name)
	short := make([]string, len(names))
	for i, c := range names {
		short[i] = strings.TrimPrefix(c, "CAP_")
	}
	if s := Suggest(strings.TrimPrefix(n, "CAP_"), short); s != "" {
		msg += fmt.Sprintf(": did you mean %s?", s)
	}
	return "", fmt.Errorf("%s", msg)
}

// NormalizeCapabilities normalises each name; "ALL" is kept as "ALL".
func NormalizeCapabilities(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if strings.EqualFold(strings.TrimSpace(n), "ALL") {
			out = append(out, "ALL")
			continue
		}
		c, err := NormalizeCapability(n)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// lastCap is the highest capability this kernel knows. A name beyond it is
// valid in the API but cannot be granted here.
var lastCap = sync.OnceValues(func() (capability.Cap, error) { return capability.LastCap() })

// LastCapability is the highest capability the running kernel knows.
func LastCapability() (capability.Cap, error) { return lastCap() }

// FakeLastCapability makes the kernel look as old as last until restore
// runs, for tests of what happens to capabilities beyond it: no test
// machine has a kernel that lacks one.
func FakeLastCapability(last capability.Cap) (restore func()) {
	prev := lastCap
	lastCap = func() (capability.Cap, error) { return last, nil }
	return func() { lastCap = prev }
}

// SupportedByKernel reports whether the running kernel knows capability c
// (in OCI form). Unknown kernels (no /proc) are taken to support it.
func SupportedByKernel(c string) bool {
	_, byName := knownCaps()
	v, ok := byName[c]
	if !ok {
		return false
	}
	last, err := lastCap()
	if err != nil {
		return true
	}
	return v <= last
}

// heldCapabilities is what "ALL" means: as containerd does, the
// capabilities this process itself holds in its bounding set. Granting more
// would make runc's capset fail (this machine's root, for one, lacks
// CAP_SYS_RESOURCE).
var heldCapabilities = sync.OnceValue(func() []string {
	names, byName := knownCaps()
	mask, err := readBoundingMask()
	if err != nil {
		out := []string{}
		for _, n := range names {
			if SupportedByKernel(n) {
				out = append(out, n)
			}
		}
		return out
	}
	out := []string{}
	for _, n := range names {
		if bit := uint(byName[n]); bit < 64 && mask&(1<<bit) != 0 {
			out = append(out, n)
		}
	}
	return out
})

// AllCapabilities is the set "ALL" grants on this node.
func AllCapabilities() []string { return slices.Clone(heldCapabilities()) }

func readBoundingMask() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapBnd in /proc/self/status")
}

// WithCapabilities applies a Kubernetes capabilities block with
// containerd's semantics: add ALL grants every held capability, drop ALL
// clears, then single adds, then single drops. Only bounding, effective and
// permitted are touched; inheritable is cleared (CVE-2022-24769) and ambient
// is cleared, because a Kubernetes add never means "inherit across exec".
func WithCapabilities(add, drop []string) Option {
	return func(s *specs.Spec) error {
		a, err := NormalizeCapabilities(add)
		if err != nil {
			return fmt.Errorf("capabilities.add: %w", err)
		}
		d, err := NormalizeCapabilities(drop)
		if err != nil {
			return fmt.Errorf("capabilities.drop: %w", err)
		}
		for _, c := range a {
			if c != "ALL" && !SupportedByKernel(c) {
				return fmt.Errorf("capabilities.add: %s is not supported by this node's kernel; remove it or run the Pod on a newer kernel", strings.TrimPrefix(c, "CAP_"))
			}
		}
		caps := ensureCapabilities(s)
		set := slices.Clone(caps.Bounding)
		if slices.Contains(a, "ALL") {
			set = AllCapabilities()
		}
		if slices.Contains(d, "ALL") {
			set = nil
		}
		for _, c := range a {
			if c != "ALL" && !slices.Contains(set, c) {
				set = append(set, c)
			}
		}
		set = slices.DeleteFunc(set, func(c string) bool { return slices.Contains(d, c) })
		setCapabilitySets(caps, set)
		return nil
	}
}

func setCapabilitySets(caps *specs.LinuxCapabilities, set []string) {
	if set == nil {
		set = []string{}
	}
	caps.Bounding = slices.Clone(set)
	caps.Effective = slices.Clone(set)
	caps.Permitted = slices.Clone(set)
	caps.Inheritable = nil
	caps.Ambient = nil
}

// WithAmbientCapabilities gives a non-root process the named capabilities
// in its inheritable and ambient sets, so that they survive execve into a
// program without file capabilities. This goes beyond containerd
// (kubernetes#56374) and is a policy opt-in: only capabilities already in
// the bounding and permitted sets are raised, and only for non-root users,
// for whom it is the only way an added capability becomes effective.
func WithAmbientCapabilities(names []string) Option {
	return func(s *specs.Spec) error {
		if s.Process == nil || s.Process.User.UID == 0 || len(names) == 0 {
			return nil
		}
		n, err := NormalizeCapabilities(names)
		if err != nil {
			return fmt.Errorf("ambient capabilities: %w", err)
		}
		caps := ensureCapabilities(s)
		for _, c := range n {
			if c == "ALL" || !slices.Contains(caps.Bounding, c) || !slices.Contains(caps.Permitted, c) {
				continue
			}
			if !slices.Contains(caps.Inheritable, c) {
				caps.Inheritable = append(caps.Inheritable, c)
			}
			if !slices.Contains(caps.Ambient, c) {
				caps.Ambient = append(caps.Ambient, c)
			}
			if !slices.Contains(caps.Effective, c) {
				caps.Effective = append(caps.Effective, c)
			}
		}
		return nil
	}
}

// CapabilitiesOutside returns, sorted and without duplicates, every
// capability in any of the process's five sets that is not in allowed.
// allowed holds OCI names; "ALL" in allowed allows everything.
func CapabilitiesOutside(p *specs.Process, allowed []string) []string {
	if p == nil || p.Capabilities == nil || slices.Contains(allowed, "ALL") {
		return nil
	}
	var out []string
	c := p.Capabilities
	for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient} {
		for _, name := range set {
			n := strings.ToUpper(name)
			if !strings.HasPrefix(n, "CAP_") {
				n = "CAP_" + n
			}
			if !slices.Contains(allowed, n) && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// DropCapabilities removes the named capabilities (OCI names) from all five
// sets of the process, leaving the others as they are. Used by hardening:
// it narrows, it never adds.
func DropCapabilities(names []string) Option {
	return func(s *specs.Spec) error {
		if s.Process == nil || s.Process.Capabilities == nil {
			return nil
		}
		DropProcessCapabilities(s.Process, names)
		return nil
	}
}

// DropProcessCapabilities is DropCapabilities for a bare process, the form
// `runc exec --process` takes.
func DropProcessCapabilities(p *specs.Process, names []string) {
	if p == nil || p.Capabilities == nil {
		return
	}
	drop := func(set []string) []string {
		return slices.DeleteFunc(set, func(c string) bool {
			n := strings.ToUpper(c)
			if !strings.HasPrefix(n, "CAP_") {
				n = "CAP_" + n
			}
			return slices.Contains(names, n)
		})
	}
	c := p.Capabilities
	c.Bounding = drop(c.Bounding)
	c.Effective = drop(c.Effective)
	c.Permitted = drop(c.Permitted)
	c.Inheritable = drop(c.Inheritable)
	c.Ambient = drop(c.Ambient)
}
