package policy

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

// requiredNamespaces are the namespaces every container gets unless its
// Pod shares the host's; the Kubernetes field that shares each one is the
// fix to name. The kubelet shares UTS with hostNetwork
// (pkg/kubelet/kuberuntime/util.go namespacesForPod), and there is no
// field at all for the host's mount namespace.
var requiredNamespaces = []struct {
	t     specs.LinuxNamespaceType
	field string
}{
	{specs.NetworkNamespace, "hostNetwork"},
	{specs.PIDNamespace, "hostPID"},
	{specs.IPCNamespace, "hostIPC"},
	{specs.UTSNamespace, "hostNetwork"},
	{specs.MountNamespace, ""},
}

// checkHostNamespaces reads linux.namespaces the way runc does
// (libcontainer/specconv): a type left out is the runtime's, and so is a
// path that names the runtime's own namespace, since secrun runs where
// runc runs. runc refuses a type twice or one it does not know; so does
// secrun, so that what it checked is the entry runc uses.
func checkHostNamespaces(p *Policy, _ *Env, s *specs.Spec) []Finding {
	if p.AllowHostNamespaces {
		return nil
	}
	var out []Finding
	seen := map[specs.LinuxNamespaceType]bool{}
	if s.Linux != nil {
		for i, ns := range s.Linux.Namespaces {
			// Built only for a finding: this runs on every create.
			field := func() string { return fmt.Sprintf("linux.namespaces[%d]", i) }
			switch {
			case !spec.KnownNamespaceType(ns.Type):
				out = append(out, Finding{Field: field() + ".type", Kubernetes: "pod",
					Problem: fmt.Sprintf("namespace type %q is unknown to runc", ns.Type),
					Fix:     "use one of pid, network, mount, ipc, uts, user, cgroup, time"})
			case seen[ns.Type]:
				out = append(out, Finding{Field: field() + ".type", Kubernetes: "pod",
					Problem: fmt.Sprintf("the %s namespace is listed twice", ns.Type),
					Fix:     "list each namespace type once"})
			}
			seen[ns.Type] = true
		}
	}
	for _, r := range requiredNamespaces {
		ns := spec.Namespace(s, r.t)
		host := ns != nil && spec.IsHostNamespace(r.t, ns.Path)
		if ns != nil && !host {
			continue
		}
		fix := "give the container its own " + string(r.t) + " namespace"
		k8s := "pod"
		if r.field != "" {
			fix = "remove " + r.field + ": true from the Pod spec"
			k8s = "pod." + r.field
		}
		switch {
		case ns == nil:
			out = append(out, Finding{Field: "linux.namespaces", Kubernetes: k8s, Subjects: []string{string(r.t)},
				Problem: fmt.Sprintf("no %s namespace: the container shares the host's", r.t), Fix: fix})
		case host:
			out = append(out, Finding{Field: "linux.namespaces[type=" + string(r.t) + "].path", Kubernetes: k8s, Subjects: []string{string(r.t)},
				Problem: fmt.Sprintf("%s namespace path %s is the host's own %s namespace", r.t, ns.Path, r.t), Fix: fix})
		}
	}
	return out
}
