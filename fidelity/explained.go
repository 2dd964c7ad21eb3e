package fidelity

import (
	"path"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
	corev1 "k8s.io/api/core/v1"
)

// Case is what an explanation may look at: the Pod, the container and
// both specs.
type Case struct {
	Pod        *corev1.Pod
	Container  *corev1.Container
	Privileged bool
	Captured   *specs.Spec
	Translated *specs.Spec
	// Sandbox is the captured pause container's spec; nil when the
	// capture has none.
	Sandbox *specs.Spec
}

// Explanation is a known, deliberate difference between containerd's
// config.json and translate's, with why it is safe to keep and where
// upstream decides it.
type Explanation struct {
	ID string
	// Field is the Difference field this entry is about; one "*" matches
	// any part ("linux.namespaces[*]").
	Field   string
	Summary string
	Reason  string
	// Source names the upstream file (and function) that makes
	// containerd's or the kubelet's side of the difference.
	Source string

	// Match decides a scalar difference.
	Match func(c *Case, d *Difference) bool
	// Elements returns, of a set difference's elements, those this entry
	// explains; the rest stay unexplained.
	Elements func(c *Case, onlyCaptured, onlyTranslated []string) (capExplained, trExplained []string)
}

func (e *Explanation) covers(field string) bool {
	if pre, suf, ok := strings.Cut(e.Field, "*"); ok {
		return len(field) >= len(pre)+len(suf) && strings.HasPrefix(field, pre) && strings.HasSuffix(field, suf)
	}
	return e.Field == field
}

