package conformance

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrun/secrun/manifest"
	"github.com/secrun/secrun/policy"
)

// The pure half of the Kubernetes target: a case's workload becomes a Pod
// the node runs as it is, what the node reports becomes the observation
// the bundle suite's checks evaluate, and secrun's refusal is read back
// from the Pod's events.

// Labels on every Pod the target creates.
const (
	labelManagedBy = "app.kubernetes.io/managed-by"
	managedBy      = "secrunctl-conformance"
	labelRun       = "secrun.dev/conformance-run"
	annCase        = "secrun.dev/conformance-case"
)

// scratchVolume is the emptyDir the probe works in, at /tmp as in the
// bundle suite.
const scratchVolume = "secrun-scratch"

// podParams is what the target sets on a case's Pod.
type podParams struct {
	Name, Namespace string
	RuntimeClass    string
	Node            string
	Image           string
	RunID           string
	// Case is "<case>@<runtime class>", recorded as an annotation.
	Case string
	// Args is each container's command: the probe and its flags.
	Args map[string][]string
}

// kubePod turns a case's workload into the Pod that runs it: its
// securityContexts, annotations, sysctls and host namespaces exactly as
// written (they are what is under test), with every container running the
// probe image (never pulled) and the suite's scratch volume, through the
// given RuntimeClass on the given node (there may be no scheduler). What
// would keep the probe from running or tie the Pod to objects the cluster
// may not have goes: the manifest's volumes and mounts, env, probes,
// lifecycle hooks, resources, init containers, service account, image pull
// secrets, priority class, scheduling constraints.
func kubePod(w *manifest.Workload, p podParams) (*corev1.Pod, error) {
	if w.PodSpec == nil {
		return nil, fmt.Errorf("%s has no Pod spec", w)
	}
	spec := w.PodSpec.DeepCopy()
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      p.Name,
			Namespace: p.Namespace,
			Labels:    map[string]string{labelManagedBy: managedBy, labelRun: p.RunID},
			// The legacy seccomp and AppArmor annotations are part of
			// the security context under test.
			Annotations: map[string]string{annCase: p.Case},
		},
	}
	if w.PodMeta != nil {
		for k, v := range w.PodMeta.Annotations {
			pod.Annotations[k] = v
		}
	}
	spec.RuntimeClassName = &p.RuntimeClass
	spec.NodeName = p.Node
	spec.RestartPolicy = corev1.RestartPolicyNever
	no := false
	spec.AutomountServiceAccountToken = &no
	spec.EnableServiceLinks = &no
	spec.ServiceAccountName, spec.DeprecatedServiceAccount = "", ""
	spec.ImagePullSecrets = nil
	spec.PriorityClassName, spec.Priority, spec.PreemptionPolicy = "", nil, nil
	spec.NodeSelector, spec.Affinity, spec.Tolerations, spec.TopologySpreadConstraints = nil, nil, nil, nil
	spec.SchedulerName = ""
	spec.InitContainers, spec.EphemeralContainers = nil, nil
	spec.Overhead = nil
	spec.ResourceClaims, spec.Resources = nil, nil
	// No cluster DNS is assumed.
	spec.DNSPolicy, spec.DNSConfig = corev1.DNSDefault, nil
	grace := int64(1)
	spec.TerminationGracePeriodSeconds = &grace
	spec.Volumes = []corev1.Volume{{Name: scratchVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		args, ok := p.Args[c.Name]
		if !ok {
			return nil, fmt.Errorf("%s: no probe command for container %s", w, c.Name)
		}
		c.Image = p.Image
		c.ImagePullPolicy = corev1.PullNever
		c.Command, c.Args = slices.Clone(args), nil
		c.WorkingDir = ""
		c.Env, c.EnvFrom = nil, nil
		c.Ports = nil
		c.LivenessProbe, c.ReadinessProbe, c.StartupProbe, c.Lifecycle = nil, nil, nil, nil
		c.Resources, c.ResizePolicy, c.RestartPolicy = corev1.ResourceRequirements{}, nil, nil
		c.VolumeDevices = nil
		c.VolumeMounts = []corev1.VolumeMount{{Name: scratchVolume, MountPath: "/tmp"}}
		c.Stdin, c.StdinOnce, c.TTY = false, false, false
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	pod.Spec = *spec
	return pod, nil
}

// kubeProbeArgs is the bundle suite's probe command with the image's
// foreign-owned file for cap.fowner.
func kubeProbeArgs(m *model, h *hostEnv) []string {
	args := probeArgs(m, h)
	return append([]string{args[0], "-foreign", foreignPath}, args[1:]...)
}

var nonDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// podName is a DNS label for one Pod of a run: readable where it fits,
// unique through a hash of everything that names it.
func podName(caseName, workload, runtimeClass, runID string) string {
	short := strings.TrimPrefix(runtimeClass, "secrun-")
	sum := sha256.Sum256([]byte(caseName + "\x00" + workload + "\x00" + runtimeClass + "\x00" + runID))
	suffix := "-" + short + "-" + runID + "-" + hex.EncodeToString(sum[:])[:6]
	prefix := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(caseName), "-"), "-")
	if max := 63 - len(suffix); len(prefix) > max {
		prefix = strings.TrimRight(prefix[:max], "-")
	}
	return nonDNS.ReplaceAllString(strings.ToLower(prefix+suffix), "-")
}

