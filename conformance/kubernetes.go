package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrun/secrun/manifest"
	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/spec"
)

// Targets of a suite run.
const (
	TargetBundle     = "bundle"
	TargetKubernetes = "kubernetes"
)

// KubeOptions configure the Kubernetes target: the same cases, derived
// the same way, run as Pods on a real node through its RuntimeClasses.
type KubeOptions struct {
	// Kubeconfig is passed to kubectl; empty means kubectl's own default.
	Kubeconfig string
	// Kubectl is the kubectl binary; default "kubectl" on PATH.
	Kubectl string
	// RuntimeClasses are the secrun RuntimeClasses each case runs
	// through; default DefaultRuntimeClasses. Each one's handler must be
	// secrun-<policy>, a policy of the secrun configuration.
	RuntimeClasses []string
	// PlainRuntimeClass is the RuntimeClass without secrun that the
	// validity mode runs the cases through; default "runc" (created with
	// handler runc when missing).
	PlainRuntimeClass string
	// Namespace holds the Pods; default "secrun-conformance" (created
	// when missing).
	Namespace string
	// Node is the node the Pods run on (spec.nodeName); default the
	// cluster's only node.
	Node string
	// Image is a probe image the node already holds; default the image
	// built from the probe (BuildProbeImage).
	Image string
	// ImportCommand, when set, is run with the probe image archive's path
	// appended before any Pod is created, e.g.
	// ["ctr", "--address", SOCK, "-n", "k8s.io", "images", "import"].
	ImportCommand []string
	// SeccompProfileRoot is the kubelet's seccomp directory (its root
	// dir + /seccomp), where the Localhost case's profile is written;
	// default spec.DefaultSeccompProfileRoot (/var/lib/kubelet/seccomp).
	SeccompProfileRoot string
}

// DefaultRuntimeClasses are deploy/runtimeclass-*.yaml.
var DefaultRuntimeClasses = []string{"secrun-baseline", "secrun-restricted", "secrun-privileged"}

// kubeTarget is the cluster side of a Kubernetes run.
type kubeTarget struct {
	opts    KubeOptions
	k       *kubectl
	version string
	node    string
	// runtimeVersion is the node's containerRuntimeVersion
	// ("containerd://2.4.2").
	runtimeVersion string
	image          string
	runID          string
	classes        []kubeClass
	plain          kubeClass
	// noLocalhost says why the Localhost seccomp case cannot run.
	noLocalhost string
	// profileWritten is the Localhost profile the run put on the node.
	profileWritten string
	// dirMade is the seccomp directory the run made.
	dirMade string
}

type kubeClass struct{ name, handler, policy string }

// kubePodRun is one Pod: one workload of one case, through one
// RuntimeClass.
type kubePodRun struct {
	class    kubeClass
	caseName string
	wl       *manifest.Workload
	crs      []*containerRun
	name     string
	// obs is each container's observation, by container name.
	obs     map[string]*observation
	seconds float64
}

func runKubernetes(ctx context.Context, opts Options) (*Result, error) {
	start := time.Now()
	s, err := newKubeSuite(ctx, opts)
	if s != nil {
		defer s.kubeCleanup()
	}
	if err != nil {
		return nil, err
	}
	var runs []*containerRun
	var pods []*kubePodRun
	if opts.Validity {
		for _, c := range s.kube.classes {
			crs, _, err := s.kubeDerive(c, false)
			if err != nil {
				return nil, err
			}
			for _, cr := range crs {
				if err := s.keepPolicyDependent(cr); err != nil {
					return nil, err
				}
			}
			runs = append(runs, crs...)
		}
		control, ps, err := s.kubeDerive(s.kube.plain, true)
		if err != nil {
			return nil, err
		}
		runs, pods = append(runs, control...), ps
	} else {
		for _, c := range s.kube.classes {
			crs, ps, err := s.kubeDerive(c, false)
			if err != nil {
				return nil, err
			}
			runs, pods = append(runs, crs...), append(pods, ps...)
		}
	}
	live := map[*containerRun]bool{}
	for _, cr := range runs {
		live[cr] = s.startResults(cr)
	}
	// The containers of the Pods that run (in the validity mode only the
	// plain ones, which no agent serves) may need the seccomp agent on
	// this node.
	var podRuns []*containerRun
	for _, p := range pods {
		podRuns = append(podRuns, p.crs...)
	}
	if err := s.startAgent(podRuns); err != nil {
		return nil, err
	}
	defer s.stopAgent()
	var jobs []job
	for _, p := range pods {
		// A Pod with nothing to check is not run, except in the validity
		// mode, where the plain Pods are what the secrun containers'
		// checks are shown to fail against.
		if !opts.Validity && !slices.ContainsFunc(p.crs, func(cr *containerRun) bool { return live[cr] }) {
			continue
		}
		jobs = append(jobs, job{cr: p.crs[0], run: func(ctx context.Context) { s.runPod(ctx, p, live) }})
	}
	fmt.Fprintf(s.opts.Log, "kubernetes: %d Pods on node %s (%s), image %s, namespace %s\n", len(jobs), s.kube.node, s.kube.version, s.kube.image, s.kube.opts.Namespace)
	s.schedule(ctx, jobs, s.progressFunc(runs))
	if opts.Validity {
		s.kubeValidity(runs, pods)
	}
	res := s.result(runs, start)
	res.Runtime = fmt.Sprintf("Kubernetes %s node %s (%s)", s.kube.version, s.kube.node, orDash(s.kube.runtimeVersion))
	res.RuntimeKind = TargetKubernetes
	res.Delegate, res.Config = "", s.configPath
	if s.opts.Keep {
		res.WorkDir = s.work
	}
	if s.opts.ReportDir != "" {
		if err := res.WriteReports(s.opts.ReportDir); err != nil {
			return res, err
		}
	}
	return res, nil
}

