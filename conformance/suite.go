// Package conformance is secrun's enforcement suite. Each case is a
// Kubernetes Pod manifest (cases/*.yaml). The suite translates it into an
// OCI bundle with package manifest, as `secrunctl translate` does, puts
// the static probe (conformance/probe) in as the whole rootfs, runs it
// through secrun or a bare OCI runtime, and compares what the probe could
// and could not do with what the manifest and the node's policy say it
// must be allowed and denied.
//
// Expectations are derived, never written per case: deriveRequested
// reads the manifest with containerd's and the kubelet's semantics,
// policySim applies the secrun policy the container runs under, and
// deriveChecks turns the resulting model into checks. A check that
// cannot fail is a defect; the validity mode (Options.Validity) runs
// every check against a twin bundle where its setting is deliberately
// not enforced and reports any check that passes there.
package conformance

import (
	"context"
	"debug/elf"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/manifest"
	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/spec"
)

//go:embed cases/*.yaml
var embeddedCases embed.FS

//go:embed profiles/apparmor/*
var embeddedAppArmor embed.FS

// Options configure a suite run.
type Options struct {
	// Target is where containers run: TargetBundle (the default: OCI
	// bundles through secrun or a bare runtime on this machine) or
	// TargetKubernetes (Pods on a real node; see Kube).
	Target string
	// Kube configures the Kubernetes target. Runtime, SecrunBinary,
	// Delegate, WorkDir and PolicyForAll do not apply there: the node's
	// RuntimeClasses decide.
	Kube KubeOptions
	// Runtime is "secrun" (the default: secrun-<policy> links to
	// SecrunBinary, one per case's policy), the path or name of a
	// secrun-<policy> binary (that policy for every case), or another OCI
	// runtime such as runc or crun, run bare to compare runtimes.
	Runtime string
	// SecrunBinary is the secrun executable; default: "secrun" next to
	// the running program.
	SecrunBinary string
	// Policy is the secrun policy of cases whose runtimeClassName names
	// no secrun-<policy> handler; default: the configuration's
	// defaultPolicy. With PolicyForAll it applies to every case.
	Policy       string
	PolicyForAll bool
	// ConfigPath is the secrun configuration; empty means $SECRUN_CONFIG
	// when set, else the suite's own (GeneratedConfig).
	ConfigPath string
	// Delegate is the bare runtime the validity mode runs twins with;
	// default: the secrun configuration's runtime, or Runtime when bare.
	Delegate string
	// AllowedUnsafeSysctls is the kubelet's --allowed-unsafe-sysctls the
	// translation assumes; nil means DefaultAllowedUnsafeSysctls.
	AllowedUnsafeSysctls []string
	// Focus and Skip select checks by ID ("case/container/check").
	Focus, Skip *regexp.Regexp
	Parallel    int
	Validity    bool
	// CasesDir holds *.yaml Pod manifests; empty means the built-in cases.
	CasesDir string
	// Cases, when set, limits the run to these case names.
	Cases []string
	// ReportDir receives the reports (and the audit log); empty means
	// none are written.
	ReportDir string
	// WorkDir holds bundles; empty means a temporary directory. It must
	// not be on a nosuid mount.
	WorkDir string
	// Keep keeps every bundle for debugging; otherwise only bundles of
	// unexpected results are kept (under WorkDir, which then stays).
	Keep bool
	// ProbePath is a static probe binary; empty means build it from the
	// module at ModuleRoot (default: found from the working directory).
	ProbePath  string
	ModuleRoot string
	Timeout    time.Duration
	// Progress, when set, gets a progress line rewritten after each run.
	Progress io.Writer
	// Log gets setup messages.
	Log io.Writer
}

// DefaultAllowedUnsafeSysctls is the kubelet allowlist of the user's
// text (--allowed-unsafe-sysctls=net.core.somaxconn,...), so that a Pod
// with an unsafe sysctl reaches the runtime and the node policy decides.
var DefaultAllowedUnsafeSysctls = []string{"net.core.somaxconn"}

const (
	kindSecrun = "secrun"
	kindBare   = "bare"
)

type suite struct {
	opts        Options
	host        *hostEnv
	work        string
	stateRoot   string
	probe       string
	probeSUID   string
	profileRoot string
	kind        string
	runtime     string // bare runtime binary, or the secrun binary
	fixedPolicy string // policy named by a secrun-<policy> runtime
	delegate    string
	cfg         *policy.Config
	configPath  string
	seq         atomic.Int64
	nosuidWork  bool
	keepWork    atomic.Bool
	// mu guards the results that jobs write and the progress line reads.
	mu sync.Mutex
	// kube is set for the Kubernetes target: containers run as Pods, and
	// nothing is translated into bundles here.
	kube *kubeTarget
	// kubeMinor is the Kubernetes minor version manifests are read for:
	// the server's for the Kubernetes target, the newest the suite knows
	// (as manifest.Translate's default) for bundles.
	kubeMinor int
}

