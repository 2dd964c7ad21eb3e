package cluster

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/internal/testenv"
)

// The kubelet runs in a mount namespace of its own, set up by this same
// binary re-executed with nodeNamespaceEnv holding an nsSpec: the process
// unshares its mount namespace, lays the stand-ins over what the kubelet
// would change on the host, checks them, and execs the kubelet. Mounts
// of the kubelet's root directory (volumes) must still reach containerd,
// which runs in the host's namespace: the parent makes that directory a
// shared mount before the kubelet starts, and the helper leaves its
// propagation alone.
const nodeNamespaceEnv = "SECRUN_K8S_NODE_NAMESPACE"

// iptablesMarker is in the stand-in for every iptables binary; the helper
// refuses to start the kubelet unless `iptables` resolves to it.
const iptablesMarker = "secrun-k8s-iptables-stand-in"

type nsSpec struct {
	// Dir holds the stand-ins: copies of /proc/sys subtrees, the
	// iptables stand-in and its log.
	Dir string
	// Sysctl are /proc/sys subtrees replaced by copies the kubelet may
	// write to.
	Sysctl []string
	// Shadow are the real files behind every iptables-like command.
	Shadow []string
	// Tmpfs are directories covered by an empty tmpfs: /var/log, where
	// the kubelet links container logs into /var/log/containers whatever
	// its configuration, and /var/lib, where its device manager puts
	// /var/lib/kubelet/device-plugins/kubelet.sock whatever --root-dir
	// says (k8s.io/kubelet/pkg/apis/deviceplugin: KubeletSocket). The
	// cluster's own directory must therefore not be under either.
	Tmpfs []string
	Argv  []string
	Env   []string
}

// NamespaceReport is what the helper set up, written to Dir/namespace.json.
type NamespaceReport struct {
	SysctlCopies map[string]string `json:"sysctlCopies"`
	Shadowed     []string          `json:"shadowedIptables"`
	IPTablesSeen string            `json:"iptablesResolvesTo"`
	Tmpfs        []string          `json:"tmpfs"`
}

// NamespaceHelper turns this process into the kubelet's namespace helper
// when it was started as one, and never returns then. Call it first thing
// in main and in TestMain.
func NamespaceHelper() {
	raw := os.Getenv(nodeNamespaceEnv)
	if raw == "" {
		return
	}
	var spec nsSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "kubelet namespace: %s: %v\n", nodeNamespaceEnv, err)
		os.Exit(125)
	}
	if err := enterNodeNamespace(&spec); err != nil {
		fmt.Fprintf(os.Stderr, "kubelet namespace: %v\n", err)
		os.Exit(125)
	}
	// Not reached.
	os.Exit(125)
}

func enterNodeNamespace(spec *nsSpec) error {
	// The mount namespace belongs to this thread; exec from it.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare the mount namespace: %w", err)
	}
	rep := NamespaceReport{SysctlCopies: map[string]string{}}
	// Each mount below goes on a mount point whose parent mount is made
	// private first (not recursively: the kubelet's shared root dir
	// keeps propagating), so none of them shows up on the host even
	// where the host's mounts are shared.
	private := func(target string) error {
		mp, err := mountPointOf(target)
		if err != nil {
			return err
		}
		if err := unix.Mount("", mp, "", unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("make %s private: %w", mp, err)
		}
		return nil
	}
	for _, sub := range spec.Sysctl {
		src := filepath.Join("/proc/sys", sub)
		cp := filepath.Join(spec.Dir, "sysctl", sub)
		if err := copyTree(src, cp); err != nil {
			return err
		}
		if err := private(src); err != nil {
			return err
		}
		if err := unix.Mount(cp, src, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s over %s: %w", cp, src, err)
		}
		rep.SysctlCopies[src] = cp
	}
	standIn := filepath.Join(spec.Dir, "iptables-stand-in")
	script := fmt.Sprintf("#!/bin/sh\n# %s: the kubelet of secrun's test cluster must not change the host's firewall.\necho \"$0 $*\" >> %s\necho \"iptables is not available to this kubelet (secrun test cluster)\" >&2\nexit 1\n",
		iptablesMarker, filepath.Join(spec.Dir, "iptables-calls.log"))
	if err := os.WriteFile(standIn, []byte(script), 0o755); err != nil {
		return err
	}
	for _, f := range spec.Shadow {
		if err := private(f); err != nil {
			return err
		}
		if err := unix.Mount(standIn, f, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind the iptables stand-in over %s: %w", f, err)
		}
		rep.Shadowed = append(rep.Shadowed, f)
	}
	for _, d := range spec.Tmpfs {
		if err := private(d); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=64m"); err != nil {
			return fmt.Errorf("mount a tmpfs on %s: %w", d, err)
		}
		rep.Tmpfs = append(rep.Tmpfs, d)
	}
	// Verify, in this namespace, what the kubelet will see.
	for _, s := range KubeletSysctls {
		p := filepath.Join("/proc/sys", s)
		if err := os.WriteFile(p, mustRead(p), 0o644); err != nil {
			return fmt.Errorf("the stand-in for %s is not writable: %w", p, err)
		}
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err != nil || st.Type == unix.PROC_SUPER_MAGIC {
			return fmt.Errorf("%s is still procfs in the kubelet's namespace", p)
		}
	}
	for _, name := range iptablesCommands {
		path, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if b, _ := os.ReadFile(path); !strings.Contains(string(b), iptablesMarker) {
			return fmt.Errorf("%s resolves to %s, which is not the stand-in", name, path)
		}
		rep.IPTablesSeen = path
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(spec.Dir, "namespace.json"), b, 0o644); err != nil {
		return err
	}
	return syscall.Exec(spec.Argv[0], spec.Argv, spec.Env)
}

func mustRead(p string) []byte {
	b, _ := os.ReadFile(p)
	return b
}

// iptablesCommands are the names under which iptables and its kin are
// installed (Debian's alternatives: iptables-nft, -legacy, ebtables, ...).
var iptablesCommands = []string{
	"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore",
	"iptables-nft", "iptables-legacy", "ip6tables-nft", "ip6tables-legacy", "ebtables", "arptables", "nft",
}

// iptablesFiles are the real files behind iptablesCommands on this host.
func iptablesFiles() []string {
	var out []string
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin"} {
		for _, name := range iptablesCommands {
			real, err := filepath.EvalSymlinks(filepath.Join(dir, name))
			if err != nil {
				continue
			}
			if !slices.Contains(out, real) {
				out = append(out, real)
			}
		}
	}
	slices.Sort(out)
	return out
}

// copyTree copies the readable files of a /proc/sys subtree; write-only
// and unreadable entries become empty files.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		target := filepath.Join(dst, strings.TrimPrefix(p, src))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, _ := os.ReadFile(p)
		if err := os.WriteFile(target, b, 0o644); err != nil {
			return fmt.Errorf("copy %s: %w", p, err)
		}
		return nil
	})
}

// mountPointOf is the mount point of the mount that holds path.
func mountPointOf(path string) (string, error) {
	mps, err := testenv.MountPoints()
	if err != nil {
		return "", err
	}
	best := ""
	for _, mp := range mps {
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	if best == "" {
		return "", fmt.Errorf("no mount holds %s", path)
	}
	return best, nil
}
