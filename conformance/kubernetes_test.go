package conformance

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrun/secrun/conformance/probe/report"
	"github.com/secrun/secrun/manifest"
	"github.com/secrun/secrun/policy"
)

func caseWorkload(t *testing.T, name string) *manifest.Workload {
	t.Helper()
	cases, err := LoadCases("")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if c.Name == name {
			ws, err := manifest.Parse(c.Data)
			if err != nil {
				t.Fatal(err)
			}
			return ws[0]
		}
	}
	t.Fatalf("no case %s", name)
	return nil
}

// A case becomes a Pod that runs the probe image on the named node
// through the named RuntimeClass, its security context untouched.
func TestKubePod(t *testing.T) {
	w := caseWorkload(t, "pss-restricted")
	args := map[string][]string{"web": {"/probe", "-foreign", foreignPath, "all"}}
	pod, err := kubePod(w, podParams{Name: "p", Namespace: "ns", RuntimeClass: "secrun-baseline", Node: "node-1",
		Image: "secrun.local/probe:abc", RunID: "r1", Case: "pss-restricted@secrun-baseline", Args: args})
	if err != nil {
		t.Fatal(err)
	}
	s := pod.Spec
	if pod.Kind != "Pod" || pod.APIVersion != "v1" || pod.Name != "p" || pod.Namespace != "ns" {
		t.Errorf("meta %+v %+v", pod.TypeMeta, pod.ObjectMeta)
	}
	if s.RuntimeClassName == nil || *s.RuntimeClassName != "secrun-baseline" || s.NodeName != "node-1" || s.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("runtimeClassName %v, nodeName %q, restartPolicy %q", s.RuntimeClassName, s.NodeName, s.RestartPolicy)
	}
	if s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken {
		t.Error("the service account token is mounted")
	}
	c := s.Containers[0]
	if c.Image != "secrun.local/probe:abc" || c.ImagePullPolicy != corev1.PullNever || !slices.Equal(c.Command, args["web"]) {
		t.Errorf("container image %q pull %q command %v", c.Image, c.ImagePullPolicy, c.Command)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/tmp" || len(s.Volumes) != 1 || s.Volumes[0].EmptyDir == nil {
		t.Errorf("scratch volume: %+v %+v", c.VolumeMounts, s.Volumes)
	}
	// The security context is what is under test: exactly as written.
	if !equalJSON(t, c.SecurityContext, w.PodSpec.Containers[0].SecurityContext) || !equalJSON(t, s.SecurityContext, w.PodSpec.SecurityContext) {
		t.Errorf("security context changed: %+v", c.SecurityContext)
	}
	if pod.Labels[labelRun] != "r1" || pod.Annotations[annCase] != "pss-restricted@secrun-baseline" {
		t.Errorf("labels %v annotations %v", pod.Labels, pod.Annotations)
	}
	// The case's own RuntimeClass and namespace give way; the manifest
	// is not changed.
	if *w.PodSpec.RuntimeClassName != "secrun-restricted" || w.PodSpec.Containers[0].Image != "myapp:v1.0" {
		t.Error("kubePod changed the parsed workload")
	}

	// Annotations (the legacy seccomp one) go along; kube-system does not.
	w = caseWorkload(t, "seccomp-annotation")
	pod, err = kubePod(w, podParams{Name: "q", Namespace: "ns", RuntimeClass: "runc", Node: "n", Image: "i", Args: map[string][]string{"app": {"/probe"}}})
	if err != nil || pod.Annotations[annSeccompPod] != "runtime/default" {
		t.Errorf("annotations %v (%v)", pod.Annotations, err)
	}
	if _, err := kubePod(w, podParams{Args: map[string][]string{}}); err == nil || !strings.Contains(err.Error(), "container app") {
		t.Errorf("a container without a command: %v", err)
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestPodName(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range []string{"allow-privilege-escalation-false", "Pod_And.Container", strings.Repeat("long-case-name", 8)} {
		for _, rc := range []string{"secrun-baseline", "secrun-restricted", "runc"} {
			n := podName(c, "w", rc, "a1b2c3")
			if len(n) > 63 || nonDNS.MatchString(n) || strings.HasPrefix(n, "-") || seen[n] {
				t.Errorf("podName(%q, %q) = %q", c, rc, n)
			}
			seen[n] = true
		}
	}
	if podName("c", "w1", "runc", "x") == podName("c", "w2", "runc", "x") {
		t.Error("two workloads of one case share a Pod name")
	}
}

// The refusal line as secrun writes it (shim/report.go: the policy, the
// container, then policy.Finding's "rule: field: problem; fix: fix").
func refusalText(pol, mode, id string, fs ...policy.Finding) string {
	msg := fmt.Sprintf("secrun: policy %s (%s) refused container %s: %s", pol, mode, id, fs[0])
	if len(fs) > 1 {
		var rules []string
		for _, f := range fs[1:] {
			rules = append(rules, string(f.Rule))
		}
		msg += fmt.Sprintf(" (and %d more: %s; `secrunctl explain` lists them)", len(fs)-1, strings.Join(rules, ", "))
	}
	return msg
}

func TestParseRefusalLine(t *testing.T) {
	priv := policy.Finding{Rule: "privileged", Field: "process.capabilities, linux.maskedPaths", Problem: "privileged: true asks for every capability", Fix: "set privileged: false; or use RuntimeClass secrun-privileged"}
	dev := policy.Finding{Rule: "devices", Field: "linux.resources.devices", Problem: "all devices", Fix: "remove"}
	line := refusalText("baseline", "enforce", "kube-proxy", priv, dev)
	event := "Error: failed to create containerd task: failed to create shim task: OCI runtime create failed: " + line + ": unknown"
	r, err := parseRefusalLine(event)
	if err != nil {
		t.Fatal(err)
	}
	want := refusalLine{Line: line, Policy: "baseline", Mode: "enforce", Container: "kube-proxy", Rule: "privileged",
		Field: priv.Field, Problem: priv.Problem, Fix: priv.Fix, More: []policy.Rule{policy.RuleDevices}}
	if !equalJSON(t, r, want) {
		t.Errorf("parsed %+v\nwant   %+v", r, want)
	}
	r, err = parseRefusalLine(refusalText("restricted", "harden", "0123abcd", policy.Finding{Rule: "runAsNonRoot", Field: "process.user.uid", Problem: "uid 0", Fix: "set runAsUser"}))
	if err != nil || r.Rule != "runAsNonRoot" || r.Field != "process.user.uid" || r.Fix != "set runAsUser" || r.More != nil || r.Container != "0123abcd" {
		t.Errorf("%+v %v", r, err)
	}
	// As a containerd 2.4 node showed it, in a kubelet 1.37 event.
	real := "Error: failed to create containerd task: failed to create shim task: OCI runtime create failed: secrun: policy baseline (enforce) refused container probe: privileged: process.capabilities, linux.maskedPaths: the container is privileged (every capability, /proc unmasked); fix: remove securityContext.privileged: true, or run the Pod with a RuntimeClass whose policy allows privileged containers (and 3 more: devices, capabilities, procMount; `secrunctl explain` lists them)"
	r, err = parseRefusalLine(real)
	if err != nil || r.Container != "probe" || r.Rule != "privileged" || r.Field != "process.capabilities, linux.maskedPaths" ||
		!strings.HasPrefix(r.Fix, "remove securityContext.privileged: true, or run") || !slices.Equal(r.More, []policy.Rule{policy.RuleDevices, policy.RuleCapabilities, policy.RuleProcMount}) {
		t.Errorf("%+v %v", r, err)
	}
	for _, bad := range []string{
		"Error: failed to create containerd task: exec: runc: not found",
		"secrun: policy baseline (enforce) refused container a: config.json: bad",
		"secrun: policy baseline (enforce) refused container a: capabilities: process.capabilities: x; fix: y\nsecond line",
		"secrun: policy baseline (enforce) refused container a: capabilities: process.capabilities: x; fix: y (and 2 more: a; `secrunctl explain` lists them)",
	} {
		if r, err := parseRefusalLine(bad); err == nil {
			t.Errorf("parsed %q as %+v", bad, r)
		}
	}
}

// kubeSuite is a Kubernetes-target suite without a cluster: what
// derivation needs.
func kubeSuite(t *testing.T, config string) *suite {
	t.Helper()
	cfg, err := policy.ParseConfig([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{host: testHost(), cfg: cfg, kind: kindSecrun, kube: &kubeTarget{runID: "t1"}, kubeMinor: 37, profileRoot: t.TempDir()}
	if err := writeLocalhostProfile(s.profileRoot); err != nil {
		t.Fatal(err)
	}
	return s
}

func checkIDs(crs []*containerRun) map[string]string {
	out := map[string]string{}
	for _, cr := range crs {
		for _, ch := range cr.checks {
			out[ch.ID] = ch.Expected
		}
	}
	return out
}

// The Kubernetes target reuses the bundle suite's derivation: for every
// case and RuntimeClass the same checks with the same expectations,
// plus the event check of each refusal.
func TestKubeExpectationsReuse(t *testing.T) {
	config := GeneratedConfig("runc", "off", "/nonexistent", "/nonexistent/agent.sock")
	dir := t.TempDir()
	bundle := &suite{host: testHost(), kind: kindSecrun, work: dir, probe: filepath.Join(dir, "p"), probeSUID: filepath.Join(dir, "ps"), runtime: "/bin/true"}
	for _, f := range []string{bundle.probe, bundle.probeSUID} {
		if err := os.WriteFile(f, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	var err error
	if bundle.cfg, err = policy.ParseConfig([]byte(config)); err != nil {
		t.Fatal(err)
	}
	kube := kubeSuite(t, config)
	// The same Kubernetes version: the legacy annotations differ by it.
	bundle.profileRoot, bundle.kubeMinor = kube.profileRoot, kube.kubeMinor
	cases, err := LoadCases("")
	if err != nil {
		t.Fatal(err)
	}
	refusals := 0
	for _, pol := range []string{"baseline", "restricted", "privileged"} {
		class := kubeClass{name: "secrun-" + pol, handler: "secrun-" + pol, policy: pol}
		krs, pods, err := kube.kubeDerive(class, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(pods) < len(cases) {
			t.Errorf("%s: %d Pods for %d cases", pol, len(pods), len(cases))
		}
		got := checkIDs(krs)
		bundle.fixedPolicy = pol
		for _, c := range cases {
			c.Name += "@" + class.name
			brs, err := bundle.setupCase(c)
			if err != nil {
				t.Fatal(err)
			}
			for id, exp := range checkIDs(brs) {
				if g, ok := got[id]; !ok || g != exp {
					t.Errorf("%s: Kubernetes expects %q, the bundle suite %q", id, g, exp)
				}
				delete(got, id)
			}
		}
		for id := range got {
			if !strings.HasSuffix(id, "/refused.event") {
				t.Errorf("%s exists only for Kubernetes", id)
			}
			refusals++
		}
	}
	if refusals == 0 {
		t.Error("no refusal among the cases")
	}
}

// A refusal is checked through the event: secrun's line with the rule
// the simulation puts first, its field, a fix and the other rules.
func TestKubeEventCheck(t *testing.T) {
	s := kubeSuite(t, GeneratedConfig("runc", "off", "/nonexistent", "/nonexistent/agent.sock"))
	crs, _, err := s.kubeDerive(kubeClass{name: "secrun-baseline", policy: "baseline"}, false)
	if err != nil {
		t.Fatal(err)
	}
	var ev *check
	var r *refusal
	for _, cr := range crs {
		if cr.caseName == "privileged@secrun-baseline" {
			r = cr.final.refusal
			for _, ch := range cr.checks {
				if ch.Name == "refused.event" {
					ev = ch
				}
			}
		}
	}
	if ev == nil || r == nil || !slices.Equal(r.Rules, []policy.Rule{policy.RulePrivileged, policy.RuleDevices}) {
		t.Fatalf("privileged under baseline harden: refusal %+v, event check %v", r, ev)
	}
	finding := func(rule, field string) policy.Finding {
		return policy.Finding{Rule: policy.Rule(rule), Field: field, Problem: "p", Fix: "f"}
	}
	good := refusalText("baseline", "harden", "kube-proxy", finding("privileged", "process.capabilities, linux.maskedPaths"), finding("devices", "linux.resources.devices"))
	for _, tc := range []struct {
		obs  *observation
		want Status
	}{
		{&observation{exit: 128, event: "Error: failed to create containerd task: OCI runtime create failed: " + good + ": unknown"}, StatusPass},
		{&observation{exit: 128, event: refusalText("baseline", "harden", "k", finding("devices", "linux.resources.devices"), finding("privileged", "process.capabilities"))}, StatusFail},
		{&observation{exit: 128, event: refusalText("baseline", "harden", "k", finding("privileged", "linux.maskedPaths"), finding("devices", "linux.resources.devices"))}, StatusFail},
		{&observation{exit: 128, event: refusalText("baseline", "harden", "k", finding("privileged", "process.capabilities"))}, StatusFail},
		{&observation{exit: 128, event: refusalText("restricted", "harden", "k", finding("privileged", "process.capabilities"), finding("devices", "d"))}, StatusFail},
		{&observation{exit: 128, stderr: good}, StatusFail},
		{&observation{exit: 0, rep: &report.Report{}, event: good}, StatusFail},
	} {
		if v := ev.eval(tc.obs); v.Status != tc.want {
			t.Errorf("event %q: %s (%s), want %s", tc.obs.event, v.Status, v.Message, tc.want)
		}
	}
}

// Validity keeps the checks the policy changes: restricted (harden)
// drops capabilities, sets no_new_privs and a seccomp filter on a Pod
// that asks for none of it, while its uid is the manifest's own.
func TestKeepPolicyDependent(t *testing.T) {
	s := kubeSuite(t, GeneratedConfig("runc", "off", "/nonexistent", "/nonexistent/agent.sock"))
	for _, tc := range []struct {
		class      kubeClass
		caseName   string
		dependent  []string
		unpoliced  []string
		noneDepend bool
	}{
		{kubeClass{name: "secrun-restricted", policy: "restricted"}, "run-as-user@secrun-restricted",
			// uid 1000 holds no effective capability either way, so
			// the per-capability ops expect the same denials.
			[]string{"caps.bounding", "no_new_privs", "nnp.setuid", "seccomp.mode", "seccomp.keyctl"}, []string{"uid", "gid", "groups", "caps.effective", "cap.chown"}, false},
		{kubeClass{name: "secrun-baseline", policy: "baseline"}, "capabilities-example@secrun-baseline",
			[]string{"caps.bounding", "cap.net_admin", "seccomp.mode"}, []string{"cap.chown"}, false},
		{kubeClass{name: "secrun-privileged", policy: "privileged"}, "privileged@secrun-privileged", nil, nil, true},
	} {
		crs, _, err := s.kubeDerive(tc.class, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, cr := range crs {
			if cr.caseName != tc.caseName {
				continue
			}
			if err := s.keepPolicyDependent(cr); err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, ch := range cr.checks {
				if ch.skip == "" {
					names = append(names, ch.Name)
				}
			}
			for _, n := range tc.dependent {
				if !slices.Contains(names, n) {
					t.Errorf("%s: %s should depend on the policy (kept: %v)", tc.caseName, n, names)
				}
			}
			for _, n := range tc.unpoliced {
				if slices.Contains(names, n) {
					t.Errorf("%s: %s does not depend on the policy", tc.caseName, n)
				}
			}
			if tc.noneDepend && len(names) > 0 {
				t.Errorf("%s: the privileged policy changes nothing, yet %v were kept", tc.caseName, names)
			}
		}
	}
}

// From Kubernetes 1.27 the legacy seccomp annotation is no field, so the
// model must not expect its filter; the bundle suite still honours it.
func TestLegacySeccompAnnotation(t *testing.T) {
	s := kubeSuite(t, "")
	crs, _, err := s.kubeDerive(kubeClass{name: "runc", handler: "runc"}, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, cr := range crs {
		if cr.caseName == "seccomp-annotation@runc" && (cr.requested.m.Seccomp != seccompNone || !strings.Contains(strings.Join(cr.requested.notes, "\n"), "ignored")) {
			t.Errorf("1.37: seccomp %q, notes %v", cr.requested.m.Seccomp, cr.requested.notes)
		}
	}
	s.kubeMinor = 26
	crs, _, _ = s.kubeDerive(kubeClass{name: "runc", handler: "runc"}, true)
	for _, cr := range crs {
		if cr.caseName == "seccomp-annotation@runc" && cr.requested.m.Seccomp != seccompRuntimeDefault {
			t.Errorf("1.26: seccomp %q", cr.requested.m.Seccomp)
		}
	}
}

func TestPodObservation(t *testing.T) {
	rep := report.Report{Version: report.Version, UID: 1000, Ops: map[string]report.Op{}}
	body, _ := json.MarshalIndent(rep, "", "  ")
	log := "probe: a warning on stderr\n" + string(body) + "\n"
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}, {Name: "refused"}}},
		Status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "app", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}}},
			{Name: "refused", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "StartError", ExitCode: 128, Message: "failed to create containerd task: secrun: policy x"}}},
		}}}
	events := []corev1.Event{
		{Reason: "Pulled", InvolvedObject: corev1.ObjectReference{FieldPath: "spec.containers{refused}"}, Message: "image present"},
		{Reason: "Failed", InvolvedObject: corev1.ObjectReference{FieldPath: "spec.containers{refused}"}, Message: "Error: secrun: policy x", LastTimestamp: metav1.Now()},
	}
	if !podFinished(pod) {
		t.Error("a failed Pod is not finished")
	}
	o := podObservation(pod, "app", log, events)
	if o.runErr != nil || o.rep == nil || o.rep.UID != 1000 || o.exit != 0 || o.stderr != "probe: a warning on stderr" {
		t.Errorf("app: %+v", o)
	}
	o = podObservation(pod, "refused", "", events)
	if o.rep != nil || o.exit != 128 || o.event != "Error: secrun: policy x" || !strings.Contains(o.stderr, "secrun: policy x") {
		t.Errorf("refused: %+v", o)
	}
	if o := podObservation(pod, "app", "no report\n", nil); o.rep != nil || o.runErr == nil {
		t.Errorf("a log without a report: %+v", o)
	}
	pending := &corev1.Pod{Spec: pod.Spec, Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{
		{Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull", Message: "image secrun.local/probe:x is not present"}}},
		{Name: "refused", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}},
	}}}
	if podFinished(pending) {
		t.Error("a Pod with a container still being created is finished")
	}
	pending.Status.ContainerStatuses[1].State.Waiting.Reason = "ErrImageNeverPull"
	if !podFinished(pending) {
		t.Error("a Pod whose image is missing is not finished")
	}
	if o := podObservation(pending, "app", "", nil); o.runErr == nil || !strings.Contains(o.runErr.Error(), "ErrImageNeverPull") {
		t.Errorf("missing image: %+v", o)
	}
	if s := podSummary(pending, events); !strings.Contains(s, "phase Pending") || !strings.Contains(s, "last event:  Failed: Error: secrun: policy x") {
		t.Errorf("summary %q", s)
	}
}

