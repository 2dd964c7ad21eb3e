package install

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// v3Imports is containerd 2.2's `containerd config default` in short:
// version 3, the conf.d import, the CRI runtime plugin with runc.
const v3Imports = `version = 3
imports = ['/etc/containerd/conf.d/*.toml']
root = '/var/lib/containerd'

[plugins]
  [plugins.'io.containerd.cri.v1.runtime']
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes]
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
          runtime_type = 'io.containerd.runc.v2'
          [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
            SystemdCgroup = false
`

const mainPath = "/etc/containerd/config.toml"

func TestInstallDefault(t *testing.T) {
	for _, tc := range []struct {
		name, before string
		version      int
	}{
		{"debian v2", debianV2, 2},
		{"empty file, version 3", "", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Policies: []string{"restricted", "baseline"}, BinDir: "/usr/local/bin", Default: "restricted", Version: tc.version}
			p, err := Install([]byte(tc.before), true, o)
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := toml.Unmarshal(p.After, &doc); err != nil {
				t.Fatal(err)
			}
			if got := defaultRuntime(doc, tc.version); got != "secrun-restricted" {
				t.Fatalf("default_runtime_name %q:\n%s", got, p.After)
			}
			checkHandlers(t, string(p.After), tc.version, o, false)
			if !strings.Contains(strings.Join(p.Notes, "\n"), "every Pod without a runtimeClassName runs through policy restricted") {
				t.Errorf("notes %q", p.Notes)
			}
			if again, err := Install(p.After, true, o); err != nil || again.Changed() {
				t.Fatalf("second install: %v", err)
			}
			u, err := Uninstall(p.After)
			if err != nil || string(u.After) != tc.before {
				t.Fatalf("uninstall gave %q, %v", u.After, err)
			}
		})
	}
}