// containerRun is one container of one case.
type containerRun struct {
	caseName  string
	file      string
	workload  string
	container string
	multi     bool
	sc        effectiveSC
	policy    *policySim
	requested *derivation
	final     *derivation
	// translated is the bundle manifest.Translate made, prepared with the
	// probe as its process.
	translated *specs.Spec
	warnings   []string
	runtime    string
	env        []string
	checks     []*check
	// notApplicable lists checks this node cannot make meaningful.
	notApplicable []string
	// setupErr fails every check of the container.
	setupErr error
	results  []CheckResult
	run      *RunInfo
	// wl is the parsed workload the container belongs to.
	wl *manifest.Workload
}

func (c *containerRun) id() string {
	if c.multi {
		return c.caseName + "/" + c.workload + "/" + c.container
	}
	return c.caseName + "/" + c.container
}

// Run runs the suite and returns its result; an error means the suite
// could not run at all. Failed checks are in the result.
func Run(ctx context.Context, opts Options) (*Result, error) {
	switch opts.Target {
	case "", TargetBundle:
	case TargetKubernetes:
		return runKubernetes(ctx, opts)
	default:
		return nil, fmt.Errorf("target %q: want %s or %s", opts.Target, TargetBundle, TargetKubernetes)
	}
	start := time.Now()
	s, err := newSuite(opts)
	if err != nil {
		return nil, err
	}
	defer s.cleanup()
	runs, err := s.setup()
	if err != nil {
		return nil, err
	}
	if s.opts.Validity {
		s.validity(ctx, runs)
	} else {
		s.conformance(ctx, runs)
	}
	res := s.result(runs, start)
	if s.keepWork.Load() || s.opts.Keep {
		res.WorkDir = s.work
	}
	if s.opts.ReportDir != "" {
		if err := res.WriteReports(s.opts.ReportDir); err != nil {
			return res, err
		}
	}
	return res, nil
}