func newKubeSuite(ctx context.Context, opts Options) (*suite, error) {
	ko := opts.Kube
	if ko.Kubectl == "" {
		ko.Kubectl = "kubectl"
	}
	if len(ko.RuntimeClasses) == 0 {
		ko.RuntimeClasses = DefaultRuntimeClasses
	}
	if ko.PlainRuntimeClass == "" {
		ko.PlainRuntimeClass = "runc"
	}
	if ko.Namespace == "" {
		ko.Namespace = "secrun-conformance"
	}
	if ko.SeccompProfileRoot == "" {
		ko.SeccompProfileRoot = spec.DefaultSeccompProfileRoot
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 3 * time.Minute
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	opts.Kube = ko
	bin, err := exec.LookPath(ko.Kubectl)
	if err != nil {
		return nil, fmt.Errorf("kubectl %q: %w (pass --kubectl)", ko.Kubectl, err)
	}
	if ko.Kubeconfig != "" {
		if _, err := os.Stat(ko.Kubeconfig); err != nil {
			return nil, fmt.Errorf("--kubeconfig: %w", err)
		}
	}
	s := &suite{opts: opts, kind: kindSecrun}
	if s.host, err = detectHost(); err != nil {
		return nil, err
	}
	id := make([]byte, 3)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	t := &kubeTarget{opts: ko, k: &kubectl{bin: bin, kubeconfig: ko.Kubeconfig, timeout: time.Minute}, runID: hex.EncodeToString(id)}
	s.kube = t
	if s.work, err = os.MkdirTemp("", "secrun-conformance-kube-"); err != nil {
		return nil, err
	}
	// Expectations read the Localhost profile from the suite's own copy;
	// the node gets the same file below.
	s.profileRoot = filepath.Join(s.work, "profiles")
	if err := writeLocalhostProfile(s.profileRoot); err != nil {
		return s, err
	}
	if err := s.kubeConfig(); err != nil {
		return s, err
	}
	if s.kubeMinor, t.version, err = t.k.serverMinor(ctx); err != nil {
		return s, err
	}
	if err := t.resolveNode(ctx); err != nil {
		return s, err
	}
	s.host.SandboxSysctls = containerdSandboxSysctls(t.runtimeVersion)
	s.host.PodSandbox = true
	if err := s.resolveClasses(ctx); err != nil {
		return s, err
	}
	if err := s.kubeImage(ctx); err != nil {
		return s, err
	}
	t.placeProfile(s.profileRoot)
	if err := t.ensureNamespace(ctx); err != nil {
		return s, err
	}
	return s, nil
}

// kubeConfig loads the secrun configuration the node's secrun-<policy>
// binaries read: --config, $SECRUN_CONFIG, /etc/secrun/config.yaml, or
// the built-in presets when the node has no file (as secrun itself).
func (s *suite) kubeConfig() error {
	path := s.opts.ConfigPath
	if path == "" {
		path = os.Getenv(policy.ConfigEnv)
	}
	if path == "" {
		if _, err := os.Stat(policy.DefaultConfigPath); err == nil {
			path = policy.DefaultConfigPath
		}
	}
	var raw []byte
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("secrun configuration: %w", err)
		}
		raw = b
		s.configPath = path
	}
	cfg, err := policy.ParseConfig(raw)
	if err != nil {
		return fmt.Errorf("secrun configuration %s: %w", orDash(path), err)
	}
	cfg.Source = path
	s.cfg = cfg
	return nil
}

