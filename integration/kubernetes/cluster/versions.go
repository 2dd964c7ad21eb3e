// Package cluster brings up a one-node Kubernetes cluster on loopback for
// secrun's tests: kine as the API server's storage on a unix socket,
// kube-apiserver, kube-controller-manager and kube-scheduler on 127.0.0.1,
// a containerd of its own (root, state, socket, config file) with secrun's
// handlers added by `secrunctl install containerd`, and a kubelet in a
// private mount namespace whose /proc/sys files, iptables binaries and log
// directories are stand-ins, so that nothing it writes reaches the host.
// Pods get their network from the loopnet CNI plugin: 127.0.0.0/8 inside
// their own namespaces, nothing on the host.
//
// Used by the integration test (integration/kubernetes, `make
// test-kubernetes`) and by scripts/kubernetes/cluster.sh, which keeps a
// cluster up for other tests to use.
package cluster

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// VersionsFile is where every tool's version is pinned, relative to the
// repository root.
const VersionsFile = "scripts/kubernetes/versions.env"

// DefaultCache is where scripts/kubernetes/build.sh puts the tools unless
// SECRUN_K8S_CACHE says otherwise.
const DefaultCache = "/var/cache/secrun/kubernetes"

// LoadVersions reads the KEY=value lines of versions.env.
func LoadVersions(repo string) (map[string]string, error) {
	path := filepath.Join(repo, VersionsFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("versions: %w", err)
	}
	defer f.Close()
	v := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: %q is not KEY=value", path, n, line)
		}
		v[key] = val
	}
	return v, sc.Err()
}

// Tools are the binaries a cluster runs, all at the versions of
// versions.env.
type Tools struct {
	Versions map[string]string
	// Kubelet, APIServer, ControllerManager, Scheduler, Kubectl: one
	// Kubernetes release.
	Kubelet, APIServer, ControllerManager, Scheduler, Kubectl string
	Kine                                                      string
	// Containerd2 is the directory of containerd 2.x, ctr and
	// containerd-shim-runc-v2.
	Containerd2 string
	Crictl      string
	// Runc is the runc built from the module proxy (user namespaces,
	// idmapped mounts); the 1.6 row uses Debian's.
	Runc string
}

// FindTools locates the built tools; an error names the script that
// builds them.
func FindTools(repo string) (*Tools, error) {
	v, err := LoadVersions(repo)
	if err != nil {
		return nil, err
	}
	cache := os.Getenv("SECRUN_K8S_CACHE")
	if cache == "" {
		cache = DefaultCache
	}
	dir := func(tool, key string) string { return filepath.Join(cache, tool+"-"+v[key]) }
	k8s := dir("kubernetes", "KUBERNETES_VERSION")
	t := &Tools{
		Versions:          v,
		Kubelet:           filepath.Join(k8s, "kubelet"),
		APIServer:         filepath.Join(k8s, "kube-apiserver"),
		ControllerManager: filepath.Join(k8s, "kube-controller-manager"),
		Scheduler:         filepath.Join(k8s, "kube-scheduler"),
		Kubectl:           filepath.Join(k8s, "kubectl"),
		Kine:              filepath.Join(dir("kine", "KINE_VERSION"), "kine"),
		Containerd2:       dir("containerd", "CONTAINERD_VERSION"),
		Crictl:            filepath.Join(dir("crictl", "CRICTL_VERSION"), "crictl"),
		Runc:              filepath.Join(dir("runc", "RUNC_VERSION"), "runc"),
	}
	var missing []string
	for _, p := range []string{t.Kubelet, t.APIServer, t.ControllerManager, t.Scheduler, t.Kubectl, t.Kine,
		filepath.Join(t.Containerd2, "containerd"), filepath.Join(t.Containerd2, "containerd-shim-runc-v2"), filepath.Join(t.Containerd2, "ctr"),
		t.Crictl, t.Runc} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("not built: %s; run scripts/kubernetes/build.sh (it builds what %s pins into %s)",
			strings.Join(missing, ", "), VersionsFile, cache)
	}
	return t, nil
}

// Rows are the containerd versions the same kubelet runs against: 2.x
// built from versions.env with runc from versions.env (user namespaces),
// and Debian's containerd 1.6 with Debian's runc.
func Rows(t *Tools) []Row {
	return []Row{
		{Name: "containerd-2.x", BinDir: t.Containerd2, ConfigVersion: 3, Runc: t.Runc},
		{Name: "containerd-1.6", BinDir: "/usr/bin", ConfigVersion: 2, Runc: "/usr/sbin/runc"},
	}
}
