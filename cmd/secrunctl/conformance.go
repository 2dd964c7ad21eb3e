package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/conformance"
)

var conformanceCommand = &cli.Command{
	Name:  "conformance",
	Usage: "prove with real containers that what each Pod asks for is what the kernel enforces",
	Description: `Runs the conformance suite: Kubernetes Pod manifests (the built-in cases, or
--cases DIR), each translated as secrunctl translate does, with the static
probe as the whole rootfs, run through secrun (or a bare runtime) on this
node. The probe attempts each forbidden operation; every check compares the
outcome with what the manifest and the secrun policy say must be allowed or
denied. Needs root.

Runtime and policy: --runtime secrun (the default) runs each case through
secrun-<policy>, where the policy is the case's runtimeClassName when it
names a secrun-<policy> handler, else --policy, else the configuration's
defaultPolicy. --runtime PATH/secrun-<policy> uses that policy for every
case; --runtime runc (or crun, or any OCI runtime) runs the bundles bare,
to compare runtimes. The secrun configuration is --config, else
$SECRUN_CONFIG, else the suite's own: the presets in harden mode, audit log
in the report directory.

--validity runs every check against a twin bundle where its setting is
deliberately not enforced (run with the bare delegate runtime) and fails
any check that passes there: a check that cannot fail is a defect.

Kubernetes target: --target kubernetes --kubeconfig PATH runs the same
cases, with the same expectations, as Pods on a real node: each through
every --runtime-class (default secrun-baseline, secrun-restricted,
secrun-privileged; the policy is the RuntimeClass's secrun-<policy>
handler), with nodeName --node (default the cluster's only node), the
probe image (built here; --import-image CMD imports it, or see
"secrunctl conformance image"), never pulled. Reports are read back with
kubectl logs, refusals from the Pod's events. Expectations use the secrun
configuration the node's binaries read (--config, $SECRUN_CONFIG,
/etc/secrun/config.yaml, else the presets). With --validity the cases run
through --plain-runtime-class (handler runc, no secrun; created when
missing), where every check the policy changes must fail. Pods are
deleted afterwards (--keep keeps them); --timeout is per Pod (default 3m).

Reports: --report-dir DIR gets report.{json,tap,junit.xml} (validity.* with
--validity). The exit status is 1 when any check fails.`,
	ArgsUsage: " ",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "runtime", Value: "secrun", Usage: "secrun, a secrun-<policy> path, or a bare OCI runtime (runc, crun) to compare"},
		&cli.StringFlag{Name: "secrun", Usage: "the secrun binary (default: secrun next to secrunctl, else on PATH)"},
		&cli.StringFlag{Name: "policy", Usage: "secrun policy for cases whose runtimeClassName names none (default: the configuration's defaultPolicy)"},
		&cli.BoolFlag{Name: "policy-for-all", Usage: "apply --policy to every case, RuntimeClass or not"},
		&cli.StringFlag{Name: "config", Usage: "secrun configuration (default: $SECRUN_CONFIG, else the suite's own)"},
		&cli.StringFlag{Name: "secrunctl", Usage: "secrunctl binary that runs the seccomp agent the suite starts when a case needs one (default: this program)"},
		&cli.StringFlag{Name: "seccomp-agent-state", Usage: "state directory of a seccomp agent already running on the cases' socket (default " + DefaultSeccompAgentState + "); the agent the suite starts keeps its records in the work directory"},
		&cli.StringFlag{Name: "delegate", Usage: "bare runtime for validity twins (default: the configuration's runtime, or --runtime when bare)"},
		&cli.StringSliceFlag{Name: "allowed-unsafe-sysctls", Usage: "the kubelet's --allowed-unsafe-sysctls the translation assumes (default: net.core.somaxconn, as in the user's example)"},
		&cli.StringFlag{Name: "focus", Usage: "run only checks whose ID (case/container/check) matches this regular expression"},
		&cli.StringFlag{Name: "skip", Usage: "leave out checks whose ID matches this regular expression"},
		&cli.StringSliceFlag{Name: "case", Usage: "run only these cases (file names without .yaml; repeat or comma-separate)"},
		&cli.IntFlag{Name: "parallel", Aliases: []string{"j"}, Usage: "containers run at once (default: number of CPUs)"},
		&cli.BoolFlag{Name: "validity", Usage: "show that every check fails against a bundle that does not enforce its setting"},
		&cli.StringFlag{Name: "cases", Usage: "directory of Pod manifests (*.yaml) instead of the built-in cases"},
		&cli.StringFlag{Name: "report-dir", Usage: "write report.json, report.tap, report.junit.xml (and the audit log) here"},
		&cli.StringFlag{Name: "work-dir", Usage: "where bundles are built (default: a temporary directory; must not be nosuid)"},
		&cli.BoolFlag{Name: "keep", Usage: "keep every bundle for debugging (bundles of failed checks are always kept)"},
		&cli.StringFlag{Name: "probe", EnvVars: []string{"SECRUN_PROBE"}, Usage: "a static probe binary (default: conformance-probe next to secrunctl, else build ./conformance/probe from the source tree)"},
		&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "per-container time limit (per Pod for --target kubernetes, default 3m there)"},
		&cli.StringFlag{Name: "target", Value: conformance.TargetBundle, Usage: "bundle (OCI bundles on this machine) or kubernetes (Pods on a real node)"},
		&cli.StringFlag{Name: "kubeconfig", EnvVars: []string{"KUBECONFIG"}, Usage: "kubernetes: the cluster's kubeconfig"},
		&cli.StringFlag{Name: "kubectl", Value: "kubectl", Usage: "kubernetes: the kubectl binary"},
		&cli.StringSliceFlag{Name: "runtime-class", Usage: "kubernetes: secrun RuntimeClasses to run each case through (default secrun-baseline,secrun-restricted,secrun-privileged)"},
		&cli.StringFlag{Name: "plain-runtime-class", Value: "runc", Usage: "kubernetes --validity: the RuntimeClass without secrun (created with handler runc when missing)"},
		&cli.StringFlag{Name: "namespace", Value: "secrun-conformance", Usage: "kubernetes: namespace of the Pods (created when missing)"},
		&cli.StringFlag{Name: "node", Usage: "kubernetes: node to run the Pods on (default: the cluster's only node)"},
		&cli.StringFlag{Name: "image", Usage: "kubernetes: a probe image the node already holds (default: the one built from --probe, see `conformance image`)"},
		&cli.StringFlag{Name: "import-image", Usage: "kubernetes: command that imports the probe image archive into the node's containerd, the archive's path appended (e.g. \"ctr --address SOCK -n k8s.io images import\")"},
		&cli.StringFlag{Name: "seccomp-profile-root", Value: "/var/lib/kubelet/seccomp", Usage: "kubernetes: the kubelet's seccomp directory, where the Localhost case's profile is placed"},
	},
	Subcommands: []*cli.Command{conformanceImageCommand, conformanceVerifyCommand, conformanceMatrixCommand},
	Action:      runConformance,
}

