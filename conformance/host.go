package conformance

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/secrun/secrun/conformance/probe/report"
	"golang.org/x/sys/unix"
)

// hostEnv is what the node offers. Some checks only mean something where
// the kernel has the feature (AppArmor, SELinux, kexec); others need the
// node's own capability set ("ALL" and privileged grant what the runtime
// holds, and this machine's root, for one, lacks CAP_SYS_RESOURCE).
type hostEnv struct {
	HeldCaps []string
	AppArmor bool
	// AppArmorParser is apparmor_parser's path, "" if missing.
	AppArmorParser string
	// appArmorLoaded reports whether the kernel has a profile of that
	// name loaded (nil: none is).
	appArmorLoaded func(name string) bool
	SELinux        bool
	// CgroupV2 says /sys/fs/cgroup is a pure cgroup v2 hierarchy.
	CgroupV2  bool
	Kernel    [2]int
	Kexec     bool
	Modules   bool
	MaxUserNS int
	// BlockDevice is a host block device node, for the twin that leaks
	// host devices into a container that must not see them.
	BlockDevice string
	// SandboxSysctls are the sysctls the node's CRI runtime sets on every
	// Pod sandbox that does not set them itself (the Kubernetes target;
	// see containerdSandboxSysctls).
	SandboxSysctls map[string]string
	// PodSandbox says the Pod's sysctls go on a sandbox of their own, as
	// the kubelet and containerd put them (the Kubernetes target): a
	// policy that forbids one refuses the sandbox, so the container is
	// never created and the refusal names sysctls alone.
	PodSandbox bool
	exists     func(string) bool
}

// ioUringDisabled is kernel.io_uring_disabled ("" where the kernel has
// no such sysctl): 1 and 2 refuse io_uring_setup whatever the filter.
func (h *hostEnv) ioUringDisabled() string {
	b, err := os.ReadFile("/proc/sys/kernel/io_uring_disabled")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Reasons for skips that depend on the node.
const (
	reasonNoAppArmor = "AppArmor not enabled in this kernel"
	reasonNoSELinux  = "SELinux not enabled"
)

func detectHost() (*hostEnv, error) {
	h := &hostEnv{exists: func(p string) bool { _, err := os.Stat(p); return err == nil }}
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, fmt.Errorf("read own capabilities: %w", err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			mask, err := report.ParseCapHex(v)
			if err != nil {
				return nil, err
			}
			h.HeldCaps = report.DecodeCapMask(mask)
		}
	}
	if h.HeldCaps == nil {
		return nil, fmt.Errorf("no CapBnd line in /proc/self/status")
	}
	// The same three tests containerd makes.
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil && bytes.HasPrefix(b, []byte("Y")) && h.exists("/sys/kernel/security/apparmor") {
		h.AppArmor = true
		h.appArmorLoaded = appArmorProfileLoaded
	}
	for _, p := range []string{"/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"} {
		if h.exists(p) {
			h.AppArmorParser = p
		}
	}
	h.SELinux = h.exists("/sys/fs/selinux/enforce")
	var cg unix.Statfs_t
	h.CgroupV2 = unix.Statfs("/sys/fs/cgroup", &cg) == nil && cg.Type == unix.CGROUP2_SUPER_MAGIC
	var uts unix.Utsname
	if err := unix.Uname(&uts); err == nil {
		rel := unix.ByteSliceToString(uts.Release[:])
		parts := strings.SplitN(rel, ".", 3)
		if len(parts) >= 2 {
			h.Kernel[0], _ = strconv.Atoi(parts[0])
			minor := strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' })
			h.Kernel[1], _ = strconv.Atoi(minor)
		}
	}
	h.Kexec = h.exists("/sys/kernel/kexec_loaded")
	h.Modules = h.exists("/proc/modules")
	h.MaxUserNS = -1
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil {
		h.MaxUserNS, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if ents, err := os.ReadDir("/sys/dev/block"); err == nil {
		for _, e := range ents {
			// Only a node that exists in /dev can be passed in.
			uevent, err := os.ReadFile(filepath.Join("/sys/dev/block", e.Name(), "uevent"))
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(uevent), "\n") {
				if name, ok := strings.CutPrefix(l, "DEVNAME="); ok && h.BlockDevice == "" {
					if p := "/dev/" + name; isBlockDevice(p) {
						h.BlockDevice = p
					}
				}
			}
		}
	}
	return h, nil
}

// appArmorProfilesFile lists the loaded profiles, one "name (mode)" a
// line (the kernel's security/apparmor/apparmorfs.c, the "profiles" file).
const appArmorProfilesFile = "/sys/kernel/security/apparmor/profiles"

func appArmorProfileLoaded(name string) bool {
	b, err := os.ReadFile(appArmorProfilesFile)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if n, _, ok := strings.Cut(l, " ("); ok && n == name {
			return true
		}
	}
	return false
}

// profileLoaded reports whether the kernel has the AppArmor profile name.
func (h *hostEnv) profileLoaded(name string) bool {
	return h.appArmorLoaded != nil && h.appArmorLoaded(name)
}

func isBlockDevice(p string) bool {
	var st unix.Stat_t
	return unix.Stat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK
}

func (h *hostEnv) kernelAtLeast(major, minor int) bool {
	return h.Kernel[0] > major || h.Kernel[0] == major && h.Kernel[1] >= minor
}

// pathExists reports whether a /proc or /sys path exists on this kernel:
// a container shares the kernel, so an absent path has nothing to hide.
func (h *hostEnv) pathExists(p string) bool { return h.exists(p) }
