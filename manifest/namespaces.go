package manifest

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

// SandboxNamespacePaths returns the namespaces a container of ps joins
// when its Pod's sandbox (pause) process is sandboxPid, as containerd's
// CRI plugin joins them: network, IPC and UTS always, PID when the Pod
// shares one process namespace. Types the Pod takes from the host
// (hostNetwork, hostIPC, hostPID) are left out: translate expresses those
// by leaving the type out, which is the host's namespace directly, where
// containerd joins the sandbox that is in it (see
// containerd internal/cri/opts/spec_opts.go, WithPodNamespaces). The user
// namespace of a hostUsers: false Pod goes in Options.UserNamespace.
func SandboxNamespacePaths(ps *corev1.PodSpec, sandboxPid int) map[specs.LinuxNamespaceType]string {
	ns := func(kind string) string { return fmt.Sprintf("/proc/%d/ns/%s", sandboxPid, kind) }
	out := map[specs.LinuxNamespaceType]string{}
	if !ps.HostNetwork {
		out[specs.NetworkNamespace] = ns("net")
		out[specs.UTSNamespace] = ns("uts")
	}
	if !ps.HostIPC {
		out[specs.IPCNamespace] = ns("ipc")
	}
	if !ps.HostPID && ps.ShareProcessNamespace != nil && *ps.ShareProcessNamespace {
		out[specs.PIDNamespace] = ns("pid")
	}
	return out
}
