package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// ApplyPod applies a Pod manifest and keeps it, as applied, beside the
// captured config.json files of its containers:
// Out/captured/<namespace>/<name>/pod.yaml.
func (c *Cluster) ApplyPod(manifest string) error {
	var obj struct {
		Kind     string            `json:"kind"`
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := yaml.Unmarshal([]byte(manifest), &obj); err != nil {
		return fmt.Errorf("pod manifest: %w", err)
	}
	if obj.Kind != "Pod" || obj.Metadata.Name == "" {
		return fmt.Errorf("ApplyPod takes one Pod with a name, got kind %q name %q", obj.Kind, obj.Metadata.Name)
	}
	ns := obj.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	dir := filepath.Join(c.opts.Out, "captured", ns, obj.Metadata.Name)
	if err := writeFile(filepath.Join(dir, "pod.yaml"), manifest, 0o644); err != nil {
		return err
	}
	if r := c.KubectlStdin(manifest, "apply", "-f", "-"); r.Code != 0 {
		return fmt.Errorf("kubectl apply: %s", r)
	}
	return nil
}

// KubectlStdin runs kubectl with stdin.
func (c *Cluster) KubectlStdin(stdin string, args ...string) result {
	f, err := os.CreateTemp(c.Dir, "manifest-*.yaml")
	if err != nil {
		return result{Stderr: err.Error(), Code: -1}
	}
	defer os.Remove(f.Name())
	f.WriteString(stdin)
	f.Close()
	for i, a := range args {
		if a == "-" && i > 0 && args[i-1] == "-f" {
			args[i] = f.Name()
		}
	}
	return c.Kubectl(args...)
}

// PodPhase waits until the Pod reaches one of phases and returns it.
func (c *Cluster) PodPhase(ns, name string, timeout time.Duration, phases ...string) (string, error) {
	var last string
	err := c.waitFor("Pod "+ns+"/"+name+" in "+strings.Join(phases, "|"), "kubelet", timeout, func() error {
		r := c.Kubectl("get", "pod", "-n", ns, name, "-o", "jsonpath={.status.phase}")
		if r.Code != 0 {
			return errors.New(r.String())
		}
		last = strings.TrimSpace(r.Stdout)
		for _, p := range phases {
			if last == p {
				return nil
			}
		}
		return fmt.Errorf("phase %q", last)
	})
	return last, err
}

// SavePods writes pod.yaml, as the API server has it, for every captured
// Pod that was not applied through ApplyPod (those a controller made).
func (c *Cluster) SavePods() error {
	base := filepath.Join(c.opts.Out, "captured")
	nss, _ := os.ReadDir(base)
	var errs []error
	for _, ns := range nss {
		if !ns.IsDir() {
			continue
		}
		pods, _ := os.ReadDir(filepath.Join(base, ns.Name()))
		for _, p := range pods {
			f := filepath.Join(base, ns.Name(), p.Name(), "pod.yaml")
			if _, err := os.Stat(f); err == nil {
				continue
			}
			r := c.Kubectl("get", "pod", "-n", ns.Name(), p.Name(), "-o", "yaml")
			if r.Code != 0 {
				errs = append(errs, fmt.Errorf("kubectl get pod %s/%s: %s", ns.Name(), p.Name(), r))
				continue
			}
			if err := os.WriteFile(f, []byte(r.Stdout), 0o644); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
