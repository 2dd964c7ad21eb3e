package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrun/secrun/conformance/probe/report"
	"github.com/secrun/secrun/internal/testenv"
)

// fakeKubectlEnv makes the test binary act as kubectl against a cluster
// kept in files: the orchestration of the Kubernetes target (create,
// wait, events, logs, delete, cleanup) is tested here; the real node is
// make test-kubernetes's.
const fakeKubectlEnv = "SECRUN_TEST_FAKE_KUBECTL"

func TestMain(m *testing.M) {
	if dir := os.Getenv(fakeKubectlEnv); dir != "" {
		os.Exit(fakeKubectl(dir, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// fakeKubectl answers what the target asks. Pods finish at once: a
// container of a Pod through secrun-restricted whose securityContexts set
// no runAsUser is refused with secrun's line, every other one prints a
// report with no ops.
func fakeKubectl(dir string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) >= 2 && args[0] == "--kubeconfig" {
		args = args[2:]
	}
	logCall := func() {
		f, _ := os.OpenFile(filepath.Join(dir, "calls"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		fmt.Fprintln(f, strings.Join(args, " "))
		f.Close()
	}
	logCall()
	out := func(v any) int {
		b, _ := json.Marshal(v)
		stdout.Write(b)
		return 0
	}
	notFound := func(what string) int {
		fmt.Fprintf(stderr, "Error from server (NotFound): %s not found\n", what)
		return 1
	}
	switch {
	case args[0] == "version":
		return out(map[string]any{"serverVersion": map[string]string{"gitVersion": "v1.37.2", "minor": "37"}})
	case args[0] == "get" && args[1] == "nodes":
		return out(corev1.NodeList{Items: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}}})
	case args[0] == "get" && args[1] == "runtimeclass":
		return out(map[string]string{"handler": args[2]})
	case args[0] == "get" && (args[1] == "namespace" || args[1] == "serviceaccount"):
		if _, err := os.Stat(filepath.Join(dir, args[1])); err != nil {
			return notFound(args[1])
		}
		return out(map[string]string{})
	case args[0] == "create":
		b, _ := io.ReadAll(stdin)
		var obj struct {
			Kind     string
			Metadata struct{ Name string }
		}
		json.Unmarshal(b, &obj)
		name := strings.ToLower(obj.Kind)
		if obj.Kind == "Pod" {
			name = "pod-" + obj.Metadata.Name
		}
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
		return 0
	case args[0] == "get" && args[1] == "pod":
		b, err := os.ReadFile(filepath.Join(dir, "pod-"+args[4]))
		if err != nil {
			return notFound("pod " + args[4])
		}
		var pod corev1.Pod
		json.Unmarshal(b, &pod)
		pod.Status.Phase = corev1.PodSucceeded
		for _, c := range pod.Spec.Containers {
			st := corev1.ContainerStatus{Name: c.Name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}}}
			if fakeRefuses(&pod, c) {
				pod.Status.Phase = corev1.PodFailed
				st.State.Terminated = &corev1.ContainerStateTerminated{Reason: "StartError", ExitCode: 128, Message: fakeRefusal(c.Name)}
			}
			pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, st)
		}
		return out(pod)
	case args[0] == "get" && args[1] == "events":
		name := strings.TrimPrefix(args[5], "involvedObject.kind=Pod,involvedObject.name=")
		b, _ := os.ReadFile(filepath.Join(dir, "pod-"+name))
		var pod corev1.Pod
		json.Unmarshal(b, &pod)
		var l corev1.EventList
		for _, c := range pod.Spec.Containers {
			if fakeRefuses(&pod, c) {
				l.Items = append(l.Items, corev1.Event{Reason: "Failed", Type: "Warning", Message: "Error: " + fakeRefusal(c.Name),
					InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: name, FieldPath: "spec.containers{" + c.Name + "}"}})
			}
		}
		return out(l)
	case args[0] == "logs":
		body, _ := json.MarshalIndent(report.Report{Version: report.Version, Ops: map[string]report.Op{}}, "", "  ")
		fmt.Fprintf(stdout, "probe: stderr line\n%s\n", body)
		return 0
	case args[0] == "delete":
		return 0
	}
	fmt.Fprintf(stderr, "fake kubectl: unknown call %q\n", args)
	return 2
}

func fakeRefuses(pod *corev1.Pod, c corev1.Container) bool {
	nonRoot := pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.RunAsUser != nil ||
		c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil
	return *pod.Spec.RuntimeClassName == "secrun-restricted" && !nonRoot
}

func fakeRefusal(container string) string {
	return "failed to create containerd task: failed to create shim task: OCI runtime create failed: secrun: policy restricted (harden) refused container " +
		container + ": runAsNonRoot: process.user.uid: the container runs as uid 0; fix: set runAsUser: unknown"
}