func newSuite(opts Options) (*suite, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = runtime.NumCPU()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Runtime == "" {
		opts.Runtime = "secrun"
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the conformance suite starts real containers and needs root")
	}
	// The newest Kubernetes, as manifest.Translate models by default.
	newest, _ := kubernetesMinor("")
	s := &suite{opts: opts, kubeMinor: newest}
	var err error
	if s.host, err = detectHost(); err != nil {
		return nil, err
	}
	if opts.WorkDir != "" {
		s.work = opts.WorkDir
		err = os.MkdirAll(s.work, 0o700)
	} else {
		// /var/tmp rather than /tmp: /tmp is often a nosuid tmpfs, and
		// nnp.setuid needs a setuid binary that works.
		parent := ""
		if fi, serr := os.Stat("/var/tmp"); serr == nil && fi.IsDir() {
			parent = "/var/tmp"
		}
		s.work, err = os.MkdirTemp(parent, "secrun-conformance-")
	}
	if err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	var st unix.Statfs_t
	if unix.Statfs(s.work, &st) == nil && st.Flags&unix.ST_NOSUID != 0 {
		s.nosuidWork = true
	}
	s.stateRoot = filepath.Join(s.work, "state")
	s.profileRoot = filepath.Join(s.work, "profiles")
	if s.opts.ReportDir != "" {
		s.profileRoot = filepath.Join(s.opts.ReportDir, "profiles")
	}
	for _, d := range []string{s.stateRoot, filepath.Join(s.work, "bin"), filepath.Join(s.work, "runs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if err := writeLocalhostProfile(s.profileRoot); err != nil {
		return nil, err
	}
	if err := s.resolveRuntime(); err != nil {
		return nil, err
	}
	if err := s.prepareProbe(); err != nil {
		return nil, err
	}
	if s.host.AppArmor {
		if err := s.loadAppArmorProfiles(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *suite) cleanup() {
	if s.opts.Keep || s.keepWork.Load() {
		fmt.Fprintf(s.opts.Log, "conformance: bundles kept in %s\n", s.work)
		return
	}
	if s.opts.WorkDir == "" {
		os.RemoveAll(s.work)
	}
}

// resolveRuntime decides between secrun and a bare runtime, and loads
// the secrun configuration the expectations are derived from.
func (s *suite) resolveRuntime() error {
	delegate := s.opts.Delegate
	if delegate == "" {
		delegate = "runc"
	}
	d, err := exec.LookPath(delegate)
	if err != nil {
		return fmt.Errorf("delegate runtime %q: %w", delegate, err)
	}
	s.delegate, _ = filepath.Abs(d)

	rt := s.opts.Runtime
	base := filepath.Base(rt)
	if base != "secrun" && !strings.HasPrefix(base, "secrun-") {
		p, err := exec.LookPath(rt)
		if err != nil {
			return fmt.Errorf("runtime %q: %w", rt, err)
		}
		s.kind, s.runtime = kindBare, p
		// Twins run with the runtime under test when it is bare.
		s.delegate, _ = filepath.Abs(p)
		return nil
	}
	s.kind = kindSecrun
	if name, ok := strings.CutPrefix(base, "secrun-"); ok {
		s.fixedPolicy = name
	}
	bin := s.opts.SecrunBinary
	switch {
	case bin != "":
	case rt != "secrun" && rt != base || rt != "secrun" && strings.Contains(rt, "/"):
		// A path to secrun or a secrun-<policy> link: the binary behind it.
		if bin, err = filepath.EvalSymlinks(rt); err != nil {
			return fmt.Errorf("runtime %s: %w", rt, err)
		}
	default:
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find secrun: %w", err)
		}
		bin = filepath.Join(filepath.Dir(exe), "secrun")
		if _, err := os.Stat(bin); err != nil {
			if p, lerr := exec.LookPath("secrun"); lerr == nil {
				bin = p
			} else {
				return fmt.Errorf("secrun binary not found next to %s or on PATH; build it (make build) or pass --secrun", exe)
			}
		}
	}
	if s.runtime, err = filepath.Abs(bin); err != nil {
		return err
	}
	if _, err := os.Stat(s.runtime); err != nil {
		return fmt.Errorf("secrun binary: %w", err)
	}

	cfgPath := s.opts.ConfigPath
	if cfgPath == "" {
		cfgPath = os.Getenv(policy.ConfigEnv)
	}
	if cfgPath != "" {
		s.configPath, _ = filepath.Abs(cfgPath)
	} else {
		dir := s.opts.ReportDir
		if dir == "" {
			dir = s.work
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		audit := filepath.Join(dir, "audit.log")
		s.configPath = filepath.Join(dir, "secrun-config.yaml")
		body := GeneratedConfig(s.delegate, audit, s.profileRoot)
		if err := os.WriteFile(s.configPath, []byte(body), 0o644); err != nil {
			return fmt.Errorf("write the suite's secrun configuration: %w", err)
		}
	}
	raw, err := os.ReadFile(s.configPath)
	if err != nil {
		return fmt.Errorf("secrun configuration: %w", err)
	}
	if s.cfg, err = policy.ParseConfig(raw); err != nil {
		return fmt.Errorf("secrun configuration %s: %w", s.configPath, err)
	}
	s.cfg.Source = s.configPath
	// Twins run with the runtime secrun delegates to, so that a check is
	// shown to fail on the same low-level runtime it passed on.
	if s.opts.Delegate == "" {
		d, err := exec.LookPath(s.cfg.Runtime)
		if err != nil {
			return fmt.Errorf("the delegate runtime %q of %s: %w", s.cfg.Runtime, s.configPath, err)
		}
		s.delegate, _ = filepath.Abs(d)
	}
	return nil
}

// GeneratedConfig is the secrun configuration the suite uses unless
// given one: the presets in harden mode, so that each case shows both
// what the Pod asks for and what the policy rewrites. Harden refuses
// only what no rewrite can fix, so a privileged Pod and a root Pod under
// restricted (no runAsUser is configured on purpose) show refusals.
func GeneratedConfig(delegate, auditLog, profileRoot string) string {
	return fmt.Sprintf(`# Written by secrunctl conformance.
runtime: %q
defaultPolicy: baseline
auditLog: %q
seccompProfileRoot: %q
policies:
  baseline:
    mode: harden
  restricted:
    mode: harden
`, delegate, auditLog, profileRoot)
}

// prepareProbe builds the static probe once (or takes the given one) and
// makes its setuid-root copy.
func (s *suite) prepareProbe() error {
	s.probe = filepath.Join(s.work, "bin", "probe")
	s.probeSUID = filepath.Join(s.work, "bin", "probe-suid")
	if err := s.probeBinary(s.probe); err != nil {
		return err
	}
	if err := linkOrCopyFresh(s.probe, s.probeSUID); err != nil {
		return fmt.Errorf("probe setuid copy: %w", err)
	}
	if err := os.Chown(s.probeSUID, 0, 0); err != nil {
		return err
	}
	return os.Chmod(s.probeSUID, os.ModeSetuid|0o755)
}

// probeBinary puts the static probe at dst: the one given, the one
// `make conformance` leaves next to secrunctl, or one built from the
// module.
func (s *suite) probeBinary(dst string) error {
	if s.opts.ProbePath == "" {
		// `make conformance` leaves a fresh one next to secrunctl.
		if exe, err := os.Executable(); err == nil {
			if p := filepath.Join(filepath.Dir(exe), "conformance-probe"); checkStatic(p) == nil {
				s.opts.ProbePath = p
			}
		}
	}
	if s.opts.ProbePath != "" {
		if err := linkOrCopy(s.opts.ProbePath, dst); err != nil {
			return fmt.Errorf("probe: %w", err)
		}
	} else {
		root := s.opts.ModuleRoot
		if root == "" {
			var err error
			if root, err = findModuleRoot(); err != nil {
				return err
			}
		}
		fmt.Fprintf(s.opts.Log, "conformance: building the probe (CGO_ENABLED=0 go build ./conformance/probe)\n")
		cmd := exec.Command("go", "build", "-trimpath", "-o", dst, "./conformance/probe")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build the probe (CGO_ENABLED=0 go build ./conformance/probe in %s): %v\n%s", root, err, out)
		}
	}
	if err := checkStatic(dst); err != nil {
		return err
	}
	return os.Chmod(dst, 0o755)
}

// linkOrCopyFresh copies (never links: the setuid bit must not reach the
// probe itself).
func linkOrCopyFresh(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

// checkStatic refuses a dynamically linked probe: the rootfs holds
// nothing else, so it could not start.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("probe %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("probe %s is dynamically linked; build it with CGO_ENABLED=0", p)
		}
	}
	return nil
}

func findModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/secrun/secrun\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the secrun module to build the probe from; run from the repository or pass --probe")
		}
		dir = parent
	}
}

// appArmorProfileName is the Localhost AppArmor profile the suite loads
// where the kernel has AppArmor.
const appArmorProfileName = "secrun-conformance-deny-write"

func (s *suite) loadAppArmorProfiles() error {
	if s.host.AppArmorParser == "" {
		return nil
	}
	// Twins and controls run RuntimeDefault bundles with the bare
	// delegate, which needs secrun's default profile loaded.
	if err := (spec.HostAppArmor{}).LoadDefault(spec.DefaultAppArmorProfile); err != nil {
		return err
	}
	return fs.WalkDir(embeddedAppArmor, "profiles/apparmor", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := embeddedAppArmor.ReadFile(p)
		if err != nil {
			return err
		}
		cmd := exec.Command(s.host.AppArmorParser, "-Kr")
		cmd.Stdin = strings.NewReader(string(body))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("load AppArmor profile %s: %v: %s", p, err, out)
		}
		return nil
	})
}

// Case is one manifest of the suite.
type Case struct {
	Name string
	File string
	Data []byte
}

// LoadCases reads *.yaml manifests from dir, or the built-in cases.
func LoadCases(dir string) ([]Case, error) {
	var fsys fs.FS = embeddedCases
	root := "cases"
	if dir != "" {
		fsys, root = os.DirFS(dir), "."
	}
	ents, err := fs.ReadDir(fsys, root)
	if err != nil {
		return nil, fmt.Errorf("read cases: %w", err)
	}
	var out []Case
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			continue
		}
		b, err := fs.ReadFile(fsys, filepath.Join(root, n))
		if err != nil {
			return nil, err
		}
		file := filepath.Join("conformance/cases", n)
		if dir != "" {
			file = filepath.Join(dir, n)
		}
		out = append(out, Case{Name: strings.TrimSuffix(strings.TrimSuffix(n, ".yaml"), ".yml"), File: file, Data: b})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil, fmt.Errorf("no *.yaml cases in %s", dir)
	}
	return out, nil
}

// setup derives every container's checks and translates its manifest.
func (s *suite) setup() ([]*containerRun, error) {
	cases, err := s.selectCases()
	if err != nil {
		return nil, err
	}
	var runs []*containerRun
	for _, c := range cases {
		crs, err := s.setupCase(c)
		if err != nil {
			return nil, fmt.Errorf("case %s (%s): %w", c.Name, c.File, err)
		}
		runs = append(runs, crs...)
	}
	if len(runs) == 0 {
		return nil, errors.New("no case selected")
	}
	return runs, nil
}

