package manifest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/secrun/secrun/kubespec"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
	corev1 "k8s.io/api/core/v1"
)

// Options are the facts about the node and the image that a manifest does
// not hold. The zero value translates for the newest Kubernetes version,
// with no unsafe sysctl allowed, no AppArmor, Localhost seccomp profiles
// under /var/lib/kubelet/seccomp, and root.path "rootfs".
type Options struct {
	// RootfsPath is written to root.path: relative to the bundle
	// directory (default "rootfs") or absolute.
	RootfsPath string
	// ImageRootfs is the image's root filesystem on this machine, where
	// /etc/passwd and /etc/group name the users and groups. "" means
	// RootfsPath when that is absolute; otherwise no file is read, numeric
	// ids stand as they are and a named user is an error.
	ImageRootfs string
	// ImageUser is the image config's USER, for containers without
	// runAsUser; ImageUsers overrides it per container name.
	ImageUser  string
	ImageUsers map[string]string

	// KubernetesVersion picks the sysctl safe set ("1.31") and whether the
	// legacy seccomp annotations count (up to 1.26); "" means the newest
	// the spec package knows.
	KubernetesVersion string
	// AllowedUnsafeSysctls is the kubelet's --allowed-unsafe-sysctls:
	// names or prefixes ending in "*".
	AllowedUnsafeSysctls []string
	// SeccompProfileRoot holds Localhost profiles; "" means
	// /var/lib/kubelet/seccomp.
	SeccompProfileRoot string
	// SeccompDefault is the kubelet's --seccomp-default.
	SeccompDefault bool
	// AppArmor is the node's AppArmor; nil means a kernel without it
	// (RuntimeDefault is skipped with a warning, Localhost refused).
	AppArmor spec.AppArmorHost
	// SELinux says whether the node has SELinux; nil asks the kernel.
	// Without it seLinuxOptions are left out with a warning, as containerd
	// does; with it every container is labelled, by default with type
	// container_t and the Pod's MCS pair.
	SELinux *bool
	// SELinuxLevel is the Pod's MCS level, shared by the containers that
	// give no seLinuxOptions; "" draws one per Pod. NewSELinuxLevel draws
	// levels (nil: spec.NewMCSLevel).
	SELinuxLevel    string
	NewSELinuxLevel func() string
	// AmbientCapabilities opts in to raising a non-root container's added
	// capabilities into its ambient set (beyond containerd).
	AmbientCapabilities bool
	// PrivilegedWithoutHostDevices keeps the host's devices out of
	// privileged containers; HostDevRoot replaces /dev as their source.
	PrivilegedWithoutHostDevices bool
	HostDevRoot                  string

	// NamespacePaths joins existing namespaces (a sandbox's) by type.
	NamespacePaths map[specs.LinuxNamespaceType]string
	// ContainerPIDNamespaces are the PID namespace paths of the Pod's
	// running containers by name, which an ephemeral container with that
	// targetContainerName joins.
	ContainerPIDNamespaces map[string]string
	// CgroupNamespace gives each container a cgroup namespace, as
	// containerd does on cgroup v2 hosts.
	CgroupNamespace bool
	// UserNamespace maps the ids of a hostUsers: false Pod; nil means
	// container ids 0-65535 on host ids 65536-131071, the first range the
	// kubelet hands out.
	UserNamespace *kubespec.UserNamespaceConfig
	// NodeName stands for spec.nodeName in fieldRef environment variables
	// and is the hostname of host-network Pods.
	NodeName string

	// Containers limits the translation to these container names; nil
	// means every container: init containers first, ephemeral ones last.
	Containers []string
}

// ContainerBundle is one container's OCI runtime spec.
type ContainerBundle struct {
	// Name is the container's name.
	Name string
	// Spec is the config.json to write next to the rootfs.
	Spec *specs.Spec
	// Warnings say what was ignored or skipped and why (windowsOptions,
	// AppArmor on a kernel without it, drops under privileged, ...).
	Warnings []string

	// Path is the container's field path in the document,
	// "spec.containers[0]" or "spec.initContainers[1]".
	Path string
	// Init is true for init containers (sidecars included), Ephemeral for
	// ephemeral containers.
	Init, Ephemeral bool
	// Index is the container's position in its list.
	Index int
	// Image is the container's image, as written.
	Image string
	// Steps names the securityContext steps that applied, in order (see
	// policy.ApplyOrder).
	Steps []string
}