// splitProbeLog separates the probe's report from what else the
// container's log holds: `kubectl logs` interleaves stdout and stderr, and
// the probe prints its report as one indented JSON document, last.
func splitProbeLog(log string) (report string, rest string) {
	start := -1
	if strings.HasPrefix(log, "{\n") {
		start = 0
	} else if i := strings.Index(log, "\n{\n"); i >= 0 {
		start = i + 1
	}
	if start < 0 {
		return "", log
	}
	dec := json.NewDecoder(strings.NewReader(log[start:]))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return "", log
	}
	end := start + int(dec.InputOffset())
	return log[start:end], strings.TrimSpace(log[:start] + log[end:])
}

// refusalLine is secrun's refusal as a Pod event shows it (shim/report.go
// writes it, policy.Finding.String formats the finding):
//
//	secrun: policy P (MODE) refused container ID: RULE: FIELD: PROBLEM; fix: FIX[ (and N more: R1, R2; `secrunctl explain` lists them)]
type refusalLine struct {
	Line      string
	Policy    string
	Mode      string
	Container string
	Rule      policy.Rule
	Field     string
	Problem   string
	Fix       string
	More      []policy.Rule
}

var refusalRE = regexp.MustCompile("^secrun: policy (\\S+) \\(([a-z]+)\\) refused (?:container (\\S+)|the container): ([A-Za-z]+): ([^:]+): (.*?); fix: (.+?)(?: \\(and (\\d+) more: ([^;]*); `secrunctl explain` lists them\\))?$")

// parseRefusalLine finds secrun's line in an event or status message,
// where containerd and the kubelet wrap it ("Error: failed to create
// containerd task: failed to create shim task: OCI runtime create failed:
// LINE: unknown").
func parseRefusalLine(msg string) (*refusalLine, error) {
	i := strings.Index(msg, "secrun: policy ")
	if i < 0 {
		return nil, fmt.Errorf("no secrun refusal in %q", msg)
	}
	line := strings.TrimSpace(msg[i:])
	if strings.Contains(line, "\n") {
		return nil, fmt.Errorf("secrun's refusal spans more than one line: %q", line)
	}
	// The gRPC status code containerd appends.
	line = strings.TrimSuffix(line, ": unknown")
	m := refusalRE.FindStringSubmatch(line)
	if m == nil {
		return nil, fmt.Errorf("secrun's refusal does not read \"secrun: policy P (MODE) refused container ID: RULE: FIELD: PROBLEM; fix: FIX\": %q", line)
	}
	r := &refusalLine{Line: line, Policy: m[1], Mode: m[2], Container: m[3], Rule: policy.Rule(m[4]), Field: m[5], Problem: m[6], Fix: m[7]}
	if m[9] != "" {
		for _, s := range strings.Split(m[9], ",") {
			// "devices ×3" is one rule that found three things.
			rule, times, counted := strings.Cut(strings.TrimSpace(s), " ×")
			n, err := strconv.Atoi(times)
			if !counted || err != nil || n < 1 {
				n = 1
			}
			for ; n > 0; n-- {
				r.More = append(r.More, policy.Rule(rule))
			}
		}
		if fmt.Sprint(len(r.More)) != m[8] {
			return nil, fmt.Errorf("secrun's refusal says %s more rules and names %d: %q", m[8], len(r.More), line)
		}
	}
	return r, nil
}

