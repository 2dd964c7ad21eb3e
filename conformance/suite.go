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
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/manifest"
	"github.com/secrun/secrun/policy"
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
	// SecrunctlBinary runs the seccomp agent the suite starts when a
	// container needs one and nothing answers on its socket; default:
	// the running program when it is secrunctl, else secrunctl next to
	// secrun or on PATH.
	SecrunctlBinary string
	// SeccompAgentState is the state directory of an agent the suite
	// finds running (default /var/lib/secrun/seccomp-agent); the agent
	// the suite starts keeps its records in the work directory.
	SeccompAgentState string
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
	// agent is the seccomp agent the suite started, and agentRecords
	// where the records of containers under an agent are read.
	agent        *agentProc
	agentRecords *agentRecords
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
	// starts, when set, is how many times the container starts at once
	// (concurrentStartsAnnotation); unloadDefault unloads secrun's
	// default AppArmor profile before they start.
	starts        int
	unloadDefault bool
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
	if err := s.startAgent(runs); err != nil {
		return nil, err
	}
	defer s.stopAgent()
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
