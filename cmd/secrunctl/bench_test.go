package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestBenchPeersDoTheirWork: the programs secrun's own cost is compared
// with do what the table says they do, so the ratios compare like with
// like: the naive wrapper sets no_new_privs in the bundle and execs the
// delegate, the exec floor execs it, and each is measured.
func TestBenchPeersDoTheirWork(t *testing.T) {
	if _, err := exec.LookPath("true"); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	built, err := buildPeers(work)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(work, "bundle")
	os.MkdirAll(bundle, 0o755)
	original := []byte(`{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}},"root":{"path":"rootfs"}}`)
	// The delegate leaves a mark, so the test sees that it ran.
	mark := filepath.Join(work, "delegate-ran")
	delegate := filepath.Join(work, "delegate")
	os.WriteFile(delegate, []byte("#!/bin/sh\ntouch "+mark+"\n"), 0o755)
	state := filepath.Join(work, "state")
	os.MkdirAll(state, 0o700)
	for _, name := range []string{"naive", "goexec"} {
		os.Remove(mark)
		p := peer{name: name, argv: []string{built[name]}, env: []string{"BENCH_DELEGATE=" + delegate}}
		costs, err := measureOwnCosts([]peer{p}, bundle, original, state, 1)
		if err != nil {
			t.Fatal(err)
		}
		if s := costs[name]; len(s) != 1 || s[0].cpu <= 0 || s[0].wall <= 0 {
			t.Errorf("%s: samples %+v", name, s)
		}
		if _, err := os.Stat(mark); err != nil {
			t.Errorf("%s did not exec the delegate", name)
		}
	}
	var s specs.Spec
	b, _ := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err := json.Unmarshal(b, &s); err != nil || s.Process == nil {
		t.Fatalf("bundle after the runs: %v %s", err, b)
	}
	// The last run was goexec's, which leaves the restored bundle alone.
	if s.Process.NoNewPrivileges {
		t.Error("the bundle was not restored before the run")
	}
	os.WriteFile(filepath.Join(bundle, "config.json"), original, 0o644)
	cmd := exec.Command(built["naive"], "create", "--bundle", bundle, "x")
	cmd.Env = append(os.Environ(), "BENCH_DELEGATE="+delegate)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("naive: %v: %s", err, out)
	}
	b, _ = os.ReadFile(filepath.Join(bundle, "config.json"))
	if err := json.Unmarshal(b, &s); err != nil || s.Process == nil || !s.Process.NoNewPrivileges {
		t.Errorf("naive did not set no_new_privs: %s", b)
	}
}

func TestReadGoBench(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bench.txt")
	os.WriteFile(p, []byte(`goos: linux
BenchmarkApplyCreate-2   	    1011	   1313095 ns/op	  320274 B/op	    5517 allocs/op
BenchmarkApplyCreateDisk-2   	    10	   9313095 ns/op	  320274 B/op	    9999 allocs/op
BenchmarkApplyCreate-2   	    1011	   1000000 ns/op	  320274 B/op	    5500 allocs/op
BenchmarkApplyCreate-2   	    1011	   1200000 ns/op	  320274 B/op	    5510 allocs/op
PASS
`), 0o644)
	got, err := readGoBench(p, "BenchmarkApplyCreate")
	if err != nil {
		t.Fatal(err)
	}
	if got.ns != 1200000 || got.allocs != 5510 {
		t.Errorf("got %+v, want the medians 1200000 ns and 5510 allocs", got)
	}
	if _, err := readGoBench(p, "BenchmarkNone"); err == nil {
		t.Error("a benchmark that is not there was read")
	}
}
