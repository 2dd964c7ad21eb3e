package kubernetes

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrun/secrun/conformance/probe/report"
	"github.com/secrun/secrun/integration/kubernetes/cluster"
)

// probeArgs prove capabilities, no_new_privs and the root's writability.
var probeArgs = []string{"-scratch", "/scratch", report.OpCapNetRaw, report.OpCapChown, report.OpCapSetuid, report.OpNNPSetuid, report.OpFSRootfsWrite}

// podManifest is a one-container Pod bound to the node (the suite needs no
// scheduler for its own Pods) with a scratch emptyDir.
func podManifest(name, runtimeClass, podSec, ctrSec, image string, command []string) string {
	cmd, _ := json.Marshal(command)
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
spec:
  nodeName: %s
  runtimeClassName: %s
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext: %s
  containers:
  - name: probe
    image: %s
    imagePullPolicy: Never
    command: %s
    securityContext: %s
    volumeMounts:
    - {name: scratch, mountPath: /scratch}
  volumes:
  - {name: scratch, emptyDir: {}}
`, name, ns, cluster.NodeName, runtimeClass, podSec, image, cmd, ctrSec)
}

// runProbePod applies a probe Pod, waits for it to finish and returns the
// probe's report from `kubectl logs`.
func (s *suite) runProbePod(t *testing.T, name, runtimeClass, podSec, ctrSec string) *report.Report {
	t.Helper()
	if err := s.c.ApplyPod(podManifest(name, runtimeClass, podSec, ctrSec, cluster.ProbeImage, append([]string{"/probe"}, probeArgs...))); err != nil {
		t.Fatal(err)
	}
	phase, err := s.c.PodPhase(ns, name, 120*time.Second, "Succeeded", "Failed")
	if err != nil {
		t.Fatalf("%v\n%s", err, s.c.Kubectl("describe", "pod", "-n", ns, name))
	}
	logs := s.c.Kubectl("logs", "-n", ns, name)
	if logs.Code != 0 {
		t.Fatalf("kubectl logs: %s", logs)
	}
	if phase != "Succeeded" {
		t.Errorf("Pod %s ended %s:\n%s", name, phase, logs.Stdout)
	}
	var rep report.Report
	if err := json.Unmarshal([]byte(strings.TrimSpace(logs.Stdout)), &rep); err != nil {
		t.Fatalf("the probe's output is not a report: %v\n%s", err, logs.Stdout)
	}
	return &rep
}

// testRuntimeClasses checks the RuntimeClasses of deploy/ exist with their
// handlers and, on containerd 2.x, that the node advertises each secrun
// handler with what the delegate supports (runc features, passed through
// by secrun): user namespaces and recursive read-only mounts.
func (s *suite) testRuntimeClasses(t *testing.T) {
	r := s.c.Kubectl("get", "runtimeclass", "-o", `jsonpath={range .items[*]}{.metadata.name}={.handler} {end}`)
	if r.Code != 0 {
		t.Fatal(r)
	}
	for _, p := range cluster.Policies {
		if want := "secrun-" + p + "=secrun-" + p; !strings.Contains(r.Stdout, want) {
			t.Errorf("RuntimeClasses %q lack %s", r.Stdout, want)
		}
	}
	if s.row.ConfigVersion != 3 {
		return
	}
	r = s.c.Kubectl("get", "node", cluster.NodeName, "-o", "jsonpath={.status.runtimeHandlers}")
	if r.Code != 0 {
		t.Fatal(r)
	}
	var handlers []struct {
		Name     string `json:"name"`
		Features struct {
			RecursiveReadOnlyMounts *bool `json:"recursiveReadOnlyMounts"`
			UserNamespaces          *bool `json:"userNamespaces"`
		} `json:"features"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &handlers); err != nil {
		t.Fatalf("node runtimeHandlers: %v: %s", err, r.Stdout)
	}
	t.Logf("node runtimeHandlers: %s", r.Stdout)
	for _, p := range cluster.Policies {
		i := slices.IndexFunc(handlers, func(h struct {
			Name     string `json:"name"`
			Features struct {
				RecursiveReadOnlyMounts *bool `json:"recursiveReadOnlyMounts"`
				UserNamespaces          *bool `json:"userNamespaces"`
			} `json:"features"`
		}) bool {
			return h.Name == "secrun-"+p
		})
		if i < 0 {
			t.Errorf("the node does not list handler secrun-%s", p)
			continue
		}
		f := handlers[i].Features
		if f.UserNamespaces == nil || !*f.UserNamespaces || f.RecursiveReadOnlyMounts == nil || !*f.RecursiveReadOnlyMounts {
			t.Errorf("handler secrun-%s: features %+v, want user namespaces and recursive read-only mounts (runc %s supports both)", p, f, s.row.Runc)
		}
	}
}

