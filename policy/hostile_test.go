package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

// cleanSpec is a bundle that every non-privileged preset allows in every
// mode: the control each hostile variant differs from by one edit.
func cleanSpec(t *testing.T) (*specs.Spec, *Env) {
	t.Helper()
	s := runcSpec(t)
	caps := []string{"CAP_NET_BIND_SERVICE"}
	s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Permitted: caps, Effective: caps}
	s.Process.User = specs.User{UID: 1000, GID: 1000}
	s.Process.NoNewPrivileges = true
	if err := spec.WithRuntimeDefaultSeccomp()(s); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "rootfs", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := noAppArmor()
	env.BundleDir = dir
	env.SeccompProfileRoot = t.TempDir()
	env.ContainerID = "ctr1"
	return s, env
}

func i64(v int64) *int64 { return &v }

// hostileCases are the ways past a policy that only reads the
// securityContext fields: each is one edit of a clean bundle, and the rule
// and config.json field its refusal must name.
func hostileCases(t *testing.T) map[string]struct {
	edit  func(s *specs.Spec, env *Env)
	rule  string
	field string
} {
	hostNS := func(typ specs.LinuxNamespaceType, self string) func(*specs.Spec, *Env) {
		return func(s *specs.Spec, _ *Env) {
			for i := range s.Linux.Namespaces {
				if s.Linux.Namespaces[i].Type == typ {
					s.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/%s", os.Getpid(), self)
				}
			}
		}
	}
	bind := func(src, dst string, opts ...string) func(*specs.Spec, *Env) {
		return func(s *specs.Spec, _ *Env) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: append([]string{"rbind"}, opts...)})
		}
	}
	hook := func(set func(*specs.Hooks, []specs.Hook)) func(*specs.Spec, *Env) {
		return func(s *specs.Spec, _ *Env) {
			s.Hooks = &specs.Hooks{}
			set(s.Hooks, []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "id > /tmp/pwned"}}})
		}
	}
	symlinkedDest := func(link, target string) func(*specs.Spec, *Env) {
		return func(s *specs.Spec, env *Env) {
			if err := os.Symlink(target, filepath.Join(env.BundleDir, "rootfs", link)); err != nil {
				t.Fatal(err)
			}
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/" + link, Type: "tmpfs", Source: "tmpfs"})
		}
	}
	return map[string]struct {
		edit  func(s *specs.Spec, env *Env)
		rule  string
		field string
	}{
		"createRuntime hook":   {hook(func(h *specs.Hooks, v []specs.Hook) { h.CreateRuntime = v }), "hooks", "hooks.createRuntime[0].path"},
		"prestart hook":        {hook(func(h *specs.Hooks, v []specs.Hook) { h.Prestart = v }), "hooks", "hooks.prestart[0].path"}, //nolint:staticcheck
		"createContainer hook": {hook(func(h *specs.Hooks, v []specs.Hook) { h.CreateContainer = v }), "hooks", "hooks.createContainer[0].path"},
		"startContainer hook":  {hook(func(h *specs.Hooks, v []specs.Hook) { h.StartContainer = v }), "hooks", "hooks.startContainer[0].path"},
		"poststart hook":       {hook(func(h *specs.Hooks, v []specs.Hook) { h.Poststart = v }), "hooks", "hooks.poststart[0].path"},
		"poststop hook":        {hook(func(h *specs.Hooks, v []specs.Hook) { h.Poststop = v }), "hooks", "hooks.poststop[0].path"},
		"host net by path":     {hostNS(specs.NetworkNamespace, "net"), "hostNamespaces", "linux.namespaces[type=network].path"},
		"host pid by path":     {hostNS(specs.PIDNamespace, "pid"), "hostNamespaces", "linux.namespaces[type=pid].path"},
		"host ipc by path":     {hostNS(specs.IPCNamespace, "ipc"), "hostNamespaces", "linux.namespaces[type=ipc].path"},
		"host uts by path":     {hostNS(specs.UTSNamespace, "uts"), "hostNamespaces", "linux.namespaces[type=uts].path"},
		"host mount by path":   {hostNS(specs.MountNamespace, "mnt"), "hostNamespaces", "linux.namespaces[type=mount].path"},
		"no mount namespace": {func(s *specs.Spec, _ *Env) {
			s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.MountNamespace })
		}, "hostNamespaces", "linux.namespaces"},
		"namespace twice": {func(s *specs.Spec, _ *Env) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/self/ns/net"})
		}, "hostNamespaces", "linux.namespaces[5].type"},
		"bind host / rw":           {bind("/", "/host"), "hostPaths", "mounts[7].source"},
		"bind /run/containerd":     {bind("/run/containerd", "/c"), "hostPaths", "mounts[7].source"},
		"bind host /proc on /proc": {bind("/proc", "/proc"), "hostPaths", "mounts[7].source"},
		"bind via symlink to /etc": {func(s *specs.Spec, env *Env) {
			link := filepath.Join(t.TempDir(), "etc-link")
			os.Symlink("/etc", link)
			bind(link, "/x")(s, env)
		}, "hostPaths", "mounts[7].source"},
		"kubelet dir of another Pod": {func(s *specs.Spec, env *Env) {
			s.Annotations = map[string]string{"io.kubernetes.cri.sandbox-uid": "mine"}
			bind("/var/lib/kubelet/pods/theirs/volumes/kubernetes.io~secret/token", "/x")(s, env)
		}, "hostPaths", "mounts[7].source"},
		"second proc mount": {func(s *specs.Spec, _ *Env) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/hostproc", Type: "proc", Source: "proc"})
		}, "mounts", "mounts[7]"},
		"sysfs writable": {func(s *specs.Spec, _ *Env) {
			for i := range s.Mounts {
				if s.Mounts[i].Type == "sysfs" {
					s.Mounts[i].Options = []string{"nosuid", "noexec", "nodev", "rw"}
				}
			}
		}, "mounts", "mounts[5].options"},
		"block device mount": {func(s *specs.Spec, _ *Env) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/disk", Type: "ext4", Source: "/dev/vda"})
		}, "mounts", "mounts[7].type"},
		"overlay with host lowerdir": {func(s *specs.Spec, _ *Env) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/o", Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/etc"}})
		}, "mounts", "mounts[7].type"},
		"tmpfs over /proc/sys": {func(s *specs.Spec, env *Env) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/proc/sys", Type: "tmpfs", Source: "tmpfs"})
		}, "mounts", "mounts[7].destination"},
		"mount through a symlink into /proc": {symlinkedDest("data", "/proc/sys"), "mounts", "mounts[7].destination"},
		"root is the host /":                 {func(s *specs.Spec, _ *Env) { s.Root.Path = "/" }, "mounts", "root.path"},
		"root is a link to /": {func(s *specs.Spec, env *Env) {
			os.Remove(filepath.Join(env.BundleDir, "rootfs", "bin"))
			os.Remove(filepath.Join(env.BundleDir, "rootfs"))
			os.Symlink("/", filepath.Join(env.BundleDir, "rootfs"))
		}, "mounts", "root.path"},
		"root outside the bundle":               {func(s *specs.Spec, _ *Env) { s.Root.Path = t.TempDir() }, "mounts", "root.path"},
		"cwd in /proc/self/fd (CVE-2024-21626)": {func(s *specs.Spec, _ *Env) { s.Process.Cwd = "/proc/self/fd/7" }, "processPaths", "process.cwd"},
		"cwd through an image symlink": {func(s *specs.Spec, env *Env) {
			os.Symlink("/proc/self/fd/7", filepath.Join(env.BundleDir, "rootfs", "work"))
			s.Process.Cwd = "/work"
		}, "processPaths", "process.cwd"},
		"exec /proc/self/exe (CVE-2019-5736)": {func(s *specs.Spec, _ *Env) { s.Process.Args = []string{"/proc/self/exe", "init"} }, "processPaths", "process.args[0]"},
		"device cgroup wildcard -1": {func(s *specs.Spec, _ *Env) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(-1), Minor: i64(-1), Access: "rwm"})
		}, "devices", "linux.resources.devices[1]"},
		"device cgroup b without numbers": {func(s *specs.Spec, _ *Env) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "b", Access: "r"})
		}, "devices", "linux.resources.devices[1]"},
		"device cgroup minor wildcard": {func(s *specs.Spec, _ *Env) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(10), Access: "rw"})
		}, "devices", "linux.resources.devices[1]"},
		"allow every device": {func(s *specs.Spec, _ *Env) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Access: "rwm"})
		}, "devices", "linux.resources.devices[1]"},
		"/dev/kvm": {func(s *specs.Spec, _ *Env) {
			s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{Path: "/dev/kvm", Type: "c", Major: 10, Minor: 232})
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(10), Minor: i64(232), Access: "rwm"})
		}, "devices", "linux.resources.devices[1]"},
		"loop device node": {func(s *specs.Spec, _ *Env) {
			s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{Path: "/dev/loop0", Type: "b", Major: 7, Minor: 0})
		}, "devices", "linux.devices[0]"},
		"userns maps the process to host root": {func(s *specs.Spec, _ *Env) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 1000, HostID: 0, Size: 1}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 1000, HostID: 100000, Size: 1}}
		}, "userNamespace", "linux.uidMappings, linux.gidMappings"},
		"userns maps container root to host root": {func(s *specs.Spec, _ *Env) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 1}, {ContainerID: 1000, HostID: 101000, Size: 1}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 1000, HostID: 101000, Size: 1}}
		}, "userNamespace", "linux.uidMappings, linux.gidMappings"},
		"userns joined by a path secrun cannot read": {func(s *specs.Spec, _ *Env) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/run/userns/x"})
		}, "userNamespace", "linux.namespaces[type=user].path"},
		"oomScoreAdj -1000": {func(s *specs.Spec, _ *Env) { v := -1000; s.Process.OOMScoreAdj = &v }, "oomScoreAdj", "process.oomScoreAdj"},
		"personality ADDR_NO_RANDOMIZE": {func(s *specs.Spec, _ *Env) {
			s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux, Flags: []specs.LinuxPersonalityFlag{"ADDR_NO_RANDOMIZE"}}
		}, "personality", "linux.personality.flags"},
	}
}

