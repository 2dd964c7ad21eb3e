package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/bundle"
	"github.com/secrun/secrun/internal/safefile"
	"github.com/secrun/secrun/manifest"
	"github.com/secrun/secrun/runccheck"
	"github.com/secrun/secrun/spec"
	"github.com/urfave/cli/v2"
)

// manifestFlags are the inputs translate and check share: where the
// manifest is and what the node would decide that a manifest cannot say.
func manifestFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "filename", Aliases: []string{"f"}, Required: true, Usage: "manifest to read (YAML or JSON, several documents allowed); - for stdin"},
		&cli.StringSliceFlag{Name: "container", Usage: "translate only these containers (repeat or comma-separate)"},
		&cli.StringFlag{Name: "kubernetes-version", Usage: "Kubernetes version whose sysctl safe set applies, e.g. 1.31 (default: the newest known)"},
		&cli.StringSliceFlag{Name: "allowed-unsafe-sysctls", Usage: "the kubelet's --allowed-unsafe-sysctls: names or prefixes ending in * (comma-separated)"},
		&cli.StringFlag{Name: "seccomp-profile-root", Usage: "directory of Localhost seccomp profiles (default: the secrun configuration's, else " + spec.DefaultSeccompProfileRoot + ")"},
		&cli.BoolFlag{Name: "seccomp-default", Usage: "as the kubelet's --seccomp-default: containers without a profile get RuntimeDefault"},
		&cli.StringFlag{Name: "image-user", Usage: "the image's USER, for containers without runAsUser"},
		&cli.StringFlag{Name: "node-name", Usage: "node name for spec.nodeName references and host-network hostnames"},
		&cli.BoolFlag{Name: "ambient-capabilities", Usage: "give non-root containers their added capabilities in the ambient set (beyond containerd)"},
		&cli.BoolFlag{Name: "privileged-without-host-devices", Usage: "do not pass the host's devices to privileged containers"},
	}
}

var translateCommand = &cli.Command{
	Name:  "translate",
	Usage: "turn a Kubernetes manifest into one OCI bundle per container, as kubelet and containerd would",
	Description: `Each container of each Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet,
Job or CronJob in the manifest becomes OUT/<name>-<container>/config.json,
init containers included. The manifest is parsed as strictly as the API
server parses it: an unknown or misspelt field is an error naming its path
and the likely spelling.

The rootfs is --rootfs DIR (hard-linked, or copied across filesystems),
--busybox (a static busybox with its applets), or nothing: then put one at
OUT/<name>-<container>/rootfs yourself. Users named by the image are
resolved in the rootfs' /etc/passwd.

The bundles are for this node: on a kernel with AppArmor, secrun's default
profile is loaded, as containerd would, so that they run here; privileged
containers get this node's devices unless --privileged-without-host-devices.`,
	ArgsUsage: " ",
	Flags: append(manifestFlags(),
		&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: "bundles", Usage: "directory to write the bundles under"},
		&cli.StringFlag{Name: "rootfs", Usage: "copy this directory into each bundle as its rootfs"},
		&cli.BoolFlag{Name: "busybox", Usage: "give each bundle a rootfs with /bin/busybox and its applets"},
		&cli.BoolFlag{Name: "force", Usage: "overwrite bundles that already exist"},
	),
	Action: runTranslate,
}