// kubeEventCheck is the Kubernetes target's second check of a refusal:
// the event an admin reads in `kubectl describe pod` is secrun's one
// line, with the policy, its mode, the rule the policy simulation says
// comes first and the config.json field it is about, a fix, and the
// other rules the simulation expects.
func kubeEventCheck(r *refusal, setting Setting) *check {
	rule := r.Rules[0]
	field := ruleField[rule]
	return &check{
		Name:        "refused.event",
		Setting:     setting,
		Description: fmt.Sprintf("kubectl describe pod shows secrun's refusal as one event line: policy %s (%s), rule %s, field %s, a fix", r.Policy, r.Mode, rule, field),
		Expected:    fmt.Sprintf("secrun: policy %s (%s) refused container …: %s: %s…: …; fix: …%s", r.Policy, r.Mode, rule, field, moreText(r.Rules[1:])),
		eval: func(o *observation) verdict {
			if o.rep != nil {
				return failf("the container ran", "policy %s should have refused it (%s)", r.Policy, ruleList(r.Rules))
			}
			if o.event == "" {
				return failf(orDash(lastLine(o.stderr)), "no event of the Pod carries secrun's refusal")
			}
			got, err := parseRefusalLine(o.event)
			if err != nil {
				return failf(o.event, "%v", err)
			}
			switch {
			case got.Policy != r.Policy || got.Mode != r.Mode:
				return failf(got.Line, "names policy %s (%s), expected %s (%s)", got.Policy, got.Mode, r.Policy, r.Mode)
			case got.Rule != rule:
				return failf(got.Line, "the first rule is %s, expected %s", got.Rule, rule)
			case !slices.Contains(strings.Split(got.Field, ", "), field):
				return failf(got.Line, "names field %q, expected %s", got.Field, field)
			case strings.TrimSpace(got.Fix) == "":
				return failf(got.Line, "names no fix")
			case !slices.Equal(got.More, r.Rules[1:]):
				return failf(got.Line, "names the other rules %v, expected %v", got.More, r.Rules[1:])
			}
			return pass(got.Line)
		},
		brk: &breaker{key: "requested", desc: "the Pod the manifest asks for, run without the policy", requested: true},
	}
}

func moreText(rules []policy.Rule) string {
	if len(rules) == 0 {
		return ""
	}
	return fmt.Sprintf(" (and %d more: %s; …)", len(rules), ruleList(rules))
}

// podObservation is what the node showed of one container of a finished
// Pod: the probe's report from its log, or why it never ran.
func podObservation(pod *corev1.Pod, container, log string, events []corev1.Event) *observation {
	obs := &observation{exit: -1}
	var st *corev1.ContainerStatus
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == container {
			st = &pod.Status.ContainerStatuses[i]
		}
	}
	obs.event = containerEvent(events, container)
	if st != nil {
		// "containerd://<id>": the id runc, and so the seccomp agent, knows.
		_, obs.containerID, _ = strings.Cut(st.ContainerID, "://")
	}
	if sandbox := sandboxEvent(events); obs.event == "" && strings.Contains(sandbox, "secrun: ") && (st == nil || st.State.Waiting != nil) {
		// secrun refused the Pod's sandbox (its sysctls are the
		// sandbox's): the container never got a bundle, and the
		// refusal is the Pod's event, as a runtime's stderr.
		obs.event, obs.exit, obs.stderr = sandbox, 1, sandbox
		return obs
	}
	switch {
	case st == nil:
		obs.runErr = fmt.Errorf("the Pod never started container %s: %s", container, podSummary(pod, events))
		return obs
	case st.State.Terminated != nil:
		t := st.State.Terminated
		obs.exit = int(t.ExitCode)
		if t.Reason == "StartError" || t.Reason == "ContainerCannotRun" {
			// containerd's message is the runtime's error, which a bare
			// runtime prints on stderr.
			obs.stderr = t.Message
			if obs.stderr == "" {
				obs.stderr = obs.event
			}
			return obs
		}
	case st.State.Waiting != nil:
		obs.runErr = fmt.Errorf("container %s did not run: %s: %s", container, st.State.Waiting.Reason, st.State.Waiting.Message)
		obs.stderr = obs.event
		return obs
	default:
		obs.runErr = fmt.Errorf("container %s is still running", container)
		return obs
	}
	rep, rest := splitProbeLog(log)
	obs.stdout, obs.stderr = rep, rest
	r, err := decodeReport([]byte(rep))
	if err != nil {
		obs.runErr = err
	}
	obs.rep = r
	if r == nil && obs.runErr == nil {
		obs.runErr = fmt.Errorf("container %s exited %d without the probe's report (log: %q)", container, obs.exit, lastLine(log))
	}
	return obs
}

