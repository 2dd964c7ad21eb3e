package fidelity

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/manifest"
	"github.com/secrun/secrun/spec"
	corev1 "k8s.io/api/core/v1"
)

// SandboxFile is the capture of a Pod's pause container.
const SandboxFile = "_sandbox.json"

// PodFile is the Pod as applied, next to its containers' captures.
const PodFile = "pod.yaml"

// Node holds the facts about the node the capture was made on that
// decide translate's output and that no Pod says.
type Node struct {
	// AppArmor: the kernel has AppArmor (containerd confines every
	// unprivileged container with its default profile).
	AppArmor bool
	// SELinux: the kernel has SELinux (containerd labels every
	// container).
	SELinux bool
	// CgroupV2: the node runs the unified hierarchy (containerd gives
	// unprivileged containers a cgroup namespace).
	CgroupV2 bool
}

// Options are the node's and the kubelet's settings the capture was made
// with.
type Options struct {
	KubernetesVersion    string
	AllowedUnsafeSysctls []string
	SeccompProfileRoot   string
	SeccompDefault       bool
	// Rootfs is the image's root filesystem, for users named by the
	// image or listed in its /etc/group; "" reads no files.
	Rootfs string
	// ImageUser is the image's USER.
	ImageUser string
	Node      Node
}

