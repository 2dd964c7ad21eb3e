package cluster

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// HostState is what a kubelet would change on the machine if it could:
// the sysctls it writes and all of vm and kernel.panic*, the iptables
// rules, the top level of every cgroup hierarchy, and whether the
// directories it uses by default exist. Compare a snapshot taken before
// the cluster with one taken after it is gone.
type HostState struct {
	Sysctls map[string]string
	// IPTables holds iptables-save and ip6tables-save output without
	// comments and packet counters, by tool; absent tools are left out.
	IPTables map[string]string
	Cgroups  map[string][]string
	Paths    map[string]bool
}

// KubeletSysctls are the values the kubelet's container manager sets when
// protectKernelDefaults is false (kubernetes pkg/kubelet/cm/
// container_manager_linux.go, setupKernelTunables), as paths under
// /proc/sys.
var KubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// kubeletPaths are the kubelet's default directories and CNI's, none of
// which the cluster may create on the host.
var kubeletPaths = []string{
	"/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/usr/libexec/kubernetes",
	"/etc/kubernetes", "/etc/cni/net.d", "/opt/cni/bin",
}

// kubeletCgroup reports whether a top-level cgroup is one a kubelet or
// this harness makes: the QoS root "kubepods" (cgroupfs driver) or
// "kubepods.slice" (systemd driver), pkg/kubelet/cm/qos_container_manager_linux.go
// and cgroup_manager_linux.go, the kubelet's and runtime's own groups when
// configured, and the harness's cgroupRoot "secrun-k8s-*". Every other
// name is left out: containers of other tests running at the same time
// (runc's default cgroupsPath is /<container id>) come and go at the top
// level, and would make the check flag what no kubelet did.
func kubeletCgroup(name string) bool {
	return strings.HasPrefix(name, "kube") || strings.HasPrefix(name, "secrun-k8s-")
}

// SnapshotHost records the host's state.
func SnapshotHost() (*HostState, error) {
	h := &HostState{Sysctls: map[string]string{}, IPTables: map[string]string{}, Cgroups: map[string][]string{}, Paths: map[string]bool{}}
	var files []string
	filepath.WalkDir("/proc/sys/vm", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	for _, glob := range []string{"/proc/sys/kernel/panic*", "/proc/sys/kernel/keys/*"} {
		m, _ := filepath.Glob(glob)
		files = append(files, m...)
	}
	for _, s := range KubeletSysctls {
		files = append(files, filepath.Join("/proc/sys", s))
	}
	for _, f := range files {
		// Write-only entries (vm/drop_caches, vm/compact_memory) have
		// nothing to compare.
		if b, err := os.ReadFile(f); err == nil {
			h.Sysctls[strings.TrimPrefix(f, "/proc/sys/")] = string(b)
		}
	}
	if len(h.Sysctls) == 0 {
		return nil, fmt.Errorf("host snapshot: no sysctl under /proc/sys/vm could be read")
	}
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			continue
		}
		out, err := exec.Command(path).Output()
		if err != nil {
			return nil, fmt.Errorf("host snapshot: %s: %w", tool, err)
		}
		h.IPTables[tool] = normaliseRules(string(out))
	}
	hier, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil, fmt.Errorf("host snapshot: %w", err)
	}
	for _, e := range hier {
		if !e.IsDir() {
			continue
		}
		sub, err := os.ReadDir(filepath.Join("/sys/fs/cgroup", e.Name()))
		if err != nil {
			continue
		}
		var names []string
		for _, s := range sub {
			if s.IsDir() && kubeletCgroup(s.Name()) {
				names = append(names, s.Name())
			}
		}
		h.Cgroups[e.Name()] = names
	}
	for _, p := range kubeletPaths {
		_, err := os.Lstat(p)
		h.Paths[p] = err == nil
	}
	return h, nil
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// normaliseRules drops what changes without a rule changing: the
// "Generated/Completed on <date>" comments and packet counters.
func normaliseRules(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, counters.ReplaceAllString(line, "[-]"))
	}
	return strings.Join(out, "\n")
}

// Diff lists every difference from h to after, one line each.
func (h *HostState) Diff(after *HostState) []string {
	var d []string
	for _, k := range slices.Sorted(maps.Keys(h.Sysctls)) {
		if v, ok := after.Sysctls[k]; !ok || v != h.Sysctls[k] {
			d = append(d, fmt.Sprintf("sysctl %s: %q -> %q", strings.ReplaceAll(k, "/", "."), strings.TrimSpace(h.Sysctls[k]), strings.TrimSpace(v)))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(h.IPTables)) {
		if after.IPTables[k] != h.IPTables[k] {
			d = append(d, fmt.Sprintf("%s output changed:\n--- before\n%s\n--- after\n%s", k, h.IPTables[k], after.IPTables[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(h.Cgroups)) {
		b, a := h.Cgroups[k], after.Cgroups[k]
		for _, n := range a {
			if !slices.Contains(b, n) {
				d = append(d, fmt.Sprintf("cgroup /sys/fs/cgroup/%s/%s appeared", k, n))
			}
		}
		for _, n := range b {
			if !slices.Contains(a, n) {
				d = append(d, fmt.Sprintf("cgroup /sys/fs/cgroup/%s/%s disappeared", k, n))
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(h.Paths)) {
		if h.Paths[k] != after.Paths[k] {
			d = append(d, fmt.Sprintf("%s: existed %v, now %v", k, h.Paths[k], after.Paths[k]))
		}
	}
	return d
}

// Summary is one line saying what was recorded.
func (h *HostState) Summary() string {
	n := 0
	for _, v := range h.Cgroups {
		n += len(v)
	}
	return fmt.Sprintf("%d sysctls, %d iptables tables (%s), %d cgroup hierarchies with %d top-level kubelet groups, %d kubelet paths",
		len(h.Sysctls), len(h.IPTables), strings.Join(slices.Sorted(maps.Keys(h.IPTables)), ", "), len(h.Cgroups), n, len(h.Paths))
}