func TestHostileBundlesRefused(t *testing.T) {
	for _, preset := range []string{"baseline", "restricted"} {
		for _, mode := range []Mode{Enforce, Harden} {
			t.Run(preset+"/"+string(mode)+"/control", func(t *testing.T) {
				s, env := cleanSpec(t)
				if out := builtin(t, preset, mode).Decide(env, s); out.Refused() {
					t.Fatalf("the clean bundle was refused: %v %v", out.Findings, out.Err)
				}
			})
			for name, tc := range hostileCases(t) {
				t.Run(preset+"/"+string(mode)+"/"+name, func(t *testing.T) {
					s, env := cleanSpec(t)
					tc.edit(s, env)
					out := builtin(t, preset, mode).Decide(env, s)
					if !out.Refused() {
						t.Fatalf("decision %s (changes %v): the hostile bundle got through", out.Decision, out.Changes)
					}
					i := slices.IndexFunc(out.Findings, func(f Finding) bool { return f.Rule == Rule(tc.rule) })
					if i < 0 {
						t.Fatalf("refused, but not by rule %s: %v %v", tc.rule, out.Findings, out.Err)
					}
					f := out.Findings[i]
					if f.Field != tc.field || f.Fix == "" || f.Problem == "" {
						t.Errorf("finding %+v, want field %s with a problem and a fix", f, tc.field)
					}
				})
			}
		}
	}
}