func (t *kubeTarget) resolveNode(ctx context.Context) error {
	nodes, err := t.k.nodes(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	switch {
	case t.opts.Node != "" && slices.Contains(names, t.opts.Node):
		t.node = t.opts.Node
	case t.opts.Node != "":
		return fmt.Errorf("--node %s: the cluster has no such node (it has %s)", t.opts.Node, orDash(strings.Join(names, ", ")))
	case len(names) == 1:
		t.node = names[0]
	case len(names) == 0:
		return errors.New("the cluster has no node yet; wait for the kubelet to register")
	default:
		return fmt.Errorf("the cluster has %d nodes (%s); name one with --node", len(names), strings.Join(names, ", "))
	}
	for _, n := range nodes {
		if n.Name == t.node {
			t.runtimeVersion = n.Status.NodeInfo.ContainerRuntimeVersion
		}
	}
	return nil
}

// containerdSandboxSysctls is what containerd's CRI plugin sets on every
// Pod sandbox that does not set them itself and has its own network:
// from containerd 2.0 the CRI options enable_unprivileged_ports and
// enable_unprivileged_icmp default to true (containerd
// internal/cri/config/config_unix.go; both false in 1.x), which give the
// sandbox net.ipv4.ip_unprivileged_port_start=0 and
// net.ipv4.ping_group_range="0 2147483647". A node admin may turn them
// off; the probe then shows the difference as a failing check.
func containerdSandboxSysctls(runtimeVersion string) map[string]string {
	if n, ok := containerdMajor(runtimeVersion); !ok || n < 2 {
		return nil
	}
	return map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"}
}

// containerdMajor is the major version of a node's
// ContainerRuntimeVersion ("containerd://2.1.4"); false for another
// runtime.
func containerdMajor(runtimeVersion string) (int, bool) {
	v, ok := strings.CutPrefix(runtimeVersion, "containerd://")
	if !ok {
		return 0, false
	}
	major, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), ".")
	n, err := strconv.Atoi(major)
	return n, err == nil
}

// kubeContainerd is the major version of the Kubernetes node's
// containerd; false off the Kubernetes target or for another runtime.
func (s *suite) kubeContainerd() (int, bool) {
	if s.kube == nil {
		return 0, false
	}
	return containerdMajor(s.kube.runtimeVersion)
}

// resolveClasses reads each RuntimeClass's handler: secrun-<policy> is
// how `secrunctl install containerd` names them, and the policy is what
// the expectations are derived from.
func (s *suite) resolveClasses(ctx context.Context) error {
	t := s.kube
	for _, name := range t.opts.RuntimeClasses {
		rc, err := t.k.runtimeClass(ctx, name)
		if err != nil {
			return fmt.Errorf("RuntimeClass %s: %w (apply deploy/runtimeclass-*.yaml)", name, err)
		}
		pol, ok := strings.CutPrefix(rc.Handler, "secrun-")
		if !ok {
			return fmt.Errorf("RuntimeClass %s has handler %q, not a secrun-<policy> handler", name, rc.Handler)
		}
		if _, err := s.cfg.Policy(pol); err != nil {
			return fmt.Errorf("RuntimeClass %s (handler %s): %w", name, rc.Handler, err)
		}
		t.classes = append(t.classes, kubeClass{name: name, handler: rc.Handler, policy: pol})
	}
	if !s.opts.Validity {
		return nil
	}
	name := t.opts.PlainRuntimeClass
	rc, err := t.k.runtimeClass(ctx, name)
	if isNotFound(err) {
		rc = &nodev1.RuntimeClass{
			TypeMeta:   metav1.TypeMeta{APIVersion: "node.k8s.io/v1", Kind: "RuntimeClass"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{labelManagedBy: managedBy}},
			Handler:    "runc",
		}
		if err = t.k.create(ctx, rc); err != nil && !isAlreadyExists(err) {
			return fmt.Errorf("create RuntimeClass %s (handler runc) for --validity: %w", name, err)
		}
		fmt.Fprintf(s.opts.Log, "kubernetes: created RuntimeClass %s (handler runc) for the validity runs\n", name)
		err = nil
	}
	if err != nil {
		return fmt.Errorf("RuntimeClass %s: %w", name, err)
	}
	if strings.HasPrefix(rc.Handler, "secrun") {
		return fmt.Errorf("RuntimeClass %s has handler %s: the validity runs need one without secrun (--plain-runtime-class)", name, rc.Handler)
	}
	t.plain = kubeClass{name: name, handler: rc.Handler}
	return nil
}

