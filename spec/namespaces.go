package spec

import (
	"os"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// namespaceProcNames maps the OCI namespace types to their file names in
// /proc/<pid>/ns, and is also the list of types runc knows
// (libcontainer/specconv namespaceMapping): any other type fails in runc.
var namespaceProcNames = map[specs.LinuxNamespaceType]string{
	specs.PIDNamespace:     "pid",
	specs.NetworkNamespace: "net",
	specs.MountNamespace:   "mnt",
	specs.IPCNamespace:     "ipc",
	specs.UTSNamespace:     "uts",
	specs.UserNamespace:    "user",
	specs.CgroupNamespace:  "cgroup",
	specs.TimeNamespace:    "time",
}

// KnownNamespaceType reports whether runc knows the namespace type t.
func KnownNamespaceType(t specs.LinuxNamespaceType) bool {
	_, ok := namespaceProcNames[t]
	return ok
}

// IsHostNamespace reports whether path names the namespace of type t that
// this process is in. secrun runs where the runtime runs, in the host's
// namespaces, so a bundle that "joins" that namespace shares the host's
// exactly as one that leaves the type out. A path that cannot be stat'ed
// answers false: runc fails on it anyway.
func IsHostNamespace(t specs.LinuxNamespaceType, path string) bool {
	name, ok := namespaceProcNames[t]
	if !ok || path == "" {
		return false
	}
	return SameFile(path, "/proc/self/ns/"+name)
}

// SameFile reports whether a and b, links followed, are one inode.
func SameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false
	}
	x, ok1 := sa.Sys().(*syscall.Stat_t)
	y, ok2 := sb.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && x.Dev == y.Dev && x.Ino == y.Ino
}

// Namespace returns the spec's entry for type t, or nil when the container
// shares the runtime's (the host's) namespace of that type.
func Namespace(s *specs.Spec, t specs.LinuxNamespaceType) *specs.LinuxNamespace {
	if s.Linux == nil {
		return nil
	}
	for i := range s.Linux.Namespaces {
		if s.Linux.Namespaces[i].Type == t {
			return &s.Linux.Namespaces[i]
		}
	}
	return nil
}