var conformanceImageCommand = &cli.Command{
	Name:  "image",
	Usage: "write the Kubernetes target's probe image as an OCI archive and print its reference",
	Description: `Builds the probe image (the static probe, its setuid-root copy, /etc/passwd
and /etc/group) as an OCI image layout archive, without a container engine,
and prints its reference, secrun.local/probe:<layer digest>. Import it into
the node's containerd (ctr -n k8s.io images import FILE) before
secrunctl conformance --target kubernetes with the same --probe.`,
	ArgsUsage: " ",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "archive to write"},
		&cli.StringFlag{Name: "probe", EnvVars: []string{"SECRUN_PROBE"}, Usage: "a static probe binary (default: conformance-probe next to secrunctl, else build ./conformance/probe)"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() > 0 {
			return fmt.Errorf("conformance image takes no arguments (got %q)", c.Args().Slice())
		}
		ref, err := conformance.WriteProbeImage(conformance.Options{ProbePath: c.String("probe"), Log: os.Stderr}, c.String("output"))
		if err != nil {
			return err
		}
		fmt.Println(ref)
		return nil
	},
}

func runConformance(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("conformance takes no arguments (got %q); select cases with --case or --focus", c.Args().Slice())
	}
	opts := conformance.Options{
		Runtime:           c.String("runtime"),
		SecrunBinary:      c.String("secrun"),
		Policy:            c.String("policy"),
		PolicyForAll:      c.Bool("policy-for-all"),
		ConfigPath:        c.String("config"),
		Delegate:          c.String("delegate"),
		SecrunctlBinary:   c.String("secrunctl"),
		SeccompAgentState: c.String("seccomp-agent-state"),
		Parallel:          c.Int("parallel"),
		Validity:          c.Bool("validity"),
		CasesDir:          c.String("cases"),
		Cases:             c.StringSlice("case"),
		ReportDir:         c.String("report-dir"),
		WorkDir:           c.String("work-dir"),
		Keep:              c.Bool("keep"),
		ProbePath:         c.String("probe"),
		Timeout:           c.Duration("timeout"),
		Log:               os.Stderr,
	}
	if err := kubernetesOptions(c, &opts); err != nil {
		return err
	}
	if c.IsSet("allowed-unsafe-sysctls") {
		opts.AllowedUnsafeSysctls = c.StringSlice("allowed-unsafe-sysctls")
	}
	for _, f := range []struct {
		flag string
		dst  **regexp.Regexp
	}{{"focus", &opts.Focus}, {"skip", &opts.Skip}} {
		if v := c.String(f.flag); v != "" {
			re, err := regexp.Compile(v)
			if err != nil {
				return fmt.Errorf("--%s: %w", f.flag, err)
			}
			*f.dst = re
		}
	}
	if isTerminal(os.Stdout) {
		opts.Progress = os.Stdout
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := conformance.Run(ctx, opts)
	if res != nil {
		res.WriteSummary(os.Stdout)
		if opts.ReportDir != "" {
			fmt.Printf("\nreports in %s\n", opts.ReportDir)
		}
		fmt.Println(res.CountLine())
	}
	if err != nil {
		return err
	}
	if res.Failed > 0 {
		return cli.Exit("", 1)
	}
	return nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// kubernetesOptions reads the Kubernetes target's flags, and refuses the
// bundle target's where they mean nothing.
func kubernetesOptions(c *cli.Context, opts *conformance.Options) error {
	opts.Target = c.String("target")
	if opts.Target != conformance.TargetKubernetes {
		// --kubeconfig is left out: $KUBECONFIG sets it for everyone.
		for _, f := range []string{"runtime-class", "node", "image", "import-image"} {
			if c.IsSet(f) {
				return fmt.Errorf("--%s is for --target kubernetes", f)
			}
		}
		return nil
	}
	for _, f := range []string{"runtime", "secrun", "delegate", "work-dir", "policy", "policy-for-all"} {
		if c.IsSet(f) {
			return fmt.Errorf("--%s does not apply to --target kubernetes: the node's RuntimeClasses (--runtime-class) decide", f)
		}
	}
	if !c.IsSet("timeout") {
		opts.Timeout = 0
	}
	opts.Kube = conformance.KubeOptions{
		Kubeconfig:         c.String("kubeconfig"),
		Kubectl:            c.String("kubectl"),
		RuntimeClasses:     c.StringSlice("runtime-class"),
		PlainRuntimeClass:  c.String("plain-runtime-class"),
		Namespace:          c.String("namespace"),
		Node:               c.String("node"),
		Image:              c.String("image"),
		ImportCommand:      strings.Fields(c.String("import-image")),
		SeccompProfileRoot: c.String("seccomp-profile-root"),
	}
	return nil
}

var conformanceVerifyCommand = &cli.Command{
	Name:  "verify",
	Usage: "gate CI on reports written elsewhere (a VM): fail on any failed check, or on skipped required settings",
	Description: `Reads each REPORT (report.json or validity.json of secrunctl conformance
--report-dir) and exits 1 when a check failed, when the counts disagree
with the checks listed, or when a setting named by --require had a
skipped check or none at all. Prints one line per report.`,
	ArgsUsage: "REPORT.json...",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "require", Usage: "comma-separated settings that must have run, none skipped (e.g. apparmor)"},
	},
	Action: verifyConformance,
}

