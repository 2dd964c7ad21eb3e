package install

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// debianV2 is the config.toml Debian's containerd package installs,
// comments added so the tests see them survive.
const debianV2 = `version = 2

# Debian's CNI layout.
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
`

const v3 = `version = 3
root = "/var/lib/containerd"

[plugins."io.containerd.cri.v1.runtime".containerd]
  default_runtime_name = "runc"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      SystemdCgroup = true # kubelet uses the systemd driver
`

var opts = Options{Policies: []string{"restricted", "baseline"}, BinDir: "/usr/local/bin"}

func TestInstall(t *testing.T) {
	for _, tc := range []struct {
		name    string
		before  string
		exists  bool
		opts    Options
		version int
		systemd bool
		want    []string // substrings of the result
	}{
		{name: "debian v2", before: debianV2, exists: true, opts: opts, version: 2,
			want: []string{
				"# Debian's CNI layout.\n",
				// Debian's file relies on the built-in runc handler.
				"[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n",
				"[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.secrun-restricted]\n  runtime_type = \"io.containerd.runc.v2\"\n  pod_annotations = [\"secrun.dev/*\"]\n  container_annotations = [\"secrun.dev/*\"]\n",
				"[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.secrun-baseline.options]\n  BinaryName = \"/usr/local/bin/secrun-baseline\"\n",
			}},
		{name: "v3 with systemd cgroups", before: v3, exists: true, opts: opts, version: 3, systemd: true,
			want: []string{
				"SystemdCgroup = true # kubelet uses the systemd driver",
				"[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.secrun-restricted.options]\n  BinaryName = \"/usr/local/bin/secrun-restricted\"\n  SystemdCgroup = true\n",
			}},
		{name: "missing file", before: "", exists: false, opts: opts, version: 2,
			want: []string{"version = 2 " + createdMarker + "\n\n# BEGIN"}},
		{name: "empty file, version 3 asked", before: "", exists: true, opts: Options{Policies: []string{"restricted"}, BinDir: "/opt/secrun/bin/", Version: 3}, version: 3,
			want: []string{"version = 3 " + versionMarker + "\n\n# BEGIN", `BinaryName = "/opt/secrun/bin/secrun-restricted"`}},
		{name: "no version, root keys only", before: "root = \"/data/containerd\"\n[grpc]\n  address = \"/run/c.sock\"", exists: true, opts: opts, version: 2,
			want: []string{"version = 2 " + versionMarker + "\nroot = \"/data/containerd\"\n", "address = \"/run/c.sock\"\n# BEGIN"}},
		{name: "dotted keys define the parent", before: "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\ncontainerd.runtimes.runc.runtime_type = \"io.containerd.runc.v2\"\n", exists: true, opts: opts, version: 2},
		{name: "another default runtime", before: "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  default_runtime_name = \"crun\"\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crun]\n    runtime_type = \"io.containerd.runc.v2\"\n    [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crun.options]\n      BinaryName = \"/usr/bin/crun\"\n      SystemdCgroup = true\n", exists: true, opts: opts, version: 2, systemd: true},
		{name: "the file's version wins", before: debianV2, exists: true, opts: Options{Policies: []string{"restricted"}, BinDir: "/usr/local/bin", Version: 3}, version: 2},
		{name: "custom annotations", before: debianV2, exists: true, opts: Options{Policies: []string{"web"}, BinDir: "/usr/local/bin", Annotations: []string{"secrun.dev/*", "example.com/x"}}, version: 2,
			want: []string{`pod_annotations = ["secrun.dev/*", "example.com/x"]`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Install([]byte(tc.before), tc.exists, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			after := string(p.After)
			if !p.Changed() || p.Version != tc.version {
				t.Fatalf("changed=%v version=%d, want a change for version %d", p.Changed(), p.Version, tc.version)
			}
			for _, w := range tc.want {
				if !strings.Contains(after, w) {
					t.Errorf("result lacks %q:\n%s", w, after)
				}
			}
			// Everything the admin wrote is still there, in order.
			if !strings.Contains(after, strings.TrimSuffix(tc.before, "\n")) {
				t.Errorf("result does not keep the original text:\n%s", after)
			}
			checkHandlers(t, after, tc.version, tc.opts, tc.systemd)

			// Idempotent: installing onto the result changes nothing.
			again, err := Install(p.After, true, tc.opts)
			if err != nil {
				t.Fatalf("second install: %v", err)
			}
			if again.Changed() {
				t.Errorf("second install changed the file:\n%s", UnifiedDiff(after, string(again.After), "a", "b"))
			}

			// Uninstall gives back the original, byte for byte.
			u, err := Uninstall(p.After)
			if err != nil {
				t.Fatal(err)
			}
			if u.Remove != !tc.exists {
				t.Errorf("uninstall Remove = %v for a file that existed=%v", u.Remove, tc.exists)
			}
			if tc.exists && string(u.After) != tc.before {
				t.Errorf("uninstall gave\n%q\nwant\n%q", u.After, tc.before)
			}
			if len(u.Handlers) != len(tc.opts.Policies) {
				t.Errorf("uninstall reports handlers %v", u.Handlers)
			}
		})
	}
}

// checkHandlers decodes the result as containerd would and checks each
// handler's fields at the version's path.
func checkHandlers(t *testing.T, text string, version int, o Options, systemd bool) {
	t.Helper()
	var doc map[string]any
	if err := toml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("result is not TOML: %v\n%s", err, text)
	}
	if doc["version"] != int64(version) {
		t.Errorf("version = %v, want %d", doc["version"], version)
	}
	rt := lookupTable(doc, runtimesPath[version])
	if rt[defaultRuntime(doc, version)] == nil {
		t.Errorf("no handler for the default runtime %s:\n%s", defaultRuntime(doc, version), text)
	}
	if n := strings.Count(text, ".runtimes.runc]"); n > 1 {
		t.Errorf("runc handler defined %d times", n)
	}
	for _, p := range o.Policies {
		h, _ := rt["secrun-"+p].(map[string]any)
		if h == nil {
			t.Fatalf("no handler secrun-%s in %v", p, rt)
		}
		opt := h["options"].(map[string]any)
		if opt["BinaryName"] != strings.TrimSuffix(o.BinDir, "/")+"/secrun-"+p {
			t.Errorf("secrun-%s BinaryName = %v", p, opt["BinaryName"])
		}
		if got, _ := opt["SystemdCgroup"].(bool); got != systemd {
			t.Errorf("secrun-%s SystemdCgroup = %v, want %v", p, got, systemd)
		}
		if anns, _ := h["pod_annotations"].([]any); len(anns) == 0 || anns[0] != "secrun.dev/*" {
			t.Errorf("secrun-%s pod_annotations = %v", p, h["pod_annotations"])
		}
	}
}