func TestHostilePassUnderPrivileged(t *testing.T) {
	// The privileged preset checks none of it: it is the explicit opt-out
	// for system Pods, and proves each case is refused by its rule.
	for name, tc := range hostileCases(t) {
		t.Run(name, func(t *testing.T) {
			s, env := cleanSpec(t)
			tc.edit(s, env)
			if out := builtin(t, "privileged", Enforce).Decide(env, s); out.Refused() {
				t.Fatalf("privileged refused: %v", out.Findings)
			}
		})
	}
}

func TestPodVolumesAllowed(t *testing.T) {
	// The shapes the kubelet and containerd give a Pod's own volumes,
	// under a kubelet root anywhere on the node.
	kubelet := t.TempDir()
	cri := t.TempDir()
	mk := func(p string, dir bool) string {
		full := filepath.Join(p)
		if dir {
			os.MkdirAll(full, 0o755)
		} else {
			os.MkdirAll(filepath.Dir(full), 0o755)
			os.WriteFile(full, nil, 0o644)
		}
		return full
	}
	pod := filepath.Join(kubelet, "pods", "uid-1")
	sbx := filepath.Join(cri, "io.containerd.grpc.v1.cri", "sandboxes", "sbx-1")
	vols := []string{
		mk(filepath.Join(pod, "volumes", "kubernetes.io~empty-dir", "cache"), true),
		mk(filepath.Join(pod, "volumes", "kubernetes.io~configmap", "conf"), true),
		mk(filepath.Join(pod, "volumes", "kubernetes.io~secret", "creds"), true),
		mk(filepath.Join(pod, "volumes", "kubernetes.io~projected", "kube-api-access-x"), true),
		mk(filepath.Join(pod, "volumes", "kubernetes.io~csi", "pv-1", "mount"), true),
		mk(filepath.Join(pod, "volume-subpaths", "conf", "app", "0"), true),
		mk(filepath.Join(pod, "etc-hosts"), false),
		mk(filepath.Join(pod, "containers", "app", "0f3c"), false),
		mk(filepath.Join(sbx, "hostname"), false),
		mk(filepath.Join(sbx, "resolv.conf"), false),
		mk(filepath.Join(sbx, "shm"), true),
	}
	for _, preset := range []string{"baseline", "restricted"} {
		s, env := cleanSpec(t)
		s.Annotations = map[string]string{"io.kubernetes.cri.sandbox-uid": "uid-1", "io.kubernetes.cri.sandbox-id": "sbx-1"}
		for i, v := range vols {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/v/" + strings.Repeat("x", i+1), Type: "bind", Source: v, Options: []string{"rbind", "rprivate", "rw"}})
		}
		if out := builtin(t, preset, Enforce).Decide(env, s); out.Refused() {
			t.Fatalf("%s refused the Pod's own volumes: %v", preset, out.Findings)
		}
		// The same volume of a Pod whose uid is not this bundle's, and a
		// link planted inside the Pod's volume directory, are refused.
		s, env = cleanSpec(t)
		s.Annotations = map[string]string{"io.kubernetes.cri.sandbox-uid": "uid-2"}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/v", Type: "bind", Source: vols[0], Options: []string{"rbind"}})
		if out := builtin(t, preset, Enforce).Decide(env, s); !out.Refused() {
			t.Fatalf("%s allowed another Pod's volume", preset)
		}
		link := filepath.Join(pod, "volumes", "kubernetes.io~empty-dir", "evil")
		os.Symlink("/etc", link)
		s, env = cleanSpec(t)
		s.Annotations = map[string]string{"io.kubernetes.cri.sandbox-uid": "uid-1"}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/v", Type: "bind", Source: link, Options: []string{"rbind"}})
		if out := builtin(t, preset, Enforce).Decide(env, s); !out.Refused() {
			t.Fatalf("%s followed a link in the Pod's volume directory", preset)
		}
		os.Remove(link)
	}
}

