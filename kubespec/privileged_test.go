package kubespec

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/secrun/secrun/spec"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func mustDefaultSpec(t *testing.T, c DefaultSpecConfig) *specs.Spec {
	t.Helper()
	s, err := DefaultSpec(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mountByDest(s *specs.Spec, dest string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dest {
			return &s.Mounts[i]
		}
	}
	return nil
}

// assertPrivileged checks every part of Kubernetes' privileged: true that
// does not depend on the host's devices.
func assertPrivileged(t *testing.T, s *specs.Spec) {
	t.Helper()
	all := spec.AllCapabilities()
	c := s.Process.Capabilities
	for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
		if !slices.Equal(set, all) {
			t.Errorf("%s = %v, want every held capability %v", name, set, all)
		}
	}
	if len(c.Inheritable)+len(c.Ambient) != 0 {
		t.Errorf("inheritable %v ambient %v, want empty", c.Inheritable, c.Ambient)
	}
	if len(s.Linux.MaskedPaths)+len(s.Linux.ReadonlyPaths) != 0 {
		t.Errorf("masked %v readonly %v, want none", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	for _, dest := range []string{"/sys", "/sys/fs/cgroup"} {
		m := mountByDest(s, dest)
		if m == nil || slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "rw") {
			t.Errorf("%s mount %+v, want rw", dest, m)
		}
	}
	if s.Linux.Seccomp != nil {
		t.Error("privileged containers run without seccomp")
	}
	if !spec.AllowsAllDevices(s) {
		t.Errorf("device cgroup %+v does not allow all devices", s.Linux.Resources.Devices)
	}
	if !spec.LooksPrivileged(s) {
		t.Error("LooksPrivileged is false for a privileged spec")
	}
}

func TestWithPrivileged(t *testing.T) {
	s := mustDefaultSpec(t, DefaultSpecConfig{})
	s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActErrno}
	s.Process.ApparmorProfile = spec.DefaultAppArmorProfile
	if err := spec.WithCapabilities(nil, []string{"ALL"})(s); err != nil {
		t.Fatal(err)
	}
	if err := spec.WithPrivileged()(s); err != nil {
		t.Fatal(err)
	}
	assertPrivileged(t, s)
	if s.Process.ApparmorProfile != "" {
		t.Errorf("the runtime default AppArmor profile must not apply to a privileged container, got %q", s.Process.ApparmorProfile)
	}
	if _, err := os.Stat("/dev/null"); err == nil {
		found := false
		for _, d := range s.Linux.Devices {
			if d.Path == "/dev/null" && d.Type == "c" && d.Major == 1 && d.Minor == 3 {
				found = true
			}
		}
		if !found {
			t.Errorf("host device /dev/null missing from %d devices", len(s.Linux.Devices))
		}
	}
}

func TestWithPrivilegedKeepsLocalhostAppArmor(t *testing.T) {
	s := mustDefaultSpec(t, DefaultSpecConfig{})
	s.Process.ApparmorProfile = "k8s-custom"
	if err := spec.WithPrivilegedWithoutHostDevices()(s); err != nil {
		t.Fatal(err)
	}
	if s.Process.ApparmorProfile != "k8s-custom" {
		t.Fatalf("a Localhost profile must survive privileged mode, got %q", s.Process.ApparmorProfile)
	}
	if len(s.Linux.Devices) != 0 {
		t.Fatalf("WithoutHostDevices added %d devices", len(s.Linux.Devices))
	}
}

func TestWithPrivilegedOnBareSpec(t *testing.T) {
	s := &specs.Spec{}
	if err := spec.WithPrivilegedWithoutHostDevices()(s); err != nil {
		t.Fatal(err)
	}
	if err := spec.WithAllDevicesAllowed()(s); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Process.Capabilities.Bounding, spec.AllCapabilities()) || !spec.AllowsAllDevices(s) {
		t.Fatalf("bare spec: %+v", s.Process.Capabilities)
	}
}

// devTree makes a fake /dev with device nodes, which needs CAP_MKNOD.
func devTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mk := func(rel string, mode uint32, major, minor uint32) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mknod(p, mode, int(unix.Mkdev(major, minor))); err != nil {
			if errors.Is(err, unix.EPERM) {
				t.Skip("mknod needs CAP_MKNOD:", err)
			}
			t.Fatal(err)
		}
	}
	mk("null", unix.S_IFCHR|0o666, 1, 3)
	mk("loop0", unix.S_IFBLK|0o660, 7, 0)
	mk("input/event0", unix.S_IFCHR|0o640, 13, 64)
	mk("pts/0", unix.S_IFCHR|0o620, 136, 0)
	mk("shm/x", unix.S_IFCHR|0o600, 1, 3)
	mk("console", unix.S_IFCHR|0o600, 5, 1)
	if err := os.WriteFile(filepath.Join(root, "regular"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("null", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestHostDevices(t *testing.T) {
	root := devTree(t)
	devs, err := spec.HostDevices(root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range devs {
		got = append(got, d.Path+":"+d.Type)
	}
	want := []string{"/dev/input/event0:c", "/dev/loop0:b", "/dev/null:c"}
	if !slices.Equal(got, want) {
		t.Fatalf("devices %v, want %v (pts, shm, console, links, files and FIFOs left out)", got, want)
	}
	st, err := os.Lstat(filepath.Join(root, "loop0"))
	if err != nil {
		t.Fatal(err)
	}
	if d := devs[1]; d.Major != 7 || d.Minor != 0 || d.FileMode == nil || *d.FileMode != st.Mode().Perm() || d.UID == nil || d.GID == nil {
		t.Fatalf("loop0 = %+v, mode want %v", d, st.Mode().Perm())
	}

	s := &specs.Spec{Linux: &specs.Linux{Devices: []specs.LinuxDevice{{Path: "/dev/null", Type: "c", Major: 1, Minor: 3}}}}
	if err := spec.WithHostDevices(root)(s); err != nil {
		t.Fatal(err)
	}
	if len(s.Linux.Devices) != 3 {
		t.Fatalf("a device already listed must not be listed twice: %d devices", len(s.Linux.Devices))
	}
}

func TestHostDevicesMissingRoot(t *testing.T) {
	if _, err := spec.HostDevices(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("a missing device root must be an error")
	}
	if err := spec.WithHostDevices(filepath.Join(t.TempDir(), "none"))(&specs.Spec{}); err == nil {
		t.Fatal("WithHostDevices must fail on a missing root")
	}
}

func TestRealHostDevicesSkipPts(t *testing.T) {
	devs, err := spec.HostDevices("/dev")
	if err != nil {
		t.Skip(err)
	}
	for _, d := range devs {
		if filepath.Dir(d.Path) == "/dev/pts" || d.Path == "/dev/console" {
			t.Errorf("%s must not be passed through", d.Path)
		}
	}
}

func TestAllowsAllDevicesOrder(t *testing.T) {
	s := &specs.Spec{Linux: &specs.Linux{Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
		{Allow: true, Access: "rwm"}, {Allow: false, Access: "rwm"},
	}}}}
	if spec.AllowsAllDevices(s) {
		t.Fatal("a later deny-all undoes an allow-all")
	}
	if spec.AllowsAllDevices(&specs.Spec{}) {
		t.Fatal("no rules is not allow-all")
	}
}
