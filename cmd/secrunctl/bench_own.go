package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// NVIDIAToolkitVersion is the nvidia-container-toolkit whose runtime
// wrapper secrun's own cost is compared with, built from the Go module
// proxy and cached by version.
const NVIDIAToolkitVersion = "v1.20.2"

const nvidiaRuntimePkg = "github.com/NVIDIA/nvidia-container-toolkit/cmd/nvidia-container-runtime"

// DefaultBenchCache is where built peers are kept between runs, outside
// any clone.
const DefaultBenchCache = "/var/cache/secrun/bench"

// peer is one program whose own process is measured on a create, with
// /bin/true as its delegate.
type peer struct {
	name string
	argv []string
	env  []string
	// fails: the program is expected to exit non-zero (secrun with an
	// unreadable configuration).
	fails bool
	what  string
}

// ownCosts is each peer's samples, by name.
type ownCosts map[string][]sample

// benchPeersPkg is where the benchmark's own peers live.
const benchPeersPkg = "github.com/secrun/secrun/internal/benchpeers/"

// buildPeers builds the benchmark's own peers from this repository's
// sources (internal/benchpeers) into dir, static. It runs in the
// repository: secrunctl bench is a developer's tool (make bench).
func buildPeers(dir string) (map[string]string, error) {
	out := map[string]string{}
	for _, name := range []string{"naive", "goexec", "goexit"} {
		bin := filepath.Join(dir, name)
		cmd := exec.Command("nice", "go", "build", "-trimpath", "-o", bin, benchPeersPkg+name)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build bench peer %s (run secrunctl bench inside the secrun repository, as make bench does): %v: %s", name, err, b)
		}
		out[name] = bin
	}
	return out, nil
}

// nvidiaRuntime returns nvidia-container-runtime at NVIDIAToolkitVersion,
// building it from the Go module proxy into cache the first time. It
// needs cgo (the toolkit's NVML bindings); a build that fails is reported
// and the peer left out.
func nvidiaRuntime(cache, version string) (string, error) {
	dir := filepath.Join(cache, "nvidia-container-toolkit@"+version)
	bin := filepath.Join(dir, "nvidia-container-runtime")
	if st, err := os.Stat(bin); err == nil && st.Mode().IsRegular() {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	fmt.Printf("building nvidia-container-runtime %s from the Go module proxy into %s (once) ...\n", version, dir)
	start := time.Now()
	cmd := exec.Command("nice", "go", "install", "-trimpath", nvidiaRuntimePkg+"@"+version)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=1")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %v: %s", nvidiaRuntimePkg, version, err, lastLines(errb.String(), 5))
	}
	fmt.Printf("built in %s\n", time.Since(start).Round(time.Second))
	return bin, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// ownCostPeers lays out the peers: each gets the same bundle, restored
// from original before every run, and /bin/true as delegate.
func ownCostPeers(work, secrunDir string, built map[string]string, nvidia string) ([]peer, error) {
	truePath, err := exec.LookPath("true")
	if err != nil {
		return nil, fmt.Errorf("the delegate /bin/true: %w", err)
	}
	cfg := filepath.Join(work, "own-config.yaml")
	doc := fmt.Sprintf("runtime: %s\nauditLog: %s\npolicies:\n  restricted:\n    mode: harden\n    runAsUser: 65534\n", truePath, filepath.Join(work, "own-audit.log"))
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		return nil, err
	}
	delegate := "BENCH_DELEGATE=" + truePath
	peers := []peer{
		{name: "secrun-restricted", argv: []string{filepath.Join(secrunDir, "secrun-restricted")}, env: []string{"SECRUN_CONFIG=" + cfg},
			what: "hardens the bundle under restricted (harden mode), writes it back, execs the delegate"},
		{name: "secrun-privileged", argv: []string{filepath.Join(secrunDir, "secrun-privileged")}, env: []string{"SECRUN_CONFIG=" + cfg},
			what: "policy privileged: reads and checks the bundle, changes nothing, execs the delegate"},
		{name: "secrun-no-config", argv: []string{filepath.Join(secrunDir, "secrun-restricted")}, env: []string{"SECRUN_CONFIG=" + filepath.Join(work, "missing", "config.yaml")}, fails: true,
			what: "secrun whose configuration cannot be read: fails before any work"},
		{name: "naive-go-wrapper", argv: []string{built["naive"]}, env: []string{delegate},
			what: "reads config.json, decodes it as runtime-spec, sets no_new_privs, writes it, execs the delegate"},
		{name: "go-exec-floor", argv: []string{built["goexec"]}, env: []string{delegate},
			what: "static Go binary that only execs the delegate"},
		{name: "go-exit-floor", argv: []string{built["goexit"]},
			what: "static Go binary that only exits"},
	}
	if nvidia != "" {
		nvCfg := filepath.Join(work, "nvidia-container-runtime.toml")
		// The toolkit's defaults, with /bin/true as the low-level runtime;
		// the bundle asks for no GPU, so this is its pass-through.
		if err := os.WriteFile(nvCfg, []byte(fmt.Sprintf("[nvidia-container-runtime]\nruntimes = [%q]\n", truePath)), 0o644); err != nil {
			return nil, err
		}
		peers = append(peers, peer{name: "nvidia-container-runtime", argv: []string{nvidia}, env: []string{"NVIDIA_CTK_CONFIG_FILE_PATH=" + nvCfg},
			what: "NVIDIA container toolkit " + NVIDIAToolkitVersion + ", pass-through (no GPU requested)"})
	}
	return peers, nil
}