func TestSandboxWritableSysfsHardened(t *testing.T) {
	// containerd 2.x gives the sandbox of a Pod with a privileged
	// container a writable /sys; the sandbox is made read-only, not
	// refused, so the privileged container carries the refusal.
	s, env := cleanSpec(t)
	s.Annotations = map[string]string{"io.kubernetes.cri.container-type": "sandbox"}
	s.Process.Args = []string{"/pause"}
	for i := range s.Mounts {
		if s.Mounts[i].Type == "sysfs" {
			s.Mounts[i].Options = []string{"nosuid", "noexec", "nodev", "rw"}
		}
	}
	out := builtin(t, "baseline", Enforce).Decide(env, s)
	if out.Refused() {
		t.Fatalf("the sandbox was refused: %v", out.Findings)
	}
	for _, m := range s.Mounts {
		if m.Type == "sysfs" && !mountReadonly(m) {
			t.Errorf("sysfs still writable: %v", m.Options)
		}
	}
}

func TestPinnedUserNamespace(t *testing.T) {
	// containerd 2.x: the sandbox joins the user namespace it pinned for
	// the Pod, with the mappings in the spec.
	state := t.TempDir()
	pinned := filepath.Join(state, "io.containerd.grpc.v1.cri", "sandboxes", "sbx-1", "pinned-namespaces", "user")
	os.MkdirAll(filepath.Dir(pinned), 0o755)
	os.WriteFile(pinned, nil, 0o444)
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 65536, Size: 65536}}
	for name, tc := range map[string]struct {
		sandboxID string
		maps      []specs.LinuxIDMapping
		ok        bool
	}{
		"this Pod's pinned namespace":      {"sbx-1", m, true},
		"another Pod's pinned namespace":   {"sbx-2", m, false},
		"pinned, mapping host root":        {"sbx-1", []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 65536}}, false},
		"pinned, without mappings to read": {"sbx-1", nil, false},
	} {
		t.Run(name, func(t *testing.T) {
			s, env := cleanSpec(t)
			s.Annotations = map[string]string{"io.kubernetes.cri.sandbox-id": tc.sandboxID}
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: pinned})
			s.Linux.UIDMappings, s.Linux.GIDMappings = tc.maps, tc.maps
			out := builtin(t, "baseline", Enforce).Decide(env, s)
			if out.Refused() == tc.ok {
				t.Fatalf("decision %s findings %v", out.Decision, out.Findings)
			}
		})
	}
}

