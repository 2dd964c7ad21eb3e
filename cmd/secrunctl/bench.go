package main

import (
	"bytes"
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
	Usage: "measure secrun's overhead: container run cycles through secrun and bare runc, alternated",
	Flags: []cli.Flag{
		&cli.IntFlag{Name: "iterations", Aliases: []string{"n"}, Value: 30, Usage: "run cycles per runtime"},
		&cli.StringFlag{Name: "secrun", Value: "bin/secrun-restricted", Usage: "secrun binary (its name picks the policy)"},
		&cli.StringFlag{Name: "runc", Value: "runc", Usage: "the bare runtime to compare with"},
		&cli.StringFlag{Name: "busybox", Value: "/bin/busybox", Usage: "static busybox for the bundle's rootfs"},
	},
	Action: runBench,
}

// sample is one run cycle: wall time, and CPU time of the whole process
// tree that the kernel charged to the child (secrun, runc, runc init).
type sample struct{ wall, cpu time.Duration }

func runBench(c *cli.Context) error {
	runc, err := exec.LookPath(c.String("runc"))
	if err != nil {
		return fmt.Errorf("bare runtime: %w", err)
	}
	secrun, err := filepath.Abs(c.String("secrun"))
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "secrun-bench-")
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
	cfg := filepath.Join(work, "config.yaml")
	// A typical hardening: caps dropped, seccomp generated, uid set, the
	// config rewritten. The audit log is on, as on a node.
	if err := os.WriteFile(cfg, []byte("auditLog: "+filepath.Join(work, "audit.log")+"\npolicies:\n  restricted:\n    mode: harden\n    runAsUser: 65534\n"), 0o600); err != nil {
		return err
	}
	// Bare runc runs the config secrun would write, so both sides start
	// the same container (seccomp compilation in runc init is costly and
	// belongs to the runtime, not to the wrapper): the difference is
	// secrun's own work.
	hardened, err := hardenedConfig(secrun, cfg, bundle)
	if err != nil {
		return err
	}
	state := filepath.Join(work, "state")
	n := c.Int("iterations")
	var bare, wrapped []sample
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
		start := time.Now()
		err := cmd.Run()
		wall := time.Since(start)
		if err != nil {
			return sample{}, fmt.Errorf("%s run: %v: %s", bin, err, errb.String())
		}
		st := cmd.ProcessState
		return sample{wall: wall, cpu: st.UserTime() + st.SystemTime()}, nil
	}
	// Warm the page cache and both binaries before measuring.
	for i := 0; i < 3; i++ {
		if _, err := cycle(runc, nil, fmt.Sprintf("bench-warm-%d", i)); err != nil {
			return err
		}
		if _, err := cycle(secrun, []string{"SECRUN_CONFIG=" + cfg}, fmt.Sprintf("bench-warmw-%d", i)); err != nil {
			return err
		}
	}
	for i := 0; i < n; i++ {
		s, err := cycle(runc, nil, fmt.Sprintf("bench-bare-%d", i))
		if err != nil {
			return err
		}
		bare = append(bare, s)
		s, err = cycle(secrun, []string{"SECRUN_CONFIG=" + cfg}, fmt.Sprintf("bench-secrun-%d", i))
		if err != nil {
			return err
		}
		wrapped = append(wrapped, s)
	}
	bw, bc := medians(bare)
	ww, wc := medians(wrapped)
	fmt.Printf("run cycles: %d per runtime, alternated (busybox /bin/true; secrun hardens under policy restricted, runc runs the same hardened config)\n", n)
	fmt.Printf("%-22s %12s %12s\n", "", "wall median", "CPU median")
	fmt.Printf("%-22s %12s %12s\n", "bare runc", bw.Round(10*time.Microsecond), bc.Round(10*time.Microsecond))
	fmt.Printf("%-22s %12s %12s\n", "secrun-restricted", ww.Round(10*time.Microsecond), wc.Round(10*time.Microsecond))
	fmt.Printf("%-22s %12.3f %12.3f\n", "ratio secrun/runc", float64(ww)/float64(bw), float64(wc)/float64(bc))
	fmt.Printf("%-22s %12s %12s   (budget: CPU ratio <= 1.15)\n", "secrun's own cost", (ww - bw).Round(10*time.Microsecond), (wc - bc).Round(10*time.Microsecond))
	return nil
}

func medians(s []sample) (wall, cpu time.Duration) {
	w := make([]time.Duration, len(s))
	c := make([]time.Duration, len(s))
	for i, x := range s {
		w[i], c[i] = x.wall, x.cpu
	}
	slices.Sort(w)
	slices.Sort(c)
	return w[len(w)/2], c[len(c)/2]
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
