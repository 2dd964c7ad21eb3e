package containerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secrun/secrun/install"
	"github.com/secrun/secrun/integration/containerdconf"
	"github.com/secrun/secrun/internal/testenv"
)

// EnableEnv turns the suite on. It starts a containerd daemon, which `go
// test ./...` should not do by surprise; `make test-containerd` sets it.
const EnableEnv = "SECRUN_CONTAINERD_TEST"

// KeepEnv=1 keeps the test directory (containerd's log, config, audit log)
// for a look after a failure.
const KeepEnv = "SECRUN_CONTAINERD_KEEP"

const (
	// ctrNamespace holds the ctr tests' images and containers; the CRI
	// plugin only sees k8s.io.
	ctrNamespace = "secrun-test"
	criNamespace = "k8s.io"
	probeRef     = "localhost/secrun-test/probe:1"
	pauseRef     = "localhost/secrun-test/pause:1"
	// plainHandler runs secrun-restricted like the installed handler but
	// without an annotation allowlist: the control for the annotation test.
	plainHandler = "plain-restricted"
	// cmdTimeout bounds every command, so a wedged containerd fails the
	// test instead of hanging CI.
	cmdTimeout = 90 * time.Second
)

// policies get one installed handler each.
var policies = []string{"privileged", "baseline", "restricted"}

// secrunConfig is the node's secrun configuration for the suite: the
// restricted preset in harden mode (so an ordinary image runs, brought into
// line), baseline as shipped (enforce).
const secrunConfig = `policies:
  restricted:
    mode: harden
    runAsUser: 65534
    runAsGroup: 65534
`

// env is one containerd daemon with secrun's handlers, everything under dir.
type env struct {
	t      *testing.T
	dir    string
	sock   string
	binDir string
	audit  string
	// crictl is "" when the CRI tests cannot run; criSkip says why.
	crictl  string
	criSkip string
	// netName is the CNI network's unique name: libcni's cache files in
	// /var/lib/cni carry it, so cleanup removes only this run's.
	netName string
	// baseConfig is containerd.toml before secrunctl added the handlers.
	baseConfig string
	// created are host paths outside dir that did not exist before the
	// suite and that containerd, runc or CNI create whatever their
	// configuration; cleanup removes those left empty.
	created []string

	daemon *exec.Cmd
	exited chan struct{}
}

// requireSuite skips unless the suite can and should run here.
func requireSuite(t *testing.T) {
	t.Helper()
	if os.Getenv(EnableEnv) != "1" {
		t.Skipf("skipped: the containerd suite starts a containerd daemon; run `make test-containerd` (or set %s=1 as root)", EnableEnv)
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: containerd and its containers need root")
	}
	if runtime.GOOS != "linux" {
		t.Skip("skipped: containerd's runc shim runs on Linux only")
	}
	for bin, pkg := range map[string]string{"containerd": "containerd", "ctr": "containerd", "containerd-shim-runc-v2": "containerd", "runc": "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("skipped: %s is not on PATH (apt-get install %s, or run scripts/containerd-test.sh)", bin, pkg)
		}
	}
}