// containerd 2.x makes low ports unprivileged in every sandbox, so
// cap.net_bind_service cannot show CAP_NET_BIND_SERVICE there; 1.6 does
// not.
func TestContainerdSandboxSysctls(t *testing.T) {
	for v, want := range map[string]bool{"containerd://2.4.2": true, "containerd://v2.0.0": true, "containerd://1.6.20": false, "cri-o://1.30.0": false, "": false} {
		if got := containerdSandboxSysctls(v)["net.ipv4.ip_unprivileged_port_start"] == "0"; got != want {
			t.Errorf("%q: unprivileged ports %v", v, got)
		}
	}
	s := kubeSuite(t, "")
	s.host.SandboxSysctls = containerdSandboxSysctls("containerd://2.4.2")
	crs, _, err := s.kubeDerive(kubeClass{name: "runc", handler: "runc"}, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, cr := range crs {
		if cr.caseName != "capabilities-drop-all@runc" {
			continue
		}
		for _, ch := range cr.checks {
			if ch.Name == "cap.net_bind_service" {
				t.Errorf("cap.net_bind_service derived under containerd 2.x's unprivileged ports: %s", ch.Expected)
			}
		}
		if !strings.Contains(strings.Join(cr.notApplicable, "\n"), "sets it on every Pod sandbox") {
			t.Errorf("not applicable: %v", cr.notApplicable)
		}
	}
}
