package spec

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// LooksPrivileged reports whether a bundle carries what Kubernetes'
// privileged: true gives a container: CAP_SYS_ADMIN together with an
// unmasked /proc. Each alone can be a policy finding; together they are
// the privileged mode a policy may refuse as a whole.
func LooksPrivileged(s *specs.Spec) bool {
	if s.Process == nil || s.Process.Capabilities == nil {
		return false
	}
	if !slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") {
		return false
	}
	return s.Linux == nil || len(s.Linux.MaskedPaths) == 0
}

// AllowsAllDevices reports whether the device cgroup lets the container
// open every device node, as privileged mode does.
func AllowsAllDevices(s *specs.Spec) bool {
	if s.Linux == nil || s.Linux.Resources == nil {
		return false
	}
	all := false
	for _, d := range s.Linux.Resources.Devices {
		// Rules apply in order; the last matching rule wins, so a later
		// deny-all undoes an earlier allow-all.
		if (d.Type == "" || d.Type == "a") && d.Major == nil && d.Minor == nil {
			all = d.Allow
		}
	}
	return all
}