// ContainerReport is the comparison of one container.
type ContainerReport struct {
	Namespace   string       `json:"namespace"`
	Pod         string       `json:"pod"`
	Container   string       `json:"container"`
	Path        string       `json:"path,omitempty"`
	Differences []Difference `json:"differences"`
	Explained   int          `json:"explained"`
	Unexplained int          `json:"unexplained"`
	// Error is set when the container could not be compared at all (the
	// capture is unreadable, translate refused the Pod); it counts as
	// one unexplained difference.
	Error    string   `json:"error,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Report is one run over a capture directory.
type Report struct {
	Dir        string            `json:"dir"`
	Containers []ContainerReport `json:"containers"`
	// NotCaptured lists containers of the Pods that have no capture
	// (ns/pod/container), so that a short capture is visible.
	NotCaptured []string `json:"notCaptured,omitempty"`
	Explained   int      `json:"explained"`
	Unexplained int      `json:"unexplained"`
}

// Run compares every captured container under dir (dir/<namespace>/<pod>/
// with pod.yaml and <container>.json) with translate's bundle for it.
func Run(dir string, o Options) (*Report, error) {
	pods, err := filepath.Glob(filepath.Join(dir, "*", "*", PodFile))
	if err != nil {
		return nil, err
	}
	if len(pods) == 0 {
		return nil, fmt.Errorf("%s: no captured Pods (want %s/<namespace>/<pod>/%s with <container>.json beside it)", dir, dir, PodFile)
	}
	slices.Sort(pods)
	r := &Report{Dir: dir}
	for _, p := range pods {
		if err := r.comparePod(filepath.Dir(p), o); err != nil {
			return nil, err
		}
	}
	for _, c := range r.Containers {
		r.Explained += c.Explained
		r.Unexplained += c.Unexplained
	}
	return r, nil
}

func (r *Report) comparePod(podDir string, o Options) error {
	ns, name := filepath.Base(filepath.Dir(podDir)), filepath.Base(podDir)
	fail := func(ctr, msg string) {
		r.Containers = append(r.Containers, ContainerReport{Namespace: ns, Pod: name, Container: ctr, Error: msg, Unexplained: 1})
	}
	data, err := os.ReadFile(filepath.Join(podDir, PodFile))
	if err != nil {
		return err
	}
	ws, err := manifest.Parse(data)
	if err != nil {
		fail("", fmt.Sprintf("%s: %v", PodFile, err))
		return nil
	}
	if len(ws) != 1 || ws[0].Kind != "Pod" {
		fail("", fmt.Sprintf("%s: want exactly one Pod, got %d workloads", PodFile, len(ws)))
		return nil
	}
	w := ws[0]
	pod := w.Object.(*corev1.Pod)
	var sandbox *specs.Spec
	if b, err := os.ReadFile(filepath.Join(podDir, SandboxFile)); err == nil {
		if sandbox, err = decodeSpec(b); err != nil {
			fail("", fmt.Sprintf("%s: %v", SandboxFile, err))
			return nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}

	captures, err := filepath.Glob(filepath.Join(podDir, "*.json"))
	if err != nil {
		return err
	}
	captured := map[string]string{}
	for _, c := range captures {
		if base := filepath.Base(c); base != SandboxFile {
			captured[strings.TrimSuffix(base, ".json")] = c
		}
	}
	known := map[string]bool{}
	for _, c := range podContainers(pod) {
		known[c.Name] = true
		file, ok := captured[c.Name]
		if !ok {
			r.NotCaptured = append(r.NotCaptured, ns+"/"+name+"/"+c.Name)
			continue
		}
		r.Containers = append(r.Containers, compareContainer(w, pod, c, file, sandbox, o))
	}
	for _, ctr := range slices.Sorted(maps.Keys(captured)) {
		if !known[ctr] {
			fail(ctr, fmt.Sprintf("%s.json: the Pod has no container %q", ctr, ctr))
		}
	}
	return nil
}

// podContainers lists init, regular and ephemeral containers, as the
// kubelet starts them.
func podContainers(p *corev1.Pod) []*corev1.Container {
	var out []*corev1.Container
	for i := range p.Spec.InitContainers {
		out = append(out, &p.Spec.InitContainers[i])
	}
	for i := range p.Spec.Containers {
		out = append(out, &p.Spec.Containers[i])
	}
	for i := range p.Spec.EphemeralContainers {
		c := corev1.Container(p.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		out = append(out, &c)
	}
	return out
}

func decodeSpec(b []byte) (*specs.Spec, error) {
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("not an OCI config.json: %w", err)
	}
	return &s, nil
}

func compareContainer(w *manifest.Workload, pod *corev1.Pod, c *corev1.Container, file string, sandbox *specs.Spec, o Options) ContainerReport {
	rep := ContainerReport{Namespace: w.Namespace, Pod: w.Name, Container: c.Name}
	broken := func(msg string) ContainerReport {
		rep.Error, rep.Unexplained = msg, 1
		return rep
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return broken(err.Error())
	}
	got, err := decodeSpec(b)
	if err != nil {
		return broken(fmt.Sprintf("%s: %v", filepath.Base(file), err))
	}
	bundles, err := manifest.Translate(w, translateOptions(w, got, o, c.Name))
	if err != nil {
		return broken("translate: " + err.Error())
	}
	if len(bundles) != 1 {
		return broken(fmt.Sprintf("translate made %d bundles for container %s", len(bundles), c.Name))
	}
	tb := bundles[0]
	rep.Path, rep.Warnings = tb.Path, tb.Warnings
	privileged := c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
	cs := &Case{Pod: pod, Container: c, Privileged: privileged, Captured: got, Translated: tb.Spec, Sandbox: sandbox}
	diffs := Compare(got, tb.Spec, privileged)
	diffs = append(diffs, sandboxLevel(cs)...)
	rep.Differences = explain(cs, diffs)
	for _, d := range rep.Differences {
		if d.Explained() {
			rep.Explained++
		} else {
			rep.Unexplained++
		}
	}
	if rep.Differences == nil {
		rep.Differences = []Difference{}
	}
	return rep
}

// translateOptions is the node the capture came from, as translate
// models it: namespaces joined from the sandbox as containerd joins them.
func translateOptions(w *manifest.Workload, captured *specs.Spec, o Options, container string) manifest.Options {
	pid := 1
	opts := manifest.Options{
		ImageRootfs:          o.Rootfs,
		ImageUser:            o.ImageUser,
		KubernetesVersion:    o.KubernetesVersion,
		AllowedUnsafeSysctls: o.AllowedUnsafeSysctls,
		SeccompProfileRoot:   o.SeccompProfileRoot,
		SeccompDefault:       o.SeccompDefault,
		AppArmor:             nodeAppArmor(o.Node.AppArmor),
		SELinux:              &o.Node.SELinux,
		NamespacePaths:       manifest.SandboxNamespacePaths(w.PodSpec, pid),
	}
	if container != "" {
		opts.Containers = []string{container}
	}
	// An ephemeral container's target is a running container; its path
	// names a process of the node, and only the joining is compared.
	opts.ContainerPIDNamespaces = map[string]string{}
	for _, c := range w.PodSpec.Containers {
		opts.ContainerPIDNamespaces[c.Name] = fmt.Sprintf("/proc/%d/ns/pid", pid+1)
	}
	privileged := false
	for _, c := range podContainers(w.Object.(*corev1.Pod)) {
		if c.Name == container && c.SecurityContext != nil && c.SecurityContext.Privileged != nil {
			privileged = *c.SecurityContext.Privileged
		}
	}
	// containerd gives a cgroup namespace only on the unified hierarchy,
	// and never to a privileged container
	// (internal/cri/server/container_create.go, buildLinuxSpec).
	opts.CgroupNamespace = o.Node.CgroupV2 && !privileged
	if hu := w.PodSpec.HostUsers; hu != nil && !*hu {
		// The mappings are the kubelet's allocation on that node; only
		// the joining is compared.
		m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 65536, Size: 65536}}
		if captured.Linux != nil && len(captured.Linux.UIDMappings) > 0 {
			m = captured.Linux.UIDMappings
		}
		opts.UserNamespace = &spec.UserNamespaceConfig{Path: fmt.Sprintf("/proc/%d/ns/user", pid), UIDMappings: m, GIDMappings: m}
	}
	return opts
}

// sandboxLevel checks that a container shares its sandbox's MCS pair,
// which the label comparison cannot see once the random pair is masked.
func sandboxLevel(c *Case) []Difference {
	if c.Sandbox == nil || c.Sandbox.Process == nil || c.Captured.Process == nil {
		return nil
	}
	level := func(label string) string {
		parts := strings.SplitN(label, ":", 4)
		if len(parts) == 4 {
			return parts[3]
		}
		return ""
	}
	sl, cl := level(c.Sandbox.Process.SelinuxLabel), level(c.Captured.Process.SelinuxLabel)
	if sl == "" || cl == "" || sl == cl || !mcsLevel.MatchString(sl) {
		return nil
	}
	// Only a container without seLinuxOptions (its own or the Pod's,
	// which the kubelet hands down) copies the sandbox's label; with
	// options containerd draws it a pair of its own, or takes their level.
	if sc := c.Container.SecurityContext; sc != nil && sc.SELinuxOptions != nil && *sc.SELinuxOptions != (corev1.SELinuxOptions{}) {
		return nil
	}
	if sc := c.Pod.Spec.SecurityContext; sc != nil && sc.SELinuxOptions != nil && *sc.SELinuxOptions != (corev1.SELinuxOptions{}) {
		return nil
	}
	return []Difference{{Field: "process.selinuxLabel (level shared with the sandbox)", Captured: cl, Translated: "the sandbox's " + sl}}
}

// nodeAppArmor answers as the capture's node did, and never loads a
// profile here.
type nodeAppArmor bool

func (a nodeAppArmor) Enabled() bool                 { return bool(a) }
func (a nodeAppArmor) IsLoaded(string) (bool, error) { return bool(a), nil }
func (a nodeAppArmor) LoadDefault(string) error      { return nil }
