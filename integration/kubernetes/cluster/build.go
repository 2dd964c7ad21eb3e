package cluster

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/secrun/secrun/install"
	"github.com/secrun/secrun/internal/ociimage"
)

// The recording delegate: with Options.Capture, each handler's BinaryName
// is the recorder (integration/kubernetes/recorder) named secrun-<policy>,
// which copies config.json as containerd wrote it into CaptureDirEnv and
// execs the real secrun-<policy> in CaptureTargetEnv. secrun itself never
// records anything; the production path has no capture mode.
const (
	CaptureDirEnv    = "SECRUN_CAPTURE_DIR"
	CaptureTargetEnv = "SECRUN_CAPTURE_TARGET"
)

// SecrunImage is the image the deploy/ manifests name; the harness builds
// it locally (the files deploy/Dockerfile puts in it) and imports it under
// that name, so the manifests apply unchanged in that respect.
const SecrunImage = "ghcr.io/secrun/secrun:v0.1.0"

// pauseAliases are what deploy/daemonset-installer.yaml's "done" container
// runs: the harness's pause under the upstream name.
var pauseAliases = []string{"registry.k8s.io/pause:3.10"}

// build compiles what runs on the node and what goes in the images, one
// `go build` at a time (the machine is shared), and writes the images'
// OCI archive.
func (c *Cluster) build() error {
	type job struct {
		out, pkg string
		static   bool // cgo, linked statically: runs in the busybox image and on the host
		nocgo    bool
	}
	jobs := []job{
		{"bin/secrun", "./cmd/secrun", true, false},
		{"bin/secrunctl", "./cmd/secrunctl", true, false},
		{"probe", "./conformance/probe", false, true},
		{"pause", "./integration/containerd/pause", false, true},
		{"cni/bin/loopnet", "./integration/loopnet", false, true},
		{"bin/recorder", "./integration/kubernetes/recorder", false, true},
	}
	for _, j := range jobs {
		args := []string{"-n", "10", "go", "build", "-trimpath", "-o", filepath.Join(c.Dir, j.out)}
		if j.static {
			args = append(args, "-ldflags", `-linkmode external -extldflags "-static"`)
		}
		cmd := exec.Command("nice", append(args, j.pkg)...)
		cmd.Dir = c.opts.Repo
		cmd.Env = os.Environ()
		if j.nocgo {
			cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
		} else {
			cmd.Env = append(cmd.Env, "CGO_ENABLED=1")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", j.pkg, err, out)
		}
	}
	for _, p := range Policies {
		if err := os.Symlink("secrun", filepath.Join(c.BinDir, install.Handler(p))); err != nil {
			return err
		}
	}
	// containerd's CRI asks every sandbox for lo through a plugin named
	// loopback; loopnet does that job under that name.
	if err := os.Link(filepath.Join(c.cniBin, "loopnet"), filepath.Join(c.cniBin, "loopback")); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(c.cniConf, "10-secrun-loopnet.conflist"), cniConfig(), 0o644); err != nil {
		return err
	}
	if c.opts.Capture {
		c.HandlerDir = filepath.Join(c.Dir, "capture")
		if err := os.MkdirAll(c.HandlerDir, 0o755); err != nil {
			return err
		}
		for _, p := range Policies {
			if err := os.Symlink(filepath.Join(c.BinDir, "recorder"), filepath.Join(c.HandlerDir, install.Handler(p))); err != nil {
				return err
			}
		}
	}
	read := func(rel string) ([]byte, error) { return os.ReadFile(filepath.Join(c.Dir, rel)) }
	files := map[string][]byte{}
	for _, rel := range []string{"probe", "pause", "bin/secrun", "bin/secrunctl"} {
		b, err := read(rel)
		if err != nil {
			return err
		}
		files[rel] = b
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("the secrun image's shell is the host's static busybox: %w (apt-get install busybox-static)", err)
	}
	layer := []ociimage.File{
		// Debian's busybox-static runs its applets inside its own shell
		// (cp, cksum, date, kill, ...): /bin/sh is all install.sh needs.
		{Name: "bin/", Mode: 0o755},
		{Name: "bin/sh", Mode: 0o755, Body: busybox},
		{Name: "dev/", Mode: 0o755},
		{Name: "etc/", Mode: 0o755},
		{Name: "etc/group", Mode: 0o644, Body: []byte("root:x:0:\nnogroup:x:65534:\napp:x:1000:\n")},
		{Name: "etc/passwd", Mode: 0o644, Body: []byte("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/probe\napp:x:1000:1000:app:/:/probe\n")},
		{Name: "opt/", Mode: 0o755},
		{Name: "opt/secrun/", Mode: 0o755},
		{Name: "opt/secrun/bin/", Mode: 0o755},
		{Name: "opt/secrun/bin/secrun", Mode: 0o755, Body: files["bin/secrun"]},
		{Name: "opt/secrun/bin/secrunctl", Mode: 0o755, Body: files["bin/secrunctl"]},
		{Name: "pause", Mode: 0o755, Body: files["pause"]},
		{Name: "probe", Mode: 0o755, Body: files["probe"]},
		// The setuid-root copy the probe's nnp.setuid op execs.
		{Name: "probe-suid", Mode: 0o4755, Body: files["probe"]},
		{Name: "proc/", Mode: 0o755},
		{Name: "sys/", Mode: 0o755},
		{Name: "tmp/", Mode: 0o1777},
	}
	// The images' /etc files, for tools that resolve users the way
	// containerd does (secrunctl fidelity --rootfs).
	for _, f := range layer {
		if strings.HasPrefix(f.Name, "etc/") && !strings.HasSuffix(f.Name, "/") {
			if err := writeFile(filepath.Join(c.ImageRootfs(), f.Name), string(f.Body), 0o644); err != nil {
				return err
			}
		}
	}
	images := []ociimage.Image{
		{Ref: PauseImage, Entrypoint: []string{"/pause"}},
		{Ref: ProbeImage, Cmd: []string{"/probe"}},
		{Ref: SecrunImage, Cmd: []string{"/bin/sh"}},
	}
	for _, a := range pauseAliases {
		images = append(images, ociimage.Image{Ref: a, Entrypoint: []string{"/pause"}})
	}
	archive, err := ociimage.Archive(layer, images)
	if err != nil {
		return fmt.Errorf("build the OCI archive: %w", err)
	}
	c.Images = filepath.Join(c.Dir, "images.tar")
	return os.WriteFile(c.Images, archive, 0o644)
}

// ImageRootfs holds the /etc files of the node's images.
func (c *Cluster) ImageRootfs() string { return filepath.Join(c.Dir, "image-rootfs") }

// healthzOK asks the kubelet's healthz endpoint.
func healthzOK(port int) error {
	cl := http.Client{Timeout: 3 * time.Second}
	resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "ok" {
		return errors.New("healthz: " + resp.Status + " " + string(b))
	}
	return nil
}