func verifyConformance(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("verify needs one or more report files (report.json, validity.json)")
	}
	require, err := conformance.ParseSettings(c.String("require"))
	if err != nil {
		return fmt.Errorf("--require: %w", err)
	}
	bad := 0
	for _, p := range c.Args().Slice() {
		r, err := conformance.ReadResult(p)
		if err != nil {
			return err
		}
		if err := r.Verify(require); err != nil {
			bad++
			fmt.Fprintf(os.Stderr, "secrunctl: %s: %s\n", p, strings.ReplaceAll(err.Error(), "\n", "; "))
			continue
		}
		fmt.Printf("%s: %s; ok\n", p, r.CountLine())
	}
	if bad > 0 {
		return cli.Exit("", 1)
	}
	return nil
}

var conformanceMatrixCommand = &cli.Command{
	Name:  "matrix",
	Usage: "combine several runs' report directories (the VM's rows) into one verdict and one set of reports",
	Description: `Reads each ROW_DIR (the --report-dir of one secrunctl conformance run; the
row is named after the directory): its report.json (validity.json after
--validity), and the suite's exit status in ROW_DIR/status when the
plumbing that ran it wrote one. Writes
summary.md, report.tap (TAP version 13: every row's checks as
"<row>: <check>"), report.junit.xml (suites "<row>: <case>/<container>")
and report.json (the rows' reports side by side) to --out, and prints the
verdict, the rows and the checks that did not pass in a gating row.

Every row gates unless named by --comparison (bare runtimes, shown to
compare; their failures are TAP TODOs). The exit status is 1 when a gating
row has no report, exited non-zero, has a failed check, or fails
--require (a required setting with a skipped check or none, as in
conformance verify) or --cgroup2; or when no row gates.`,
	ArgsUsage: "ROW_DIR...",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "out", Required: true, Usage: "directory for summary.md, report.tap, report.junit.xml, report.json"},
		&cli.StringSliceFlag{Name: "comparison", Usage: "rows that are shown but do not gate (repeat or comma-separate)"},
		&cli.StringFlag{Name: "require", Usage: "comma-separated settings every gating row must have run, none skipped (e.g. apparmor)"},
		&cli.BoolFlag{Name: "cgroup2", Usage: "fail a gating row whose node had no pure cgroup v2 hierarchy"},
		&cli.StringFlag{Name: "facts", Usage: "a name=value file shown with the report (the VM's kernel, accelerator, timings)"},
	},
	Action: matrixConformance,
}

func matrixConformance(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("matrix needs one or more row directories (each the --report-dir of a conformance run)")
	}
	require, err := conformance.ParseSettings(c.String("require"))
	if err != nil {
		return fmt.Errorf("--require: %w", err)
	}
	opts := conformance.MatrixOptions{Require: require, CgroupV2: c.Bool("cgroup2")}
	for _, v := range c.StringSlice("comparison") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				opts.Comparison = append(opts.Comparison, f)
			}
		}
	}
	if p := c.String("facts"); p != "" {
		if opts.Facts, err = conformance.ReadFacts(p); err != nil {
			return fmt.Errorf("--facts: %w", err)
		}
	}
	m, err := conformance.BuildMatrix(c.Args().Slice(), opts)
	if err != nil {
		return err
	}
	if err := m.WriteReports(c.String("out")); err != nil {
		return err
	}
	if err := m.WriteSummary(os.Stdout, true); err != nil {
		return err
	}
	fmt.Printf("\nreports in %s\n", c.String("out"))
	if !m.Pass {
		return cli.Exit("", 1)
	}
	return nil
}
