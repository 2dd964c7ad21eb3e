// Package deploy holds secrun's Kubernetes manifests; its tests decode
// them strictly with the Kubernetes API types and check that the pieces
// fit: handlers, labels, images, ConfigMap keys, the install script.
package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/secrun/secrun/install"
	"github.com/secrun/secrun/internal/testenv"
	"github.com/secrun/secrun/policy"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// object is one document of a manifest file, decoded.
type object struct {
	file string
	kind string
	meta *metav1.ObjectMeta
	obj  any
}

// newObject is the typed value for a document's apiVersion and kind.
// Anything else in deploy/ is a mistake the test should name.
func newObject(apiVersion, kind string) (any, *metav1.ObjectMeta, error) {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		o := &corev1.Namespace{}
		return o, &o.ObjectMeta, nil
	case "v1 ServiceAccount":
		o := &corev1.ServiceAccount{}
		return o, &o.ObjectMeta, nil
	case "v1 ConfigMap":
		o := &corev1.ConfigMap{}
		return o, &o.ObjectMeta, nil
	case "apps/v1 DaemonSet":
		o := &appsv1.DaemonSet{}
		return o, &o.ObjectMeta, nil
	case "batch/v1 Job":
		o := &batchv1.Job{}
		return o, &o.ObjectMeta, nil
	case "node.k8s.io/v1 RuntimeClass":
		o := &nodev1.RuntimeClass{}
		return o, &o.ObjectMeta, nil
	}
	return nil, nil, fmt.Errorf("unexpected %s %s", apiVersion, kind)
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decode reads a multi-document manifest strictly: an unknown or
// duplicated field is an error, as it would be with kubectl --validate.
func decode(file string, data []byte) ([]object, error) {
	var out []object
	for i, doc := range docSeparator.Split(string(data), -1) {
		if isBlank(doc) {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("%s document %d: %w", file, i+1, err)
		}
		obj, meta, err := newObject(tm.APIVersion, tm.Kind)
		if err != nil {
			return nil, fmt.Errorf("%s document %d: %w", file, i+1, err)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("%s document %d (%s): %w", file, i+1, tm.Kind, err)
		}
		out = append(out, object{file: file, kind: tm.Kind, meta: meta, obj: obj})
	}
	return out, nil
}

// isBlank is true for a document of comments and whitespace only.
func isBlank(doc string) bool {
	for _, l := range strings.Split(doc, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

func loadAll(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/: %v", err)
	}
	var all []object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decode(f, b)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) == 0 {
			t.Errorf("%s holds no object", f)
		}
		all = append(all, objs...)
	}
	return all
}

func find[T any](all []object) []T {
	var out []T
	for _, o := range all {
		if v, ok := o.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func TestDecodeIsStrict(t *testing.T) {
	_, err := decode("x.yaml", []byte("apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: x\nhandler: x\nhandlr: y\n"))
	if err == nil || !strings.Contains(err.Error(), "handlr") {
		t.Fatalf("an unknown field decoded: %v", err)
	}
	_, err = decode("x.yaml", []byte("# c\n---\napiVersion: v1\nkind: Pod\n"))
	if err == nil {
		t.Fatal("an unexpected kind decoded")
	}
}

func TestManifestsDecode(t *testing.T) {
	for _, o := range loadAll(t) {
		name := o.meta.Name
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			t.Errorf("%s: %s name %q: %v", o.file, o.kind, name, errs)
		}
		if o.kind != "Namespace" && o.kind != "RuntimeClass" && o.meta.Namespace != "secrun-system" {
			t.Errorf("%s: %s %s is in namespace %q, want secrun-system", o.file, o.kind, name, o.meta.Namespace)
		}
		for k, v := range o.meta.Labels {
			if errs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...); len(errs) > 0 {
				t.Errorf("%s: %s %s label %s=%s: %v", o.file, o.kind, name, k, v, errs)
			}
		}
	}
}

// nodeLabel is how nodes opt in: the DaemonSet runs there, and the
// RuntimeClasses schedule Pods there.
const nodeLabel = "secrun.dev/runtime"