// testRestrictedPod runs a Pod that asks for everything the restricted
// policy requires through secrun-restricted (enforce): it runs, and the
// kernel shows the policy in force.
func (s *suite) testRestrictedPod(t *testing.T) {
	rep := s.runProbePod(t, "restricted", "secrun-restricted",
		`{runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: {type: RuntimeDefault}}`,
		`{allowPrivilegeEscalation: false, capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}`)
	t.Logf("inside: uid=%d bounding=%v effective=%v no_new_privs=%d seccomp=%d", rep.UID, rep.Caps.Bounding, rep.Caps.Effective, rep.NoNewPrivs, rep.Seccomp)
	if want := []string{"CAP_NET_BIND_SERVICE"}; !slices.Equal(rep.Caps.Bounding, want) {
		t.Errorf("bounding set %v, want %v", rep.Caps.Bounding, want)
	}
	if rep.NoNewPrivs != 1 || rep.Seccomp != 2 || rep.UID != 1000 {
		t.Errorf("no_new_privs=%d seccomp=%d uid=%d, want 1, 2, 1000", rep.NoNewPrivs, rep.Seccomp, rep.UID)
	}
	for _, op := range []string{report.OpCapNetRaw, report.OpCapChown, report.OpCapSetuid} {
		if o := rep.Ops[op]; o.OK || o.Skipped {
			t.Errorf("%s was not denied: %+v", op, o)
		}
	}
	if o := rep.Ops[report.OpNNPSetuid]; o.OK || o.Skipped || strings.Contains(o.Detail, "euid=0") {
		t.Errorf("nnp.setuid escalated or did not run: %+v", o)
	}
	s.auditSays(t, "restricted", "allowed", "hardened")
}

// testPrivilegedPod runs a privileged Pod through secrun-privileged: all
// capabilities, as Kubernetes gives a privileged container.
func (s *suite) testPrivilegedPod(t *testing.T) {
	rep := s.runProbePod(t, "privileged", "secrun-privileged", `{}`, `{privileged: true}`)
	if !slices.Contains(rep.Caps.Bounding, "CAP_SYS_ADMIN") || rep.Seccomp != 0 {
		t.Errorf("privileged container: bounding %v seccomp %d, want CAP_SYS_ADMIN and no seccomp", rep.Caps.Bounding, rep.Seccomp)
	}
	if o := rep.Ops[report.OpCapNetRaw]; !o.OK {
		t.Errorf("cap.net_raw denied in a privileged container: %+v", o)
	}
}