// Explanations is every difference translate keeps on purpose. Each entry
// is pinned by a test that makes the difference and checks that this
// entry, and only it, explains it; docs/translate-fidelity.md is rendered
// from this table (RenderMarkdown).
var Explanations = []Explanation{
	{
		ID:      "apparmor-default-name",
		Field:   "process.apparmorProfile",
		Summary: "RuntimeDefault AppArmor is loaded under secrun's name",
		Reason: "containerd loads its default AppArmor template as cri-containerd.apparmor.d; translate names " +
			"secrun's own load of moby's template, " + spec.DefaultAppArmorProfile + ", which the secrun wrapper loads itself, " +
			"so a bundle does not depend on containerd having loaded its profile first. Both are moby's default profile.",
		Source: "containerd internal/cri/sputil/securityprofile_linux.go (appArmorDefaultProfileName, GenerateApparmorSpecOpts)",
		Match: func(_ *Case, d *Difference) bool {
			return d.Captured == `"cri-containerd.apparmor.d"` && d.Translated == `"`+spec.DefaultAppArmorProfile+`"`
		},
	},
	{
		ID:      "host-namespace-through-sandbox",
		Field:   "linux.namespaces[*]",
		Summary: "a host namespace is joined through the sandbox",
		Reason: "containerd joins every container to its sandbox's network, IPC and UTS namespaces by path " +
			"(/proc/<sandbox>/ns/...), and to its PID namespace unless the PID mode is per container, even when " +
			"the sandbox itself is in the host's namespace (hostNetwork, hostIPC, hostPID). translate leaves the type " +
			"out, which is the host's namespace directly: the same namespace either way.",
		Source: "containerd internal/cri/opts/spec_opts.go (WithPodNamespaces)",
		Match: func(c *Case, d *Difference) bool {
			if d.Captured != "joined" || !strings.HasPrefix(d.Translated, "absent") {
				return false
			}
			ps := &c.Pod.Spec
			switch strings.TrimSuffix(strings.TrimPrefix(d.Field, "linux.namespaces["), "]") {
			case string(specs.NetworkNamespace), string(specs.UTSNamespace):
				return ps.HostNetwork
			case string(specs.IPCNamespace):
				return ps.HostIPC
			case string(specs.PIDNamespace):
				return ps.HostPID
			}
			return false
		},
	},
	{
		ID:      "sysctls-on-sandbox",
		Field:   "linux.sysctl",
		Summary: "Pod sysctls are set on the sandbox, not on each container",
		Reason: "the kubelet sends a Pod's sysctls with the sandbox, and containerd writes them into the pause " +
			"container's config.json only; the containers join its namespaces and see the values. translate writes " +
			"them into each container's bundle, so that a bundle run on its own gets them. When the capture has the " +
			"sandbox's config.json, the values must be there, or the difference stays unexplained.",
		Source: "containerd internal/cri/server/podsandbox/sandbox_run_linux.go (WithSysctls on the sandbox spec)",
		Elements: func(c *Case, onlyC, onlyT []string) ([]string, []string) {
			var want []string
			if sc := c.Pod.Spec.SecurityContext; sc != nil {
				for _, s := range sc.Sysctls {
					want = append(want, spec.NormalizeSysctlName(s.Name)+"="+s.Value)
				}
			}
			var sandbox []string
			if c.Sandbox != nil && c.Sandbox.Linux != nil {
				sandbox = sysctls(c.Sandbox.Linux.Sysctl)
			}
			var exp []string
			for _, e := range onlyT {
				if slices.Contains(want, e) && (c.Sandbox == nil || slices.Contains(sandbox, e)) {
					exp = append(exp, e)
				}
			}
			return nil, exp
		},
	},
	{
		ID:      "seccomp-default-errno",
		Field:   "linux.seccomp.defaultErrnoRet",
		Summary: "an ERRNO default action without errno is EPERM",
		Reason: "containerd's RuntimeDefault profile leaves defaultErrnoRet out; moby's, which translate uses, sets it to 1 " +
			"(EPERM). runc returns EPERM for an ERRNO action without errno, so the filter answers the same.",
		Source: "containerd contrib/seccomp/seccomp_default.go (DefaultProfile); runc libcontainer/seccomp/seccomp_linux.go (actErrno)",
		Match: func(c *Case, d *Difference) bool {
			return d.Captured == "null" && d.Translated == "1" && ruleDefaultAction(c.Captured) == specs.ActErrno
		},
	},
	{
		ID:      "runtime-default-profile",
		Field:   "linux.seccomp.syscalls",
		Summary: "RuntimeDefault is moby's current profile, not containerd's port of an older one",
		Reason: "translate's RuntimeDefault is moby's default profile (github.com/moby/profiles/seccomp), generated for " +
			"the final capabilities and this kernel. containerd ships its own port (contrib/seccomp), which lags it: " +
			"containerd 1.6 still allows io_uring and every socket family, 2.x allows socket families below AF_ALG and " +
			"the lsm_* syscalls whatever the kernel, and neither knows the newest syscalls (cachestat, fchmodat2, " +
			"futex_wait/wake/requeue, the *xattrat and list/statmount calls, map_shadow_stack, mseal, uretprobe, " +
			"riscv_hwprobe); containerd 1.6 also gates process_vm_readv/writev on SYS_PTRACE and name_to_handle_at on " +
			"SYS_ADMIN, which moby allows every container. Only rules for those syscalls are explained; any other rule " +
			"that differs is not.",
		Source: "containerd contrib/seccomp/seccomp_default.go (DefaultProfile, v1.6 and v2.x); moby/profiles seccomp/default_linux.go",
		Elements: func(c *Case, onlyC, onlyT []string) ([]string, []string) {
			if !runtimeDefault(c) {
				return nil, nil
			}
			pick := func(list []string, names []string) []string {
				var out []string
				for _, r := range list {
					name, _, _ := strings.Cut(r, " ")
					if slices.Contains(names, name) {
						out = append(out, r)
					}
				}
				return out
			}
			return pick(onlyC, containerdOnlySyscalls), pick(onlyT, mobyOnlySyscalls)
		},
	},
	{
		ID:      "kubelet-mounts",
		Field:   "mounts",
		Summary: "the kubelet's per-Pod files and volumes are mounted by the node",
		Reason: "the kubelet mounts /etc/hosts, /etc/hostname, /etc/resolv.conf, the termination log, the service " +
			"account token and the Pod's volumes, and containerd binds the sandbox's /dev/shm; these name files on " +
			"one node, which a translated bundle cannot. translate gives the container a /dev/shm of its own instead.",
		Source: "kubelet pkg/kubelet/kubelet_pods.go (makeMounts), pkg/kubelet/kuberuntime/kuberuntime_container.go " +
			"(termination message path); containerd internal/cri/opts/spec_opts.go (WithMounts: /dev/shm from the sandbox)",
		Elements: func(c *Case, onlyC, onlyT []string) ([]string, []string) {
			kubelet := []string{"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev/shm", "/dev/termination-log"}
			if p := c.Container.TerminationMessagePath; p != "" {
				kubelet = append(kubelet, p)
			}
			for _, vm := range c.Container.VolumeMounts {
				kubelet = append(kubelet, path.Clean(vm.MountPath))
			}
			kubelet = append(kubelet, "/var/run/secrets/kubernetes.io/serviceaccount")
			var ec, et []string
			for _, m := range onlyC {
				if slices.Contains(kubelet, mountDest(m)) {
					ec = append(ec, m)
				}
			}
			for _, m := range onlyT {
				if mountDest(m) == "/dev/shm" {
					et = append(et, m)
				}
			}
			return ec, et
		},
	},
}

