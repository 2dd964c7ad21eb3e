package main

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

var benchCommand = &cli.Command{
	Name:  "bench",
	Usage: "measure secrun's overhead: its own process on a create against peer wrappers, and container run cycles against bare runc",
	Description: `Every number comes from this run, on this machine: each program's own
process on a create (delegate /bin/true, the bundle restored before each
run) against a naive Go wrapper, nvidia-container-runtime and static Go
floors, in rotating rounds; secrun's package init; and run cycles through
secrun and bare runc, alternated. CPU times are user+sys of the process
tree (wait4 rusage), medians. Run it from the repository root (make bench),
which builds the peers from internal/benchpeers.`,
	Flags: []cli.Flag{
		&cli.IntFlag{Name: "iterations", Aliases: []string{"n"}, Value: 30, Usage: "run cycles per runtime"},
		&cli.IntFlag{Name: "own-iterations", Value: 60, Usage: "rounds of the own-cost comparison"},
		&cli.StringFlag{Name: "secrun", Value: "bin/secrun-restricted", Usage: "secrun binary (its name picks the policy; secrun-privileged beside it)"},
		&cli.StringFlag{Name: "runc", Value: "runc", Usage: "the bare runtime to compare with"},
		&cli.StringFlag{Name: "busybox", Value: "/bin/busybox", Usage: "static busybox for the bundle's rootfs"},
		&cli.StringFlag{Name: "cache", Value: DefaultBenchCache, Usage: "where peers built from the Go module proxy are kept, by version"},
		&cli.StringFlag{Name: "nvidia-version", Value: NVIDIAToolkitVersion, Usage: "nvidia-container-toolkit version to compare with (\"\" leaves it out)"},
		&cli.StringFlag{Name: "go-bench", Usage: "output of go test -bench ApplyCreate -benchmem ./shim, for the in-process budgets"},
	},
	Action: runBench,
}

// sample is one run: wall time, and CPU time of the whole process tree
// that the kernel charged to the child (user+sys from wait4's rusage).
type sample struct{ wall, cpu time.Duration }

// Budgets, from the issue that set them: secrun's own process against its
// peers, its package init, its in-process work per create, and the run
// cycle against bare runc running the same final config.
const (
	budgetVsNVIDIA   = 1.0
	budgetVsFloor    = 1.5
	budgetInit       = 200 * time.Microsecond
	budgetWork       = 300 * time.Microsecond
	budgetAllocs     = 1000
	budgetRunCycle   = 1.05
	applyCreateBench = "BenchmarkApplyCreate"
)

func runBench(c *cli.Context) error {
	runc, err := exec.LookPath(c.String("runc"))
	if err != nil {
		return fmt.Errorf("bare runtime: %w", err)
	}
	secrun, err := filepath.Abs(c.String("secrun"))
	if err != nil {
		return err
	}
	base := os.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm" // containerd's bundles are on tmpfs (/run/containerd)
	}
	work, err := os.MkdirTemp(base, "secrun-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bundle, err := benchBundle(work, c.String("busybox"), runc)
	if err != nil {
		return err
	}
	original, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return err
	}
	var report benchReport

	fmt.Println("[1/4] building the peers")
	built, err := buildPeers(work)
	if err != nil {
		return err
	}
	nvidia := ""
	if v := c.String("nvidia-version"); v != "" {
		if nvidia, err = nvidiaRuntime(c.String("cache"), v); err != nil {
			report.notes = append(report.notes, "nvidia-container-runtime left out: "+err.Error())
			fmt.Println("  nvidia-container-runtime left out:", err)
			nvidia = ""
		}
	}
	peers, err := ownCostPeers(work, filepath.Dir(secrun), built, nvidia)
	if err != nil {
		return err
	}

	fmt.Printf("[2/4] own cost on a create: %d programs, %d rotating rounds, delegate /bin/true\n", len(peers), c.Int("own-iterations"))
	ownState := filepath.Join(work, "own-state")
	if err := os.MkdirAll(ownState, 0o700); err != nil {
		return err
	}
	own, err := measureOwnCosts(peers, bundle, original, ownState, c.Int("own-iterations"))
	if err != nil {
		return err
	}
	report.peers, report.own = peers, own

	fmt.Println("[3/4] package init of", secrun)
	report.init, report.initPkgs, err = initCost(secrun, 31)
	if err != nil {
		return err
	}
	if p := c.String("go-bench"); p != "" {
		gb, err := readGoBench(p, applyCreateBench)
		if err != nil {
			return err
		}
		report.work = &gb
	}

	fmt.Printf("[4/4] run cycles: %d per runtime, alternated\n", c.Int("iterations"))
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), original, 0o644); err != nil {
		return err
	}
	report.bare, report.wrapped, err = runCycles(c, runc, secrun, work, bundle, original)
	if err != nil {
		return err
	}
	report.cycles = c.Int("iterations")
	report.print()
	return nil
}