// kubeImage builds the probe image (or takes --image) and imports it
// with the given command.
func (s *suite) kubeImage(ctx context.Context) error {
	t := s.kube
	if t.opts.Image != "" {
		t.image = t.opts.Image
		return nil
	}
	if err := os.MkdirAll(filepath.Join(s.work, "bin"), 0o755); err != nil {
		return err
	}
	probe := filepath.Join(s.work, "bin", "probe")
	if err := s.probeBinary(probe); err != nil {
		return err
	}
	img, err := BuildProbeImage(probe)
	if err != nil {
		return err
	}
	t.image = img.Ref
	if len(t.opts.ImportCommand) == 0 {
		return nil
	}
	archive := filepath.Join(s.work, "probe-image.tar")
	if err := os.WriteFile(archive, img.Archive, 0o644); err != nil {
		return err
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	args := append(slices.Clone(t.opts.ImportCommand[1:]), archive)
	out, err := exec.CommandContext(ictx, t.opts.ImportCommand[0], args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("import the probe image (%s %s): %v: %s", t.opts.ImportCommand[0], strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	fmt.Fprintf(s.opts.Log, "kubernetes: imported %s into the node's containerd\n", img.Ref)
	return nil
}

// WriteProbeImage writes the probe image archive to path and returns its
// reference, for a harness that imports it itself.
func WriteProbeImage(opts Options, path string) (string, error) {
	dir, err := os.MkdirTemp("", "secrun-probe-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	s := &suite{opts: opts}
	probe := filepath.Join(dir, "probe")
	if err := s.probeBinary(probe); err != nil {
		return "", err
	}
	img, err := BuildProbeImage(probe)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, img.Archive, 0o644); err != nil {
		return "", fmt.Errorf("write the probe image: %w", err)
	}
	return img.Ref, nil
}

// placeProfile puts the suite's Localhost seccomp profile where the
// kubelet resolves localhostProfile (<root-dir>/seccomp/<name>). The
// seccomp directory is made inside an existing kubelet root directory
// (the kubelet does not make it) and removed again; a missing root
// directory means this machine is not the node.
func (t *kubeTarget) placeProfile(src string) {
	dir := t.opts.SeccompProfileRoot
	if fi, err := os.Stat(filepath.Dir(dir)); err != nil || !fi.IsDir() {
		t.noLocalhost = fmt.Sprintf("the kubelet's root directory %s does not exist on this machine, so the Localhost profile cannot be placed (pass --seccomp-profile-root <kubelet root-dir>/seccomp)", filepath.Dir(dir))
		return
	}
	if _, err := os.Stat(dir); err != nil {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.noLocalhost = fmt.Sprintf("make the kubelet's seccomp directory: %v", err)
			return
		}
		t.dirMade = dir
	}
	dst := filepath.Join(dir, LocalhostProfileName)
	body, err := os.ReadFile(filepath.Join(src, LocalhostProfileName))
	if err == nil {
		if _, serr := os.Stat(dst); serr != nil {
			t.profileWritten = dst
		}
		err = os.WriteFile(dst, body, 0o644)
	}
	if err != nil {
		t.noLocalhost = fmt.Sprintf("write the Localhost seccomp profile into %s: %v", dir, err)
		t.profileWritten = ""
	}
}

// ensureNamespace creates the namespace and, for a cluster without a
// controller-manager, its default ServiceAccount, which the
// ServiceAccount admission plugin requires of every Pod.
func (t *kubeTarget) ensureNamespace(ctx context.Context) error {
	ns := t.opts.Namespace
	var n corev1.Namespace
	err := t.k.getJSON(ctx, &n, "namespace", ns)
	if isNotFound(err) {
		err = t.k.create(ctx, &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{labelManagedBy: managedBy}},
		})
		if isAlreadyExists(err) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	var sa corev1.ServiceAccount
	err = t.k.getJSON(ctx, &sa, "serviceaccount", "-n", ns, "default")
	if isNotFound(err) {
		err = t.k.create(ctx, &corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
		})
		if isAlreadyExists(err) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("service account %s/default: %w", ns, err)
	}
	return nil
}