func TestReinstallReplacesBlock(t *testing.T) {
	p, err := Install([]byte(debianV2), true, opts)
	if err != nil {
		t.Fatal(err)
	}
	// The admin appends after the block; a new install with other
	// policies replaces the block and keeps the admin's lines.
	edited := string(p.After) + "\n[metrics]\n  address = \"127.0.0.1:1338\"\n"
	o := Options{Policies: []string{"privileged"}, BinDir: "/opt/bin"}
	p2, err := Install([]byte(edited), true, o)
	if err != nil {
		t.Fatal(err)
	}
	after := string(p2.After)
	if strings.Contains(after, "secrun-restricted") || strings.Count(after, beginMarker) != 1 {
		t.Errorf("old block not replaced:\n%s", after)
	}
	if !strings.Contains(after, "[metrics]\n  address = \"127.0.0.1:1338\"\n") {
		t.Errorf("admin's lines after the block lost:\n%s", after)
	}
	checkHandlers(t, after, 2, o, false)
	u, err := Uninstall(p2.After)
	if err != nil {
		t.Fatal(err)
	}
	if want := debianV2 + "\n[metrics]\n  address = \"127.0.0.1:1338\"\n"; string(u.After) != want {
		t.Errorf("uninstall gave\n%s\nwant\n%s", u.After, want)
	}
}