// containerEvent is the message of the kubelet's last "Failed" event
// about the container, preferring one that carries secrun's line.
func containerEvent(events []corev1.Event, container string) string {
	field := "spec.containers{" + container + "}"
	return lastEvent(events, func(e corev1.Event) bool { return e.InvolvedObject.FieldPath == field && e.Reason == "Failed" })
}

// sandboxEvent is the message of the kubelet's last event saying the
// Pod's sandbox could not be created, preferring one with secrun's line.
func sandboxEvent(events []corev1.Event) string {
	return lastEvent(events, func(e corev1.Event) bool { return e.Reason == "FailedCreatePodSandBox" })
}

// lastEvent is the message of the last event that matches, or of the
// last one carrying secrun's line when any does.
func lastEvent(events []corev1.Event, match func(corev1.Event) bool) string {
	var msg string
	for _, e := range sortedEvents(events) {
		if !match(e) {
			continue
		}
		if strings.Contains(e.Message, "secrun: ") || msg == "" || !strings.Contains(msg, "secrun: ") {
			msg = e.Message
		}
	}
	return msg
}

func sortedEvents(events []corev1.Event) []corev1.Event {
	out := slices.Clone(events)
	slices.SortStableFunc(out, func(a, b corev1.Event) int {
		return eventTime(a).Compare(eventTime(b))
	})
	return out
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.FirstTimestamp.Time
}

// podSummary says where a Pod is, for a timeout or a Pod that never ran:
// its phase and reason, each container's state, and the last event.
func podSummary(pod *corev1.Pod, events []corev1.Event) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "phase %s", orDash(string(pod.Status.Phase)))
	if pod.Status.Reason != "" {
		fmt.Fprintf(&b, " (%s: %s)", pod.Status.Reason, pod.Status.Message)
	}
	for _, st := range pod.Status.ContainerStatuses {
		switch {
		case st.State.Waiting != nil:
			fmt.Fprintf(&b, "; %s waiting: %s %s", st.Name, st.State.Waiting.Reason, st.State.Waiting.Message)
		case st.State.Running != nil:
			fmt.Fprintf(&b, "; %s running", st.Name)
		case st.State.Terminated != nil:
			fmt.Fprintf(&b, "; %s terminated: %s (exit %d)", st.Name, st.State.Terminated.Reason, st.State.Terminated.ExitCode)
		}
	}
	if ev := sortedEvents(events); len(ev) > 0 {
		last := ev[len(ev)-1]
		fmt.Fprintf(&b, "; last event: %s %s: %s", last.Type, last.Reason, strings.TrimSpace(last.Message))
	}
	return b.String()
}

// podFinished reports whether the node is done with every container: the
// Pod succeeded or failed, or each container terminated or is stuck in a
// state the kubelet does not leave by itself for a Pod that never
// restarts (an image that must not be pulled and is absent, a config the
// runtime rejects).
func podFinished(pod *corev1.Pod) bool {
	switch pod.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		return true
	}
	if len(pod.Status.ContainerStatuses) < len(pod.Spec.Containers) {
		return false
	}
	for _, st := range pod.Status.ContainerStatuses {
		switch {
		case st.State.Terminated != nil:
		case st.State.Waiting != nil && stuckReasons[st.State.Waiting.Reason]:
		default:
			return false
		}
	}
	return true
}

var stuckReasons = map[string]bool{
	"ErrImageNeverPull":          true,
	"InvalidImageName":           true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
}