// newEnv builds secrun and the images, writes containerd's configuration
// with `secrunctl install containerd`, starts containerd and imports the
// images. Cleanup
// undoes all of it, containers and network first.
func newEnv(t *testing.T) *env {
	t.Helper()
	dir, err := os.MkdirTemp("", "secrun-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	// Unix socket paths are limited to 108 bytes; TMPDIR could be long.
	if len(dir) > 60 {
		os.RemoveAll(dir)
		t.Fatalf("temporary directory %s is too long for containerd's sockets; set TMPDIR to a short path", dir)
	}
	e := &env{t: t, dir: dir, sock: filepath.Join(dir, "c.sock"), binDir: filepath.Join(dir, "bin"), audit: filepath.Join(dir, "secrun", "audit.log")}
	for _, p := range hostPaths {
		if !fileExists(p) {
			e.created = append(e.created, p)
		}
	}
	// containerd puts a container without a cgroup parent under
	// /<namespace>/<id> in every hierarchy; runc removes the container's
	// group, never the namespace's. Those this test brings into being go
	// with it (os.Remove is rmdir: a group still in use stays).
	for _, h := range testenv.CgroupHierarchies() {
		for _, ns := range []string{ctrNamespace, criNamespace} {
			if p := filepath.Join(h, ns); !fileExists(p) {
				e.created = append(e.created, p)
			}
		}
	}
	t.Cleanup(e.cleanup)
	e.findCRI()

	start := time.Now()
	probe, pause := e.build()
	t.Logf("built secrun, probe and pause in %v", time.Since(start).Round(time.Millisecond))

	e.mkdir("secrun")
	// The probe's scratch directories are hostPath volumes, which
	// baseline refuses unless the admin allows them, as a node admin
	// would for a log directory.
	allow := "    allowedHostPaths: [{pathPrefix: " + filepath.Join(e.dir, "scratch") + "}]\n"
	e.write("secrun/config.yaml", "auditLog: "+e.audit+"\n"+secrunConfig+allow+"  baseline:\n"+allow)
	if e.crictl != "" {
		e.writeCNI()
		ep := "unix://" + e.sock
		e.write("crictl.yaml", "runtime-endpoint: "+ep+"\nimage-endpoint: "+ep+"\ntimeout: 60\n")
	}
	e.writeContainerdConfig()
	e.start()

	archive, err := ociArchive(imageFiles(probe, pause), []ociImage{
		{Ref: probeRef, Cmd: []string{"/probe"}},
		{Ref: pauseRef, Entrypoint: []string{"/pause"}},
	})
	if err != nil {
		t.Fatalf("build the OCI archive: %v", err)
	}
	e.write("images.tar", string(archive))
	for _, ns := range []string{ctrNamespace, criNamespace} {
		if r := e.ctr(ns, "images", "import", filepath.Join(dir, "images.tar")); r.code != 0 {
			t.Fatalf("ctr -n %s images import: exit %d\n%s%s", ns, r.code, r.stdout, r.stderr)
		}
	}
	t.Logf("containerd up with images in %v (dir %s)", time.Since(start).Round(time.Millisecond), dir)
	return e
}

// findCRI decides whether the CRI tests can run: they need crictl. The
// Pod network is the repository's own CNI plugin (integration/loopnet).
func (e *env) findCRI() {
	crictl, err := exec.LookPath("crictl")
	if err != nil {
		home, _ := os.UserHomeDir()
		if p := filepath.Join(home, "go", "bin", "crictl"); fileExists(p) {
			crictl = p
		}
	}
	if crictl == "" {
		e.criSkip = "crictl is not installed (go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0, or run scripts/containerd-test.sh)"
		return
	}
	e.crictl = crictl
}

// hostPaths are the directories outside the test's own that get created
// whatever the configuration: shim sockets always go to /run/containerd/s,
// the CRI handlers' runc state to /run/containerd/runc, and libcni's cache
// to /var/lib/cni. Deepest first.
var hostPaths = []string{
	"/run/containerd/s", "/run/containerd/runc/" + criNamespace, "/run/containerd/runc/" + ctrNamespace,
	"/run/containerd/runc", "/run/containerd/fifo", "/run/containerd",
	"/var/lib/cni/results", "/var/lib/cni",
}

func (e *env) build() (probe, pause []byte) {
	e.mkdir("bin")
	root := testenv.ModuleRoot()
	type job struct{ out, pkg string }
	e.mkdir("cni/bin")
	jobs := []job{{"bin/secrun", "./cmd/secrun"}, {"bin/secrunctl", "./cmd/secrunctl"}, {"probe", "./conformance/probe"}, {"pause", "./integration/containerd/pause"},
		{"cni/bin/loopnet", "./integration/loopnet"}}
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(e.dir, j.out), j.pkg)
			cmd.Dir = root
			// Static binaries: the image has no libc. secrun itself runs on
			// the host and keeps the default.
			cmd.Env = os.Environ()
			if !strings.HasPrefix(j.out, "bin/") {
				// The CNI plugin too: it runs on the host, but needs no cgo.
				cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("go build %s: %v\n%s", j.pkg, err, out)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		e.t.Fatal(err)
	}
	for _, p := range policies {
		if err := os.Symlink("secrun", filepath.Join(e.binDir, install.Handler(p))); err != nil {
			e.t.Fatal(err)
		}
	}
	// containerd's CRI asks every sandbox for lo through a plugin named
	// loopback; loopnet does that job under that name.
	if err := os.Link(filepath.Join(e.dir, "cni/bin/loopnet"), filepath.Join(e.dir, "cni/bin/loopback")); err != nil {
		e.t.Fatal(err)
	}
	probe, err := os.ReadFile(filepath.Join(e.dir, "probe"))
	if err != nil {
		e.t.Fatal(err)
	}
	pause, err = os.ReadFile(filepath.Join(e.dir, "pause"))
	if err != nil {
		e.t.Fatal(err)
	}
	return probe, pause
}

