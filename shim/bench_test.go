package shim

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/secrun/secrun/policy"
)

// BenchmarkApplyCreate is the wrapper's own work for one create, all but
// the exec: load the policy, read config.json, harden it under
// restricted, write it back atomically and append the audit line. The
// bundle is on tmpfs, as containerd's are (/run/containerd/...).
func BenchmarkApplyCreate(b *testing.B) {
	dir, err := os.MkdirTemp("/dev/shm", "secrun-bench-")
	if err != nil {
		b.Skipf("skipped: no tmpfs at /dev/shm: %v", err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	benchmarkApplyCreate(b, dir)
}

// BenchmarkApplyCreateDisk is the same with the bundle on this machine's
// disk, where the fsyncs of an atomic write cost real time.
func BenchmarkApplyCreateDisk(b *testing.B) {
	benchmarkApplyCreate(b, b.TempDir())
}

func benchmarkApplyCreate(b *testing.B, dir string) {
	orig, err := os.ReadFile("../policy/testdata/runc-spec.json")
	if err != nil {
		b.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfgPath, []byte("auditLog: "+filepath.Join(dir, "audit.log")+"\npolicies:\n  restricted:\n    mode: harden\n    runAsUser: 65534\n"), 0o600)
	b.Setenv(policy.ConfigEnv, cfgPath)
	inv, err := ParseArgs([]string{"--root", dir, "--log", filepath.Join(dir, "log.json"), "--log-format", "json", "create", "--bundle", dir, "--pid-file", filepath.Join(dir, "pid"), "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		os.WriteFile(filepath.Join(dir, "config.json"), orig, 0o644)
		b.StartTimer()
		cfg, err := policy.LoadWrapperConfig()
		if err != nil {
			b.Fatal(err)
		}
		pol, err := cfg.Policy("restricted")
		if err != nil {
			b.Fatal(err)
		}
		if err := apply(inv, cfg, pol, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseArgs(b *testing.B) {
	args := []string{"--root", "/run/containerd/runc/k8s.io", "--log", "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/log.json", "--log-format", "json", "--systemd-cgroup", "create", "--bundle", "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc", "--pid-file", "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/init.pid", "abc"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseArgs(args); err != nil {
			b.Fatal(err)
		}
	}
}