func TestInstallDefaultRefuses(t *testing.T) {
	o := Options{Policies: []string{"restricted"}, BinDir: "/usr/local/bin", Default: "restricted"}
	for _, tc := range []struct {
		name, before string
		opts         Options
		want         string
	}{
		{"the file sets default_runtime_name", v3, o, `sets default_runtime_name = "runc" itself, and secrun's block cannot override a key of the file; change it there to "secrun-restricted", or on containerd 2.x install with --drop-in`},
		{"the file defines the table", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"overlayfs\"\n", o,
			`defines [plugins."io.containerd.grpc.v1.cri".containerd] itself, so secrun's block cannot set default_runtime_name there`},
		{"default not installed", debianV2, Options{Policies: []string{"baseline"}, BinDir: "/usr/local/bin", Default: "restricted"}, `default policy "restricted" is not among the policies installed (baseline)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Install([]byte(tc.before), true, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestInstallDropIn(t *testing.T) {
	o := Options{Policies: []string{"restricted", "baseline"}, BinDir: "/usr/local/bin"}
	for _, tc := range []struct {
		name, main string
		opts       Options
		want       []string
	}{
		{"handlers", v3Imports, o, []string{"version = 3 " + createdMarker, "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.secrun-restricted.options]\n  BinaryName = \"/usr/local/bin/secrun-restricted\"\n"}},
		{"default handler overrides config.toml's", v3Imports, Options{Policies: o.Policies, BinDir: o.BinDir, Default: "baseline"},
			[]string{"[plugins.\"io.containerd.cri.v1.runtime\".containerd]\n  default_runtime_name = \"secrun-baseline\"\n"}},
		{"relative import", "version = 3\nimports = ['conf.d/*.toml']\n", o, []string{"runtimes.runc]"}},
		{"a version 2 file on containerd 2.x", "version = 2\nimports = [\"/etc/containerd/conf.d/secrun.toml\"]\n", o, []string{"secrun-baseline"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := InstallDropIn(DropIn{Main: []byte(tc.main), MainPath: mainPath, Path: DefaultDropIn, Containerd2: true}, nil, false, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Own || p.Version != 3 {
				t.Errorf("plan %+v", p)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(p.After), w) {
					t.Errorf("drop-in lacks %q:\n%s", w, p.After)
				}
			}
			// The handlers read back as containerd reads a version 3
			// file; the default runtime (runc) may live in config.toml.
			if err := verify(string(p.After), 3, tc.opts, false, mustParse(t, tc.main)); err != nil {
				t.Fatal(err)
			}
			again, err := InstallDropIn(DropIn{Main: []byte(tc.main), MainPath: mainPath, Path: DefaultDropIn, Containerd2: true}, p.After, true, tc.opts)
			if err != nil || again.Changed() {
				t.Fatalf("second install: %v, changed %v", err, again != nil && again.Changed())
			}
			u, err := UninstallDropIn(DefaultDropIn, p.After)
			if err != nil || !u.Remove || len(u.Handlers) != len(tc.opts.Policies) {
				t.Fatalf("uninstall %+v, %v", u, err)
			}
		})
	}
}

func TestInstallDropInRefuses(t *testing.T) {
	o := Options{Policies: []string{"restricted"}, BinDir: "/usr/local/bin"}
	for _, tc := range []struct {
		name, main  string
		existing    string
		containerd2 bool
		want        string
	}{
		{"no import", "version = 3\n", "", true, `/etc/containerd/config.toml does not import /etc/containerd/conf.d/secrun.toml (its imports: []), so containerd would never read the drop-in; add imports = ["/etc/containerd/conf.d/*.toml"]`},
		{"another directory imported", "version = 3\nimports = ['/etc/other/*.toml']\n", "", true, "does not import"},
		{"containerd 1.x", "version = 2\nimports = ['/etc/containerd/conf.d/*.toml']\n", "", false, "containerd 1.x replaces a plugin's whole configuration with an imported file's"},
		{"a foreign drop-in", v3Imports, "version = 3\n", true, "exists and was not written by secrunctl"},
		{"handler in config.toml", v3Imports + "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.secrun-restricted]\n  runtime_type = 'io.containerd.runc.v2'\n", "", true, "already defines runtime handler secrun-restricted"},
		{"CRI disabled", "version = 3\nimports = ['/etc/containerd/conf.d/*.toml']\ndisabled_plugins = ['io.containerd.cri.v1.runtime']\n", "", true, "disables the CRI plugin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := InstallDropIn(DropIn{Main: []byte(tc.main), MainPath: mainPath, Path: DefaultDropIn, Containerd2: tc.containerd2}, []byte(tc.existing), tc.existing != "", o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := UninstallDropIn(DefaultDropIn, []byte("version = 3\n")); err == nil || !strings.Contains(err.Error(), "not written by secrunctl") {
		t.Fatalf("uninstall of a foreign file: %v", err)
	}
}

// TestEditDropIn: the drop-in is created with its directory, replaced
// without backups (it is secrun's alone) and removed, and config.toml
// is never touched.
func TestEditDropIn(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(main, []byte(v3Imports), 0o600); err != nil {
		t.Fatal(err)
	}
	drop := filepath.Join(dir, "conf.d", "secrun.toml")
	o := Options{Policies: []string{"restricted"}, BinDir: "/usr/local/bin"}
	plan := func(b []byte, exists bool) (*Plan, error) {
		return InstallDropIn(DropIn{Main: []byte(v3Imports), MainPath: "/etc/containerd/config.toml", Path: "/etc/containerd/conf.d/secrun.toml", Containerd2: true, DirMissing: dirMissing(drop)}, b, exists, o)
	}
	res, err := Edit(drop, false, time.Unix(1700000000, 0), plan)
	if err != nil || !res.Written || res.Backup != "" {
		t.Fatalf("create: %+v, %v", res, err)
	}
	o.Policies = []string{"restricted", "baseline"}
	if res, err = Edit(drop, false, time.Unix(1700000000, 0), plan); err != nil || !res.Written || res.Backup != "" {
		t.Fatalf("replace: %+v, %v", res, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(drop)); len(entries) != 1 {
		t.Fatalf("conf.d holds %v", entries)
	}
	if res, err = Edit(drop, false, time.Unix(1700000000, 0), func(b []byte, _ bool) (*Plan, error) { return UninstallDropIn(drop, b) }); err != nil || !res.Written {
		t.Fatalf("uninstall: %+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Dir(drop)); !os.IsNotExist(err) {
		t.Fatalf("conf.d, which install created, is still there: %v", err)
	}
	// A directory that was there before stays.
	if err := os.Mkdir(filepath.Dir(drop), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Edit(drop, false, time.Unix(1700000000, 0), plan); err != nil {
		t.Fatal(err)
	}
	if _, err := Edit(drop, false, time.Unix(1700000000, 0), func(b []byte, _ bool) (*Plan, error) { return UninstallDropIn(drop, b) }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(drop)); err != nil {
		t.Fatalf("conf.d that was there before install is gone: %v", err)
	}
	if b, _ := os.ReadFile(main); string(b) != v3Imports {
		t.Fatal("config.toml changed")
	}
}

func mustParse(t *testing.T, s string) map[string]any {
	t.Helper()
	doc, err := parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// containerd2 finds a containerd 2.x binary: $SECRUN_CONTAINERD2, else
// the one scripts/kubernetes/build.sh caches.
func containerd2(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SECRUN_CONTAINERD2"); p != "" {
		return p
	}
	cache := os.Getenv("SECRUN_K8S_CACHE")
	if cache == "" {
		cache = "/var/cache/secrun/kubernetes"
	}
	m, _ := filepath.Glob(filepath.Join(cache, "containerd-v2*", "containerd"))
	if len(m) == 0 {
		msg := "no containerd 2.x binary (set SECRUN_CONTAINERD2, or run scripts/kubernetes/build.sh, which caches one under " + cache + ")"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip("skipped: " + msg)
	}
	return m[len(m)-1]
}

// TestContainerd2AcceptsDropIn has a real containerd 2.x merge config.toml
// with the drop-in: the handlers and the default from the drop-in, the
// rest from config.toml.
func TestContainerd2AcceptsDropIn(t *testing.T) {
	bin := containerd2(t)
	dir := t.TempDir()
	main := filepath.Join(dir, "config.toml")
	drop := filepath.Join(dir, "conf.d", "secrun.toml")
	mainText := strings.Replace(v3Imports, "/etc/containerd/conf.d/*.toml", filepath.Join(dir, "conf.d", "*.toml"), 1)
	if err := os.WriteFile(main, []byte(mainText), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{Policies: []string{"restricted", "baseline"}, BinDir: "/usr/local/bin", Default: "restricted"}
	if _, err := Edit(drop, false, time.Unix(1700000000, 0), func(b []byte, exists bool) (*Plan, error) {
		return InstallDropIn(DropIn{Main: []byte(mainText), MainPath: main, Path: drop, Containerd2: true}, b, exists, o)
	}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--config", main, "config", "dump").CombinedOutput()
	if err != nil {
		t.Fatalf("containerd config dump: %v\n%s", err, out)
	}
	for _, want := range []string{
		"default_runtime_name = 'secrun-restricted'",
		"[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.secrun-baseline.options]",
		"BinaryName = '/usr/local/bin/secrun-restricted'",
		"[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]",
		"root = '/var/lib/containerd'",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("containerd's merged view lacks %q:\n%s", want, out)
		}
	}
}

// TestContainerdAcceptsDefault has Debian's containerd 1.6 read a version
// 2 file whose default handler is secrun's.
func TestContainerdAcceptsDefault(t *testing.T) {
	bin := containerd16(t)
	o := Options{Policies: []string{"restricted", "baseline"}, BinDir: "/usr/local/bin", Default: "baseline"}
	p, err := Install([]byte(debianV2), true, o)
	if err != nil {
		t.Fatal(err)
	}
	out := configDump(t, bin, p.After)
	if !strings.Contains(out, `default_runtime_name = "secrun-baseline"`) || !strings.Contains(out, `BinaryName = "/usr/local/bin/secrun-baseline"`) {
		t.Errorf("containerd's view:\n%s", out)
	}
}

func dirMissing(path string) bool {
	_, err := os.Stat(filepath.Dir(path))
	return os.IsNotExist(err)
}
