package kubespec

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

// OCIVersion is the runtime-spec version bundles declare. It is the oldest
// that carries every field secrun writes, not the library's newest:
// runtimes check it, and Debian 12's crun 1.8.1 refuses anything from 1.2.0
// on ("unknown version specified"), as older runc releases refuse newer
// majors.
const OCIVersion = "1.1.0"

// DefaultPath is the PATH every container starts with, before the image's
// and the Pod's environment.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultArgs stands in for the image's ENTRYPOINT and CMD when the caller
// has neither: runc refuses a process without arguments, and a tool that
// only sees a manifest cannot know what the image would run.
var DefaultArgs = []string{"/bin/sh"}

// DefaultNoFileLimit is the RLIMIT_NOFILE DefaultSpec gives, soft and hard.
const DefaultNoFileLimit = 1024

// DefaultSpecConfig says what differs between containers in DefaultSpec's
// output. The zero value is a container with namespaces of its own, the
// root at "rootfs" and DefaultArgs.
type DefaultSpecConfig struct {
	// RootPath is root.path, relative to the bundle or absolute; "" means
	// "rootfs", as containerd lays bundles out.
	RootPath string
	// Args is process.args; empty means DefaultArgs.
	Args []string
	// Env is appended after PATH, in order; a later PATH replaces it.
	Env []string
	// Cwd is process.cwd; "" means "/".
	Cwd string
	// Terminal is process.terminal (the Pod's tty: true).
	Terminal bool
	// Hostname is set only where the container has a UTS namespace of its
	// own: runc refuses a hostname without one, and in a joined namespace
	// it would rename the sandbox.
	Hostname string

	// HostNetwork, HostPID and HostIPC leave the container in the node's
	// namespace of that kind, as the Pod fields of the same name do.
	// HostNetwork implies the node's UTS namespace too: the kubelet gives a
	// host-network Pod the node's hostname.
	HostNetwork, HostPID, HostIPC bool
	// NamespacePaths joins existing namespaces, such as the Pod sandbox's
	// /proc/<pid>/ns/net, instead of creating new ones. A type that is
	// also shared with the host is a contradiction and an error.
	NamespacePaths map[specs.LinuxNamespaceType]string
	// UserNamespace is nil for hostUsers: true (the default); otherwise the
	// container gets a user namespace with these mappings.
	UserNamespace *UserNamespaceConfig
	// CgroupNamespace adds a cgroup namespace. containerd adds one on
	// cgroup v2 hosts for unprivileged containers; DefaultSpec leaves the
	// choice to the caller so that its output does not depend on the host
	// it runs on.
	CgroupNamespace bool
	// Rlimits replaces the default RLIMIT_NOFILE 1024:1024 when non-nil;
	// an empty, non-nil slice sets no limits, so the container inherits
	// the runtime's own (what containerd's CRI plugin does).
	Rlimits []specs.POSIXRlimit
}

// UserNamespaceConfig is the user namespace of a hostUsers: false Pod.
type UserNamespaceConfig struct {
	// Path joins an existing user namespace (the sandbox's); then the
	// mappings must still describe it, as runc requires.
	Path        string
	UIDMappings []specs.LinuxIDMapping
	GIDMappings []specs.LinuxIDMapping
}

// DefaultSpec returns the spec containerd's CRI plugin starts a Kubernetes
// container from, before any securityContext field applies: the default
// capability set in bounding, effective and permitted; no_new_privs off
// (the CRI plugin sets it only for allowPrivilegeEscalation: false); the
// kubelet's procMount Default masked and readonly paths; a read-only /sys
// and cgroupfs; a device cgroup that denies everything runc does not add
// itself; namespaces pid, ipc, uts, mount and network.
//
// It differs from a CRI-made spec where a bundle must stand on its own:
// /dev/shm is a tmpfs of the container's own rather than the sandbox's
// (the host's /dev/shm under HostIPC, as the sandbox would have used), and
// the kubelet's /etc/hosts, /etc/resolv.conf and termination-log mounts are
// absent, because they name files on a node.
func DefaultSpec(c DefaultSpecConfig) (*specs.Spec, error) {
	namespaces, err := defaultNamespaces(c)
	if err != nil {
		return nil, err
	}
	root := c.RootPath
	if root == "" {
		root = "rootfs"
	}
	args := slices.Clone(c.Args)
	if len(args) == 0 {
		args = slices.Clone(DefaultArgs)
	}
	cwd := c.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if !strings.HasPrefix(cwd, "/") {
		return nil, fmt.Errorf("workingDir %q: must be an absolute path", cwd)
	}
	rlimits := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: DefaultNoFileLimit, Soft: DefaultNoFileLimit}}
	if c.Rlimits != nil {
		rlimits = slices.Clone(c.Rlimits)
	}
	s := &specs.Spec{
		Version: OCIVersion,
		Root:    &specs.Root{Path: root},
		Process: &specs.Process{
			Terminal: c.Terminal,
			Args:     args,
			Env:      mergeEnv(append([]string{DefaultPath}, c.Env...)),
			Cwd:      cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  slices.Clone(spec.DefaultCapabilities),
				Effective: slices.Clone(spec.DefaultCapabilities),
				Permitted: slices.Clone(spec.DefaultCapabilities),
			},
			Rlimits: rlimits,
		},
		Mounts: defaultMounts(c.HostIPC),
		Linux: &specs.Linux{
			Namespaces:    namespaces,
			MaskedPaths:   spec.KubeletMaskedPaths(),
			ReadonlyPaths: slices.Clone(spec.DefaultReadonlyPaths),
			Resources: &specs.LinuxResources{
				// Deny first: runc appends allow rules for the devices it
				// creates (/dev/null and friends), and nothing else may be
				// opened unless a later option says so.
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
		},
	}
	if own(namespaces, specs.UTSNamespace) {
		s.Hostname = c.Hostname
	}
	if u := c.UserNamespace; u != nil {
		s.Linux.UIDMappings = slices.Clone(u.UIDMappings)
		s.Linux.GIDMappings = slices.Clone(u.GIDMappings)
	}
	return s, nil
}

