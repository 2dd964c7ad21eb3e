package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/internal/testenv"
)

// Images every node of the harness has, imported into containerd's k8s.io
// namespace: nothing is ever pulled.
const (
	PauseImage = "localhost/secrun-test/pause:1"
	ProbeImage = "localhost/secrun-test/probe:1"
)

// NodeName is the one node's name.
const NodeName = "secrun-node"

// Policies get one secrun handler each.
var Policies = []string{"privileged", "baseline", "restricted"}

// Row is one containerd the same kubelet runs against.
type Row struct {
	// Name is the row's name in reports and paths: containerd-2.x, ...
	Name string
	// BinDir holds containerd, ctr and containerd-shim-runc-v2.
	BinDir string
	// ConfigVersion is containerd's configuration format: 3 for 2.x,
	// 2 for 1.x.
	ConfigVersion int
	// Runc is the delegate behind secrun and the runc handler.
	Runc string
}

// Options configure Up.
type Options struct {
	// Repo is the repository root (for deploy/ and the Go packages).
	Repo  string
	Tools *Tools
	Row   Row
	// Dir is the cluster's own directory; it is removed and made anew.
	// Socket paths under it must stay within 108 bytes.
	Dir string
	// Out is where captured config.json files go (Out/captured/...).
	Out string
	// SecrunConfig is the body of secrun's config.yaml for the node;
	// auditLog is added.
	SecrunConfig string
	// Capture puts a recording delegate in front of every secrun handler.
	Capture bool
	// Log prints progress.
	Log func(format string, args ...any)
}

// Step is one timed stage of Up, Down or a test.
type Step struct {
	Name string
	Took time.Duration
	Err  error
}

// Cluster is a running one-node cluster.
type Cluster struct {
	opts Options
	Dir  string
	// Out is Options.Out: captured config.json files, reports.
	Out string
	// Kubeconfig is the admin's (system:masters) client configuration.
	Kubeconfig       string
	Server           string
	ContainerdSocket string
	// ContainerdConfig is the node's config.toml and BaseConfig its
	// content before secrun's handlers were added.
	ContainerdConfig string
	BaseConfig       string
	// BinDir holds secrun, secrunctl, the secrun-<policy> links and the
	// test binaries; HandlerDir is where the handlers' BinaryName points
	// (BinDir, or the recorder's directory when capturing).
	BinDir, HandlerDir string
	SecrunConfigPath   string
	AuditLog           string
	CgroupRoot         string
	// NodeRoot stands in for the node's / in the rollout test: the
	// installer writes its /usr/local/bin, /etc/secrun, /var/log/secrun.
	NodeRoot string
	// Images is the OCI archive imported into the node's containerd.
	Images string

	cniBin, cniConf string
	procs           map[string]*proc
	order           []string
	created         []string
	cgroups         []string
	sharedMount     bool
	mu              sync.Mutex
	steps           []Step
}

// Steps are the stages so far, in order.
func (c *Cluster) Steps() []Step {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.steps)
}

// Step times fn as a named stage and prints it.
func (c *Cluster) Step(name string, fn func() error) error {
	c.opts.Log("%s: %s ...", c.opts.Row.Name, name)
	start := time.Now()
	err := fn()
	took := time.Since(start)
	c.mu.Lock()
	c.steps = append(c.steps, Step{Name: name, Took: took, Err: err})
	c.mu.Unlock()
	if err != nil {
		c.opts.Log("%s: %s FAILED after %v: %v", c.opts.Row.Name, name, took.Round(time.Millisecond), err)
		return fmt.Errorf("%s: %w", name, err)
	}
	c.opts.Log("%s: %s done in %v", c.opts.Row.Name, name, took.Round(time.Millisecond))
	return nil
}

// hostPaths exist outside the cluster's directory whatever containerd's
// configuration says: shim sockets in /run/containerd/s, the runc state
// of CRI containers in /run/containerd/runc, libcni's cache in
// /var/lib/cni. Those Up creates are removed by Down when empty. Deepest
// first.
var hostPaths = []string{
	"/run/containerd/s", "/run/containerd/runc/k8s.io", "/run/containerd/runc", "/run/containerd/fifo", "/run/containerd",
	"/var/lib/cni/results", "/var/lib/cni/cache", "/var/lib/cni",
}

