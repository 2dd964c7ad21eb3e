package conformance

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/conformance/probe/report"
	"github.com/secrun/secrun/internal/safefile"
	"github.com/secrun/secrun/spec"
)

// The probe image: the static probe as /probe, a root-owned setuid copy
// as /probe-suid for nnp.setuid, /etc/passwd and /etc/group from the
// tables in model.go, an empty /tmp (mode 1777, which runc gives the tmpfs
// mounted over it), and a file the Localhost AppArmor profile denies.

// scratchOwner owns the tmpfs at /tmp, so that cap.fowner has a file of
// another owner to chmod even in a read-only root (probe README).
const scratchOwner = 1234

// makeRootfs builds a probe image in dir. Binaries are hard links to the
// suite's copies: hundreds of containers per run must not copy megabytes
// each.
func (s *suite) makeRootfs(dir string) error {
	for _, d := range []string{"proc", "sys", "dev", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	// runc gives a tmpfs the mode of the directory it covers; chmod
	// because mkdir's mode passes through the umask.
	if err := os.Chmod(tmp, os.ModeSticky|0o777); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	for _, f := range []struct{ src, dst string }{{s.probe, "probe"}, {s.probeSUID, "probe-suid"}} {
		if err := linkOrCopy(f.src, filepath.Join(dir, f.dst)); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	files := []struct {
		path string
		body string
		mode os.FileMode
	}{
		{"etc/passwd", passwdFile(), 0o644},
		{"etc/group", groupFile(), 0o644},
		{strings.TrimPrefix(appArmorDenyPath, "/"), "", 0o666},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.path)
		if err := os.WriteFile(p, []byte(f.body), f.mode); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	return nil
}

func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	return safefile.CopyNew(dst, in, st.Mode())
}

// probeArgs is the container's command: every op, with the sysctls,
// masked and read-only paths its checks look at.
func probeArgs(m *model, h *hostEnv) []string {
	args := []string{"/probe", "-scratch", "/tmp", "-deny-write", appArmorDenyPath}
	if len(m.Sysctls) > 0 {
		args = append(args, "-sysctl", strings.Join(sortedKeys(m.Sysctls), ","))
	}
	var masked, ro []string
	for _, p := range kubeletMaskedPaths {
		if h.pathExists(p) {
			masked = append(masked, p)
		}
	}
	for _, p := range kubeletReadonlyPaths {
		if h.pathExists(p) {
			ro = append(ro, p)
		}
	}
	// An empty flag value would fall back to the probe's defaults.
	if len(masked) > 0 {
		args = append(args, "-masked", strings.Join(masked, ","))
	}
	if len(ro) > 0 {
		args = append(args, "-readonly", strings.Join(ro, ","))
	}
	return append(args, "all")
}

// prepareSpec turns a translated spec into the suite's bundle: the probe
// as the process, a scratch tmpfs, the rootfs path. Nothing security
// related changes: that is what is under test.
func prepareSpec(t *specs.Spec, rootfs string, args []string) (*specs.Spec, error) {
	sp, err := spec.Clone(t)
	if err != nil {
		return nil, err
	}
	if sp.Process == nil {
		sp.Process = &specs.Process{}
	}
	sp.Process.Args = args
	sp.Process.Terminal = false
	sp.Process.Cwd = "/"
	sp.Process.Env = []string{"PATH=/"}
	if sp.Root == nil {
		sp.Root = &specs.Root{}
	}
	sp.Root.Path = rootfs
	sp.Mounts = slices.DeleteFunc(sp.Mounts, func(m specs.Mount) bool { return m.Destination == "/tmp" })
	sp.Mounts = append(sp.Mounts, specs.Mount{
		Destination: "/tmp", Type: "tmpfs", Source: "tmpfs",
		Options: []string{"nosuid", "nodev", "mode=1777", fmt.Sprintf("uid=%d", scratchOwner), "size=16m"},
	})
	if sp.Linux == nil {
		sp.Linux = &specs.Linux{}
	}
	// Every run gets runc's default cgroup (named after the container id):
	// a translated Pod cgroup path would be shared by parallel runs.
	sp.Linux.CgroupsPath = ""
	return sp, nil
}

// materialize turns a model into a bundle built on base (a prepared
// translated spec): the bundle that enforces exactly the model. The
// validity mode runs it (the control) and its broken twins with the bare
// delegate runtime.
func (s *suite) materialize(m *model, base *specs.Spec) (*specs.Spec, error) {
	sp, err := spec.Clone(base)
	if err != nil {
		return nil, err
	}
	if sp.Process == nil {
		sp.Process = &specs.Process{}
	}
	caps := slices.Clone(m.Caps)
	if caps == nil {
		caps = []string{}
	}
	c := &specs.LinuxCapabilities{Bounding: caps, Effective: slices.Clone(caps), Permitted: slices.Clone(caps)}
	if m.Ambient {
		c.Inheritable, c.Ambient = slices.Clone(caps), slices.Clone(caps)
	}
	sp.Process.Capabilities = c
	sp.Process.NoNewPrivileges = m.NNP
	sp.Process.User = specs.User{UID: m.UID, GID: m.GID, AdditionalGids: slices.Clone(m.Groups)}
	sp.Root.Readonly = m.ReadOnlyRoot
	if sp.Linux == nil {
		sp.Linux = &specs.Linux{}
	}
	if sp.Linux.Seccomp, err = s.profileFor(m); err != nil {
		return nil, err
	}
	sp.Linux.Sysctl = nil
	if len(m.Sysctls) > 0 {
		sp.Linux.Sysctl = map[string]string{}
		for k, v := range m.Sysctls {
			sp.Linux.Sysctl[k] = v
		}
	}
	sp.Linux.MaskedPaths = slices.Clone(m.Masked)
	sp.Linux.ReadonlyPaths = slices.Clone(m.Readonly)
	for i := range sp.Mounts {
		if sp.Mounts[i].Type != "sysfs" {
			continue
		}
		opts := slices.DeleteFunc(slices.Clone(sp.Mounts[i].Options), func(o string) bool { return o == "ro" || o == "rw" })
		sp.Mounts[i].Options = append(opts, map[bool]string{true: "rw", false: "ro"}[m.SysRW])
	}
	switch m.AppArmor {
	case "":
		sp.Process.ApparmorProfile = ""
	case spec.AppArmorLocalhost:
		sp.Process.ApparmorProfile = m.AppArmorName
	default:
		if sp.Process.ApparmorProfile == "" {
			sp.Process.ApparmorProfile = spec.DefaultAppArmorProfile
		}
	}
	sp.Process.SelinuxLabel = m.SELinuxLabel
	return sp, nil
}

// fileStat holds a device's numbers.
type fileStat struct{ major, minor int64 }

func statDevice(path string, st *fileStat) error {
	var s unix.Stat_t
	if err := unix.Stat(path, &s); err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	st.major, st.minor = int64(unix.Major(s.Rdev)), int64(unix.Minor(s.Rdev))
	return nil
}

// decodeReport reads the probe's JSON from a container's stdout.
func decodeReport(stdout []byte) (*report.Report, error) {
	if len(strings.TrimSpace(string(stdout))) == 0 {
		return nil, nil
	}
	var r report.Report
	if err := json.Unmarshal(stdout, &r); err != nil {
		return nil, fmt.Errorf("decode the probe's report: %w", err)
	}
	if r.Version != report.Version {
		return nil, fmt.Errorf("the probe's report has version %d, the suite reads %d (rebuild the probe)", r.Version, report.Version)
	}
	return &r, nil
}