// Annotations secrun sets on each spec, as containerd's CRI plugin does, so
// that the secrun wrapper and policy see a translated bundle as they see
// one from containerd.
const (
	AnnotationContainerType    = "io.kubernetes.cri.container-type"
	AnnotationContainerName    = "io.kubernetes.cri.container-name"
	AnnotationSandboxName      = "io.kubernetes.cri.sandbox-name"
	AnnotationSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	AnnotationImageName        = "io.kubernetes.cri.image-name"
)

// PassedAnnotationPrefix selects the Pod annotations copied into each
// spec: the pod_annotations allowlist secrun's README recommends, which is
// how a Pod's own securityContext intent reaches the wrapper.
const PassedAnnotationPrefix = "secrun.dev/"

// Translate returns one OCI spec per container of w, init containers
// first and ephemeral containers last, in manifest order.
//
// Each spec is kubespec.DefaultSpec for the Pod's namespaces, hostname,
// command, environment and working directory, with the Pod's and the
// container's securityContext applied by kubespec.KubernetesOptions. process.args
// is the container's command followed by its args; the image's ENTRYPOINT
// and CMD are not known here, so a container with neither gets
// kubespec.DefaultArgs (["/bin/sh"]) and one with args only gets the args.
//
// Every container is translated even when one fails: the bundles hold the
// ones that succeeded, and the error joins the failures, each naming the
// workload and the field path to fix.
func Translate(w *Workload, opts Options) ([]ContainerBundle, error) {
	if w == nil || w.PodSpec == nil {
		return nil, errors.New("translate: no workload")
	}
	ps := w.PodSpec
	if ps.OS != nil && ps.OS.Name == corev1.Windows {
		return nil, fmt.Errorf("%s: %s.os.name: windows; a Linux node cannot run Windows containers", w, w.PodPath)
	}
	type ref struct {
		c         *corev1.Container
		path      string
		init      bool
		index     int
		ephemeral *corev1.EphemeralContainer
	}
	var all []ref
	for i := range ps.InitContainers {
		all = append(all, ref{c: &ps.InitContainers[i], path: fmt.Sprintf("%s.initContainers[%d]", w.PodPath, i), init: true, index: i})
	}
	for i := range ps.Containers {
		all = append(all, ref{c: &ps.Containers[i], path: fmt.Sprintf("%s.containers[%d]", w.PodPath, i), index: i})
	}
	// Ephemeral containers (kubectl debug) have a securityContext and go
	// through the same CRI path as the others (kubelet
	// pkg/kubelet/kuberuntime/kuberuntime_container.go, startContainer).
	for i := range ps.EphemeralContainers {
		e := &ps.EphemeralContainers[i]
		c := corev1.Container(e.EphemeralContainerCommon)
		all = append(all, ref{c: &c, path: fmt.Sprintf("%s.ephemeralContainers[%d]", w.PodPath, i), index: i, ephemeral: e})
	}
	if len(opts.Containers) > 0 {
		names := make([]string, len(all))
		for i, r := range all {
			names[i] = r.c.Name
		}
		for _, want := range opts.Containers {
			if !slices.Contains(names, want) {
				msg := fmt.Sprintf("%s has no container %q", w, want)
				if s := spec.Suggest(want, names); s != "" {
					msg += "; did you mean " + s + "?"
				} else {
					msg += "; it has " + strings.Join(names, ", ")
				}
				return nil, errors.New(msg)
			}
		}
		all = slices.DeleteFunc(all, func(r ref) bool { return !slices.Contains(opts.Containers, r.c.Name) })
	}
	var (
		out  []ContainerBundle
		errs []error
	)
	// One pair for the Pod, as containerd draws one for its sandbox and
	// copies it to each container that asks for no label of its own.
	if opts.SELinuxLevel == "" {
		if opts.NewSELinuxLevel != nil {
			opts.SELinuxLevel = opts.NewSELinuxLevel()
		} else {
			opts.SELinuxLevel = spec.NewMCSLevel()
		}
	}
	for _, r := range all {
		o := opts
		target := ""
		if r.ephemeral != nil {
			target = r.ephemeral.TargetContainerName
		}
		if target != "" && !sharesProcessNamespace(ps) {
			// containerd joins the target container's PID namespace
			// (NamespaceMode TARGET, WithPodNamespaces); a bundle can only
			// join it by path.
			if p, ok := opts.ContainerPIDNamespaces[target]; ok {
				o.NamespacePaths = maps.Clone(opts.NamespacePaths)
				if o.NamespacePaths == nil {
					o.NamespacePaths = map[specs.LinuxNamespaceType]string{}
				}
				o.NamespacePaths[specs.PIDNamespace] = p
			}
		}
		b, err := translateContainer(w, r.c, r.path, o)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", w, err))
			continue
		}
		if target != "" && !sharesProcessNamespace(ps) && o.NamespacePaths[specs.PIDNamespace] == "" {
			b.Warnings = append(b.Warnings, fmt.Sprintf("%s.targetContainerName: on a node this container joins %s's process namespace; the bundle has one of its own (give the path with ContainerPIDNamespaces to join it)", r.path, target))
		}
		b.Init, b.Index, b.Ephemeral = r.init, r.index, r.ephemeral != nil
		out = append(out, *b)
	}
	return out, errors.Join(errs...)
}