// runCycles runs the same container through bare runc and secrun,
// alternated.
func runCycles(c *cli.Context, runc, secrun, work, bundle string, original []byte) (bare, wrapped []sample, err error) {
	cfg := filepath.Join(work, "config.yaml")
	// A typical hardening: caps dropped, seccomp generated, uid set, the
	// config rewritten. The audit log is on, as on a node.
	if err := os.WriteFile(cfg, []byte("auditLog: "+filepath.Join(work, "audit.log")+"\npolicies:\n  restricted:\n    mode: harden\n    runAsUser: 65534\n"), 0o600); err != nil {
		return nil, nil, err
	}
	// Bare runc runs the config secrun would write, so both sides start
	// the same container (seccomp compilation in runc init is costly and
	// belongs to the runtime, not to the wrapper): the difference is
	// secrun's own work.
	hardened, err := hardenedConfig(secrun, cfg, bundle)
	if err != nil {
		return nil, nil, err
	}
	state := filepath.Join(work, "state")
	n := c.Int("iterations")
	cycle := func(bin string, env []string, id string) (sample, error) {
		// Every secrun cycle starts from the unhardened config, so each
		// one does the full rewrite rather than finding it done.
		config := original
		if bin == runc {
			config = hardened
		}
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), config, 0o644); err != nil {
			return sample{}, err
		}
		cmd := exec.Command(bin, "--root", state, "run", "--bundle", bundle, id)
		cmd.Env = append(os.Environ(), env...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		s, err := timedRun(cmd)
		if err != nil {
			return sample{}, fmt.Errorf("%s run: %v: %s", bin, err, errb.String())
		}
		return s, nil
	}
	secrunEnv := []string{"SECRUN_CONFIG=" + cfg}
	// Warm the page cache and both binaries before measuring.
	for i := 0; i < 3; i++ {
		if _, err := cycle(runc, nil, fmt.Sprintf("bench-warm-%d", i)); err != nil {
			return nil, nil, err
		}
		if _, err := cycle(secrun, secrunEnv, fmt.Sprintf("bench-warmw-%d", i)); err != nil {
			return nil, nil, err
		}
	}
	for i := 0; i < n; i++ {
		s, err := cycle(runc, nil, fmt.Sprintf("bench-bare-%d", i))
		if err != nil {
			return nil, nil, err
		}
		bare = append(bare, s)
		s, err = cycle(secrun, secrunEnv, fmt.Sprintf("bench-secrun-%d", i))
		if err != nil {
			return nil, nil, err
		}
		wrapped = append(wrapped, s)
		if (i+1)%10 == 0 || i+1 == n {
			fmt.Printf("  run cycles: %d/%d pairs\n", i+1, n)
		}
	}
	return bare, wrapped, nil
}

func medians(s []sample) (wall, cpu time.Duration) {
	w := make([]time.Duration, len(s))
	c := make([]time.Duration, len(s))
	for i, x := range s {
		w[i], c[i] = x.wall, x.cpu
	}
	return median(w), median(c)
}

// median is the middle value (the upper one of an even count); it sorts
// v in place.
func median[T cmp.Ordered](v []T) T {
	slices.Sort(v)
	return v[len(v)/2]
}

// benchBundle makes a runc spec bundle running busybox true.
func benchBundle(work, busybox, runc string) (string, error) {
	dir := filepath.Join(work, "bundle")
	if err := os.MkdirAll(filepath.Join(dir, "rootfs", "bin"), 0o755); err != nil {
		return "", err
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return "", fmt.Errorf("busybox: %w (apt-get install busybox-static)", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rootfs", "bin", "true"), bb, 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command(runc, "spec")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("runc spec: %v: %s", err, out)
	}
	p := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	s := strings.Replace(string(raw), `"terminal": true`, `"terminal": false`, 1)
	s = strings.Replace(s, `"sh"`, `"/bin/true"`, 1)
	return dir, os.WriteFile(p, []byte(s), 0o644)
}

// hardenedConfig asks secrunctl explain (this binary) for the config.json
// secrun would write for the bundle.
func hardenedConfig(secrun, cfg, bundle string) ([]byte, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	policy := strings.TrimPrefix(filepath.Base(secrun), "secrun-")
	cmd := exec.Command(self, "--config", cfg, "explain", "--policy", policy, "--config-json", bundle)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("secrunctl explain: %w", err)
	}
	return out, nil
}