// imageFiles is the one layer of both images: the probe with a setuid-root
// copy (for the no_new_privs op), the sandbox's pause, and users.
func imageFiles(probe, pause []byte) []layerFile {
	return []layerFile{
		{Name: "dev/", Mode: 0o755},
		{Name: "etc/", Mode: 0o755},
		{Name: "etc/group", Mode: 0o644, Body: []byte("root:x:0:\nnogroup:x:65534:\napp:x:1000:\n")},
		{Name: "etc/passwd", Mode: 0o644, Body: []byte("root:x:0:0:root:/:/probe\nnobody:x:65534:65534:nobody:/:/probe\napp:x:1000:1000:app:/:/probe\n")},
		{Name: "pause", Mode: 0o755, Body: pause},
		{Name: "probe", Mode: 0o755, Body: probe},
		{Name: "probe-suid", Mode: 0o4755, Body: probe},
		{Name: "proc/", Mode: 0o755},
		{Name: "sys/", Mode: 0o755},
		{Name: "tmp/", Mode: 0o1777},
	}
}

// writeCNI writes the Pod network: loopnet, which keeps both ends of a
// veth pair inside the Pod's network namespace and gives eth0 an address
// in 127.0.0.0/8. Nothing is created on the host.
func (e *env) writeCNI() {
	e.netName = "secrun-test-" + randHex(8)
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       e.netName,
		"plugins":    []any{map[string]any{"type": "loopnet"}},
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	e.mkdir("cni/net.d")
	e.write("cni/net.d/10-secrun-test.conflist", string(b))
	e.t.Logf("CNI network %s: loopnet (127.0.0.0/8 inside each Pod's namespace)", e.netName)
}