// Up starts the cluster. On error the caller still calls Down.
func Up(opts Options) (*Cluster, error) {
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	c := &Cluster{opts: opts, Dir: opts.Dir, Out: opts.Out, procs: map[string]*proc{}}
	for _, p := range hostPaths {
		if _, err := os.Stat(p); err != nil {
			c.created = append(c.created, p)
		}
	}
	for _, hidden := range []string{"/var/lib", "/var/log"} {
		if strings.HasPrefix(c.Dir+"/", hidden+"/") {
			return c, fmt.Errorf("cluster directory %s is under %s, which the kubelet's mount namespace covers with a tmpfs; use one under /tmp", c.Dir, hidden)
		}
	}
	c.ContainerdSocket = filepath.Join(c.Dir, "c.sock")
	if len(c.ContainerdSocket)+len(".ttrpc") > 100 {
		return c, fmt.Errorf("cluster directory %s is too long for containerd's sockets (108 bytes)", c.Dir)
	}
	c.BinDir = filepath.Join(c.Dir, "bin")
	c.HandlerDir = c.BinDir
	c.NodeRoot = filepath.Join(c.Dir, "node-root")
	c.ContainerdConfig = filepath.Join(c.Dir, "etc", "containerd", "config.toml")
	c.SecrunConfigPath = filepath.Join(c.NodeRoot, "etc", "secrun", "config.yaml")
	c.AuditLog = filepath.Join(c.NodeRoot, "var", "log", "secrun", "audit.log")
	c.CgroupRoot = "/secrun-k8s-" + filepath.Base(c.Dir)
	c.cniBin = filepath.Join(c.Dir, "cni", "bin")
	c.cniConf = filepath.Join(c.Dir, "cni", "net.d")
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")

	steps := []struct {
		name string
		fn   func() error
	}{
		{"prepare " + c.Dir, c.prepare},
		{"build secrun, probe, pause, loopnet and images", c.build},
		{"start kine", c.startKine},
		{"start kube-apiserver", c.startAPIServer},
		{"start kube-controller-manager and kube-scheduler", c.startControllers},
		{"install secrun into containerd (secrunctl install containerd)", c.installSecrun},
		{"start containerd and import images", c.startContainerd},
		{"start kubelet in its own mount namespace", c.startKubelet},
		{"node Ready", c.waitNodeReady},
		{"apply deploy/runtimeclass-*.yaml", c.applyRuntimeClasses},
	}
	for _, s := range steps {
		if err := c.Step(s.name, s.fn); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (c *Cluster) prepare() error {
	if _, err := os.Stat(c.Dir); err == nil {
		// Left by a run that was killed: take down what it left.
		c.opts.Log("%s: removing %s, left by an earlier run", c.opts.Row.Name, c.Dir)
		if err := cleanDir(c.Dir); err != nil {
			return err
		}
	}
	for _, d := range []string{"bin", "logs", "kine", "apiserver", "kubelet", "containerd", "etc/containerd", "cni/bin", "cni/net.d",
		"pod-logs", "volume-plugins", "nodens", "node-root/etc/secrun", "node-root/var/log/secrun", "node-root/usr/local/bin"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			return err
		}
	}
	ep := "unix://" + c.ContainerdSocket
	if err := writeFile(filepath.Join(c.Dir, "crictl.yaml"), "runtime-endpoint: "+ep+"\nimage-endpoint: "+ep+"\ntimeout: 30\n", 0o644); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(c.Dir, "resolv.conf"), "nameserver 127.0.0.53\n", 0o644); err != nil {
		return err
	}
	// secrun reads Localhost seccomp profiles where this node's kubelet
	// keeps them (its --root-dir), as an admin sets seccompProfileRoot.
	cfg := "auditLog: " + c.AuditLog + "\nruntime: " + c.opts.Row.Runc + "\nseccompProfileRoot: " + filepath.Join(c.Dir, "kubelet", "seccomp") + "\n" + c.opts.SecrunConfig
	return writeFile(c.SecrunConfigPath, cfg, 0o644)
}

// Log returns the last n lines of a daemon's log.
func (c *Cluster) Log(name string, n int) string {
	if p := c.procs[name]; p != nil {
		return p.logTail(n)
	}
	return ""
}

