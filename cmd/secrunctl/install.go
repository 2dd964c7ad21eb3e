package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/secrun/secrun/install"
	"github.com/secrun/secrun/policy"
	"github.com/urfave/cli/v2"
)

var installCommand = &cli.Command{
	Name:  "install",
	Usage: "add secrun's runtime handlers to a container runtime's configuration",
	Subcommands: []*cli.Command{
		installContainerdCommand,
	},
}

var installContainerdCommand = &cli.Command{
	Name:  "containerd",
	Usage: "add (or with --uninstall remove) one runtime handler per policy to containerd's config.toml",
	Description: `Each policy P gets the CRI runtime handler secrun-P, which runs BIN-DIR/secrun-P
through containerd's runc shim and lets secrun.dev/* Pod annotations through.
The handlers go in one marked block at the end of the file; the rest of the
file, comments included, is left as it is. --default POLICY makes secrun-POLICY
the handler of every Pod that names no RuntimeClass. On containerd 2.x,
--drop-in writes the handlers to a file of their own (--drop-in-file, default
/etc/containerd/conf.d/secrun.toml) that config.toml imports, and config.toml
is not touched; --uninstall --drop-in removes that file. Running it again replaces the
block. The previous file is kept as CONFIG.secrun-backup-<time> before each
change. containerd reads its configuration only at start: restart it
(systemctl restart containerd) after a change. Running containers survive
the restart; their shims keep them.`,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "config", Value: "/etc/containerd/config.toml", Usage: "containerd's configuration file (on the host, see --host-root)"},
		&cli.StringFlag{Name: "policies", Value: strings.Join(policy.Presets, ","), Usage: "comma-separated policies, one handler secrun-<policy> each"},
		&cli.StringFlag{Name: "bin-dir", Value: "/usr/local/bin", Usage: "directory holding the secrun-<policy> links, as the host sees it"},
		&cli.IntFlag{Name: "config-version", Usage: "format for a file that declares no version: 2 (containerd 1.x; 2.x reads it too) or 3 (containerd 2.x); default: 3 if `containerd --version` says 2.x, else 2. A file's own version always wins"},
		&cli.StringFlag{Name: "host-root", Value: "/", Usage: "where the host's filesystem is mounted (a DaemonSet mounts it at /host); --config, --bin-dir and the secrun configuration are read below it"},
		&cli.StringFlag{Name: "default", Usage: "make the handler of this policy (one of --policies) the default, for Pods that name no RuntimeClass: every Pod then goes through secrun"},
		&cli.BoolFlag{Name: "drop-in", Usage: "containerd 2.x: write the handlers to their own file, which config.toml imports (--drop-in-file), and leave config.toml untouched"},
		&cli.StringFlag{Name: "drop-in-file", Value: install.DefaultDropIn, Usage: "the drop-in's path on the host; config.toml's imports must name it (containerd 2.2's default config imports /etc/containerd/conf.d/*.toml)"},
		&cli.BoolFlag{Name: "dry-run", Usage: "print the change as a diff and write nothing"},
		&cli.BoolFlag{Name: "uninstall", Usage: "remove secrun's block, restoring the file as it was before the install"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() > 0 {
			return fmt.Errorf("unexpected argument %q; flags only (see --help)", c.Args().First())
		}
		return runInstallContainerd(c.App.Writer, c.App.ErrWriter, installArgs{
			config:        c.String("config"),
			policies:      splitList(c.String("policies")),
			binDir:        c.String("bin-dir"),
			configVersion: c.Int("config-version"),
			hostRoot:      c.String("host-root"),
			dryRun:        c.Bool("dry-run"),
			uninstall:     c.Bool("uninstall"),
			defaultPolicy: c.String("default"),
			dropIn:        c.Bool("drop-in"),
			dropInFile:    c.String("drop-in-file"),
			secrunConfig:  os.Getenv(policy.ConfigEnv),
		})
	},
}

