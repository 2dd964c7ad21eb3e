package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
)

// kubectl talks to the API server through a kubectl binary: the one tool a
// cluster's user already has and trusts with the kubeconfig, and nothing
// the wrapper (or secrunctl) has to link.
type kubectl struct {
	bin        string
	kubeconfig string
	// timeout bounds every call, so that an API server that stops
	// answering fails the run instead of hanging it.
	timeout time.Duration
}

func (k *kubectl) run(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	full := append([]string{"--kubeconfig", k.kubeconfig}, args...)
	if k.kubeconfig == "" {
		full = args
	}
	cmd := exec.CommandContext(ctx, k.bin, full...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return nil, fmt.Errorf("kubectl %s: no answer within %s", strings.Join(args, " "), k.timeout)
		}
		return out.Bytes(), &kubectlError{args: args, err: err, stderr: strings.TrimSpace(errb.String())}
	}
	return out.Bytes(), nil
}

type kubectlError struct {
	args   []string
	err    error
	stderr string
}

func (e *kubectlError) Error() string {
	return fmt.Sprintf("kubectl %s: %v: %s", strings.Join(e.args, " "), e.err, e.stderr)
}

func isNotFound(err error) bool {
	var ke *kubectlError
	return errors.As(err, &ke) && strings.Contains(ke.stderr, "NotFound")
}

func isAlreadyExists(err error) bool {
	var ke *kubectlError
	return errors.As(err, &ke) && strings.Contains(ke.stderr, "AlreadyExists")
}

func (k *kubectl) getJSON(ctx context.Context, into any, args ...string) error {
	out, err := k.run(ctx, nil, append(append([]string{"get"}, args...), "-o", "json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, into); err != nil {
		return fmt.Errorf("kubectl get %s: decode: %w", strings.Join(args, " "), err)
	}
	return nil
}

// serverMinor is the API server's Kubernetes minor version.
func (k *kubectl) serverMinor(ctx context.Context) (int, string, error) {
	out, err := k.run(ctx, nil, "version", "-o", "json")
	if err != nil {
		return 0, "", fmt.Errorf("reach the API server: %w", err)
	}
	var v struct {
		ServerVersion *struct {
			Minor      string `json:"minor"`
			GitVersion string `json:"gitVersion"`
		} `json:"serverVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.ServerVersion == nil {
		return 0, "", fmt.Errorf("kubectl version: no server version in %q", out)
	}
	minor, err := kubernetesMinor(v.ServerVersion.GitVersion)
	if err != nil {
		return 0, "", err
	}
	return minor, v.ServerVersion.GitVersion, nil
}

func (k *kubectl) nodes(ctx context.Context) ([]corev1.Node, error) {
	var l corev1.NodeList
	if err := k.getJSON(ctx, &l, "nodes"); err != nil {
		return nil, err
	}
	return l.Items, nil
}

func (k *kubectl) runtimeClass(ctx context.Context, name string) (*nodev1.RuntimeClass, error) {
	var rc nodev1.RuntimeClass
	if err := k.getJSON(ctx, &rc, "runtimeclass", name); err != nil {
		return nil, err
	}
	return &rc, nil
}

func (k *kubectl) create(ctx context.Context, obj any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	_, err = k.run(ctx, b, "create", "-f", "-")
	return err
}

func (k *kubectl) pod(ctx context.Context, ns, name string) (*corev1.Pod, error) {
	var p corev1.Pod
	if err := k.getJSON(ctx, &p, "pod", "-n", ns, name); err != nil {
		return nil, err
	}
	return &p, nil
}

func (k *kubectl) podEvents(ctx context.Context, ns, name string) ([]corev1.Event, error) {
	var l corev1.EventList
	if err := k.getJSON(ctx, &l, "events", "-n", ns, "--field-selector", "involvedObject.kind=Pod,involvedObject.name="+name); err != nil {
		return nil, err
	}
	return l.Items, nil
}

func (k *kubectl) logs(ctx context.Context, ns, pod, container string) (string, error) {
	out, err := k.run(ctx, nil, "logs", "-n", ns, pod, "-c", container)
	return string(out), err
}