func TestRuntimeClasses(t *testing.T) {
	all := loadAll(t)
	ds := daemonSet(t, all)
	for _, p := range policy.Presets {
		file := "runtimeclass-" + p + ".yaml"
		var rcs []*nodev1.RuntimeClass
		for _, o := range all {
			if rc, ok := o.obj.(*nodev1.RuntimeClass); ok && o.file == file {
				rcs = append(rcs, rc)
			}
		}
		if len(rcs) != 1 {
			t.Errorf("%s holds %d RuntimeClasses, want 1", file, len(rcs))
			continue
		}
		rc := rcs[0]
		// The handler must be what the installer names the policy's
		// handler, and a valid CRI handler name.
		if rc.Handler != install.Handler(p) || rc.Name != rc.Handler {
			t.Errorf("%s: RuntimeClass %s handler %s, want %s for both", file, rc.Name, rc.Handler, install.Handler(p))
		}
		if errs := validation.IsDNS1123Label(rc.Handler); len(errs) > 0 {
			t.Errorf("%s: handler %q: %v", file, rc.Handler, errs)
		}
		if rc.Scheduling == nil || rc.Scheduling.NodeSelector[nodeLabel] != ds.Spec.Template.Spec.NodeSelector[nodeLabel] || rc.Scheduling.NodeSelector[nodeLabel] == "" {
			t.Errorf("%s: Pods must be scheduled where the installer runs (%s=%s); scheduling is %+v", file, nodeLabel, ds.Spec.Template.Spec.NodeSelector[nodeLabel], rc.Scheduling)
		}
		if !slices.Contains(installerPolicies(t, ds), p) {
			t.Errorf("%s: the installer's POLICIES do not include %s, so no node has the handler", file, p)
		}
	}
}

func daemonSet(t *testing.T, all []object) *appsv1.DaemonSet {
	t.Helper()
	dss := find[*appsv1.DaemonSet](all)
	if len(dss) != 1 {
		t.Fatalf("%d DaemonSets, want 1", len(dss))
	}
	return dss[0]
}

func installContainer(t *testing.T, ds *appsv1.DaemonSet) *corev1.Container {
	t.Helper()
	for i, c := range ds.Spec.Template.Spec.InitContainers {
		if c.Name == "install" {
			return &ds.Spec.Template.Spec.InitContainers[i]
		}
	}
	t.Fatal("the DaemonSet has no init container named install")
	return nil
}

func envOf(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func installerPolicies(t *testing.T, ds *appsv1.DaemonSet) []string {
	return strings.Split(envOf(installContainer(t, ds), "POLICIES"), ",")
}

func configMap(t *testing.T, all []object, name string) *corev1.ConfigMap {
	t.Helper()
	for _, cm := range find[*corev1.ConfigMap](all) {
		if cm.Name == name {
			return cm
		}
	}
	t.Fatalf("no ConfigMap %s", name)
	return nil
}

func TestDaemonSet(t *testing.T) {
	all := loadAll(t)
	ds := daemonSet(t, all)
	spec := ds.Spec.Template.Spec
	sel, err := metav1.LabelSelectorAsMap(ds.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range sel {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the template's labels %v", k, v, ds.Spec.Template.Labels)
		}
	}
	if !spec.HostPID {
		t.Error("hostPID is off: the restart command cannot reach the host's PID 1")
	}
	if spec.NodeSelector[nodeLabel] == "" {
		t.Errorf("the DaemonSet does not select nodes by %s", nodeLabel)
	}
	sas := find[*corev1.ServiceAccount](all)
	if len(sas) != 1 || sas[0].Name != spec.ServiceAccountName {
		t.Errorf("serviceAccountName %s has no ServiceAccount in deploy/", spec.ServiceAccountName)
	}

	c := installContainer(t, ds)
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	// Every host path the script touches is mounted at the same path
	// below HOST_ROOT.
	hostRoot := envOf(c, "HOST_ROOT")
	mounted := map[string]string{} // host path -> mount path
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			t.Errorf("mount %s names no volume", m.Name)
			continue
		}
		switch {
		case v.HostPath != nil:
			mounted[v.HostPath.Path] = m.MountPath
			if m.MountPath != hostRoot+v.HostPath.Path {
				t.Errorf("host path %s is mounted at %s, want %s%s", v.HostPath.Path, m.MountPath, hostRoot, v.HostPath.Path)
			}
		case v.ConfigMap != nil:
			configMap(t, all, v.ConfigMap.Name)
		}
	}
	for _, need := range []string{envOf(c, "BIN_DIR"), filepath.Dir(envOf(c, "CONTAINERD_CONFIG")), "/etc/secrun", "/var/log/secrun"} {
		if _, ok := mounted[need]; !ok {
			t.Errorf("the install container does not mount the host's %s", need)
		}
	}
	if len(c.Command) != 2 || c.Command[1] != "/scripts/install.sh" {
		t.Errorf("install command %v, want the script from ConfigMap secrun-installer", c.Command)
	}
	if !strings.Contains(configMap(t, all, "secrun-installer").Data["install.sh"], "secrunctl\" install containerd") {
		t.Error("install.sh does not run secrunctl install containerd")
	}

	// The shipped secrun configuration is one secrun accepts, and it
	// defines every policy the installer makes a handler for.
	cfg, err := policy.ParseConfig([]byte(configMap(t, all, "secrun-config").Data["config.yaml"]))
	if err != nil {
		t.Fatalf("ConfigMap secrun-config: %v", err)
	}
	for _, p := range installerPolicies(t, ds) {
		if _, err := cfg.Policy(p); err != nil {
			t.Errorf("POLICIES names %s: %v", p, err)
		}
	}
}