type installArgs struct {
	config, binDir, hostRoot string
	policies                 []string
	configVersion            int
	dryRun, uninstall        bool
	// defaultPolicy makes its handler the default one; dropIn writes
	// dropInFile instead of editing config.
	defaultPolicy string
	dropIn        bool
	dropInFile    string
	// secrunConfig is $SECRUN_CONFIG (set by the global --config flag).
	secrunConfig string
	// stderr takes warnings.
	stderr io.Writer
}

func runInstallContainerd(stdout, stderr io.Writer, a installArgs) error {
	a.stderr = stderr
	if !filepath.IsAbs(a.config) {
		return fmt.Errorf("--config %q is not absolute; give the host path, e.g. /etc/containerd/config.toml", a.config)
	}
	path := filepath.Join(a.hostRoot, a.config)
	var plan func([]byte, bool) (*install.Plan, error)
	if a.dropIn {
		var err error
		if path, plan, err = dropInPlan(a); err != nil {
			return err
		}
	} else if a.uninstall {
		plan = func(b []byte, exists bool) (*install.Plan, error) {
			if !exists {
				// Nothing to undo; automation may run this on every node.
				return &install.Plan{Notes: []string{"the file does not exist; nothing to remove"}}, nil
			}
			return install.Uninstall(b)
		}
	} else {
		if err := checkPolicies(a); err != nil {
			return err
		}
		warnMissingBinaries(a)
		version := a.configVersion
		if version == 0 {
			version = containerdConfigVersion()
		}
		opts := install.Options{Policies: a.policies, BinDir: a.binDir, Version: version, Default: a.defaultPolicy}
		plan = func(b []byte, exists bool) (*install.Plan, error) { return install.Install(b, exists, opts) }
	}
	res, err := install.Edit(path, a.dryRun, time.Now(), plan)
	if err != nil {
		return err
	}
	p := res.Plan
	for _, n := range p.Notes {
		fmt.Fprintf(stderr, "secrunctl: note: %s\n", n)
	}
	after := string(p.After)
	if a.dryRun {
		if !p.Changed() {
			fmt.Fprintf(stdout, "%s: no change\n", res.Path)
			return nil
		}
		fmt.Fprint(stdout, install.UnifiedDiff(string(p.Before), after, res.Path, res.Path+" (secrun)"))
		if p.Remove {
			fmt.Fprintf(stdout, "%s would be removed: secrunctl created it\n", res.Path)
		}
		return nil
	}
	var msg string
	switch {
	case !res.Written:
		fmt.Fprintf(stdout, "%s: no change (handlers: %s)\n", res.Path, strings.Join(p.Handlers, ", "))
		return nil
	case p.Remove && a.dropIn:
		msg = fmt.Sprintf("removed drop-in %s (handlers %s); %s was not touched", res.Path, strings.Join(p.Handlers, ", "), filepath.Join(a.hostRoot, a.config))
	case p.Remove:
		msg = fmt.Sprintf("removed %s: secrunctl had created it", res.Path)
	case a.dropIn:
		msg = fmt.Sprintf("wrote handlers %s to drop-in %s (config version %d), which %s imports; %s was not touched", strings.Join(p.Handlers, ", "), res.Path, p.Version, a.config, a.config)
	case a.uninstall:
		msg = fmt.Sprintf("removed handlers %s from %s", strings.Join(p.Handlers, ", "), res.Path)
	default:
		msg = fmt.Sprintf("wrote handlers %s to %s (config version %d)", strings.Join(p.Handlers, ", "), res.Path, p.Version)
	}
	if res.Backup != "" {
		msg += "; backup " + res.Backup
	}
	fmt.Fprintln(stdout, msg)
	fmt.Fprintln(stdout, "restart containerd to load the change (systemctl restart containerd); running containers keep running")
	return nil
}