// writeContainerdConfig writes a version 2 configuration that keeps every
// path of this containerd under dir, then adds secrun's handlers with
// `secrunctl install containerd`, as an admin would.
func (e *env) writeContainerdConfig() {
	d := e.dir
	// The control handler: secrun-restricted without an annotation
	// allowlist, so Pod annotations must not reach secrun through it.
	base := containerdconf.Config{Version: 2, Root: filepath.Join(d, "root"), State: filepath.Join(d, "state"),
		Opt: filepath.Join(d, "opt"), Socket: e.sock, SandboxImage: pauseRef,
		CNIBinDir: filepath.Join(d, "cni", "bin"), CNIConfDir: filepath.Join(d, "cni", "net.d"),
		Handler: plainHandler, HandlerBinaryName: filepath.Join(e.binDir, install.Handler("restricted"))}.MustRender()
	e.write("containerd.toml", base)
	e.baseConfig = base
	r := e.secrunctl("install", "containerd", "--config", filepath.Join(e.dir, "containerd.toml"),
		"--policies", strings.Join(policies, ","), "--bin-dir", e.binDir)
	if r.code != 0 {
		e.t.Fatalf("secrunctl install containerd: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	e.t.Logf("secrunctl install containerd: %s", strings.TrimSpace(r.stdout))
}

// secrunctl runs the built secrunctl with the suite's secrun configuration.
func (e *env) secrunctl(args ...string) result {
	return e.run(filepath.Join(e.binDir, "secrunctl"), append([]string{"--config", filepath.Join(e.dir, "secrun", "config.yaml")}, args...)...)
}

// start runs containerd and waits until it answers on its socket.
func (e *env) start() {
	logf, err := os.Create(filepath.Join(e.dir, "containerd.log"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("containerd", "--config", filepath.Join(e.dir, "containerd.toml"), "--log-level", "info")
	// The shims inherit containerd's environment and pass it to the
	// runtime: this is how secrun finds the test's configuration.
	// secrun's per-container records stay in the test's directory too.
	cmd.Env = append(os.Environ(), "SECRUN_CONFIG="+filepath.Join(e.dir, "secrun", "config.yaml"),
		"SECRUN_STATE_DIR="+filepath.Join(e.dir, "secrun-state"))
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test binary dies, containerd goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start containerd: %v", err)
	}
	e.daemon = cmd
	e.exited = make(chan struct{})
	go func() { cmd.Wait(); close(e.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-e.exited:
			e.t.Fatalf("containerd exited at start (%v):\n%s", cmd.ProcessState, e.logTail())
		default:
		}
		if fileExists(e.sock) {
			if r := e.ctr(ctrNamespace, "version"); r.code == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("containerd did not answer on %s within 30s:\n%s", e.sock, e.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cleanup removes Pods and containers through containerd, stops it, and
// removes what could outlive it: mounts, CNI's cache, dir.
func (e *env) cleanup() {
	t := e.t
	if e.daemon != nil && e.daemon.ProcessState == nil {
		if e.crictl != "" {
			// Every Pod of this containerd; the socket is ours alone.
			if r := e.cri("rmp", "--all", "--force"); r.code != 0 {
				t.Logf("cleanup: crictl rmp: %s", r.stderr)
			}
		}
		for _, ns := range []string{ctrNamespace, criNamespace} {
			for _, id := range strings.Fields(e.ctr(ns, "tasks", "ls", "-q").stdout) {
				e.ctr(ns, "tasks", "kill", "-s", "SIGKILL", id)
				e.ctr(ns, "tasks", "rm", "-f", id)
			}
			for _, id := range strings.Fields(e.ctr(ns, "containers", "ls", "-q").stdout) {
				e.ctr(ns, "containers", "rm", id)
			}
		}
		e.daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.exited:
		case <-time.After(15 * time.Second):
			t.Logf("cleanup: containerd ignored SIGTERM for 15s; killing pid %d", e.daemon.Process.Pid)
			e.daemon.Process.Kill()
			<-e.exited
		}
	}
	if t.Failed() {
		t.Logf("containerd log (tail):\n%s", e.logTail())
	}
	if err := testenv.UnmountUnder(e.dir); err != nil {
		t.Logf("cleanup: %v", err)
	}
	if e.netName != "" {
		// libcni caches results in /var/lib/cni whatever containerd's
		// root; the files of this network carry its unique name.
		if m, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", e.netName+"-*")); len(m) > 0 {
			for _, f := range m {
				os.Remove(f)
			}
		}
	}
	// Only empty ones: anything inside belongs to someone else now.
	for _, p := range e.created {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) && strings.HasPrefix(p, "/sys/fs/cgroup") {
			t.Errorf("cleanup: the cgroup %s this test brought into being is left on the host: %v", p, err)
		}
	}
	if os.Getenv(KeepEnv) == "1" {
		t.Logf("kept %s (%s=1)", e.dir, KeepEnv)
		return
	}
	if err := os.RemoveAll(e.dir); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

func (e *env) logTail() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "containerd.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-40):], "\n")
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs a command with the suite's deadline.
func (e *env) run(name string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
	if ctx.Err() != nil {
		r.stderr += fmt.Sprintf("\n(timed out after %v)", cmdTimeout)
		r.code = -1
	} else if err != nil && r.code == 0 {
		r.code, r.stderr = -1, r.stderr+"\n"+err.Error()
	}
	return r
}

func (e *env) ctr(ns string, args ...string) result {
	return e.run("ctr", append([]string{"--address", e.sock, "--namespace", ns}, args...)...)
}

func (e *env) cri(args ...string) result {
	// --config: a host /etc/crictl.yaml must not point crictl elsewhere.
	return e.run(e.crictl, append([]string{"--config", filepath.Join(e.dir, "crictl.yaml")}, args...)...)
}

func (e *env) mkdir(rel string) {
	if err := os.MkdirAll(filepath.Join(e.dir, rel), 0o755); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) write(rel, body string) {
	if err := os.WriteFile(filepath.Join(e.dir, rel), []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}