// kubeCleanup deletes the run's Pods (unless --keep), the profile it
// placed and its work directory.
func (s *suite) kubeCleanup() {
	t := s.kube
	if !s.opts.Keep {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := t.k.run(ctx, nil, "delete", "pods", "-n", t.opts.Namespace, "-l", labelRun+"="+t.runID, "--ignore-not-found", "--wait=true", "--timeout=90s"); err != nil {
			fmt.Fprintf(s.opts.Log, "kubernetes: deleting the run's Pods: %v\n", err)
		}
	} else {
		fmt.Fprintf(s.opts.Log, "kubernetes: Pods kept in namespace %s (label %s=%s)\n", t.opts.Namespace, labelRun, t.runID)
	}
	if t.profileWritten != "" {
		os.Remove(t.profileWritten)
	}
	if t.dirMade != "" {
		// Only if empty: the kubelet's own files stay.
		os.Remove(t.dirMade)
	}
	if !s.opts.Keep {
		os.RemoveAll(s.work)
	}
}

// kubeDerive derives every selected case's containers for one
// RuntimeClass: under its secrun policy, or (bare) as the manifest asks,
// and groups them into Pods.
func (s *suite) kubeDerive(class kubeClass, bare bool) ([]*containerRun, []*kubePodRun, error) {
	if bare {
		s.kind, s.runtime, s.fixedPolicy = kindBare, class.handler, ""
	} else {
		s.kind, s.runtime, s.fixedPolicy = kindSecrun, "", class.policy
	}
	cases, err := s.selectCases()
	if err != nil {
		return nil, nil, err
	}
	var runs []*containerRun
	var pods []*kubePodRun
	for _, c := range cases {
		orig := c.Name
		c.Name += "@" + class.name
		crs, err := s.setupCase(c)
		if err != nil {
			return nil, nil, fmt.Errorf("case %s (%s): %w", orig, c.File, err)
		}
		byWorkload := map[string]*kubePodRun{}
		for _, cr := range crs {
			cr.runtime = "RuntimeClass " + class.name
			if cr.requested.m.Seccomp == seccompLocalhost && s.kube.noLocalhost != "" && cr.setupErr == nil {
				cr.setupErr = errors.New(s.kube.noLocalhost)
			}
			runs = append(runs, cr)
			if cr.wl == nil {
				continue
			}
			p := byWorkload[cr.workload]
			if p == nil {
				p = &kubePodRun{class: class, caseName: c.Name, wl: cr.wl,
					name: podName(orig, cr.workload, class.name, s.kube.runID)}
				byWorkload[cr.workload] = p
				pods = append(pods, p)
			}
			p.crs = append(p.crs, cr)
		}
	}
	return runs, pods, nil
}

