package spec

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultMaskedPaths and DefaultReadonlyPaths are the kubelet's lists for
// procMount Default (pkg/securitycontext/util.go, v1.37: "kept in sync
// with moby"): paths that leak host state or let a process change the
// host kernel. The kubelet also masks each CPU's thermal_throttle
// directory where the node has one; KubeletMaskedPaths adds those.
var (
	DefaultMaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/proc/scsi", "/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
	DefaultReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// KubeletMaskedPaths is DefaultMaskedPaths plus the thermal_throttle
// directories this node's CPUs have, as the kubelet computes them.
func KubeletMaskedPaths() []string {
	out := slices.Clone(DefaultMaskedPaths)
	thermal, _ := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle")
	slices.SortFunc(thermal, func(a, b string) int { return cpuIndex(a) - cpuIndex(b) })
	return append(out, thermal...)
}

func cpuIndex(path string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(filepath.Dir(path)), "cpu"))
	return n
}

// ProcMount values, as in the Kubernetes API.
const (
	ProcMountDefault  = "Default"
	ProcMountUnmasked = "Unmasked"
)

// WithProcMount applies a Kubernetes procMount. Default adds the kubelet's
// masked and readonly paths (keeping any the bundle already lists);
// Unmasked clears both, which is only safe inside a user namespace, so it
// is refused without one.
func WithProcMount(kind string) Option {
	return func(s *specs.Spec) error {
		switch kind {
		case "", ProcMountDefault:
			l := ensureLinux(s)
			l.MaskedPaths = mergePaths(l.MaskedPaths, KubeletMaskedPaths())
			l.ReadonlyPaths = mergePaths(l.ReadonlyPaths, DefaultReadonlyPaths)
			return nil
		case ProcMountUnmasked:
			if !HasNamespace(s, specs.UserNamespace) {
				return fmt.Errorf("procMount: Unmasked needs a user namespace (hostUsers: false); without one it exposes the host's /proc; use procMount: Default or set hostUsers: false")
			}
			l := ensureLinux(s)
			l.MaskedPaths = []string{}
			l.ReadonlyPaths = []string{}
			return nil
		default:
			return fmt.Errorf("procMount: unknown value %q; use Default or Unmasked", kind)
		}
	}
}

// laterMaskedPaths joined the kubelet's list after runc's and older
// containerd's defaults were set; a bundle without them is still procMount
// Default as those components write it, so their absence alone is not a
// finding (hardening adds them with the rest).
var laterMaskedPaths = []string{"/sys/devices/virtual/powercap", "/proc/interrupts"}

// MissingProcMasks lists the default masked and readonly paths the spec
// lacks. A non-empty answer means /proc is less protected than procMount
// Default.
func MissingProcMasks(s *specs.Spec) (masked, readonly []string) {
	var m, r []string
	if s.Linux != nil {
		m, r = s.Linux.MaskedPaths, s.Linux.ReadonlyPaths
	}
	for _, p := range DefaultMaskedPaths {
		if slices.Contains(laterMaskedPaths, p) {
			continue
		}
		if !slices.Contains(m, p) {
			masked = append(masked, p)
		}
	}
	for _, p := range DefaultReadonlyPaths {
		if !slices.Contains(r, p) {
			readonly = append(readonly, p)
		}
	}
	return masked, readonly
}

func mergePaths(have, want []string) []string {
	out := slices.Clone(have)
	for _, p := range want {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// HasNamespace reports whether the spec asks for a namespace of type t,
// new or joined by path. Absent means the host's.
func HasNamespace(s *specs.Spec, t specs.LinuxNamespaceType) bool { return Namespace(s, t) != nil }
