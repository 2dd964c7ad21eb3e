package cluster

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// freePort asks the kernel for a free TCP port on 127.0.0.1. Another
// process may take it before the daemon binds it; the daemon then fails
// at start, loudly.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// writeServiceAccountKeys writes the key pair the API server signs and
// checks service-account tokens with.
func writeServiceAccountKeys(dir string) (key, pub string, err error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return "", "", err
	}
	key, pub = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600); err != nil {
		return "", "", err
	}
	return key, pub, os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
}

// kubeconfig is a client configuration with a static token. The API
// server's certificate is self-signed (kube-apiserver --cert-dir); the
// connection never leaves 127.0.0.1.
func kubeconfig(server, user, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: secrun-test
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: %s
  user:
    token: %s
contexts:
- name: secrun-test
  context:
    cluster: secrun-test
    user: %s
current-context: secrun-test
`, server, user, token, user)
}

// containerdConfig is the node's containerd configuration before secrun's
// handlers: every path of its own under dir, the runc handler named
// explicitly with the row's runc, the CNI plugin loopnet.
func containerdConfig(version int, c *Cluster) string {
	d := c.Dir
	switch version {
	case 3:
		// containerd 2.x: the CRI plugin is split into
		// io.containerd.cri.v1.images and io.containerd.cri.v1.runtime;
		// the gRPC service keeps the streaming server.
		return fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
# NRI would listen on the host's /var/run/nri/nri.sock.
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs", "io.containerd.nri.v1.nri"]

[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %[5]q
  [plugins."io.containerd.cri.v1.images"]
    snapshotter = "overlayfs"
    [plugins."io.containerd.cri.v1.images".pinned_images]
      sandbox = %[6]q
  [plugins."io.containerd.cri.v1.runtime"]
    # This machine's root lacks CAP_SYS_RESOURCE: without this the
    # sandbox's oom_score_adj makes runc fail.
    restrict_oom_score_adj = true
    # Network namespaces under state, not the host's /var/run/netns.
    netns_mounts_under_state_dir = true
    [plugins."io.containerd.cri.v1.runtime".cni]
      bin_dirs = [%[7]q]
      conf_dir = %[8]q
    [plugins."io.containerd.cri.v1.runtime".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
          BinaryName = %[9]q
  [plugins."io.containerd.grpc.v1.cri"]
    # A random port: another containerd may hold the usual one.
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
`, filepath.Join(d, "containerd", "root"), filepath.Join(d, "containerd", "state"), c.ContainerdSocket, c.ContainerdSocket+".ttrpc",
			filepath.Join(d, "containerd", "opt"), PauseImage, c.cniBin, c.cniConf, c.opts.Row.Runc)
	default:
		return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %[5]q
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = %[6]q
    # This machine's root lacks CAP_SYS_RESOURCE: without this the
    # sandbox's oom_score_adj makes runc fail.
    restrict_oom_score_adj = true
    # Network namespaces under state, not the host's /var/run/netns.
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = %[7]q
      conf_dir = %[8]q
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = %[9]q
`, filepath.Join(d, "containerd", "root"), filepath.Join(d, "containerd", "state"), c.ContainerdSocket, c.ContainerdSocket+".ttrpc",
			filepath.Join(d, "containerd", "opt"), PauseImage, c.cniBin, c.cniConf, c.opts.Row.Runc)
	}
}

// kubeletConfig is the KubeletConfiguration (kubelet.config.k8s.io/
// v1beta1): everything on 127.0.0.1, every directory under the cluster's,
// nothing that edits the host. This machine has cgroup v1 (hybrid), which
// 1.35+ kubelets refuse unless failCgroupV1 is false.
func kubeletConfig(c *Cluster, port, healthz int) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
cgroupRoot: %s
failCgroupV1: false
failSwapOn: false
# The kubelet's iptables chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY) are
# not wanted on a test node; its mount namespace has no iptables either.
makeIPTablesUtilChains: false
podLogsDir: %s
staticPodPath: ""
resolvConf: %s
rotateCertificates: false
serverTLSBootstrap: false
# Tiny images on a shared disk: never collect them, never evict for disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "50Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
maxPods: 50
# The unsafe sysctl the conformance cases ask for (conformance/cases): the
# node admin's allowlist, as kubelet --allowed-unsafe-sysctls.
allowedUnsafeSysctls: ["net.core.somaxconn"]
registerNode: true
nodeStatusUpdateFrequency: 5s
`, port, healthz, c.ContainerdSocket, c.CgroupRoot, filepath.Join(c.Dir, "pod-logs"), filepath.Join(c.Dir, "resolv.conf"))
}

// cniConfig is the Pod network: loopnet only.
func cniConfig() string {
	return `{
  "cniVersion": "1.0.0",
  "name": "secrun-loopnet",
  "plugins": [{"type": "loopnet"}]
}
`
}

func writeFile(path, body string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(body), mode)
}

func joinLines(lines ...string) string { return strings.Join(lines, "\n") + "\n" }