// testRefusal asks secrun-baseline (enforce) for a privileged container:
// secrun refuses it before runc runs, and the Pod's events, as `kubectl
// describe` prints them, carry secrun's one line with the rule and the fix.
func (s *suite) testRefusal(t *testing.T) {
	name := "refused"
	if err := s.c.ApplyPod(podManifest(name, "secrun-baseline", `{}`, `{privileged: true}`, cluster.ProbeImage, []string{"/probe"})); err != nil {
		t.Fatal(err)
	}
	const want = "secrun: policy baseline (enforce) refused container "
	var desc string
	deadline := time.Now().Add(120 * time.Second)
	for {
		desc = s.c.Kubectl("describe", "pod", "-n", ns, name).Stdout
		if strings.Contains(desc, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	var line string
	for _, l := range strings.Split(desc, "\n") {
		if strings.Contains(l, want) {
			line = strings.TrimSpace(l)
			break
		}
	}
	if line == "" {
		t.Fatalf("kubectl describe pod %s has no %q:\n%s", name, want, desc)
	}
	t.Logf("kubectl describe: %s", line)
	for _, part := range []string{"privileged", "fix:"} {
		if !strings.Contains(line[strings.Index(line, want):], part) {
			t.Errorf("secrun's line lacks %q: %s", part, line)
		}
	}
	if strings.Contains(desc, "unable to retrieve OCI runtime error") {
		t.Errorf("the shim did not find secrun's error in runc's log:\n%s", desc)
	}
	s.auditSays(t, "baseline", "refused")
}

// testUserNamespace runs a Pod with hostUsers: false through secrun: the
// kubelet asks for a user namespace only because the handler advertises
// it, and inside the Pod uid 0 maps to an unprivileged host range.
func (s *suite) testUserNamespace(t *testing.T) {
	name := "userns"
	m := podManifest(name, "secrun-baseline", `{}`, `{}`, cluster.SecrunImage, []string{"/bin/sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map"})
	m = strings.Replace(m, "  restartPolicy: Never\n", "  restartPolicy: Never\n  hostUsers: false\n", 1)
	if err := s.c.ApplyPod(m); err != nil {
		t.Fatal(err)
	}
	phase, err := s.c.PodPhase(ns, name, 120*time.Second, "Succeeded", "Failed")
	if err != nil {
		t.Fatalf("%v\n%s", err, s.c.Kubectl("describe", "pod", "-n", ns, name))
	}
	logs := s.c.Kubectl("logs", "-n", ns, name)
	t.Logf("uid_map, gid_map inside:\n%s", logs.Stdout)
	if phase != "Succeeded" || logs.Code != 0 {
		t.Fatalf("Pod %s: phase %s, logs %s\n%s", name, phase, logs, s.c.Kubectl("describe", "pod", "-n", ns, name))
	}
	lines := strings.Split(strings.TrimSpace(logs.Stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one uid_map and one gid_map line, got %q", logs.Stdout)
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "0" || f[1] == "0" || f[2] != "65536" {
			t.Errorf("map line %q: want uid 0 mapped to a non-zero host id, 65536 ids (the kubelet's user-namespace range)", l)
		}
	}
}

// testCaptured checks the recording delegate kept what containerd wrote,
// for every container and sandbox the suite started, before secrun
// touched it: the audit log records what secrun changed afterwards.
func (s *suite) testCaptured(t *testing.T) {
	base := filepath.Join(s.c.Out, "captured")
	if b, err := os.ReadFile(filepath.Join(base, "errors.log")); err == nil {
		t.Errorf("the recorder failed to capture:\n%s", b)
	}
	pods := []string{"restricted", "privileged", "refused"}
	if s.row.ConfigVersion == 3 {
		pods = append(pods, "userns")
	}
	for _, p := range pods {
		for _, f := range []string{"_sandbox.json", "probe.json", "pod.yaml"} {
			path := filepath.Join(base, ns, p, f)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("missing %s: %v", path, err)
				continue
			}
			if f == "pod.yaml" {
				continue
			}
			var spec struct {
				Process struct {
					User struct {
						UID int `json:"uid"`
					} `json:"user"`
				} `json:"process"`
				Annotations map[string]string `json:"annotations"`
			}
			if err := json.Unmarshal(b, &spec); err != nil {
				t.Errorf("%s is not JSON: %v", path, err)
				continue
			}
			if got := spec.Annotations["io.kubernetes.cri.sandbox-name"]; got != p {
				t.Errorf("%s: sandbox-name %q", path, got)
			}
		}
	}
	// The refused container was captured as containerd asked for it:
	// privileged, which secrun then refused.
	b, _ := os.ReadFile(filepath.Join(base, ns, "refused", "probe.json"))
	if !strings.Contains(string(b), "CAP_SYS_ADMIN") {
		t.Errorf("the captured config.json of the refused privileged container lacks CAP_SYS_ADMIN: it was not captured before secrun")
	}
	if err := s.c.SavePods(); err != nil {
		t.Error(err)
	}
}

// auditSays checks secrun's audit log has a record of policy with one of
// decisions for a container (not a sandbox).
func (s *suite) auditSays(t *testing.T, policy string, decisions ...string) {
	t.Helper()
	b, err := os.ReadFile(s.c.AuditLog)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		if d, _ := rec["decision"].(string); rec["policy"] == policy && slices.Contains(decisions, d) && rec["sandbox"] != true {
			return
		}
	}
	t.Errorf("no audit record with policy %s and decision %v in %s", policy, decisions, s.c.AuditLog)
}

// testFidelity runs `secrunctl fidelity` over the row's captures: every
// security field of what containerd wrote against what `secrunctl
// translate` makes of the same Pod. Each difference must be explained
// (docs/translate-fidelity.md); the count per row goes into the summary.
func (s *suite) testFidelity(t *testing.T) {
	dir := filepath.Join(s.c.Out, "captured")
	minor := strings.Join(strings.Split(strings.TrimPrefix(s.c.KubernetesVersion(), "v"), ".")[:2], ".")
	r := s.c.Secrunctl("fidelity", "--captured", dir, "--kubernetes-version", minor, "--rootfs", s.c.ImageRootfs(), "--json")
	os.WriteFile(filepath.Join(s.c.Out, "fidelity.json"), []byte(r.Stdout), 0o644)
	var rep struct {
		Containers []struct {
			Namespace, Pod, Container, Error string
			Differences                      []struct {
				Field, Captured, Translated, Explanation string
			}
			Explained, Unexplained int
		}
		NotCaptured            []string
		Explained, Unexplained int
	}
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("secrunctl fidelity: exit %d, output is not its JSON report: %v\n%s", r.Code, err, r)
	}
	for _, c := range rep.Containers {
		if c.Error != "" {
			t.Errorf("%s/%s %s: not compared: %s", c.Namespace, c.Pod, c.Container, c.Error)
		}
		for _, d := range c.Differences {
			if d.Explanation == "" {
				t.Errorf("UNEXPLAINED %s/%s %s %s: containerd %s; translate %s", c.Namespace, c.Pod, c.Container, d.Field, d.Captured, d.Translated)
			}
		}
	}
	s.res.fidelity = fmt.Sprintf("%d containers compared, %d differences explained, %d unexplained", len(rep.Containers), rep.Explained, rep.Unexplained)
	t.Logf("fidelity (%s): %s", s.row.Name, s.res.fidelity)
	if len(rep.Containers) == 0 {
		t.Error("fidelity compared no container")
	}
}