func runTranslate(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("translate takes no arguments (got %q); name the manifest with -f", c.Args().Slice())
	}
	if c.String("rootfs") != "" && c.Bool("busybox") {
		return errors.New("--rootfs and --busybox both give the rootfs; choose one")
	}
	workloads, err := readManifest(c)
	if err != nil {
		return err
	}
	opts, err := translateOptions(c, "")
	if err != nil {
		return err
	}
	var src string
	if r := c.String("rootfs"); r != "" {
		if src, err = filepath.Abs(r); err != nil {
			return err
		}
		if st, err := os.Stat(src); err != nil || !st.IsDir() {
			return fmt.Errorf("--rootfs %s: not a directory", r)
		}
		opts.ImageRootfs = src
	}
	if c.Bool("busybox") {
		// One busybox tree, made before translating so that image users
		// resolve against its /etc/passwd, then hard-linked into every
		// bundle; the template itself goes away at the end.
		if err := os.MkdirAll(c.String("out"), 0o755); err != nil {
			return err
		}
		tmpl, err := os.MkdirTemp(c.String("out"), ".busybox-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmpl)
		if err := os.Chmod(tmpl, 0o755); err != nil {
			return err
		}
		if err := busyboxRootfs(tmpl); err != nil {
			return fmt.Errorf("--busybox: %w", err)
		}
		if src, err = filepath.Abs(tmpl); err != nil {
			return err
		}
		opts.ImageRootfs = src
	}

	type job struct {
		dir    string
		bundle manifest.ContainerBundle
	}
	var jobs []job
	var errs []error
	seen := map[string]string{}
	for _, w := range workloads {
		bundles, err := manifest.Translate(w, opts)
		if err != nil {
			errs = append(errs, err)
		}
		for _, b := range bundles {
			name := w.Name + "-" + b.Name
			if prev, dup := seen[name]; dup {
				errs = append(errs, fmt.Errorf("%s container %s and %s both make bundle %s; translate them separately (--container) or rename one", w, b.Name, prev, name))
				continue
			}
			seen[name] = fmt.Sprintf("%s container %s", w, b.Name)
			jobs = append(jobs, job{filepath.Join(c.String("out"), name), b})
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if len(jobs) == 0 {
		return errors.New("the manifest has no containers to translate (no Pod or workload with a pod template)")
	}
	for _, j := range jobs {
		if err := runcAccepts(j.dir, j.bundle.Spec, src); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", j.dir, j.bundle.Path, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, j := range jobs {
		if err := writeBundle(c, j.dir, j.bundle, src); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "%s: %s (%s)\n", j.dir, j.bundle.Path, strings.Join(j.bundle.Steps, ", "))
		for _, w := range j.bundle.Warnings {
			fmt.Fprintf(c.App.ErrWriter, "warning: %s\n", w)
		}
	}
	return nil
}

// readManifest reads -f and parses it, telling the user what it skipped.
func readManifest(c *cli.Context) ([]*manifest.Workload, error) {
	name := c.String("filename")
	var r io.Reader
	if name == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, manifest.MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	ws, skipped, err := manifest.ParseAll(data)
	if err != nil {
		return nil, &invalidManifestError{name: name, err: err}
	}
	for _, s := range skipped {
		fmt.Fprintf(c.App.ErrWriter, "%s: document %d: skipped %s %s: it runs no containers\n", name, s.Document, s.Kind, s.Name)
	}
	return ws, nil
}

// invalidManifestError is a manifest the API server would refuse, as
// opposed to one that could not be read.
type invalidManifestError struct {
	name string
	err  error
}

func (e *invalidManifestError) Error() string { return e.name + ": " + e.err.Error() }
func (e *invalidManifestError) Unwrap() error { return e.err }

// translateOptions builds manifest.Options from the shared flags; the
// defaults for sysctls and the seccomp root come from the caller (a
// policy) when the flags leave them out.
func translateOptions(c *cli.Context, defaultSeccompRoot string) (manifest.Options, error) {
	opts := manifest.Options{
		RootfsPath:                   "rootfs",
		ImageUser:                    c.String("image-user"),
		KubernetesVersion:            c.String("kubernetes-version"),
		AllowedUnsafeSysctls:         c.StringSlice("allowed-unsafe-sysctls"),
		SeccompProfileRoot:           c.String("seccomp-profile-root"),
		SeccompDefault:               c.Bool("seccomp-default"),
		AppArmor:                     spec.HostAppArmor{},
		AmbientCapabilities:          c.Bool("ambient-capabilities"),
		PrivilegedWithoutHostDevices: c.Bool("privileged-without-host-devices"),
		NodeName:                     c.String("node-name"),
		Containers:                   c.StringSlice("container"),
	}
	if opts.SeccompProfileRoot == "" {
		opts.SeccompProfileRoot = defaultSeccompRoot
	}
	pol := spec.SysctlPolicy{KubernetesVersion: opts.KubernetesVersion, AllowedUnsafe: opts.AllowedUnsafeSysctls}
	if err := pol.Validate(); err != nil {
		return opts, fmt.Errorf("--kubernetes-version / --allowed-unsafe-sysctls: %w", err)
	}
	return opts, nil
}

// runcAccepts checks a bundle as runc's create will (runccheck), before
// it is written: a translation runc would refuse is reported with the
// field instead of failing on the node. rootfsSrc, when set, is what the
// bundle's rootfs will be a copy of.
func runcAccepts(dir string, s *specs.Spec, rootfsSrc string) error {
	if rootfsSrc != "" && s.Root != nil && !filepath.IsAbs(s.Root.Path) {
		cp := *s
		cp.Root = &specs.Root{Path: rootfsSrc, Readonly: s.Root.Readonly}
		s = &cp
	}
	_, err := runccheck.Check(dir, s)
	return err
}

func writeBundle(c *cli.Context, dir string, b manifest.ContainerBundle, rootfsSrc string) error {
	cfg := filepath.Join(dir, "config.json")
	if _, err := os.Lstat(cfg); err == nil && !c.Bool("force") {
		return fmt.Errorf("%s exists; remove it or pass --force", cfg)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if rootfsSrc != "" {
		rootfs := filepath.Join(dir, "rootfs")
		if err := os.RemoveAll(rootfs); err != nil {
			return err
		}
		if err := copyTree(rootfsSrc, rootfs); err != nil {
			return fmt.Errorf("rootfs for %s: %w", dir, err)
		}
	}
	data, err := json.MarshalIndent(b.Spec, "", "\t")
	if err != nil {
		return err
	}
	return bundle.WriteAtomic(cfg, append(data, '\n'), 0o644, -1, -1)
}

// copyTree copies src to dst, hard-linking regular files where it can:
// bundles of one manifest share one image, and a link costs nothing.
// Device nodes, FIFOs and sockets are not copied: an image carries none,
// and creating device nodes from a directory we were pointed at is how a
// tool ends up handing out the host's disks.
func copyTree(src, dst string) error {
	root, err := os.OpenRoot(src)
	if err != nil {
		return err
	}
	defer root.Close()
	return fs.WalkDir(root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			return os.Chmod(target, info.Mode().Perm()|info.Mode()&(fs.ModeSticky|fs.ModeSetgid|fs.ModeSetuid))
		case d.Type()&fs.ModeSymlink != 0:
			link, err := root.Readlink(rel)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			if err := os.Link(filepath.Join(src, rel), target); err == nil {
				return nil
			}
			return copyFile(root, rel, target, info.Mode())
		}
		return nil
	})
}

