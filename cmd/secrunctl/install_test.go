package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const debianConfig = "version = 2\n\n[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\"]\n    [plugins.\"io.containerd.grpc.v1.cri\".cni]\n      bin_dir = \"/usr/lib/cni\"\n"

// installFixture is a host root with containerd's config, the secrun
// links and a secrun configuration that defines policy "web".
func installFixture(t *testing.T) (root, cfg string) {
	t.Helper()
	root = t.TempDir()
	cfg = filepath.Join(root, "etc", "containerd", "config.toml")
	os.MkdirAll(filepath.Dir(cfg), 0o755)
	os.WriteFile(cfg, []byte(debianConfig), 0o644)
	bin := filepath.Join(root, "usr", "local", "bin")
	os.MkdirAll(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "secrun"), []byte("#!/bin/sh\n"), 0o755)
	for _, p := range []string{"restricted", "web"} {
		os.Symlink("secrun", filepath.Join(bin, "secrun-"+p))
	}
	os.MkdirAll(filepath.Join(root, "etc", "secrun"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "secrun", "config.yaml"), []byte("policies:\n  web:\n    preset: baseline\n    mode: harden\n"), 0o644)
	return root, cfg
}

func runInstall(t *testing.T, a installArgs) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := runInstallContainerd(&out, &errb, a)
	return out.String(), errb.String(), err
}

func TestInstallContainerdCommand(t *testing.T) {
	root, cfg := installFixture(t)
	args := installArgs{config: "/etc/containerd/config.toml", policies: []string{"restricted", "web"}, binDir: "/usr/local/bin", hostRoot: root, configVersion: 2}

	dry := args
	dry.dryRun = true
	out, stderr, err := runInstall(t, dry)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "+[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.secrun-web]") || !strings.HasPrefix(out, "--- "+cfg) {
		t.Errorf("dry run diff:\n%s", out)
	}
	if strings.Contains(stderr, "warning") {
		t.Errorf("warnings with every binary in place: %s", stderr)
	}
	if b, _ := os.ReadFile(cfg); string(b) != debianConfig {
		t.Fatal("dry run wrote the file")
	}

	out, _, err = runInstall(t, args)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "wrote handlers secrun-restricted, secrun-web to "+cfg) || !strings.Contains(out, "backup "+cfg+".secrun-backup-") || !strings.Contains(out, "restart containerd") {
		t.Errorf("install output:\n%s", out)
	}
	b, _ := os.ReadFile(cfg)
	// BinaryName is the host's path, not the path below --host-root.
	if !strings.Contains(string(b), `BinaryName = "/usr/local/bin/secrun-web"`) {
		t.Errorf("config.toml:\n%s", b)
	}

	out, _, err = runInstall(t, args)
	if err != nil || !strings.Contains(out, "no change") {
		t.Errorf("second install: %q, %v", out, err)
	}

	un := args
	un.uninstall = true
	out, _, err = runInstall(t, un)
	if err != nil || !strings.Contains(out, "removed handlers secrun-restricted, secrun-web") {
		t.Errorf("uninstall: %q, %v", out, err)
	}
	if b, _ := os.ReadFile(cfg); string(b) != debianConfig {
		t.Errorf("uninstall left\n%s", b)
	}
}