// measureOwnCosts runs every peer n times on a create of bundle, in
// rounds whose order rotates, so that drift on a shared machine spreads
// over all of them alike.
func measureOwnCosts(peers []peer, bundle string, original []byte, state string, n int) (ownCosts, error) {
	cfgPath := filepath.Join(bundle, "config.json")
	seq := 0
	run := func(p peer) (sample, error) {
		// Not timed: every run starts from the bundle as containerd wrote
		// it, so each does its full work.
		if err := os.WriteFile(cfgPath, original, 0o644); err != nil {
			return sample{}, err
		}
		seq++
		id := "own-" + strconv.Itoa(seq)
		args := append(slices.Clone(p.argv[1:]), "--root", state, "--log", filepath.Join(state, id+".log"), "--log-format", "json",
			"create", "--bundle", bundle, "--pid-file", filepath.Join(state, id+".pid"), id)
		cmd := exec.Command(p.argv[0], args...)
		cmd.Env = append(os.Environ(), p.env...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		s, err := timedRun(cmd)
		var exit *exec.ExitError
		if err != nil && !(p.fails && errors.As(err, &exit)) {
			return sample{}, fmt.Errorf("%s: %v: %s", p.name, err, errb.String())
		}
		if err == nil && p.fails {
			return sample{}, fmt.Errorf("%s: expected to fail, but succeeded", p.name)
		}
		return s, nil
	}
	for _, p := range peers {
		for range 3 { // warm the page cache and every binary
			if _, err := run(p); err != nil {
				return nil, err
			}
		}
	}
	out := ownCosts{}
	for i := range n {
		for j := range peers {
			p := peers[(i+j)%len(peers)]
			s, err := run(p)
			if err != nil {
				return nil, err
			}
			out[p.name] = append(out[p.name], s)
		}
		if (i+1)%10 == 0 || i+1 == n {
			fmt.Printf("  own cost: %d/%d rounds of %d programs\n", i+1, n, len(peers))
		}
	}
	return out, nil
}

// timedRun runs cmd and returns its wall time and the CPU time (user and
// system, from wait4's rusage) of the process and of every child it
// waited for.
func timedRun(cmd *exec.Cmd) (sample, error) {
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	st := cmd.ProcessState
	if st == nil {
		return sample{}, err
	}
	return sample{wall: wall, cpu: st.UserTime() + st.SystemTime()}, err
}

// initCost is the median, over n runs, of secrun's total package init
// (GODEBUG=inittrace=1), with no runtime on PATH and no configuration so
// that it stops before any exec.
func initCost(secrun string, n int) (time.Duration, int, error) {
	var totals []time.Duration
	pkgs := 0
	for range n {
		cmd := exec.Command(secrun, "--version")
		cmd.Env = append(os.Environ(), "PATH=/nonexistent", "SECRUN_CONFIG=/nonexistent", "GODEBUG=inittrace=1")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		_ = cmd.Run() // fails: no runtime to pass --version to
		var total time.Duration
		pkgs = 0
		for _, l := range strings.Split(errb.String(), "\n") {
			// init internal/bytealg @0.008 ms, 0 ms clock, 0 bytes, 0 allocs
			f := strings.Fields(l)
			if len(f) < 5 || f[0] != "init" {
				continue
			}
			ms, err := strconv.ParseFloat(f[4], 64)
			if err != nil {
				continue
			}
			total += time.Duration(ms * float64(time.Millisecond))
			pkgs++
		}
		if pkgs == 0 {
			return 0, 0, fmt.Errorf("%s printed no inittrace lines: %s", secrun, lastLines(errb.String(), 3))
		}
		totals = append(totals, total)
	}
	return median(totals), pkgs, nil
}

// goBench is one line of `go test -bench -benchmem` output.
type goBench struct {
	ns, allocs float64
}

// readGoBench reads the benchmark named name from a `go test -bench
// -benchmem` output (the median of its runs).
func readGoBench(path, name string) (goBench, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return goBench{}, err
	}
	var ns, allocs []float64
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 8 || (f[0] != name && !strings.HasPrefix(f[0], name+"-")) {
			continue
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				ns = append(ns, v)
			case "allocs/op":
				allocs = append(allocs, v)
			}
		}
	}
	if len(ns) == 0 || len(allocs) == 0 {
		return goBench{}, fmt.Errorf("%s: no %s line with ns/op and allocs/op", path, name)
	}
	return goBench{ns: median(ns), allocs: median(allocs)}, nil
}