func defaultNamespaces(c DefaultSpecConfig) ([]specs.LinuxNamespace, error) {
	host := map[specs.LinuxNamespaceType]string{
		specs.NetworkNamespace: "hostNetwork",
		specs.UTSNamespace:     "hostNetwork",
		specs.PIDNamespace:     "hostPID",
		specs.IPCNamespace:     "hostIPC",
	}
	shared := map[specs.LinuxNamespaceType]bool{
		specs.NetworkNamespace: c.HostNetwork,
		specs.UTSNamespace:     c.HostNetwork,
		specs.PIDNamespace:     c.HostPID,
		specs.IPCNamespace:     c.HostIPC,
	}
	for t, p := range c.NamespacePaths {
		switch {
		case p == "":
			return nil, fmt.Errorf("namespace %s: empty path; leave the type out to get a new namespace", t)
		case !strings.HasPrefix(p, "/"):
			return nil, fmt.Errorf("namespace %s: path %q must be absolute", t, p)
		case shared[t]:
			return nil, fmt.Errorf("namespace %s: both %s and a namespace path %s are given; a container cannot be in the host's namespace and the sandbox's", t, host[t], p)
		case t == specs.UserNamespace:
			return nil, errors.New("namespace user: give the user namespace path in UserNamespace.Path, with its mappings")
		case t != specs.NetworkNamespace && t != specs.UTSNamespace && t != specs.PIDNamespace &&
			t != specs.IPCNamespace && t != specs.MountNamespace && t != specs.CgroupNamespace:
			return nil, fmt.Errorf("namespace %q: unknown type", t)
		}
	}
	var out []specs.LinuxNamespace
	for _, t := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.NetworkNamespace} {
		if shared[t] {
			continue
		}
		out = append(out, specs.LinuxNamespace{Type: t, Path: c.NamespacePaths[t]})
	}
	if u := c.UserNamespace; u != nil {
		if len(u.UIDMappings) == 0 || len(u.GIDMappings) == 0 {
			return nil, errors.New("hostUsers: false needs uid and gid mappings for the user namespace")
		}
		if u.Path != "" && !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("namespace user: path %q must be absolute", u.Path)
		}
		out = append(out, specs.LinuxNamespace{Type: specs.UserNamespace, Path: u.Path})
	}
	if c.CgroupNamespace || c.NamespacePaths[specs.CgroupNamespace] != "" {
		out = append(out, specs.LinuxNamespace{Type: specs.CgroupNamespace, Path: c.NamespacePaths[specs.CgroupNamespace]})
	}
	return out, nil
}

// own reports whether the container gets a new namespace of type t.
func own(ns []specs.LinuxNamespace, t specs.LinuxNamespaceType) bool {
	for _, n := range ns {
		if n.Type == t {
			return n.Path == ""
		}
	}
	return false
}

// defaultMounts are containerd's, without /run (the CRI plugin removes it)
// and with the cgroup mount the CRI plugin adds. Every entry is nosuid and
// noexec where containerd has it: a pseudo-filesystem is no place for
// binaries.
func defaultMounts(hostIPC bool) []specs.Mount {
	shm := specs.Mount{
		Destination: "/dev/shm", Type: "tmpfs", Source: "shm",
		Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"},
	}
	if hostIPC {
		// The host's IPC namespace goes with the host's POSIX shared
		// memory, which lives in its /dev/shm.
		shm = specs.Mount{Destination: "/dev/shm", Type: "bind", Source: "/dev/shm", Options: []string{"rbind", "rprivate", "rw"}}
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		shm,
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// mergeEnv keeps the last value of each variable at the position of its
// first appearance, as containerd's WithEnv does: the Pod's PATH replaces
// the default in place.
func mergeEnv(in []string) []string {
	out := make([]string, 0, len(in))
	pos := make(map[string]int, len(in))
	for _, kv := range in {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := pos[k]; ok {
			out[i] = kv
			continue
		}
		pos[k] = len(out)
		out = append(out, kv)
	}
	return out
}