func TestAllowedHostPaths(t *testing.T) {
	dir := t.TempDir()
	c, err := ParseConfig([]byte("policies:\n  web:\n    preset: baseline\n    allowedHostPaths:\n    - {pathPrefix: " + dir + ", readOnly: true}\n    allowedHookPaths: [/usr/bin/nvidia-container-runtime-hook]\n    allowedDevices:\n    - {type: c, major: 10, minor: 232}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.Policy("web")
	for name, tc := range map[string]struct {
		edit func(*specs.Spec)
		ok   bool
	}{
		"read-only below the prefix": {func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/d", Type: "bind", Source: dir + "/sub", Options: []string{"rbind", "ro"}})
		}, true},
		"writable below the prefix": {func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/d", Type: "bind", Source: dir, Options: []string{"rbind", "rw"}})
		}, false},
		"a sibling that shares the prefix's letters": {func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/d", Type: "bind", Source: dir + "x", Options: []string{"rbind", "ro"}})
		}, false},
		"allowlisted hook": {func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/usr/bin/nvidia-container-runtime-hook"}}}
		}, true},
		"allowlisted device": {func(s *specs.Spec) {
			s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{Path: "/dev/kvm", Type: "c", Major: 10, Minor: 232})
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(10), Minor: i64(232), Access: "rw"})
		}, true},
	} {
		t.Run(name, func(t *testing.T) {
			s, env := cleanSpec(t)
			tc.edit(s)
			out := p.Decide(env, s)
			if out.Refused() == tc.ok {
				t.Fatalf("decision %s, findings %v", out.Decision, out.Findings)
			}
		})
	}
}
