package kubespec

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/secrun/secrun/spec/spectest"

	"github.com/secrun/secrun/spec"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func nsTypes(s *specs.Spec) []string {
	var out []string
	for _, n := range s.Linux.Namespaces {
		e := string(n.Type)
		if n.Path != "" {
			e += "=" + n.Path
		}
		out = append(out, e)
	}
	return out
}

func TestDefaultSpecZero(t *testing.T) {
	s := mustDefaultSpec(t, DefaultSpecConfig{Hostname: "web-0"})
	p := s.Process
	if s.Version != OCIVersion || s.Root.Path != "rootfs" || s.Root.Readonly {
		t.Errorf("version %q root %+v", s.Version, s.Root)
	}
	if !slices.Equal(p.Args, DefaultArgs) || p.Cwd != "/" || p.Terminal {
		t.Errorf("args %v cwd %q terminal %v", p.Args, p.Cwd, p.Terminal)
	}
	if !slices.Equal(p.Env, []string{DefaultPath}) {
		t.Errorf("env %v", p.Env)
	}
	if p.User.UID != 0 || p.User.GID != 0 || p.NoNewPrivileges {
		t.Errorf("user %+v noNewPrivileges %v: containerd starts as root with no_new_privs off", p.User, p.NoNewPrivileges)
	}
	c := p.Capabilities
	for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted} {
		if !slices.Equal(set, spec.DefaultCapabilities) {
			t.Errorf("capability set %v, want the default 14", set)
		}
	}
	if c.Inheritable != nil || c.Ambient != nil {
		t.Errorf("inheritable %v ambient %v", c.Inheritable, c.Ambient)
	}
	if len(p.Rlimits) != 1 || p.Rlimits[0] != (specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}) {
		t.Errorf("rlimits %+v", p.Rlimits)
	}
	if got := nsTypes(s); !slices.Equal(got, []string{"pid", "ipc", "uts", "mount", "network"}) {
		t.Errorf("namespaces %v", got)
	}
	if s.Hostname != "web-0" {
		t.Errorf("hostname %q", s.Hostname)
	}
	if !slices.Equal(s.Linux.MaskedPaths, spec.DefaultMaskedPaths) || !slices.Equal(s.Linux.ReadonlyPaths, spec.DefaultReadonlyPaths) {
		t.Errorf("masked %v readonly %v, want the kubelet's procMount Default", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	var dests []string
	for _, m := range s.Mounts {
		dests = append(dests, m.Destination)
	}
	if want := []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"}; !slices.Equal(dests, want) {
		t.Errorf("mounts %v, want %v (no /run: the CRI plugin drops it)", dests, want)
	}
	for _, d := range []string{"/sys", "/sys/fs/cgroup"} {
		if !slices.Contains(mountByDest(s, d).Options, "ro") {
			t.Errorf("%s must be read-only", d)
		}
	}
	if spec.AllowsAllDevices(s) || len(s.Linux.Resources.Devices) != 1 || s.Linux.Resources.Devices[0].Allow {
		t.Errorf("device cgroup %+v, want deny-all", s.Linux.Resources.Devices)
	}
	if spec.LooksPrivileged(s) || s.Linux.Seccomp != nil || p.ApparmorProfile != "" || p.SelinuxLabel != "" {
		t.Error("the default spec must carry no privilege and no profile")
	}
	// Every call is independent: changing one spec must not leak into
	// the package defaults or the next spec.
	s.Process.Capabilities.Bounding[0] = "CAP_SYS_ADMIN"
	s.Linux.MaskedPaths[0] = "x"
	s.Process.Args[0] = "x"
	again := mustDefaultSpec(t, DefaultSpecConfig{})
	if again.Process.Capabilities.Bounding[0] != spec.DefaultCapabilities[0] || again.Linux.MaskedPaths[0] != spec.DefaultMaskedPaths[0] || again.Process.Args[0] != DefaultArgs[0] {
		t.Error("DefaultSpec shares slices with the package defaults")
	}
}

