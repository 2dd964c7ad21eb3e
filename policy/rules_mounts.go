package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

// Annotations the CRI runtimes set that bind a bundle to its Pod: the
// Pod's uid names its kubelet directory, the sandbox id the runtime's own
// per-Pod files. containerd: internal/cri/annotations; CRI-O:
// pkg/annotations. A Pod cannot set these: containerd copies Pod
// annotations into config.json only when the handler's pod_annotations
// allowlist matches them.
var (
	podUIDAnnotations    = []string{"io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"}
	sandboxIDAnnotations = []string{"io.kubernetes.cri.sandbox-id", "io.kubernetes.cri-o.SandboxID"}
)

func firstAnnotation(s *specs.Spec, keys []string) string {
	for _, k := range keys {
		if v := s.Annotations[k]; v != "" {
			return v
		}
	}
	return ""
}

// isBind reports whether runc bind-mounts m: the type "bind", or the bind
// or rbind option with any type (libcontainer/specconv parseMountOptions).
func isBind(m specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

func mountReadonly(m specs.Mount) bool {
	ro := false
	for _, o := range m.Options {
		switch o {
		case "ro", "rro":
			ro = true
		case "rw":
			ro = false
		}
	}
	return ro
}

// runtimeVolume reports whether source is one of the Pod's own volumes as
// the kubelet and the CRI runtime lay them out, bound to this bundle's
// Pod uid and sandbox id. The shapes are matched from the named directory
// down, wherever the kubelet or runtime root is (--root-dir and the
// runtimes' root settings move it): a hostPath volume that happens to
// have such a shape names the Pod's own uid, which only the runtime sets.
//
//   - kubelet (pkg/kubelet/kubelet_getters.go): pods/<uid>/volumes/<plugin>/<name>
//     (CSI adds /mount), pods/<uid>/volume-subpaths/<volume>/<container>/<index>,
//     pods/<uid>/etc-hosts, pods/<uid>/containers/<container>/<termination log>;
//   - containerd (internal/cri/server/sandbox_run.go and podsandbox):
//     io.containerd.grpc.v1.cri/sandboxes/<sandbox id>/{hostname,hosts,resolv.conf,shm};
//   - CRI-O (internal/storage): overlay-containers/<sandbox or container id>/userdata/<file>.
func runtimeVolume(source, podUID, sandboxID, containerID string) bool {
	parts := strings.Split(strings.TrimPrefix(source, "/"), "/")
	for i := range parts {
		rest := parts[i:]
		switch {
		case podUID != "" && len(rest) >= 3 && rest[0] == "pods" && rest[1] == podUID:
			tail := rest[2:]
			switch {
			case tail[0] == "etc-hosts" && len(tail) == 1,
				tail[0] == "volumes" && len(tail) == 3,
				tail[0] == "volumes" && len(tail) == 4 && tail[1] == "kubernetes.io~csi" && tail[3] == "mount",
				tail[0] == "volume-subpaths" && len(tail) == 4,
				tail[0] == "containers" && len(tail) == 3:
				return noLinksBelow(source, len(parts)-i)
			}
		case sandboxID != "" && len(rest) == 4 && rest[0] == "io.containerd.grpc.v1.cri" && rest[1] == "sandboxes" && rest[2] == sandboxID:
			switch rest[3] {
			case "hostname", "hosts", "resolv.conf", "shm":
				return noLinksBelow(source, len(rest))
			}
		case len(rest) >= 4 && rest[0] == "overlay-containers" && rest[2] == "userdata" && (rest[1] == sandboxID || rest[1] == containerID) && rest[1] != "":
			return noLinksBelow(source, len(rest))
		}
	}
	return false
}

// noLinksBelow reports whether none of the last n components of path is
// a symlink: the runtime writes real files and directories there, and a
// link in a Pod's volume directory is the kubelet subPath escape
// (CVE-2017-1002101) all over again.
func noLinksBelow(path string, n int) bool {
	p := filepath.Clean(path)
	for ; n > 0 && p != "/"; n-- {
		st, err := os.Lstat(p)
		if err == nil && st.Mode()&os.ModeSymlink != 0 {
			return false
		}
		p = filepath.Dir(p)
	}
	return true
}

// under reports whether path is dir or below it, by whole components.
func under(path, dir string) bool {
	dir = filepath.Clean(dir)
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

// hostPathAllowed answers for one bind source, as written and as the
// kernel will resolve it (mount(2) follows links in the source).
func (p *Policy) hostPathAllowed(env *Env, s *specs.Spec, m specs.Mount) (ok bool, why string) {
	src := filepath.Clean(m.Source)
	if !filepath.IsAbs(m.Source) {
		return false, fmt.Sprintf("bind source %q is not an absolute path", m.Source)
	}
	paths := []string{src}
	if real, err := filepath.EvalSymlinks(src); err == nil && real != src {
		paths = append(paths, real)
	}
	podUID, sandboxID := firstAnnotation(s, podUIDAnnotations), firstAnnotation(s, sandboxIDAnnotations)
	containerID := ""
	if env != nil {
		containerID = env.ContainerID
	}
	for _, path := range paths {
		if !p.AllowRuntimeVolumes || !runtimeVolume(path, podUID, sandboxID, containerID) {
			allowed := false
			for _, a := range p.AllowedHostPaths {
				if under(path, a.PathPrefix) {
					if a.ReadOnly && !mountReadonly(m) {
						return false, fmt.Sprintf("host path %s is allowed read-only only (allowedHostPaths %s), and the mount is writable", path, a.PathPrefix)
					}
					allowed = true
					break
				}
			}
			if !allowed {
				return false, fmt.Sprintf("bind mount of host path %s", path)
			}
		}
	}
	return true, ""
}

// mountTypes are the filesystems a container gets from the runtime itself;
// everything else (a block device, overlay with host lowerdirs, nfs,
// debugfs, bpf) reaches the host.
var mountTypes = []string{"proc", "sysfs", "cgroup", "cgroup2", "tmpfs", "devpts", "mqueue"}

// procExceptions are the /proc files runc lets a bind mount cover, for
// lxcfs (libcontainer/rootfs_linux.go checkProcMount).
var procExceptions = []string{"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps", "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev"}

// checkHostPaths: every bind mount's source, the Pod's hostPath volumes
// and whatever else a bundle binds from the host.
func checkHostPaths(p *Policy, env *Env, s *specs.Spec) []Finding {
	// A privileged container reaches the host whatever it mounts: the
	// privileged rule decides it, alone.
	if !p.RestrictHostPaths || spec.LooksPrivileged(s) {
		return nil
	}
	var out []Finding
	for i, m := range s.Mounts {
		if !isBind(m) {
			continue
		}
		if ok, why := p.hostPathAllowed(env, s, m); !ok {
			out = append(out, Finding{Field: fmt.Sprintf("mounts[%d].source", i),
				Problem: why + fmt.Sprintf(" at %s", m.Destination),
				Fix:     fmt.Sprintf("use an emptyDir, configMap, secret, projected or persistentVolumeClaim volume instead of hostPath, or have the admin add the path to allowedHostPaths of policy %s", p.Name)})
		}
	}
	return out
}

// checkMounts covers every other part of mounts and the root: filesystem
// types, where they land, and how they are mounted.
func checkMounts(p *Policy, env *Env, s *specs.Spec) []Finding {
	if !p.RestrictMounts || spec.LooksPrivileged(s) {
		return nil
	}
	var out []Finding
	rootfs := rootfsPath(env, s)
	procs := 0
	for i, m := range s.Mounts {
		add := func(sub, problem, fix string) {
			// The field is built only for a finding: this runs on every create.
			out = append(out, Finding{Field: fmt.Sprintf("mounts[%d]", i) + sub, Problem: problem, Fix: fix})
		}
		bind := isBind(m)
		dest := m.Destination
		if !filepath.IsAbs(dest) || slices.Contains(strings.Split(dest, "/"), "..") {
			add(".destination", fmt.Sprintf("mount destination %q is not a clean absolute path", dest), "use an absolute mountPath without ..")
			continue
		}
		resolved := filepath.Clean(dest)
		if rootfs != "" {
			if r, err := spec.ResolveInRoot(rootfs, dest); err == nil {
				resolved = r
			}
		}
		if !bind && !slices.Contains(mountTypes, m.Type) {
			add(".type", fmt.Sprintf("filesystem type %q at %s is not one the runtime gives containers", m.Type, dest),
				fmt.Sprintf("mount storage through a Kubernetes volume; allowed here: bind mounts of the Pod's volumes and %s", strings.Join(mountTypes, ", ")))
			continue
		}
		switch m.Type {
		case "proc":
			procs++
			if resolved != "/proc" || procs > 1 {
				add("", fmt.Sprintf("a second proc filesystem at %s (%s) would not carry the masks of /proc", dest, resolved), "keep the one proc mount at /proc")
			}
			continue
		case "sysfs", "cgroup", "cgroup2":
			want := "/sys"
			if m.Type != "sysfs" {
				want = "/sys/fs/cgroup"
			}
			if resolved != want {
				add("", fmt.Sprintf("%s mounted at %s; the runtime mounts it only at %s", m.Type, resolved, want), "remove the extra mount")
			} else if !mountReadonly(m) {
				out = append(out, Finding{Field: fmt.Sprintf("mounts[%d].options", i), Fixable: env != nil && env.sandbox,
					Problem: fmt.Sprintf("%s at %s is writable, which lets the container change host kernel and cgroup settings", m.Type, want),
					Fix:     "mount it read-only (only privileged containers get it writable)"})
			}
			continue
		}
		for _, top := range []string{"/proc", "/sys"} {
			if under(resolved, top) && !slices.Contains(procExceptions, resolved) {
				how := ""
				if resolved != filepath.Clean(dest) {
					how = fmt.Sprintf(" (%s resolves to it through the image's symlinks)", dest)
				}
				add(".destination", fmt.Sprintf("a %s mount over %s%s would cover what the runtime masks there", mountKind(m), resolved, how),
					"mount the volume somewhere outside /proc and /sys")
			}
		}
	}
	return append(out, p.checkRoot(env, s)...)
}

func mountKind(m specs.Mount) string {
	if isBind(m) {
		return "bind"
	}
	return m.Type
}

// rootfsPath is root.path as runc finds it: relative to the bundle.
func rootfsPath(env *Env, s *specs.Spec) string {
	if s.Root == nil || s.Root.Path == "" {
		return ""
	}
	if filepath.IsAbs(s.Root.Path) {
		return s.Root.Path
	}
	if env == nil || env.BundleDir == "" {
		return ""
	}
	return filepath.Join(env.BundleDir, s.Root.Path)
}

// checkRoot: the root must be the image the runtime unpacked, inside the
// bundle (containerd) or below a storage root the admin names (CRI-O,
// podman); never the host's / or a directory of it.
func (p *Policy) checkRoot(env *Env, s *specs.Spec) []Finding {
	root := rootfsPath(env, s)
	if root == "" {
		return nil
	}
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		real = filepath.Clean(root)
	}
	bad := func(problem string) []Finding {
		return []Finding{{Field: "root.path", Problem: problem,
			Fix: fmt.Sprintf("use the image's rootfs inside the bundle, or have the admin add its storage directory to allowedRootPaths of policy %s", p.Name)}}
	}
	if spec.SameFile(real, "/") {
		return bad(fmt.Sprintf("root.path %s is the host's root filesystem", s.Root.Path))
	}
	if env != nil && env.BundleDir != "" {
		if b, err := filepath.EvalSymlinks(env.BundleDir); err == nil && strings.HasPrefix(real, b+"/") {
			return nil
		}
	}
	for _, a := range p.AllowedRootPaths {
		if strings.HasPrefix(real, filepath.Clean(a)+"/") {
			return nil
		}
	}
	if env == nil || env.BundleDir == "" {
		return nil // nothing to compare with (explain of a lone config.json)
	}
	return bad(fmt.Sprintf("root.path %s (%s) is outside the bundle and allowedRootPaths", s.Root.Path, real))
}

// checkProcessPaths: the working directory and the executable are chosen
// before the container's /proc exists; pointed into /proc they reach the
// runtime's own descriptors and binary (CVE-2024-21626: cwd
// /proc/self/fd/N; CVE-2019-5736: /proc/self/exe).
func checkProcessPaths(p *Policy, env *Env, s *specs.Spec) []Finding {
	if !p.RestrictMounts || s.Process == nil || spec.LooksPrivileged(s) {
		return nil
	}
	var out []Finding
	bad := func(field, problem string) {
		out = append(out, Finding{Field: field, Problem: problem,
			Fix: "set workingDir and command to paths in the image, outside /proc, /sys and /dev/fd"})
	}
	rootfs := rootfsPath(env, s)
	if cwd := s.Process.Cwd; cwd != "" {
		resolved := filepath.Clean(cwd)
		if rootfs != "" {
			if r, err := spec.ResolveInRoot(rootfs, cwd); err == nil {
				resolved = r
			}
		}
		switch {
		case !filepath.IsAbs(cwd):
			bad("process.cwd", fmt.Sprintf("working directory %q is not absolute", cwd))
		case runtimeInternal(filepath.Clean(cwd)) || runtimeInternal(resolved):
			bad("process.cwd", fmt.Sprintf("working directory %s (%s) is inside /proc, /sys or /dev/fd", cwd, resolved))
		}
	}
	if len(s.Process.Args) > 0 && runtimeInternal(filepath.Clean(s.Process.Args[0])) {
		bad("process.args[0]", fmt.Sprintf("executable %s is inside /proc, /sys or /dev/fd", s.Process.Args[0]))
	}
	return out
}

func runtimeInternal(path string) bool {
	return under(path, "/proc") || under(path, "/sys") || under(path, "/dev/fd")
}

// fixMounts makes a Pod sandbox's sysfs and cgroupfs read-only: the
// kubelet asks for a privileged sandbox when any of the Pod's containers
// is privileged (pkg/kubelet/kuberuntime/kuberuntime_sandbox.go), and
// containerd 2.x then mounts them writable for the pause process, which
// needs neither; the privileged container itself carries the refusal. A
// container that asks for a writable /sys is refused, not rewritten.
func fixMounts(_ *Policy, env *Env, _ *specs.Spec) spec.Option {
	if env == nil || !env.sandbox {
		return nil
	}
	return func(s *specs.Spec) error {
		for i := range s.Mounts {
			m := &s.Mounts[i]
			if (m.Type == "sysfs" && m.Destination == "/sys") || ((m.Type == "cgroup" || m.Type == "cgroup2") && m.Destination == "/sys/fs/cgroup") {
				m.Options = append(slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "rw" || o == "ro" }), "ro")
			}
		}
		return nil
	}
}