// runPod creates one Pod, waits for the node to finish with it, reads
// each container's report or refusal back, and evaluates the checks of
// the containers that are live (conformance) or keeps the observations
// for the validity verdicts.
func (s *suite) runPod(ctx context.Context, p *kubePodRun, live map[*containerRun]bool) {
	t := s.kube
	start := time.Now()
	args := map[string][]string{}
	sysctls := map[string]string{}
	for _, cr := range p.crs {
		args[cr.container] = kubeProbeArgs(cr.final.m, s.host)
		for k, v := range cr.requested.m.Sysctls {
			sysctls[k] = v
		}
	}
	p.obs = map[string]*observation{}
	fail := func(err error) {
		for _, cr := range p.crs {
			p.obs[cr.container] = &observation{exit: -1, runErr: err}
		}
	}
	pod, err := kubePod(p.wl, podParams{Name: p.name, Namespace: t.opts.Namespace, RuntimeClass: p.class.name,
		Node: t.node, Image: t.image, RunID: t.runID, Case: p.caseName, Args: args})
	hostBefore := readHostSysctls(sysctls)
	if err == nil {
		err = t.k.create(ctx, pod)
	}
	if err != nil {
		fail(fmt.Errorf("create Pod %s: %w", p.name, err))
	} else {
		s.waitPod(ctx, p)
		if !s.opts.Keep {
			if _, err := t.k.run(context.WithoutCancel(ctx), nil, "delete", "pod", "-n", t.opts.Namespace, p.name, "--wait=false", "--ignore-not-found"); err != nil {
				fmt.Fprintf(s.opts.Log, "kubernetes: delete Pod %s: %v\n", p.name, err)
			}
		}
	}
	p.seconds = time.Since(start).Seconds()
	hostAfter := readHostSysctls(sysctls)
	if len(sysctls) > 0 {
		// A node's runtime runs in the host's namespaces: a sysctl that
		// escaped the Pod would show there. The host is never preset.
		samples := map[string]sample{}
		for n := range sysctls {
			samples[n] = sample{before: hostBefore[n], after: hostAfter[n]}
		}
		for _, o := range p.obs {
			o.host, o.outer = samples, samples
		}
	}
	var passed, failed int
	s.mu.Lock()
	for _, cr := range p.crs {
		obs := p.obs[cr.container]
		cr.run = runInfo(obs, time.Since(start), cr.runtime)
		if !live[cr] {
			continue
		}
		for i, ch := range cr.checks {
			if ch.skip != "" {
				continue
			}
			v := ch.eval(obs)
			cr.results[i].apply(v)
			if v.Status == StatusFail {
				failed++
			} else {
				passed++
			}
		}
	}
	s.mu.Unlock()
	fmt.Fprintf(s.opts.Log, "kubernetes: Pod %s (%s) finished in %.1fs: %d passed, %d failed\n", p.name, p.caseName, p.seconds, passed, failed)
}

// waitPod polls the Pod until the node is done with it or the time per
// Pod runs out, then collects events and logs into p.obs.
func (s *suite) waitPod(ctx context.Context, p *kubePodRun) {
	t := s.kube
	ns := t.opts.Namespace
	deadline := time.Now().Add(s.opts.Timeout)
	var pod *corev1.Pod
	var lastErr error
	for tries := 0; ; tries++ {
		got, err := t.k.pod(ctx, ns, p.name)
		if err == nil {
			pod, lastErr = got, nil
			if podFinished(pod) {
				break
			}
			// A sandbox secrun refused is final: the kubelet retries it
			// until the Pod is deleted, and no container will start.
			if tries%3 == 2 {
				if events, err := t.k.podEvents(ctx, ns, p.name); err == nil && strings.Contains(sandboxEvent(events), "secrun: ") {
					break
				}
			}
		} else {
			lastErr = err
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			events, _ := t.k.podEvents(context.WithoutCancel(ctx), ns, p.name)
			where := "never seen"
			if pod != nil {
				where = podSummary(pod, events)
			}
			if lastErr != nil {
				where += "; " + lastErr.Error()
			}
			why := fmt.Sprintf("did not finish within %s (--timeout)", s.opts.Timeout)
			if ctx.Err() != nil {
				why = "was interrupted: " + ctx.Err().Error()
			}
			for _, cr := range p.crs {
				p.obs[cr.container] = &observation{exit: -1, runErr: fmt.Errorf("Pod %s %s: %s", p.name, why, where)}
			}
			return
		}
		time.Sleep(time.Second)
	}
	// The kubelet sends events apart from the status: give a refusal's
	// event a few seconds to arrive.
	var events []corev1.Event
	for try := 0; try < 10; try++ {
		events, _ = t.k.podEvents(ctx, ns, p.name)
		if !awaitingEvent(pod, events) {
			break
		}
		time.Sleep(time.Second)
	}
	for _, cr := range p.crs {
		var log string
		if st := containerStatus(pod, cr.container); st != nil && st.State.Terminated != nil && st.State.Terminated.Reason != "StartError" {
			l, err := t.k.logs(ctx, ns, p.name, cr.container)
			if err != nil {
				p.obs[cr.container] = &observation{exit: int(st.State.Terminated.ExitCode), runErr: fmt.Errorf("read the probe's report: %w", err)}
				continue
			}
			log = l
		}
		p.obs[cr.container] = podObservation(pod, cr.container, log, events)
	}
}