func TestDefaultSpecConfig(t *testing.T) {
	tests := []struct {
		name   string
		cfg    DefaultSpecConfig
		errHas string
		check  func(t *testing.T, s *specs.Spec)
	}{
		{name: "process fields", cfg: DefaultSpecConfig{RootPath: "/abs/rootfs", Args: []string{"/app", "-v"}, Cwd: "/srv", Terminal: true,
			Env: []string{"A=1", "PATH=/opt/bin", "A=2"}},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Root.Path != "/abs/rootfs" || !slices.Equal(s.Process.Args, []string{"/app", "-v"}) || s.Process.Cwd != "/srv" || !s.Process.Terminal {
					t.Errorf("%+v %+v", s.Root, s.Process)
				}
				if want := []string{"PATH=/opt/bin", "A=2"}; !slices.Equal(s.Process.Env, want) {
					t.Errorf("env %v, want %v (later values replace earlier ones in place)", s.Process.Env, want)
				}
			}},
		{name: "relative working directory", cfg: DefaultSpecConfig{Cwd: "srv"}, errHas: "must be an absolute path"},
		{name: "hostNetwork shares the network and UTS namespaces", cfg: DefaultSpecConfig{HostNetwork: true, Hostname: "pod"},
			check: func(t *testing.T, s *specs.Spec) {
				if got := nsTypes(s); !slices.Equal(got, []string{"pid", "ipc", "mount"}) {
					t.Errorf("namespaces %v", got)
				}
				if s.Hostname != "" {
					t.Errorf("hostname %q set without a UTS namespace; runc would refuse it", s.Hostname)
				}
			}},
		{name: "hostPID and hostIPC", cfg: DefaultSpecConfig{HostPID: true, HostIPC: true},
			check: func(t *testing.T, s *specs.Spec) {
				if got := nsTypes(s); !slices.Equal(got, []string{"uts", "mount", "network"}) {
					t.Errorf("namespaces %v", got)
				}
				if m := mountByDest(s, "/dev/shm"); m.Type != "bind" || m.Source != "/dev/shm" {
					t.Errorf("hostIPC /dev/shm = %+v, want the host's", m)
				}
			}},
		{name: "joined sandbox namespaces", cfg: DefaultSpecConfig{Hostname: "pod", NamespacePaths: map[specs.LinuxNamespaceType]string{
			specs.NetworkNamespace: "/proc/42/ns/net", specs.IPCNamespace: "/proc/42/ns/ipc", specs.UTSNamespace: "/proc/42/ns/uts"}},
			check: func(t *testing.T, s *specs.Spec) {
				want := []string{"pid", "ipc=/proc/42/ns/ipc", "uts=/proc/42/ns/uts", "mount", "network=/proc/42/ns/net"}
				if got := nsTypes(s); !slices.Equal(got, want) {
					t.Errorf("namespaces %v, want %v", got, want)
				}
				if s.Hostname != "" {
					t.Error("a hostname in a joined UTS namespace would rename the sandbox")
				}
			}},
		{name: "hostNetwork and a network path", cfg: DefaultSpecConfig{HostNetwork: true, NamespacePaths: map[specs.LinuxNamespaceType]string{specs.NetworkNamespace: "/proc/1/ns/net"}},
			errHas: "both hostNetwork and a namespace path"},
		{name: "relative namespace path", cfg: DefaultSpecConfig{NamespacePaths: map[specs.LinuxNamespaceType]string{specs.PIDNamespace: "proc/1/ns/pid"}},
			errHas: "must be absolute"},
		{name: "empty namespace path", cfg: DefaultSpecConfig{NamespacePaths: map[specs.LinuxNamespaceType]string{specs.PIDNamespace: ""}},
			errHas: "empty path"},
		{name: "user namespace by path", cfg: DefaultSpecConfig{NamespacePaths: map[specs.LinuxNamespaceType]string{specs.UserNamespace: "/proc/1/ns/user"}},
			errHas: "UserNamespace.Path"},
		{name: "unknown namespace type", cfg: DefaultSpecConfig{NamespacePaths: map[specs.LinuxNamespaceType]string{"time2": "/x"}},
			errHas: "unknown type"},
		{name: "hostUsers false", cfg: DefaultSpecConfig{UserNamespace: &UserNamespaceConfig{
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 65536, Size: 65536}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 65536, Size: 65536}}}},
			check: func(t *testing.T, s *specs.Spec) {
				if !spec.HasNamespace(s, specs.UserNamespace) || len(s.Linux.UIDMappings) != 1 || s.Linux.GIDMappings[0].HostID != 65536 {
					t.Errorf("namespaces %v uid maps %v", nsTypes(s), s.Linux.UIDMappings)
				}
			}},
		{name: "user namespace without mappings", cfg: DefaultSpecConfig{UserNamespace: &UserNamespaceConfig{}}, errHas: "needs uid and gid mappings"},
		{name: "cgroup namespace", cfg: DefaultSpecConfig{CgroupNamespace: true},
			check: func(t *testing.T, s *specs.Spec) {
				if !spec.HasNamespace(s, specs.CgroupNamespace) {
					t.Errorf("namespaces %v", nsTypes(s))
				}
			}},
		{name: "no rlimits", cfg: DefaultSpecConfig{Rlimits: []specs.POSIXRlimit{}},
			check: func(t *testing.T, s *specs.Spec) {
				if len(s.Process.Rlimits) != 0 {
					t.Errorf("rlimits %v", s.Process.Rlimits)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := DefaultSpec(tt.cfg)
			if spectest.ErrorCase(t, err, tt.errHas) {
				return
			}
			tt.check(t, s)
		})
	}
}

// The spec must survive a JSON round trip unchanged: that is how it
// reaches runc.
func TestDefaultSpecJSONRoundTrip(t *testing.T) {
	s := mustDefaultSpec(t, DefaultSpecConfig{Args: []string{"/bin/true"}})
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back specs.Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(&back)
	if string(b) != string(b2) {
		t.Fatalf("round trip changed the spec:\n%s\n%s", b, b2)
	}
}