func mountDest(key string) string {
	d, _, _ := strings.Cut(key, " ")
	return d
}

// explain splits each difference into the part an explanation accounts
// for and the part none does.
func explain(c *Case, diffs []Difference) []Difference {
	var out []Difference
	for _, d := range diffs {
		out = append(out, explainOne(c, d)...)
	}
	return out
}

func explainOne(c *Case, d Difference) []Difference {
	isSet := d.onlyCaptured != nil || d.onlyTranslated != nil
	for i := range Explanations {
		e := &Explanations[i]
		if !e.covers(d.Field) {
			continue
		}
		if !isSet {
			if e.Match != nil && e.Match(c, &d) {
				d.Explanation, d.Reason, d.Source = e.ID, e.Summary, e.Source
				return []Difference{d}
			}
			continue
		}
		if e.Elements == nil {
			continue
		}
		ec, et := e.Elements(c, d.onlyCaptured, d.onlyTranslated)
		// Only elements of this difference count, so that the remainder
		// shrinks on every step.
		ec, et = intersect(ec, d.onlyCaptured), intersect(et, d.onlyTranslated)
		if len(ec)+len(et) == 0 {
			continue
		}
		explained := Difference{
			Field: d.Field, Captured: renderOnly(ec), Translated: renderOnly(et),
			Explanation: e.ID, Reason: e.Summary, Source: e.Source,
		}
		rest := Difference{Field: d.Field, onlyCaptured: without(d.onlyCaptured, ec), onlyTranslated: without(d.onlyTranslated, et)}
		if len(rest.onlyCaptured)+len(rest.onlyTranslated) == 0 {
			return []Difference{explained}
		}
		rest.Captured, rest.Translated = renderOnly(rest.onlyCaptured), renderOnly(rest.onlyTranslated)
		return append([]Difference{explained}, explainOne(c, rest)...)
	}
	return []Difference{d}
}

func intersect(list, keep []string) []string {
	var out []string
	for _, x := range list {
		if slices.Contains(keep, x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func without(list, drop []string) []string {
	out := []string{}
	for _, x := range list {
		if !slices.Contains(drop, x) {
			out = append(out, x)
		}
	}
	return out
}

// containerdOnlySyscalls are allowed by some containerd's RuntimeDefault
// and not by moby's on a given kernel; mobyOnlySyscalls the other way.
// socket is in both: the two filter its address families differently.
var (
	containerdOnlySyscalls = []string{
		"io_uring_enter", "io_uring_register", "io_uring_setup", // containerd 1.6
		"lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr", // 2.x; moby only from kernel 6.8
		"socket",
	}
	mobyOnlySyscalls = []string{
		"cachestat", "fchmodat2", "futex_requeue", "futex_wait", "futex_wake", "getxattrat", "listmount",
		"listxattrat", "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr", "map_shadow_stack",
		"mseal", "removexattrat", "riscv_hwprobe", "set_mempolicy_home_node", "setxattrat", "statmount",
		"uretprobe", "socket",
		"name_to_handle_at", "process_vm_readv", "process_vm_writev", // containerd 1.6 gates them on capabilities
	}
)

// runtimeDefault reports whether the container's seccomp profile is
// RuntimeDefault: its field, else the Pod's, else a filter that can only
// come from the kubelet's --seccomp-default.
func runtimeDefault(c *Case) bool {
	if c.Privileged {
		return false
	}
	if sc := c.Container.SecurityContext; sc != nil && sc.SeccompProfile != nil {
		return sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
	}
	if sc := c.Pod.Spec.SecurityContext; sc != nil && sc.SeccompProfile != nil {
		return sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
	}
	return c.Translated != nil && c.Translated.Linux != nil && c.Translated.Linux.Seccomp != nil
}

func ruleDefaultAction(s *specs.Spec) specs.LinuxSeccompAction {
	if s == nil || s.Linux == nil || s.Linux.Seccomp == nil {
		return ""
	}
	return s.Linux.Seccomp.DefaultAction
}