func copyFile(root *os.Root, rel, dst string, mode fs.FileMode) error {
	in, err := root.Open(rel)
	if err != nil {
		return err
	}
	defer in.Close()
	return safefile.CopyNew(dst, in, mode)
}

// busyboxPath is the static busybox Debian's busybox-static installs.
var busyboxPath = "/bin/busybox"

// busyboxRootfs makes a minimal image: a static busybox, a hard link per
// applet (real files, not symlinks, so that a test masking or executing
// /bin/<applet> sees an ordinary binary), and the /etc files runc and
// shells expect.
func busyboxRootfs(dir string) error {
	list, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return fmt.Errorf("%s --list: %w (install busybox-static)", busyboxPath, err)
	}
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "root", "tmp", "var/tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"tmp", "var/tmp"} {
		if err := os.Chmod(filepath.Join(dir, d), os.ModeSticky|0o777); err != nil {
			return err
		}
	}
	bb := filepath.Join(dir, "bin", "busybox")
	if err := copyPlainFile(busyboxPath, bb, 0o755); err != nil {
		return err
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" || strings.ContainsAny(applet, "/.") {
			continue
		}
		if err := os.Link(bb, filepath.Join(dir, "bin", applet)); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
		"etc/hosts":  "127.0.0.1\tlocalhost\n",
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(files[name]), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func copyPlainFile(src, dst string, mode fs.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(data, []byte("\x7fELF")) {
		return fmt.Errorf("%s is not an ELF binary", src)
	}
	return os.WriteFile(dst, data, mode)
}
