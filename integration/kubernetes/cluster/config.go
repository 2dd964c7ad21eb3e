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

	"github.com/secrun/secrun/integration/containerdconf"
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
func containerdConfig(version int, c *Cluster) (string, error) {
	d := filepath.Join(c.Dir, "containerd")
	return containerdconf.Config{Version: version, Root: filepath.Join(d, "root"), State: filepath.Join(d, "state"),
		Opt: filepath.Join(d, "opt"), Socket: c.ContainerdSocket, SandboxImage: PauseImage,
		CNIBinDir: c.cniBin, CNIConfDir: c.cniConf,
		Handler: "runc", HandlerBinaryName: c.opts.Row.Runc, DefaultHandler: true}.Render()
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