func TestInstallContainerdCommandRefuses(t *testing.T) {
	// Each case gets its own fixture: one of them breaks the secrun
	// config, which must not leak into the others.
	for _, tc := range []struct {
		name string
		mod  func(a *installArgs, root string)
		want string
	}{
		{"unknown policy", func(a *installArgs, _ string) { a.policies = []string{"restricted", "strict"} }, `handler secrun-strict: policy "strict" is not defined`},
		{"relative config", func(a *installArgs, _ string) { a.policies = []string{"restricted"}; a.config = "config.toml" }, "not absolute"},
		{"bad secrun config", func(a *installArgs, root string) {
			a.policies = []string{"restricted"}
			os.WriteFile(filepath.Join(root, "etc", "secrun", "config.yaml"), []byte("polices: {}\n"), 0o644)
		}, "cannot check the policies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := installFixture(t)
			a := installArgs{config: "/etc/containerd/config.toml", binDir: "/usr/local/bin", hostRoot: root}
			tc.mod(&a, root)
			_, _, err := runInstall(t, a)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestInstallContainerdWarnsMissingBinary(t *testing.T) {
	root, _ := installFixture(t)
	_, stderr, err := runInstall(t, installArgs{config: "/etc/containerd/config.toml", policies: []string{"baseline"}, binDir: "/usr/local/bin", hostRoot: root, dryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "secrun-baseline") || !strings.Contains(stderr, "fail until it exists") {
		t.Errorf("no warning for the missing secrun-baseline: %q", stderr)
	}
}

func TestUninstallMissingFile(t *testing.T) {
	root := t.TempDir()
	out, stderr, err := runInstall(t, installArgs{config: "/etc/containerd/config.toml", hostRoot: root, uninstall: true})
	if err != nil || !strings.Contains(out, "no change") || !strings.Contains(stderr, "does not exist") {
		t.Errorf("uninstall of a missing file: %q %q %v", out, stderr, err)
	}
}

// TestInstallContainerdDropIn: --drop-in writes conf.d/secrun.toml, with
// --default the default handler, leaves config.toml alone, and uninstall
// removes exactly the drop-in.
func TestInstallContainerdDropIn(t *testing.T) {
	root, cfg := installFixture(t)
	const v3 = "version = 3\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n"
	if err := os.WriteFile(cfg, []byte(v3), 0o644); err != nil {
		t.Fatal(err)
	}
	a := installArgs{config: "/etc/containerd/config.toml", policies: []string{"restricted", "web"}, binDir: "/usr/local/bin", hostRoot: root,
		dropIn: true, dropInFile: "/etc/containerd/conf.d/secrun.toml", defaultPolicy: "web"}
	drop := filepath.Join(root, "etc", "containerd", "conf.d", "secrun.toml")
	out, stderr, err := runInstall(t, a)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "wrote handlers secrun-restricted, secrun-web to drop-in "+drop) || !strings.Contains(out, "/etc/containerd/config.toml was not touched") {
		t.Errorf("output:\n%s", out)
	}
	if !strings.Contains(stderr, "secrun-web is the default handler now") {
		t.Errorf("no note about the default handler: %q", stderr)
	}
	b, err := os.ReadFile(drop)
	if err != nil || !strings.Contains(string(b), `default_runtime_name = "secrun-web"`) || !strings.Contains(string(b), `BinaryName = "/usr/local/bin/secrun-web"`) {
		t.Fatalf("drop-in %v:\n%s", err, b)
	}
	if b, _ := os.ReadFile(cfg); string(b) != v3 {
		t.Fatalf("config.toml changed:\n%s", b)
	}
	un := a
	un.uninstall = true
	if out, _, err = runInstall(t, un); err != nil || !strings.Contains(out, "removed drop-in "+drop) {
		t.Fatalf("uninstall: %q, %v", out, err)
	}
	if _, err := os.Stat(drop); !os.IsNotExist(err) {
		t.Fatalf("drop-in left: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(drop)); !os.IsNotExist(err) {
		t.Fatalf("conf.d, which install created, is left: %v", err)
	}

	// Without the import the drop-in would be dead: refused, nothing
	// written.
	if err := os.WriteFile(cfg, []byte("version = 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runInstall(t, a); err == nil || !strings.Contains(err.Error(), "does not import /etc/containerd/conf.d/secrun.toml") {
		t.Fatalf("no import: %v", err)
	}
	if _, err := os.Stat(drop); !os.IsNotExist(err) {
		t.Fatal("a refused install wrote the drop-in")
	}
}