func translateContainer(w *Workload, c *corev1.Container, path string, opts Options) (*ContainerBundle, error) {
	ps := w.PodSpec
	b := &ContainerBundle{Name: c.Name, Path: path, Image: c.Image}
	warn := func(msg string) {
		if !slices.Contains(b.Warnings, msg) {
			b.Warnings = append(b.Warnings, msg)
		}
	}

	env := containerEnv(w, c, path, opts, warn)
	lookup := func(name string) (string, bool) {
		for i := len(env) - 1; i >= 0; i-- {
			if k, v, _ := strings.Cut(env[i], "="); k == name {
				return v, true
			}
		}
		return "", false
	}
	args := make([]string, 0, len(c.Command)+len(c.Args))
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		args = append(args, expandVars(a, lookup))
	}
	if len(c.Command) == 0 && len(c.Args) > 0 {
		warn(fmt.Sprintf("%s: no command, so args run as the whole command line; the image's ENTRYPOINT is not known here", path))
	}

	hostUsers := ps.HostUsers == nil || *ps.HostUsers
	cfg := kubespec.DefaultSpecConfig{
		RootPath:        opts.RootfsPath,
		Args:            args,
		Env:             env,
		Cwd:             c.WorkingDir,
		Terminal:        c.TTY,
		Hostname:        podHostname(w),
		HostNetwork:     ps.HostNetwork,
		HostPID:         ps.HostPID,
		HostIPC:         ps.HostIPC,
		NamespacePaths:  opts.NamespacePaths,
		CgroupNamespace: opts.CgroupNamespace,
	}
	if !hostUsers {
		if ps.HostNetwork || ps.HostPID || ps.HostIPC {
			return nil, fmt.Errorf("%s.hostUsers: false cannot be combined with hostNetwork, hostPID or hostIPC (the API refuses it); drop one of them", w.PodPath)
		}
		cfg.UserNamespace = opts.UserNamespace
		if cfg.UserNamespace == nil {
			m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 65536, Size: 65536}}
			cfg.UserNamespace = &kubespec.UserNamespaceConfig{UIDMappings: m, GIDMappings: m}
		}
	}
	s, err := kubespec.DefaultSpec(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}

	imageUser := opts.ImageUser
	if u, ok := opts.ImageUsers[c.Name]; ok {
		imageUser = u
	}
	in := kubespec.KubernetesInputs{
		ContainerName:                c.Name,
		ContainerPath:                path,
		PodPath:                      w.PodPath,
		MetadataPath:                 w.MetaPath,
		RootfsPath:                   opts.ImageRootfs,
		ImageUser:                    imageUser,
		KubernetesVersion:            opts.KubernetesVersion,
		Sysctls:                      spec.SysctlPolicy{KubernetesVersion: opts.KubernetesVersion, AllowedUnsafe: opts.AllowedUnsafeSysctls},
		SeccompProfileRoot:           opts.SeccompProfileRoot,
		SeccompDefault:               opts.SeccompDefault,
		AppArmor:                     opts.AppArmor,
		SELinux:                      opts.SELinux,
		SELinuxLevel:                 opts.SELinuxLevel,
		NewSELinuxLevel:              opts.NewSELinuxLevel,
		Annotations:                  w.PodMeta.Annotations,
		HostUsers:                    ps.HostUsers,
		AmbientCapabilities:          opts.AmbientCapabilities,
		PrivilegedWithoutHostDevices: opts.PrivilegedWithoutHostDevices,
		HostDevRoot:                  opts.HostDevRoot,
		Warn:                         warn,
	}
	steps, err := kubespec.KubernetesSteps(PodSecurityContext(ps.SecurityContext), SecurityContext(c.SecurityContext), in)
	if err != nil {
		return nil, err
	}
	for _, st := range steps {
		if err := st.Option(s); err != nil {
			return nil, err
		}
		b.Steps = append(b.Steps, string(st.Name))
	}

	s.Annotations = map[string]string{
		AnnotationContainerType:    "container",
		AnnotationContainerName:    c.Name,
		AnnotationSandboxName:      w.Name,
		AnnotationSandboxNamespace: w.Namespace,
		AnnotationImageName:        c.Image,
	}
	for k, v := range w.PodMeta.Annotations {
		if strings.HasPrefix(k, PassedAnnotationPrefix) {
			s.Annotations[k] = v
		}
	}
	b.Spec = s
	return b, nil
}