// selectCases loads the cases and keeps those Options.Cases names.
func (s *suite) selectCases() ([]Case, error) {
	cases, err := LoadCases(s.opts.CasesDir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = c.Name
	}
	for _, want := range s.opts.Cases {
		if !slices.Contains(names, want) {
			msg := fmt.Sprintf("no case %q", want)
			if sug := spec.Suggest(want, names); sug != "" {
				msg += fmt.Sprintf("; did you mean %s?", sug)
			}
			return nil, errors.New(msg)
		}
	}
	if len(s.opts.Cases) > 0 {
		cases = slices.DeleteFunc(cases, func(c Case) bool { return !slices.Contains(s.opts.Cases, c.Name) })
	}
	return cases, nil
}

func (s *suite) setupCase(c Case) ([]*containerRun, error) {
	views, err := parsePodViews(c.Data)
	if err != nil {
		return nil, err
	}
	workloads, werr := manifest.Parse(c.Data)
	// Pair each view with its workload by kind and name.
	workloadOf := func(pv *podView) (*manifest.Workload, error) {
		if werr != nil {
			return nil, fmt.Errorf("manifest.Parse: %w", werr)
		}
		for _, w := range workloads {
			if w.Kind == pv.Kind && w.Name == pv.Metadata.Name {
				return w, nil
			}
		}
		return nil, fmt.Errorf("manifest.Parse returned no %s/%s", pv.Kind, pv.Metadata.Name)
	}
	var out []*containerRun
	multi := len(views) > 1
	for _, pv := range views {
		if ps, _ := pv.podSpec(); len(ps.Containers) > 1 {
			multi = true
		}
	}
	for _, pv := range views {
		ps, ann := pv.podSpec()
		w, wErr := workloadOf(pv)
		var bundles map[string]manifest.ContainerBundle
		var terr error
		translated := false
		for _, ctr := range ps.Containers {
			cr := &containerRun{caseName: c.Name, file: c.File, workload: pv.Metadata.Name, container: ctr.Name, multi: multi}
			out = append(out, cr)
			if err := s.deriveContainer(cr, pv, ps, ann, &ctr); err != nil {
				return nil, err
			}
			if wErr != nil {
				cr.setupErr = wErr
				continue
			}
			cr.wl = w
			// A Pod's containers are made by the node's kubelet and
			// containerd, not translated here.
			if s.kube != nil || !anyRunnable(cr.checks) {
				continue
			}
			if !translated {
				bundles, terr = s.translate(w)
				translated = true
			}
			// Translate returns the containers that translated together
			// with the error of those that did not.
			b, ok := bundles[ctr.Name]
			if !ok {
				cr.setupErr = terr
				if terr == nil {
					cr.setupErr = fmt.Errorf("manifest.Translate returned no bundle for container %s", ctr.Name)
				}
				continue
			}
			cr.warnings = b.Warnings
			rootfs := filepath.Join(s.work, "template-rootfs")
			if cr.translated, err = prepareSpec(b.Spec, rootfs, probeArgs(cr.final.m, s.host)); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func anyRunnable(checks []*check) bool {
	for _, ch := range checks {
		if ch.skip == "" {
			return true
		}
	}
	return false
}

// translate runs manifest.Translate against a probe image, so that users
// and groups resolve against the image's /etc files.
func (s *suite) translate(w *manifest.Workload) (map[string]manifest.ContainerBundle, error) {
	rootfs := filepath.Join(s.work, "template-rootfs")
	if _, err := os.Stat(rootfs); err != nil {
		if err := s.makeRootfs(rootfs); err != nil {
			return nil, err
		}
	}
	unsafe := s.opts.AllowedUnsafeSysctls
	if unsafe == nil {
		unsafe = DefaultAllowedUnsafeSysctls
	}
	opts := manifest.Options{
		RootfsPath:           rootfs,
		ImageRootfs:          rootfs,
		SeccompProfileRoot:   s.profileRoot,
		AllowedUnsafeSysctls: unsafe,
	}
	if s.host.AppArmor {
		opts.AppArmor = spec.HostAppArmor{}
	}
	bs, terr := manifest.Translate(w, opts)
	if terr != nil {
		terr = fmt.Errorf("manifest.Translate: %w", terr)
	}
	out := map[string]manifest.ContainerBundle{}
	for _, b := range bs {
		if b.Spec != nil {
			out[b.Name] = b
		}
	}
	return out, terr
}

// deriveContainer builds the container's model and checks.
func (s *suite) deriveContainer(cr *containerRun, pv *podView, ps *podSpecView, ann map[string]string, ctr *containerView) error {
	ann, ignored := s.honouredAnnotations(ann)
	cr.sc = mergeSecurityContext(ps, ann, ctr)
	req, err := deriveRequested(s.host, cr.sc)
	if err != nil {
		return fmt.Errorf("container %s: %w", ctr.Name, err)
	}
	for _, k := range ignored {
		req.note("annotation %s is ignored: from Kubernetes 1.27 only seccompProfile decides (the kubelet stopped reading the annotations in 1.25, kubernetes PR 109819; the API server stopped copying them in 1.27, PR 114947)", k)
	}
	cr.requested = req
	final := &derivation{m: req.m.clone(), notes: slices.Clone(req.notes), covered: cloneCovered(req.covered)}
	cr.final = final

	switch s.kind {
	case kindBare:
		cr.runtime = s.runtime
		final.note("runtime %s runs the bundle as translated (no policy)", filepath.Base(s.runtime))
	case kindSecrun:
		name := s.policyName(ps)
		pol, err := s.cfg.Policy(name)
		if err != nil {
			return err
		}
		cr.policy = &policySim{p: pol}
		if s.kube == nil {
			link := filepath.Join(s.work, "bin", "secrun-"+name)
			if _, err := os.Lstat(link); err != nil {
				if err := os.Symlink(s.runtime, link); err != nil {
					return fmt.Errorf("link %s: %w", link, err)
				}
			}
			cr.runtime = link
			cr.env = []string{policy.ConfigEnv + "=" + s.configPath}
		}
		if err := cr.policy.apply(s.host, final, cr.sc, s.confined); err != nil {
			return err
		}
	}

	// The kubelet refuses a Pod that asks for AppArmor on a node without
	// it, so nothing else of such a container can be checked here.
	if req.m.AppArmor != "" && !s.host.AppArmor {
		final.refusal = nil
		final.covered = map[Setting][]string{SettingAppArmor: req.covered[SettingAppArmor]}
		final.note("the node has no AppArmor: the kubelet would refuse this Pod, so only its AppArmor checks are listed (skipped)")
	}
	// Likewise runc refuses to start a process with an SELinux label on
	// a node without SELinux (containerd leaves labels out there).
	if req.m.SELinuxLabel != "" && !s.host.SELinux {
		final.refusal = nil
		final.covered = map[Setting][]string{SettingSELinux: req.covered[SettingSELinux]}
		final.note("the node has no SELinux and runc refuses a labelled process there, so only the SELinux checks are listed (skipped)")
	}
	if err := s.deriveChecks(cr); err != nil {
		return fmt.Errorf("container %s: %w", ctr.Name, err)
	}
	if s.nosuidWork {
		cr.checks = slices.DeleteFunc(cr.checks, func(c *check) bool {
			if c.Name == "nnp.setuid" {
				cr.notApplicable = append(cr.notApplicable, "nnp.setuid: the work directory is on a nosuid mount; pass a work dir on a suid mount")
				return true
			}
			return false
		})
	}
	// Focus and skip select checks by ID.
	cr.checks = slices.DeleteFunc(cr.checks, func(c *check) bool {
		return (s.opts.Focus != nil && !s.opts.Focus.MatchString(c.ID)) || (s.opts.Skip != nil && s.opts.Skip.MatchString(c.ID))
	})
	return nil
}

func cloneCovered(c map[Setting][]string) map[Setting][]string {
	out := make(map[Setting][]string, len(c))
	for k, v := range c {
		out[k] = slices.Clone(v)
	}
	return out
}

// policyName is the secrun policy a Pod runs under: the --policy given
// for all, the runtime's own (secrun-<policy>), the Pod's RuntimeClass
// when it names a secrun-<policy> handler the configuration defines, the
// --policy default, or the configuration's defaultPolicy.
func (s *suite) policyName(ps *podSpecView) string {
	switch {
	case s.opts.PolicyForAll && s.opts.Policy != "":
		return s.opts.Policy
	case s.fixedPolicy != "":
		return s.fixedPolicy
	}
	if name, ok := strings.CutPrefix(ps.RuntimeClassName, "secrun-"); ok {
		if _, err := s.cfg.Policy(name); err == nil {
			return name
		}
	}
	if s.opts.Policy != "" {
		return s.opts.Policy
	}
	return s.cfg.DefaultPolicy
}

// ---- scheduling ----

type job struct {
	cr  *containerRun
	run func(ctx context.Context)
}

func (s *suite) schedule(ctx context.Context, jobs []job, progress func(done, total int)) {
	var wg sync.WaitGroup
	var done atomic.Int64
	// Jobs take a slot in order, so a container's control run always has
	// one before the twins that wait for it.
	sem := make(chan struct{}, s.opts.Parallel)
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			j.run(ctx)
			n := done.Add(1)
			if progress != nil {
				s.mu.Lock()
				progress(int(n), len(jobs))
				s.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// startResults gives every check of cr a result to fill, and reports
// whether cr has a container to run; one that cannot run is finished here.
func (s *suite) startResults(cr *containerRun) bool {
	cr.results = make([]CheckResult, len(cr.checks))
	for i, ch := range cr.checks {
		cr.results[i] = newResult(cr, ch)
	}
	if cr.setupErr != nil || !anyRunnable(cr.checks) {
		s.finishWithoutRun(cr)
		return false
	}
	return true
}

// conformance runs each container once with the runtime under test.
func (s *suite) conformance(ctx context.Context, runs []*containerRun) {
	var jobs []job
	for _, cr := range runs {
		if !s.startResults(cr) {
			continue
		}
		jobs = append(jobs, job{cr: cr, run: func(ctx context.Context) {
			name := strings.ReplaceAll(cr.id(), "/", "_")
			start := time.Now()
			obs, dir := s.run(ctx, &runJob{name: name, spec: cr.translated, runtime: cr.runtime, env: cr.env, sysctls: cr.requested.m.Sysctls})
			cr.run = runInfo(obs, time.Since(start), cr.runtime)
			unexpected := false
			s.mu.Lock()
			for i, ch := range cr.checks {
				if ch.skip != "" {
					continue
				}
				v := ch.eval(obs)
				cr.results[i].apply(v)
				unexpected = unexpected || v.Status == StatusFail
			}
			s.mu.Unlock()
			s.keepOrRemove(dir, unexpected)
		}})
	}
	s.schedule(ctx, jobs, s.progressFunc(runs))
}

func (s *suite) finishWithoutRun(cr *containerRun) {
	for i, ch := range cr.checks {
		switch {
		case ch.skip != "":
		case cr.setupErr != nil:
			cr.results[i].apply(failf("", "%v", cr.setupErr))
		}
	}
}

func (s *suite) keepOrRemove(dir string, unexpected bool) {
	if unexpected {
		s.keepWork.Store(true)
		return
	}
	if !s.opts.Keep {
		os.RemoveAll(dir)
	}
}

func (s *suite) progressFunc(runs []*containerRun) func(done, total int) {
	if s.opts.Progress == nil {
		return nil
	}
	return func(done, total int) {
		var p, f, k int
		for _, cr := range runs {
			for _, r := range cr.results {
				switch r.Status {
				case StatusPass:
					p++
				case StatusFail:
					f++
				case StatusSkip:
					k++
				}
			}
		}
		fmt.Fprintf(s.opts.Progress, "\r\033[K%s: run %d/%d: %d passed, %d failed, %d skipped", s.modeName(), done, total, p, f, k)
		if done == total {
			fmt.Fprint(s.opts.Progress, "\r\033[K")
		}
	}
}

func (s *suite) modeName() string {
	if s.opts.Validity {
		return "validity"
	}
	return "conformance"
}

// validity runs, per container, the control (the model itself, which
// every check must pass) and one twin per distinct breaker (which every
// check of that breaker must fail), all with the bare delegate.
func (s *suite) validity(ctx context.Context, runs []*containerRun) {
	var jobs []job
	for _, cr := range runs {
		if !s.startResults(cr) {
			continue
		}
		control := &validityState{}
		if cr.final.refusal == nil {
			jobs = append(jobs, job{cr: cr, run: func(ctx context.Context) {
				sp, err := s.materialize(cr.final.m, cr.translated)
				var obs *observation
				var dir string
				if err != nil {
					obs = &observation{runErr: err}
				} else {
					obs, dir = s.run(ctx, &runJob{name: strings.ReplaceAll(cr.id(), "/", "_") + "_control", spec: sp, runtime: s.delegate, sysctls: cr.final.m.Sysctls})
				}
				control.set(obs)
				unexpected := false
				for _, ch := range cr.checks {
					if ch.skip == "" && ch.eval(obs).Status == StatusFail {
						unexpected = true
					}
				}
				s.keepOrRemove(dir, unexpected)
			}})
		} else {
			control.set(nil)
		}
		groups := map[string][]int{}
		var keys []string
		for i, ch := range cr.checks {
			if ch.skip != "" {
				continue
			}
			if ch.brk == nil {
				cr.results[i].apply(failf("", "the check has no non-enforcing twin: a check that cannot be shown to fail is a defect"))
				continue
			}
			if _, ok := groups[ch.brk.key]; !ok {
				keys = append(keys, ch.brk.key)
			}
			groups[ch.brk.key] = append(groups[ch.brk.key], i)
		}
		for n, key := range keys {
			idx := groups[key]
			b := cr.checks[idx[0]].brk
			ops := twinOps(cr.checks, idx)
			jobs = append(jobs, job{cr: cr, run: func(ctx context.Context) {
				obs, dir := s.runTwin(ctx, cr, b, n, ops)
				ctl := control.wait()
				unexpected := false
				s.mu.Lock()
				for _, i := range idx {
					ch := cr.checks[i]
					v := validityVerdict(ch, ctl, obs, b)
					cr.results[i].apply(v)
					cr.results[i].Twin = b.desc
					unexpected = unexpected || v.Status == StatusFail
				}
				s.mu.Unlock()
				s.keepOrRemove(dir, unexpected)
			}})
		}
	}
	s.schedule(ctx, jobs, s.progressFunc(runs))
}

// validityState hands the control observation to the twins.
type validityState struct {
	once sync.Once
	ch   chan struct{}
	mu   sync.Mutex
	obs  *observation
}

func (v *validityState) init() { v.once.Do(func() { v.ch = make(chan struct{}) }) }

func (v *validityState) set(o *observation) {
	v.init()
	v.mu.Lock()
	v.obs = o
	v.mu.Unlock()
	close(v.ch)
}

func (v *validityState) wait() *observation {
	v.init()
	<-v.ch
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.obs
}

// twinOps is the probe ops a twin must attempt: those the checks of its
// group read. A twin runs once per breaker, about ten per container, and
// most of them are there for one or two checks; the probe's whole op list
// re-executes it several times (setuid, setgid, user namespaces,
// personality, ...), which under emulation costs more than the runtime
// itself. Each check reads its op before anything else, so evaluating it
// against an empty observation names the op; a check that read another
// op later would see that op as a skip against the twin, which fails its
// validation loudly instead of passing it.
func twinOps(checks []*check, idx []int) []string {
	reads := map[string]bool{}
	for _, i := range idx {
		(&observation{reads: reads}).evalFor(checks[i])
	}
	ops := map[string]bool{}
	for name := range reads {
		ops[probeOp(name)] = true
	}
	return sortedKeys(ops)
}

// evalFor evaluates ch, for twinOps's discovery only.
func (o *observation) evalFor(ch *check) { _ = ch.eval(o) }

// probeOp is the probe op that reports result name: the proc ops report
// one result per path ("proc.masked:/proc/kcore").
func probeOp(name string) string {
	op, _, _ := strings.Cut(name, ":")
	return op
}

func (s *suite) runTwin(ctx context.Context, cr *containerRun, b *breaker, n int, ops []string) (*observation, string) {
	m := cr.final.m.clone()
	if b.requested {
		m = cr.requested.m.clone()
	}
	if b.model != nil {
		b.model(m)
	}
	sp, err := s.materialize(m, cr.translated)
	if err == nil && b.spec != nil {
		err = b.spec(sp)
	}
	if err == nil {
		err = selectProbeOps(sp, ops)
	}
	if err != nil {
		return &observation{runErr: fmt.Errorf("build the twin: %w", err)}, ""
	}
	name := fmt.Sprintf("%s_twin%d", strings.ReplaceAll(cr.id(), "/", "_"), n)
	obs, dir := s.run(ctx, &runJob{name: name, spec: sp, runtime: s.delegate, sysctls: m.Sysctls, joinOuter: b.joinOuter})
	obs.attempted = map[string]bool{}
	for _, op := range ops {
		obs.attempted[op] = true
	}
	return obs, dir
}

// selectProbeOps replaces the probe's trailing "all" (probeArgs) with ops.
func selectProbeOps(sp *specs.Spec, ops []string) error {
	if sp.Process == nil || len(sp.Process.Args) == 0 || sp.Process.Args[len(sp.Process.Args)-1] != "all" {
		return errors.New("the probe's arguments do not end in \"all\"")
	}
	sp.Process.Args = append(sp.Process.Args[:len(sp.Process.Args)-1:len(sp.Process.Args)-1], ops...)
	return nil
}

// validityVerdict: a check is validated when it passes against the
// control and fails against its twin.
func validityVerdict(ch *check, control, twin *observation, b *breaker) verdict {
	if control != nil {
		c := ch.eval(control)
		switch c.Status {
		case StatusSkip:
			return c
		case StatusFail:
			return failf(c.Observed, "the check fails even against a bundle that enforces its setting: %s", c.Message)
		}
	}
	// A twin that did not start shows nothing about the check, except
	// for a refusal check, whose twin must start.
	if _, v := twin.started(); v != nil && !b.requested {
		return failf("", "the twin (%s) did not run, so it cannot show the check failing: %s", b.desc, v.Message)
	}
	t := ch.eval(twin)
	switch t.Status {
	case StatusFail:
		return pass("fails against its twin: " + t.Message)
	case StatusSkip:
		return failf("", "the twin (%s) could not show the check failing: %s", b.desc, t.Message)
	}
	return failf(t.Observed, "the check cannot fail: it passes against a twin where %s", b.desc)
}