func TestConformanceJob(t *testing.T) {
	all := loadAll(t)
	jobs := find[*batchv1.Job](all)
	if len(jobs) != 1 {
		t.Fatalf("%d Jobs, want 1", len(jobs))
	}
	job := jobs[0]
	spec := job.Spec.Template.Spec
	var handlers []string
	for _, rc := range find[*nodev1.RuntimeClass](all) {
		handlers = append(handlers, rc.Name)
	}
	if spec.RuntimeClassName == nil || *spec.RuntimeClassName != "secrun-restricted" || !slices.Contains(handlers, *spec.RuntimeClassName) {
		t.Errorf("runtimeClassName %v, want secrun-restricted from runtimeclass-restricted.yaml", spec.RuntimeClassName)
	}
	if spec.RestartPolicy != corev1.RestartPolicyNever || job.Spec.TTLSecondsAfterFinished != nil {
		t.Error("the Job must not retry and must keep its Pod (and log): restartPolicy Never, no ttlSecondsAfterFinished")
	}
	ds := daemonSet(t, all)
	image := installContainer(t, ds).Image
	// Under restricted in enforce mode, secrun refuses a container that
	// does not ask for all of this itself.
	psc := spec.SecurityContext
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		if c.Image != image {
			t.Errorf("container %s runs %s, the installer %s: they are one image (deploy/Dockerfile)", c.Name, c.Image, image)
		}
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("container %s has no securityContext", c.Name)
			continue
		}
		nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
		uid := sc.RunAsUser
		if uid == nil && psc != nil {
			uid = psc.RunAsUser
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil && psc != nil {
			seccomp = psc.SeccompProfile
		}
		switch {
		case !nonRoot || uid == nil || *uid == 0:
			t.Errorf("container %s: runAsNonRoot with a non-zero runAsUser is required", c.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("container %s: allowPrivilegeEscalation: false is required (no_new_privs)", c.Name)
		case seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault:
			t.Errorf("container %s: seccompProfile RuntimeDefault is required", c.Name)
		case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL"):
			t.Errorf("container %s: capabilities.drop must hold ALL", c.Name)
		}
		if sc.Capabilities != nil {
			for _, a := range sc.Capabilities.Add {
				if a != "NET_BIND_SERVICE" {
					t.Errorf("container %s adds %s; restricted allows NET_BIND_SERVICE only", c.Name, a)
				}
			}
		}
	}
	// The report directory is the one the installer prepares.
	script := configMap(t, all, "secrun-installer").Data["install.sh"]
	for _, v := range spec.Volumes {
		if v.HostPath != nil && !strings.Contains(script, v.HostPath.Path) {
			t.Errorf("the Job keeps reports in %s, which the installer does not prepare", v.HostPath.Path)
		}
	}
	if spec.NodeSelector["kubernetes.io/hostname"] == "" || !strings.HasSuffix(job.Name, spec.NodeSelector["kubernetes.io/hostname"]) {
		t.Errorf("the Job's name %s and nodeSelector %v must name the same node", job.Name, spec.NodeSelector)
	}
}