// dropInPlan is the drop-in's path below the host root and the plan that
// writes or removes it; config.toml is read, never written.
func dropInPlan(a installArgs) (string, func([]byte, bool) (*install.Plan, error), error) {
	if !filepath.IsAbs(a.dropInFile) {
		return "", nil, fmt.Errorf("--drop-in-file %q is not absolute; give the host path, e.g. %s", a.dropInFile, install.DefaultDropIn)
	}
	path := filepath.Join(a.hostRoot, a.dropInFile)
	if a.uninstall {
		return path, func(b []byte, exists bool) (*install.Plan, error) {
			if !exists {
				return &install.Plan{Notes: []string{"the drop-in does not exist; nothing to remove"}}, nil
			}
			return install.UninstallDropIn(path, b)
		}, nil
	}
	if a.configVersion != 0 && a.configVersion != 3 {
		return "", nil, fmt.Errorf("--config-version %d: a drop-in is for containerd 2.x and always version 3", a.configVersion)
	}
	if err := checkPolicies(a); err != nil {
		return "", nil, err
	}
	warnMissingBinaries(a)
	main, err := os.ReadFile(filepath.Join(a.hostRoot, a.config))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil, fmt.Errorf("--drop-in: %s does not exist, and containerd reads imports only from a config.toml; create it with `containerd config default > %s` (containerd 2.2 and later import conf.d there), or leave out --drop-in", a.config, a.config)
		}
		return "", nil, err
	}
	d := install.DropIn{Main: main, MainPath: a.config, Path: a.dropInFile, Containerd2: containerdConfigVersion() == 3}
	if _, err := os.Stat(filepath.Dir(path)); errors.Is(err, fs.ErrNotExist) {
		d.DirMissing = true
	}
	opts := install.Options{Policies: a.policies, BinDir: a.binDir, Default: a.defaultPolicy}
	return path, func(b []byte, exists bool) (*install.Plan, error) { return install.InstallDropIn(d, b, exists, opts) }, nil
}

// warnMissingBinaries warns, without failing, about handlers whose
// secrun-<policy> link is not there yet: a rollout may write the
// configuration before it copies the binaries.
func warnMissingBinaries(a installArgs) {
	for _, p := range a.policies {
		bin := filepath.Join(a.hostRoot, a.binDir, install.Handler(p))
		if _, err := os.Stat(bin); err != nil {
			fmt.Fprintf(a.stderr, "secrunctl: warning: %s: %v; Pods of handler %s fail until it exists (make install, or the DaemonSet in deploy/)\n", bin, errors.Unwrap(err), install.Handler(p))
		}
	}
}

// checkPolicies refuses a handler whose policy secrun would not find: every
// Pod of it would fail closed, so the mistake belongs here.
func checkPolicies(a installArgs) error {
	var cfg *policy.Config
	var err error
	if a.hostRoot == "/" || a.hostRoot == "" {
		cfg, err = policy.LoadConfig()
	} else {
		// On the host, secrun reads /etc/secrun/config.yaml unless its
		// environment says otherwise; containerd's environment is not
		// ours to see, so the default path is what we check.
		p := filepath.Join(a.hostRoot, policy.DefaultConfigPath)
		var b []byte
		b, err = os.ReadFile(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			cfg, err = policy.ParseConfig(nil)
		case err == nil:
			cfg, err = policy.ParseConfig(b)
			if err != nil {
				err = fmt.Errorf("secrun configuration %s: %w", p, err)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("cannot check the policies: %w", err)
	}
	for _, p := range a.policies {
		if _, err := cfg.Policy(p); err != nil {
			return fmt.Errorf("handler %s: %w; define the policy in the secrun configuration or leave it out of --policies", install.Handler(p), err)
		}
	}
	return nil
}

var containerdVersionRE = regexp.MustCompile(`\s v?(\d+)\.\d+`)

// containerdConfigVersion picks the format for a file that declares none
// from the containerd on PATH: 3 for containerd 2.x, 2 for 1.x, 0 (the
// library's default, 2) when there is no containerd to ask.
func containerdConfigVersion() int {
	out, err := exec.Command("containerd", "--version").Output()
	if err != nil {
		return 0
	}
	// "containerd github.com/containerd/containerd 1.6.20~ds1 <commit>"
	m := containerdVersionRE.FindSubmatch(out)
	if m == nil {
		return 0
	}
	if major, _ := strconv.Atoi(string(m[1])); major >= 2 {
		return 3
	}
	return 2
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