func (c *Cluster) startProc(p *proc) error {
	p.logPath = filepath.Join(c.Dir, "logs", p.name+".log")
	if p.env == nil {
		p.env = os.Environ()
	}
	if err := p.start(); err != nil {
		return err
	}
	c.procs[p.name] = p
	c.order = append(c.order, p.name)
	return nil
}

// waitFor polls cond until it holds, the daemon dies, or timeout passes.
func (c *Cluster) waitFor(what, daemon string, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if p := c.procs[daemon]; p != nil {
			if up, how := p.running(); !up && !p.restart {
				return fmt.Errorf("%s exited (%s) before %s:\n%s", daemon, how, what, p.logTail(30))
			}
		}
		if time.Now().After(deadline) {
			tail := ""
			if p := c.procs[daemon]; p != nil {
				tail = "\n" + p.logTail(30)
			}
			return fmt.Errorf("no %s within %v: %v%s", what, timeout, err, tail)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (c *Cluster) startKine() error {
	sock := filepath.Join(c.Dir, "kine", "kine.sock")
	err := c.startProc(&proc{name: "kine", dir: filepath.Join(c.Dir, "kine"), argv: []string{c.opts.Tools.Kine,
		"--listen-address", "unix://" + sock,
		"--endpoint", "sqlite://" + filepath.Join(c.Dir, "kine", "state.db") + "?_journal=WAL&cache=shared",
		"--metrics-bind-address", "0"}})
	if err != nil {
		return err
	}
	return c.waitFor("kine socket", "kine", 30*time.Second, func() error {
		_, err := os.Stat(sock)
		return err
	})
}

func (c *Cluster) startAPIServer() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	c.Server = fmt.Sprintf("https://127.0.0.1:%d", port)
	key, pub, err := writeServiceAccountKeys(filepath.Join(c.Dir, "apiserver"))
	if err != nil {
		return err
	}
	tokens := map[string]string{"admin": randToken(), "node": randToken(), "cm": randToken(), "sched": randToken()}
	// token,user,uid,"group1,group2" (kube-apiserver --token-auth-file).
	csv := joinLines(
		tokens["admin"]+",secrun-admin,secrun-admin,\"system:masters\"",
		tokens["node"]+",system:node:"+NodeName+",node,\"system:nodes\"",
		tokens["cm"]+",system:kube-controller-manager,kube-controller-manager",
		tokens["sched"]+",system:kube-scheduler,kube-scheduler",
	)
	tokenFile := filepath.Join(c.Dir, "apiserver", "tokens.csv")
	if err := writeFile(tokenFile, csv, 0o600); err != nil {
		return err
	}
	for name, user := range map[string]string{"kubeconfig": "secrun-admin", "kubelet.kubeconfig": "system:node:" + NodeName,
		"controller-manager.kubeconfig": "system:kube-controller-manager", "scheduler.kubeconfig": "system:kube-scheduler"} {
		tok := map[string]string{"kubeconfig": "admin", "kubelet.kubeconfig": "node", "controller-manager.kubeconfig": "cm", "scheduler.kubeconfig": "sched"}[name]
		if err := writeFile(filepath.Join(c.Dir, name), kubeconfig(c.Server, user, tokens[tok]), 0o600); err != nil {
			return err
		}
	}
	err = c.startProc(&proc{name: "kube-apiserver", argv: []string{c.opts.Tools.APIServer,
		"--etcd-servers", "unix://" + filepath.Join(c.Dir, "kine", "kine.sock"),
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(port),
		// A loopback advertise address is fatal to the endpoint
		// reconciler of the kubernetes Service; nothing here needs it.
		"--endpoint-reconciler-type", "none",
		"--service-cluster-ip-range", "127.254.0.0/16",
		"--allow-privileged=true",
		"--authorization-mode", "Node,RBAC",
		"--enable-admission-plugins", "NodeRestriction",
		"--token-auth-file", tokenFile,
		"--service-account-key-file", pub, "--service-account-signing-key-file", key,
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--cert-dir", filepath.Join(c.Dir, "apiserver", "certs"),
		"--kubelet-preferred-address-types", "InternalIP",
		"--profiling=false",
	}})
	if err != nil {
		return err
	}
	return c.waitFor("API server /readyz", "kube-apiserver", 120*time.Second, func() error {
		r := c.Kubectl("get", "--raw", "/readyz")
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != "ok" {
			return errors.New(r.String())
		}
		return nil
	})
}

func (c *Cluster) startControllers() error {
	ca := filepath.Join(c.Dir, "apiserver", "certs", "apiserver.crt")
	err := c.startProc(&proc{name: "kube-controller-manager", argv: []string{c.opts.Tools.ControllerManager,
		"--kubeconfig", filepath.Join(c.Dir, "controller-manager.kubeconfig"),
		"--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", "0",
		"--service-account-private-key-file", filepath.Join(c.Dir, "apiserver", "sa.key"),
		// Each controller with its own ServiceAccount's token, which the
		// bootstrap RBAC roles (system:controller:*) are written for.
		"--root-ca-file", ca, "--use-service-account-credentials=true",
		// No Pod CIDRs (loopnet needs none), no cloud.
		"--allocate-node-cidrs=false",
		// Its default, /usr/libexec/kubernetes/kubelet-plugins/volume/exec,
		// is created on the host at start.
		"--flex-volume-plugin-dir", filepath.Join(c.Dir, "volume-plugins"),
	}})
	if err != nil {
		return err
	}
	if err := c.startProc(&proc{name: "kube-scheduler", argv: []string{c.opts.Tools.Scheduler,
		"--kubeconfig", filepath.Join(c.Dir, "scheduler.kubeconfig"),
		"--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", "0",
	}}); err != nil {
		return err
	}
	// The controller manager creates each namespace's default
	// ServiceAccount, which admission requires of every Pod.
	return c.waitFor("ServiceAccount default/default", "kube-controller-manager", 60*time.Second, func() error {
		if r := c.Kubectl("get", "serviceaccount", "default", "-n", "default"); r.Code != 0 {
			return errors.New(r.String())
		}
		return nil
	})
}

// installSecrun writes containerd's base configuration and adds secrun's
// handlers with `secrunctl install containerd`, as a node admin would.
func (c *Cluster) installSecrun() error {
	base, err := containerdConfig(c.opts.Row.ConfigVersion, c)
	if err != nil {
		return err
	}
	c.BaseConfig = base
	if err := writeFile(c.ContainerdConfig, c.BaseConfig, 0o644); err != nil {
		return err
	}
	r := c.Secrunctl("install", "containerd", "--config", c.ContainerdConfig,
		"--policies", strings.Join(Policies, ","), "--bin-dir", c.HandlerDir)
	if r.Code != 0 {
		return fmt.Errorf("secrunctl install containerd: exit %d\n%s", r.Code, r)
	}
	c.opts.Log("%s: %s", c.opts.Row.Name, strings.TrimSpace(r.Stdout))
	return nil
}

// Secrunctl runs the built secrunctl with the node's secrun configuration.
func (c *Cluster) Secrunctl(args ...string) result {
	return run(90*time.Second, nil, filepath.Join(c.BinDir, "secrunctl"), append([]string{"--config", c.SecrunConfigPath}, args...)...)
}

// SecrunctlWithin is Secrunctl with a deadline of its own, for the
// conformance suite's long runs.
func (c *Cluster) SecrunctlWithin(timeout time.Duration, args ...string) result {
	return run(timeout, nil, filepath.Join(c.BinDir, "secrunctl"), append([]string{"--config", c.SecrunConfigPath}, args...)...)
}

// KubectlPath and CtrPath are the binaries Kubectl and Ctr run, for tools
// that call them themselves.
func (c *Cluster) KubectlPath() string { return c.opts.Tools.Kubectl }
func (c *Cluster) CtrPath() string     { return filepath.Join(c.opts.Row.BinDir, "ctr") }

// Ctr runs the row's ctr against the node's containerd, namespace k8s.io.
func (c *Cluster) Ctr(args ...string) result {
	return run(120*time.Second, nil, filepath.Join(c.opts.Row.BinDir, "ctr"), append([]string{"--address", c.ContainerdSocket, "--namespace", "k8s.io"}, args...)...)
}

// Crictl runs crictl against the node's containerd.
func (c *Cluster) Crictl(args ...string) result {
	// --config: a host /etc/crictl.yaml must not point crictl elsewhere.
	return run(60*time.Second, nil, c.opts.Tools.Crictl, append([]string{"--config", filepath.Join(c.Dir, "crictl.yaml")}, args...)...)
}

// Kubectl runs kubectl as the cluster's admin.
func (c *Cluster) Kubectl(args ...string) result {
	return run(120*time.Second, nil, c.opts.Tools.Kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
}

// KubernetesVersion is the kubelet's version, as versions.env pins it.
func (c *Cluster) KubernetesVersion() string { return c.opts.Tools.Versions["KUBERNETES_VERSION"] }

// ContainerdPID is the pid of the node's containerd right now.
func (c *Cluster) ContainerdPID() int { return c.procs["containerd"].pid() }

// ContainerdRestarts counts how often containerd was started again after
// it exited.
func (c *Cluster) ContainerdRestarts() int {
	p := c.procs["containerd"]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

func (c *Cluster) startContainerd() error {
	env := append(os.Environ(),
		// The shims inherit containerd's environment and pass it to the
		// runtime: how secrun finds the node's configuration.
		"SECRUN_CONFIG="+c.SecrunConfigPath,
		// containerd finds containerd-shim-runc-v2 on PATH.
		"PATH="+c.opts.Row.BinDir+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	if c.opts.Capture {
		env = append(env, CaptureDirEnv+"="+filepath.Join(c.opts.Out, "captured"), CaptureTargetEnv+"="+c.BinDir)
	}
	err := c.startProc(&proc{name: "containerd", restart: true, env: env, argv: []string{filepath.Join(c.opts.Row.BinDir, "containerd"),
		"--config", c.ContainerdConfig, "--log-level", "info"},
		onStart: func(pid int) {
			os.WriteFile(filepath.Join(c.Dir, "containerd.pid"), []byte(strconv.Itoa(pid)+"\n"), 0o644)
		}})
	if err != nil {
		return err
	}
	if err := c.WaitContainerd(60 * time.Second); err != nil {
		return err
	}
	if r := c.Ctr("images", "import", c.Images); r.Code != 0 {
		return fmt.Errorf("ctr images import: exit %d\n%s", r.Code, r)
	}
	return nil
}

// WaitContainerd waits until the node's containerd answers CRI calls.
func (c *Cluster) WaitContainerd(timeout time.Duration) error {
	return c.waitFor("containerd answering CRI", "containerd", timeout, func() error {
		if r := c.Crictl("info"); r.Code != 0 {
			return errors.New(r.String())
		}
		return nil
	})
}

func (c *Cluster) startKubelet() error {
	// The kubelet's cgroups go under a root of the cluster's own in
	// every hierarchy (the kubelet wants it to exist), removed by Down.
	for _, h := range testenv.CgroupHierarchies() {
		p := filepath.Join(h, c.CgroupRoot)
		if err := os.Mkdir(p, 0o755); err != nil && !os.IsExist(err) {
			return fmt.Errorf("create cgroup %s: %w", p, err)
		}
		c.cgroups = append(c.cgroups, p)
	}
	root := filepath.Join(c.Dir, "kubelet")
	// Volumes the kubelet mounts under its root must be seen by
	// containerd in the host's namespace: a shared mount, which the
	// kubelet's private namespace stays a peer of.
	if err := unix.Mount(root, root, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", root, err)
	}
	c.sharedMount = true
	if err := unix.Mount("", root, "", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", root, err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	healthz, err := freePort()
	if err != nil {
		return err
	}
	cfg := filepath.Join(c.Dir, "kubelet.yaml")
	if err := writeFile(cfg, kubeletConfig(c, port, healthz), 0o644); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	argv := []string{c.opts.Tools.Kubelet, "--config", cfg, "--kubeconfig", filepath.Join(c.Dir, "kubelet.kubeconfig"),
		"--root-dir", root, "--cert-dir", filepath.Join(root, "pki"),
		// A flag, not a KubeletConfiguration field.
		"--volume-plugin-dir", filepath.Join(c.Dir, "volume-plugins"),
		"--hostname-override", NodeName, "--node-ip", "127.0.0.1", "--node-labels", "secrun.dev/runtime=enabled", "--v", "2"}
	spec := nsSpec{Dir: filepath.Join(c.Dir, "nodens"), Sysctl: []string{"vm", "kernel"}, Shadow: iptablesFiles(),
		Tmpfs: []string{"/var/log", "/var/lib"}, Argv: argv, Env: os.Environ()}
	b, _ := json.Marshal(spec)
	env := append(os.Environ(), nodeNamespaceEnv+"="+string(b))
	if err := c.startProc(&proc{name: "kubelet", env: env, argv: []string{self}}); err != nil {
		return err
	}
	return c.waitFor("kubelet healthz", "kubelet", 90*time.Second, func() error {
		if _, err := os.Stat(filepath.Join(c.Dir, "nodens", "namespace.json")); err != nil {
			return fmt.Errorf("the namespace helper has not finished: %w", err)
		}
		return healthzOK(healthz)
	})
}

func (c *Cluster) waitNodeReady() error {
	// The kubelet refuses a loopback node IP for the node's addresses
	// (nodestatus.NodeAddress: "nodeIP can't be loopback address") and
	// then leaves them alone; without an address the API server cannot
	// reach the kubelet for logs and exec. The harness sets the one
	// address the kubelet listens on; a host address would take API
	// server traffic off loopback.
	err := c.waitFor("node "+NodeName+" registered", "kubelet", 120*time.Second, func() error {
		r := c.Kubectl("patch", "node", NodeName, "--subresource", "status", "--type", "merge",
			"-p", `{"status":{"addresses":[{"type":"InternalIP","address":"127.0.0.1"},{"type":"Hostname","address":"`+NodeName+`"}]}}`)
		if r.Code != 0 {
			return errors.New(r.String())
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.waitFor("node "+NodeName+" Ready", "kubelet", 120*time.Second, func() error {
		r := c.Kubectl("get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].message}`)
		if r.Code != 0 || !strings.HasPrefix(r.Stdout, "True") {
			return errors.New(r.String())
		}
		return nil
	})
}

func (c *Cluster) applyRuntimeClasses() error {
	files, _ := filepath.Glob(filepath.Join(c.opts.Repo, "deploy", "runtimeclass-*.yaml"))
	if len(files) == 0 {
		return errors.New("no deploy/runtimeclass-*.yaml")
	}
	for _, f := range files {
		if r := c.Kubectl("apply", "-f", f); r.Code != 0 {
			return fmt.Errorf("kubectl apply -f %s: %s", f, r)
		}
	}
	return nil
}

// Down stops the cluster and removes everything it made: Pods and
// containers, daemons, mounts, cgroups, host directories it created, and
// its directory unless keep is set. It returns every failure.
func (c *Cluster) Down(keep bool) error {
	var errs []error
	stop := func(name string, grace time.Duration) {
		if p := c.procs[name]; p != nil {
			p.stop(grace)
		}
	}
	c.Step("stop the node and remove its Pods", func() error {
		stop("kubelet", 20*time.Second)
		if p := c.procs["containerd"]; p != nil {
			if up, _ := p.running(); up {
				if r := c.Crictl("rmp", "--all", "--force"); r.Code != 0 {
					errs = append(errs, fmt.Errorf("crictl rmp --all: %s", r))
				}
			}
		}
		stop("containerd", 20*time.Second)
		return nil
	})
	c.Step("stop the control plane", func() error {
		for _, n := range []string{"kube-scheduler", "kube-controller-manager", "kube-apiserver", "kine"} {
			stop(n, 15*time.Second)
		}
		return nil
	})
	c.Step("remove mounts, cgroups and directories", func() error {
		if c.sharedMount {
			testenv.UnmountUnder(c.Dir)
		}
		for _, cg := range c.cgroups {
			if err := removeCgroup(cg); err != nil {
				errs = append(errs, err)
			}
		}
		for _, p := range c.created {
			os.Remove(p)
		}
		if !keep {
			if err := cleanDir(c.Dir); err != nil {
				errs = append(errs, err)
			}
		}
		return nil
	})
	return errors.Join(errs...)
}

// removeCgroup removes a cgroup and its children, deepest first.
func removeCgroup(root string) error {
	var dirs []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Reverse(dirs)
	var errs []error
	for _, d := range dirs {
		// A cgroup whose last process just exited can stay busy for a
		// moment.
		var err error
		for range 20 {
			if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
				err = nil
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// cleanDir unmounts everything under dir and removes it.
func cleanDir(dir string) error {
	testenv.UnmountUnder(dir)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// lookPath is exec.LookPath with the tool's package in the error.
func lookPath(name, pkg string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is not installed (apt-get install %s)", name, pkg)
	}
	return p, nil
}
