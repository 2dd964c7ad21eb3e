package spec

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
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

// WithPrivileged gives the container what Kubernetes' privileged: true
// means under containerd: every capability this node can grant, no masked
// or readonly paths, a writable /sys and cgroupfs, every host device and a
// device cgroup that allows them all, and no seccomp filter. An AppArmor
// profile is removed only when it is the runtime default: a Localhost
// profile the Pod named still applies, as in containerd. Capabilities the
// Pod dropped are granted anyway, as containerd does; callers that want to
// say so warn.
func WithPrivileged() Option {
	return func(s *specs.Spec) error {
		if err := WithPrivilegedWithoutHostDevices()(s); err != nil {
			return err
		}
		if err := WithHostDevices("/dev")(s); err != nil {
			return err
		}
		return WithAllDevicesAllowed()(s)
	}
}

// WithPrivilegedWithoutHostDevices is WithPrivileged minus the devices,
// for containerd's privileged_without_host_devices runtimes (a VM-based
// runtime must not see the host's disks), and for output that must not
// depend on the host it was made on.
func WithPrivilegedWithoutHostDevices() Option {
	return func(s *specs.Spec) error {
		setCapabilitySets(ensureCapabilities(s), AllCapabilities())
		l := ensureLinux(s)
		l.MaskedPaths = []string{}
		l.ReadonlyPaths = []string{}
		l.Seccomp = nil
		for i := range s.Mounts {
			m := &s.Mounts[i]
			if m.Type == "sysfs" || m.Type == "cgroup" || m.Type == "cgroup2" ||
				m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup" {
				m.Options = writable(m.Options)
			}
		}
		if s.Process.ApparmorProfile == DefaultAppArmorProfile {
			s.Process.ApparmorProfile = ""
		}
		return nil
	}
}

func writable(opts []string) []string {
	out := slices.DeleteFunc(slices.Clone(opts), func(o string) bool { return o == "ro" || o == "rw" })
	return append(out, "rw")
}

// WithAllDevicesAllowed replaces the device cgroup rules with one that
// allows every device: the rules apply in order, so keeping an earlier
// deny-all in front would be pointless, and keeping later denies would
// not be privileged mode.
func WithAllDevicesAllowed() Option {
	return func(s *specs.Spec) error {
		l := ensureLinux(s)
		if l.Resources == nil {
			l.Resources = &specs.LinuxResources{}
		}
		l.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		return nil
	}
}

// WithHostDevices adds every character and block device below root
// (normally /dev) to linux.devices at the same path, so runc creates them
// in the container. Devices the spec already lists keep their entry.
func WithHostDevices(root string) Option {
	return func(s *specs.Spec) error {
		devs, err := HostDevices(root)
		if err != nil {
			return fmt.Errorf("privileged: host devices: %w", err)
		}
		l := ensureLinux(s)
		have := make(map[string]bool, len(l.Devices))
		for _, d := range l.Devices {
			have[d.Path] = true
		}
		for _, d := range devs {
			if !have[d.Path] {
				l.Devices = append(l.Devices, d)
			}
		}
		return nil
	}
}

// Limits on the walk of /dev: a node has a few hundred devices; a bound
// keeps a pathological /dev (a loop of bind mounts, a million nodes) from
// stalling a create.
const (
	maxHostDevices   = 16384
	maxHostDevDepth  = 8
	maxHostDevVisits = 65536
)

// hostDevSkip are /dev entries that are not the host's devices to share:
// the container gets its own devpts, shm and mqueue, /dev/fd is a link
// into the caller's fds, and the rest are runtime state of other tools
// (runc#2093 for .udev).
var hostDevSkip = []string{"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}

// HostDevices lists the character and block devices below root, sorted
// by path, with each path rewritten to be below /dev. Symlinks are not
// followed (runc would create the target anyway), the console is left
// out (runc sets it up), and unreadable subdirectories are skipped rather
// than failing the container.
func HostDevices(root string) ([]specs.LinuxDevice, error) {
	root = filepath.Clean(root)
	var out []specs.LinuxDevice
	visits := 0
	var walk func(dir string, depth int) error
	walk = func(dir string, depth int) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if dir == root {
				return err
			}
			return nil
		}
		for _, e := range entries {
			if visits++; visits > maxHostDevVisits {
				return fmt.Errorf("more than %d entries below %s", maxHostDevVisits, root)
			}
			p := filepath.Join(dir, e.Name())
			switch {
			case e.IsDir():
				if depth < maxHostDevDepth && !(dir == root && slices.Contains(hostDevSkip, e.Name())) {
					if err := walk(p, depth+1); err != nil {
						return err
					}
				}
				continue
			case dir == root && e.Name() == "console":
				continue
			case e.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0:
				continue
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				continue // removed while we looked
			}
			var typ string
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFCHR:
				typ = "c"
			case unix.S_IFBLK:
				typ = "b"
			default:
				continue
			}
			if len(out) >= maxHostDevices {
				return fmt.Errorf("more than %d devices below %s", maxHostDevices, root)
			}
			rel, _ := filepath.Rel(root, p)
			mode := fs.FileMode(st.Mode & 0o777)
			uid, gid := st.Uid, st.Gid
			out = append(out, specs.LinuxDevice{
				Path:     filepath.Join("/dev", rel),
				Type:     typ,
				Major:    int64(unix.Major(st.Rdev)),
				Minor:    int64(unix.Minor(st.Rdev)),
				FileMode: &mode,
				UID:      &uid,
				GID:      &gid,
			})
		}
		return nil
	}
	if err := walk(root, 0); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b specs.LinuxDevice) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}