// podHostname is the kubelet's: spec.hostname, else the Pod's name, cut
// to the 63 characters a hostname may have.
func podHostname(w *Workload) string {
	h := w.PodSpec.Hostname
	if h == "" {
		h = w.Name
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

// containerEnv builds the environment as containerd passes it on, after
// PATH: HOSTNAME, then the container's env in order, with $(VAR)
// references to earlier variables expanded as the kubelet does. Values
// that only a running cluster knows (Secrets, ConfigMaps, resource
// limits, most fieldRefs) are left out with a warning.
func containerEnv(w *Workload, c *corev1.Container, path string, opts Options, warn func(string)) []string {
	var env []string
	if w.PodSpec.HostNetwork {
		if opts.NodeName != "" {
			env = append(env, "HOSTNAME="+opts.NodeName)
		}
	} else {
		env = append(env, "HOSTNAME="+podHostname(w))
	}
	if len(c.EnvFrom) > 0 {
		warn(fmt.Sprintf("%s.envFrom: left out; ConfigMaps and Secrets are not known outside a cluster", path))
	}
	defined := map[string]string{}
	lookup := func(name string) (string, bool) { v, ok := defined[name]; return v, ok }
	for i, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			var ok bool
			v, ok = fieldRefValue(w, e.ValueFrom, opts)
			if !ok {
				warn(fmt.Sprintf("%s.env[%d] (%s): left out; its valueFrom is only known in a running cluster", path, i, e.Name))
				continue
			}
		} else {
			v = expandVars(v, lookup)
		}
		defined[e.Name] = v
		env = append(env, e.Name+"="+v)
	}
	return env
}

func fieldRefValue(w *Workload, src *corev1.EnvVarSource, opts Options) (string, bool) {
	if src.FieldRef == nil {
		return "", false
	}
	switch src.FieldRef.FieldPath {
	case "metadata.name":
		return w.Name, true
	case "metadata.namespace":
		return w.Namespace, true
	case "spec.nodeName":
		return opts.NodeName, opts.NodeName != ""
	case "spec.serviceAccountName":
		sa := w.PodSpec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		return sa, true
	}
	return "", false
}

// expandVars applies the kubelet's $(VAR) syntax: a defined variable is
// replaced, an undefined reference is kept as written, and $$ escapes a
// dollar sign.
func expandVars(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok && name != "" {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

func sharesProcessNamespace(ps *corev1.PodSpec) bool {
	return ps.ShareProcessNamespace != nil && *ps.ShareProcessNamespace
}