// TestKubernetesTargetFlow runs the whole target against the fake: every
// case and RuntimeClass becomes a Pod on the one node, refusals are read
// from events, reports are written, the run's Pods are deleted.
func TestKubernetesTargetFlow(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(fakeKubectlEnv, dir)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(t.TempDir(), "probe")
	if err := (&suite{opts: Options{ModuleRoot: testenv.ModuleRoot(), Log: io.Discard}}).probeBinary(probe); err != nil {
		t.Fatal(err)
	}
	reports := filepath.Join(t.TempDir(), "reports")
	t.Setenv("SECRUN_CONFIG", "")
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfg, []byte(GeneratedConfig("runc", "off", "/nonexistent", "/nonexistent/agent.sock")), 0o644)
	opts := Options{Target: TargetKubernetes, ConfigPath: cfg, ProbePath: probe, ReportDir: reports, Parallel: 2,
		Cases: []string{"restricted-root-refused", "run-as-user", "pod-and-container-levels"},
		Kube:  KubeOptions{Kubectl: exe, Kubeconfig: cfg, SeccompProfileRoot: filepath.Join(dir, "no-such-dir", "seccomp")}}
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
	creates := strings.Count(string(calls), "create -f -")
	// The namespace, its service account, 3 cases x 3 classes but for
	// restricted-root-refused through secrun-privileged, where nothing
	// is checked (the Pod asks for nothing, the policy changes nothing).
	if creates != 2+8 {
		t.Errorf("%d creates:\n%s", creates, calls)
	}
	if !strings.Contains(string(calls), "delete pods -n secrun-conformance -l "+labelRun+"=") {
		t.Errorf("the run's Pods were not deleted:\n%s", calls)
	}
	var pod corev1.Pod
	b, _ := os.ReadFile(filepath.Join(dir, "pod-"+podName("run-as-user", "run-as-user", "secrun-baseline", findRunID(t, string(calls)))))
	if err := json.Unmarshal(b, &pod); err != nil || pod.Spec.NodeName != "node-1" || !strings.HasPrefix(pod.Spec.Containers[0].Image, ProbeImageRepository+":") {
		t.Errorf("Pod %s: %v %+v", pod.Name, err, pod.Spec)
	}
	for id, want := range map[string]Status{
		"restricted-root-refused@secrun-restricted/app/refused.runAsNonRoot": StatusPass,
		"restricted-root-refused@secrun-restricted/app/refused.event":        StatusPass,
		// The fake's report has no ops and empty sets.
		"run-as-user@secrun-baseline/app/uid": StatusFail,
	} {
		if c := find(res, id); c == nil || c.Status != want {
			t.Errorf("%s: %+v, want %s", id, c, want)
		}
	}
	if res.RuntimeKind != TargetKubernetes || !strings.Contains(res.Runtime, "node-1") {
		t.Errorf("runtime %q (%s)", res.Runtime, res.RuntimeKind)
	}
	for _, f := range []string{"report.json", "report.tap", "report.junit.xml"} {
		if _, err := os.Stat(filepath.Join(reports, f)); err != nil {
			t.Error(err)
		}
	}
	// The Localhost case's directory is missing: such containers fail
	// with the reason instead of reaching the node.
	opts.Cases = []string{"seccomp-localhost"}
	opts.ReportDir = ""
	res, err = Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if c := find(res, "seccomp-localhost@secrun-baseline/app/seccomp.mode"); c == nil || c.Status != StatusFail || !strings.Contains(c.Message, "--seccomp-profile-root") {
		t.Errorf("Localhost without the kubelet's directory: %+v", c)
	}

	// Validity: the plain RuntimeClass is created, and under it the
	// refusal's checks fail (the fake runs every Pod there).
	opts.Validity = true
	opts.Cases = []string{"restricted-root-refused"}
	opts.Kube.RuntimeClasses = []string{"secrun-restricted"}
	res, err = Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if c := find(res, "restricted-root-refused@secrun-restricted/app/refused.event"); c == nil || c.Status != StatusPass || c.Twin == "" {
		t.Errorf("validity of the refusal event: %+v", c)
	}
	if c := find(res, "restricted-root-refused@runc/app/uid"); c != nil {
		t.Errorf("a check no setting covers: %+v", c)
	}
	calls, _ = os.ReadFile(filepath.Join(dir, "calls"))
	if !slices.ContainsFunc(strings.Split(string(calls), "\n"), func(l string) bool { return strings.HasPrefix(l, "get runtimeclass runc") }) {
		t.Errorf("the plain RuntimeClass was not looked up:\n%s", calls)
	}
}

func findRunID(t *testing.T, calls string) string {
	t.Helper()
	i := strings.Index(calls, labelRun+"=")
	if i < 0 {
		t.Fatal("no run label in the calls")
	}
	id, _, _ := strings.Cut(calls[i+len(labelRun)+1:], " ")
	return id
}