func containerStatus(pod *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == name {
			return &pod.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// awaitingEvent reports whether a container failed to start and no event
// about it has arrived yet.
func awaitingEvent(pod *corev1.Pod, events []corev1.Event) bool {
	for _, st := range pod.Status.ContainerStatuses {
		if t := st.State.Terminated; t != nil && t.Reason == "StartError" && containerEvent(events, st.Name) == "" {
			return true
		}
	}
	return false
}

// keepPolicyDependent keeps, of a container derived under its secrun
// policy, the checks whose expectation the policy changes: those a Pod
// through a RuntimeClass without secrun must fail. Which they are comes
// from deriving the same checks once more from the model the manifest
// alone asks for (what runc gets without secrun): a check whose expected
// outcome is the same there is enforced by runc itself, and the bundle
// suite's --validity shows it failing against its twin.
func (s *suite) keepPolicyDependent(cr *containerRun) error {
	if cr.final.refusal != nil || cr.setupErr != nil {
		return nil
	}
	alt := *cr
	alt.final = &derivation{m: cr.requested.m.clone(), covered: cloneCovered(cr.final.covered)}
	// interestingCaps looks at the capabilities the policy changed
	// either way, so the swapped pair yields the same capability checks.
	alt.requested = cr.final
	alt.checks, alt.notApplicable = nil, nil
	if err := s.deriveChecks(&alt); err != nil {
		return fmt.Errorf("%s: derive the requested model's checks: %w", cr.id(), err)
	}
	unpoliced := map[string]string{}
	for _, ch := range alt.checks {
		unpoliced[ch.Name] = ch.Expected
	}
	var same, absent []string
	cr.checks = slices.DeleteFunc(cr.checks, func(ch *check) bool {
		want, ok := unpoliced[ch.Name]
		switch {
		case ch.skip != "":
			return false
		case !ok && ch.brk == agentOffBreaker:
			// The seccomp agent's record: the plain Pod has no listener,
			// so nothing may be recorded for it.
			return false
		case !ok:
			absent = append(absent, ch.Name)
			return true
		case want == ch.Expected:
			same = append(same, ch.Name)
			return true
		}
		return false
	})
	if len(same) > 0 {
		cr.notApplicable = append(cr.notApplicable, fmt.Sprintf("%s: %d checks expect the same without policy %s, so runc enforces them too (the bundle suite's --validity shows each failing against its twin): %s",
			cr.id(), len(same), cr.policy.name(), strings.Join(same, ", ")))
	}
	if len(absent) > 0 {
		cr.notApplicable = append(cr.notApplicable, fmt.Sprintf("%s: %d checks exist only under policy %s (the container the manifest asks for cannot show them; the bundle suite's twins do): %s",
			cr.id(), len(absent), cr.policy.name(), strings.Join(absent, ", ")))
	}
	return nil
}

// kubeValidity gives each policy-dependent check its verdict from the
// same case's Pod under the plain RuntimeClass: the check must fail
// there. The control containers (that Pod's own checks, derived from the
// manifest alone) were evaluated as they ran.
func (s *suite) kubeValidity(runs []*containerRun, pods []*kubePodRun) {
	plain := s.kube.plain
	obsOf := map[string]*observation{}
	for _, p := range pods {
		base := strings.TrimSuffix(p.caseName, "@"+plain.name)
		for name, o := range p.obs {
			obsOf[base+"\x00"+p.wl.Name+"\x00"+name] = o
		}
	}
	twin := fmt.Sprintf("the same Pod through RuntimeClass %s (handler %s): no secrun", plain.name, plain.handler)
	for _, cr := range runs {
		if cr.policy == nil || cr.setupErr != nil {
			continue
		}
		base := cr.caseName[:strings.LastIndex(cr.caseName, "@")]
		o := obsOf[base+"\x00"+cr.workload+"\x00"+cr.container]
		for i, ch := range cr.checks {
			if ch.skip != "" {
				continue
			}
			cr.results[i].apply(kubeValidityVerdict(ch, o, plain.name))
			cr.results[i].Twin = twin
		}
	}
}

func kubeValidityVerdict(ch *check, o *observation, class string) verdict {
	if o == nil {
		return failf("", "no Pod ran this container through RuntimeClass %s", class)
	}
	if _, v := o.started(); v != nil {
		return failf("", "the Pod through RuntimeClass %s did not run, so it cannot show the check failing: %s", class, v.Message)
	}
	t := ch.eval(o)
	switch t.Status {
	case StatusFail:
		return pass("fails without secrun: " + t.Message)
	case StatusSkip:
		return failf("", "the Pod through RuntimeClass %s could not show the check failing: %s", class, t.Message)
	}
	return failf(t.Observed, "the check cannot fail: it passes through RuntimeClass %s too, although the policy changes what it expects", class)
}