func TestUninstallWithoutBlock(t *testing.T) {
	u, err := Uninstall([]byte(debianV2))
	if err != nil {
		t.Fatal(err)
	}
	if u.Changed() || len(u.Notes) == 0 {
		t.Errorf("uninstall of a file without a block: changed=%v notes=%v", u.Changed(), u.Notes)
	}
}

func TestUninstallKeepsNeededVersion(t *testing.T) {
	p, err := Install(nil, false, opts)
	if err != nil {
		t.Fatal(err)
	}
	// After install, the admin added a v2 plugin section that relies on
	// the version line secrun wrote.
	edited := string(p.After) + "[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"pause:3.9\"\n"
	u, err := Uninstall([]byte(edited))
	if err != nil {
		t.Fatal(err)
	}
	if u.Remove || !strings.HasPrefix(string(u.After), "version = 2 ") || strings.Contains(string(u.After), "secrun-restricted") {
		t.Errorf("uninstall result:\n%s", u.After)
	}
}

func TestInstallRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, before string
		opts         Options
		want         string
	}{
		{"version 1", "[plugins.cri]\n  sandbox_image = \"x\"\n", opts, "version 1 format"},
		{"version 4", "version = 4\n", opts, "version 4"},
		{"default runtime undefined", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  default_runtime_name = \"crun\"\n", opts, `default_runtime_name = "crun" but defines no such handler`},
		{"cri disabled", "version = 2\ndisabled_plugins = [\"cri\"]\n", opts, `disabled_plugins contains "cri"`},
		{"handler defined by the admin", debianV2 + "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.secrun-baseline]\n  runtime_type = \"io.containerd.runc.v2\"\n", opts, "already defines runtime handler secrun-baseline"},
		{"inline runtimes table", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  runtimes = { runc = { runtime_type = \"io.containerd.runc.v2\" } }\n", opts, "inline table"},
		{"invalid toml", "version = 2\n[plugins\n", opts, "line 2"},
		{"no policies", debianV2, Options{BinDir: "/usr/local/bin"}, "no policies"},
		{"uppercase policy", debianV2, Options{Policies: []string{"Web"}, BinDir: "/usr/local/bin"}, "RFC 1123"},
		{"duplicate policy", debianV2, Options{Policies: []string{"web", "web"}, BinDir: "/usr/local/bin"}, "twice"},
		{"relative bin dir", debianV2, Options{Policies: []string{"web"}, BinDir: "bin"}, "not absolute"},
		{"two blocks", debianV2 + beginMarker + "\n" + endMarker + "\n" + beginMarker + "\n" + endMarker + "\n", opts, "two secrun blocks"},
		{"unterminated block", debianV2 + beginMarker + "\n", opts, "without its"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Install([]byte(tc.before), true, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestNoFinalNewline(t *testing.T) {
	before := "version = 2\n[grpc]\n  address = \"/run/x.sock\""
	p, err := Install([]byte(before), true, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(p.After), "address = \"/run/x.sock\"\n# BEGIN") {
		t.Errorf("block not on its own line:\n%s", p.After)
	}
	u, err := Uninstall(p.After)
	if err != nil {
		t.Fatal(err)
	}
	if string(u.After) != before {
		t.Errorf("uninstall gave %q, want %q", u.After, before)
	}
}

func TestEditFile(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.toml")
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(real, []byte(debianV2), 0o600); err != nil {
		t.Fatal(err)
	}
	// The config is a link: the edit goes to the target and the link
	// stays.
	if err := os.Symlink("real.toml", path); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	install := func(before []byte, exists bool) (*Plan, error) { return Install(before, exists, opts) }

	res, err := Edit(path, true, now, install)
	if err != nil {
		t.Fatal(err)
	}
	if res.Written || res.Backup != "" {
		t.Fatalf("dry run wrote: %+v", res)
	}
	if b, _ := os.ReadFile(real); string(b) != debianV2 {
		t.Fatal("dry run changed the file")
	}

	res, err = Edit(path, false, now, install)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Written || res.Backup != real+".secrun-backup-20260102T150405Z" {
		t.Fatalf("install: %+v", res)
	}
	if b, _ := os.ReadFile(res.Backup); string(b) != debianV2 {
		t.Errorf("backup holds %q", b)
	}
	if fi, _ := os.Lstat(path); fi.Mode()&os.ModeSymlink == 0 {
		t.Error("config.toml is no longer a link")
	}
	if fi, _ := os.Stat(real); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 kept", fi.Mode().Perm())
	}
	installed, _ := os.ReadFile(real)

	// Idempotent on disk: no write, no backup.
	res, err = Edit(path, false, now, install)
	if err != nil || res.Written || res.Backup != "" {
		t.Fatalf("second install: %+v, %v", res, err)
	}

	res, err = Edit(path, false, now, func(b []byte, _ bool) (*Plan, error) { return Uninstall(b) })
	if err != nil {
		t.Fatal(err)
	}
	// The same second: the first backup is kept, the new one numbered.
	if res.Backup != real+".secrun-backup-20260102T150405Z-2" {
		t.Errorf("uninstall backup %q", res.Backup)
	}
	if b, _ := os.ReadFile(res.Backup); !bytes.Equal(b, installed) {
		t.Error("uninstall backup does not hold the installed file")
	}
	if b, _ := os.ReadFile(real); string(b) != debianV2 {
		t.Errorf("uninstall left\n%s", b)
	}
}

func TestEditCreatesAndRemoves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "containerd", "config.toml")
	now := time.Now()
	res, err := Edit(path, false, now, func(b []byte, ex bool) (*Plan, error) { return Install(b, ex, opts) })
	if err != nil {
		t.Fatal(err)
	}
	if !res.Written || res.Backup != "" {
		t.Fatalf("create: %+v", res)
	}
	res, err = Edit(path, false, now, func(b []byte, _ bool) (*Plan, error) { return Uninstall(b) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("uninstall kept the file it created: %v", err)
	}
	if res.Backup == "" {
		t.Error("no backup of the removed file")
	}
}

func TestEditReportsPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(path, []byte("[plugins.cri]\n"), 0o644)
	_, err := Edit(path, false, time.Now(), func(b []byte, ex bool) (*Plan, error) { return Install(b, ex, opts) })
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want it to name %s", err, path)
	}
}

// TestContainerdAcceptsConfig has the real containerd read the generated
// version 2 file: `config dump` exits non-zero on a config it rejects and
// prints the merged configuration, handlers included.
func TestContainerdAcceptsConfig(t *testing.T) {
	bin := containerd16(t)
	for name, before := range map[string]string{
		"debian": debianV2,
		"empty":  "",
		"dotted": "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\ncontainerd.runtimes.runc.runtime_type = \"io.containerd.runc.v2\"\n",
	} {
		t.Run(name, func(t *testing.T) {
			p, err := Install([]byte(before), true, opts)
			if err != nil {
				t.Fatal(err)
			}
			out := configDump(t, bin, p.After)
			for _, h := range []string{"secrun-restricted", "secrun-baseline"} {
				want := `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.` + h + `.options]`
				if !strings.Contains(string(out), want) || !strings.Contains(string(out), `BinaryName = "/usr/local/bin/`+h+`"`) {
					t.Errorf("containerd's view lacks %s:\n%s", h, out)
				}
			}
			// containerd's own runc handler survives: without it the CRI
			// plugin does not load.
			if !strings.Contains(string(out), `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]`) {
				t.Errorf("containerd's view lost the runc handler:\n%s", out)
			}
			if !strings.Contains(string(out), `pod_annotations = ["secrun.dev/*"]`) {
				t.Errorf("containerd's view lacks pod_annotations:\n%s", out)
			}
		})
	}
}

// containerd16 is Debian's containerd, which CI installs; elsewhere its
// absence skips the test.
func containerd16(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("containerd")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("containerd is not installed (apt-get install containerd)")
		}
		t.Skip("skipped: containerd is not installed (apt-get install containerd); the TOML checks still ran")
	}
	return bin
}

// configDump has containerd bin read text as its config.toml and returns
// the configuration it merged; containerd exits non-zero on one it
// rejects.
func configDump(t *testing.T, bin string, text []byte) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, text, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--config", cfg, "config", "dump").CombinedOutput()
	if err != nil {
		t.Fatalf("containerd config dump: %v\n%s", err, out)
	}
	return string(out)
}