// TestInstallScript runs the DaemonSet's install.sh against a directory
// laid out like a node, with the real secrunctl: install, install again
// (no restart), uninstall (handlers gone, binaries kept), uninstall with
// binary removal.
func TestInstallScript(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("skipped: no sh")
	}
	all := loadAll(t)
	script := configMap(t, all, "secrun-installer").Data["install.sh"]
	if out, err := exec.Command(sh, "-n", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("install.sh: sh -n: %v\n%s", err, out)
	}

	dir := t.TempDir()
	img := filepath.Join(dir, "image")
	host := filepath.Join(dir, "host")
	for _, d := range []string{img, filepath.Join(host, "etc", "containerd")} {
		os.MkdirAll(d, 0o755)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(img, "secrunctl"), "./cmd/secrunctl")
	build.Dir = testenv.ModuleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build secrunctl: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(img, "secrun"), []byte("#!/bin/sh\n"), 0o755)
	debian := "version = 2\n\n[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\"]\n    [plugins.\"io.containerd.grpc.v1.cri\".cni]\n      bin_dir = \"/usr/lib/cni\"\n"
	cfgPath := filepath.Join(host, "etc", "containerd", "config.toml")
	os.WriteFile(cfgPath, []byte(debian), 0o644)
	secrunCfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(secrunCfg, []byte(configMap(t, all, "secrun-config").Data["config.yaml"]), 0o644)
	restarted := filepath.Join(dir, "restarted")

	ds := daemonSet(t, all)
	c := installContainer(t, ds)
	run := func(extra ...string) string {
		t.Helper()
		cmd := exec.Command(sh, "-c", script)
		cmd.Env = append(os.Environ(),
			"HOST_ROOT="+host, "IMAGE_BIN_DIR="+img, "SECRUN_CONFIG_SOURCE="+secrunCfg,
			"BIN_DIR="+envOf(c, "BIN_DIR"), "CONTAINERD_CONFIG="+envOf(c, "CONTAINERD_CONFIG"), "POLICIES="+envOf(c, "POLICIES"),
			"RESTART_COMMAND=touch "+restarted, fmt.Sprintf("REPORT_UID=%d", os.Getuid()))
		cmd.Env = append(cmd.Env, extra...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("install.sh %v: %v\n%s", extra, err, out)
		}
		return string(out)
	}
	bin := filepath.Join(host, envOf(c, "BIN_DIR"))

	out := run()
	t.Logf("install.sh:\n%s", out)
	toml, _ := os.ReadFile(cfgPath)
	for _, p := range installerPolicies(t, ds) {
		// containerd on the host sees /usr/local/bin, not the mount.
		if !bytes.Contains(toml, []byte(`BinaryName = "`+envOf(c, "BIN_DIR")+"/secrun-"+p+`"`)) {
			t.Errorf("config.toml lacks the %s handler with the host's path:\n%s", p, toml)
		}
		if target, err := os.Readlink(filepath.Join(bin, "secrun-"+p)); err != nil || target != "secrun" {
			t.Errorf("secrun-%s link: %q, %v", p, target, err)
		}
	}
	if !fileExists(filepath.Join(bin, "secrunctl")) || !fileExists(filepath.Join(host, "etc", "secrun", "config.yaml")) || !fileExists(filepath.Join(host, "var", "log", "secrun", "conformance")) {
		t.Error("binaries, /etc/secrun/config.yaml or the report directory missing after install")
	}
	if !fileExists(restarted) {
		t.Error("containerd was not restarted after its configuration changed")
	}

	os.Remove(restarted)
	run()
	if fileExists(restarted) {
		t.Error("a second install restarted containerd although nothing changed")
	}

	run("SECRUN_UNINSTALL=true")
	if b, _ := os.ReadFile(cfgPath); string(b) != debian {
		t.Errorf("uninstall left config.toml as\n%s", b)
	}
	if !fileExists(restarted) || !fileExists(filepath.Join(bin, "secrun-restricted")) {
		t.Error("uninstall: want a restart and the binaries kept for running Pods")
	}
	run("SECRUN_UNINSTALL=true", "SECRUN_REMOVE_BINARIES=true")
	if fileExists(filepath.Join(bin, "secrun")) || fileExists(filepath.Join(bin, "secrun-restricted")) {
		t.Error("SECRUN_REMOVE_BINARIES=true left binaries behind")
	}
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
