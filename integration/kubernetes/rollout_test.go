package kubernetes

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrun/secrun/conformance/probe/report"
	"github.com/secrun/secrun/integration/kubernetes/cluster"
	"github.com/secrun/secrun/internal/testenv"
	"sigs.k8s.io/yaml"
)

// testRollout applies deploy/daemonset-installer.yaml and
// deploy/job-conformance.yaml to the node as an admin would: the
// installer Pod installs secrun's handlers into the node's containerd
// configuration and restarts containerd through its restart command; Pods
// then run through the new handlers; the conformance Job's report is read
// back; SECRUN_UNINSTALL=true leaves the configuration byte for byte as
// it was.
//
// What is changed in the manifests is what a node with another layout
// changes: host paths (this node's /usr/local/bin, /etc/containerd, ...
// live under the cluster's directory), the restart command (this
// containerd is not a systemd unit: the installer kills it by pid and the
// harness starts it again, as systemd would), the audit log path and the
// delegate. Images are the ones the manifests name, built here.
func (s *suite) testRollout(t *testing.T) {
	c := s.c
	// A node without secrun: take out the harness's own handlers first.
	if r := c.Secrunctl("install", "containerd", "--config", c.ContainerdConfig, "--uninstall"); r.Code != 0 {
		t.Fatalf("secrunctl install containerd --uninstall: %s", r)
	}
	s.restartContainerd(t)
	before, err := os.ReadFile(c.ContainerdConfig)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != c.BaseConfig {
		t.Fatalf("after the harness's uninstall config.toml is not the base configuration:\n%s", before)
	}

	restarts := c.ContainerdRestarts()
	if err := s.applyInstaller(false); err != nil {
		t.Fatal(err)
	}
	if r := c.Kubectl("-n", "secrun-system", "rollout", "status", "daemonset/secrun-installer", "--timeout", "240s"); r.Code != 0 {
		t.Fatalf("installer rollout: %s\n%s", r, s.describeNS("secrun-system"))
	}
	logs := c.Kubectl("-n", "secrun-system", "logs", "daemonset/secrun-installer", "-c", "install")
	t.Logf("installer says:\n%s", strings.TrimSpace(logs.Stdout))
	// The kubelet may run the init container again once containerd is
	// back (the sandbox it started in was the old containerd's); that run
	// finds nothing to change. The restart itself is counted below.
	// Its last line can be lost with the containerd it restarts (the
	// container's output goes through containerd's shim): the restart
	// line, or a rerun's "secrun installed", is the proof; what the
	// install did is checked below.
	if !strings.Contains(logs.Stdout, "restarting containerd: kill ") &&
		!(strings.Contains(logs.Stdout, "secrun installed: handlers") && strings.Contains(logs.Stdout, "no change")) {
		t.Errorf("the installer's log does not show the install:\n%s", logs)
	}
	if got := c.ContainerdRestarts(); got != restarts+1 {
		t.Errorf("containerd was restarted %d times by the installer, want once", got-restarts)
	}
	installed, _ := os.ReadFile(c.ContainerdConfig)
	bin := filepath.Join(c.NodeRoot, "usr", "local", "bin")
	for _, p := range cluster.Policies {
		if want := fmt.Sprintf("BinaryName = %q", filepath.Join(bin, "secrun-"+p)); !strings.Contains(string(installed), want) {
			t.Errorf("the installed config.toml lacks %s:\n%s", want, installed)
		}
	}
	if err := c.WaitContainerd(60 * time.Second); err != nil {
		t.Fatal(err)
	}

	// A Pod through a handler the DaemonSet installed.
	rep := s.runProbePod(t, "after-rollout", "secrun-restricted",
		`{runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: {type: RuntimeDefault}}`,
		`{allowPrivilegeEscalation: false, capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}`)
	if !slices.Equal(rep.Caps.Bounding, []string{"CAP_NET_BIND_SERVICE"}) || rep.NoNewPrivs != 1 || rep.Seccomp != 2 {
		t.Errorf("Pod through the installed secrun-restricted: bounding %v no_new_privs %d seccomp %d", rep.Caps.Bounding, rep.NoNewPrivs, rep.Seccomp)
	}
	if _, err := os.Stat(filepath.Join(bin, "secrun-restricted")); err != nil {
		t.Errorf("the installer did not put secrun-restricted on the node: %v", err)
	}

	s.runConformanceJob(t)

	restarts = c.ContainerdRestarts()
	if err := s.applyInstaller(true); err != nil {
		t.Fatal(err)
	}
	if r := c.Kubectl("-n", "secrun-system", "rollout", "status", "daemonset/secrun-installer", "--timeout", "240s"); r.Code != 0 {
		t.Fatalf("uninstall rollout: %s\n%s", r, s.describeNS("secrun-system"))
	}
	logs = c.Kubectl("-n", "secrun-system", "logs", "daemonset/secrun-installer", "-c", "install")
	t.Logf("uninstaller says:\n%s", strings.TrimSpace(logs.Stdout))
	if !strings.Contains(logs.Stdout, "secrun handlers removed") {
		t.Errorf("the uninstaller's log does not show the removal:\n%s", logs)
	}
	after, _ := os.ReadFile(c.ContainerdConfig)
	if string(after) != string(before) {
		t.Errorf("after SECRUN_UNINSTALL config.toml differs from before the install:\n--- before\n%s\n--- after\n%s", before, after)
	}
	if got := c.ContainerdRestarts(); got != restarts+1 {
		t.Errorf("containerd was restarted %d times by the uninstall, want once", got-restarts)
	}
	if err := c.WaitContainerd(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	if r := c.Kubectl("delete", "namespace", "secrun-system", "--wait=true", "--timeout", "120s"); r.Code != 0 {
		t.Errorf("delete namespace secrun-system: %s", r)
	}
}

// restartContainerd kills the node's containerd, which the harness starts
// again, and waits for it and the node.
func (s *suite) restartContainerd(t *testing.T) {
	t.Helper()
	n := s.c.ContainerdRestarts()
	if err := syscall.Kill(s.c.ContainerdPID(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.c.ContainerdRestarts() == n {
		if time.Now().After(deadline) {
			t.Fatal("containerd was not started again within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := s.c.WaitContainerd(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// applyInstaller applies deploy/daemonset-installer.yaml with this node's
// paths and restart command.
func (s *suite) applyInstaller(uninstall bool) error {
	c := s.c
	b, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(), "deploy", "daemonset-installer.yaml"))
	if err != nil {
		return err
	}
	bin := filepath.Join(c.NodeRoot, "usr", "local", "bin")
	cfgDir := filepath.Dir(c.ContainerdConfig)
	hostPaths := map[string]string{
		"host-bin":        bin,
		"host-containerd": cfgDir,
		"host-secrun":     filepath.Join(c.NodeRoot, "etc", "secrun"),
		"host-log":        filepath.Join(c.NodeRoot, "var", "log", "secrun"),
	}
	mountPaths := map[string]string{"host-bin": "/host" + bin, "host-containerd": "/host" + cfgDir}
	env := map[string]string{
		"BIN_DIR":           bin,
		"CONTAINERD_CONFIG": c.ContainerdConfig,
		"RESTART_COMMAND":   "kill " + strconv.Itoa(c.ContainerdPID()),
		"SECRUN_UNINSTALL":  strconv.FormatBool(uninstall),
	}
	var docs []string
	for _, doc := range splitYAML(string(b)) {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return fmt.Errorf("deploy/daemonset-installer.yaml: %w", err)
		}
		if obj == nil {
			continue
		}
		md := obj["metadata"].(map[string]any)
		switch {
		case obj["kind"] == "ConfigMap" && md["name"] == "secrun-config":
			data := obj["data"].(map[string]any)
			cfg := data["config.yaml"].(string)
			cfg = regexp.MustCompile(`(?m)^auditLog: .*$`).ReplaceAllString(cfg, "auditLog: "+c.AuditLog)
			cfg = regexp.MustCompile(`(?m)^runtime: .*$`).ReplaceAllString(cfg, "runtime: "+s.row.Runc)
			// The report directory the node lets restricted Pods mount is
			// this node's, as the Job's hostPath is.
			cfg = strings.ReplaceAll(cfg, "/var/log/secrun/conformance", filepath.Join(c.NodeRoot, "var", "log", "secrun", "conformance"))
			data["config.yaml"] = cfg
		case obj["kind"] == "DaemonSet":
			spec := dig(obj, "spec", "template", "spec")
			for _, v := range spec["volumes"].([]any) {
				v := v.(map[string]any)
				if p, ok := hostPaths[v["name"].(string)]; ok {
					v["hostPath"].(map[string]any)["path"] = p
				}
			}
			ic := spec["initContainers"].([]any)[0].(map[string]any)
			for _, e := range ic["env"].([]any) {
				e := e.(map[string]any)
				if v, ok := env[e["name"].(string)]; ok {
					e["value"] = v
				}
			}
			for _, m := range ic["volumeMounts"].([]any) {
				m := m.(map[string]any)
				if p, ok := mountPaths[m["name"].(string)]; ok {
					m["mountPath"] = p
				}
			}
		}
		out, err := yaml.Marshal(obj)
		if err != nil {
			return err
		}
		docs = append(docs, string(out))
	}
	manifest := strings.Join(docs, "---\n")
	os.WriteFile(filepath.Join(c.Out, fmt.Sprintf("daemonset-installer-uninstall-%v.yaml", uninstall)), []byte(manifest), 0o644)
	if r := c.KubectlStdin(manifest, "apply", "-f", "-"); r.Code != 0 {
		return fmt.Errorf("kubectl apply the installer: %s", r)
	}
	return nil
}

// runConformanceJob runs deploy/job-conformance.yaml for this node and
// reads the probe's report back from the Job's log and from the node.
func (s *suite) runConformanceJob(t *testing.T) {
	c := s.c
	b, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(), "deploy", "job-conformance.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// As the file's own instructions say: sed s/node-name/<node>/g.
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(strings.ReplaceAll(string(b), "node-name", cluster.NodeName)), &obj); err != nil {
		t.Fatal(err)
	}
	reports := filepath.Join(c.NodeRoot, "var", "log", "secrun", "conformance")
	for _, v := range dig(obj, "spec", "template", "spec")["volumes"].([]any) {
		if v := v.(map[string]any); v["name"] == "node-reports" {
			v["hostPath"].(map[string]any)["path"] = reports
		}
	}
	out, _ := yaml.Marshal(obj)
	if r := c.KubectlStdin(string(out), "create", "-f", "-"); r.Code != 0 {
		t.Fatalf("kubectl create the conformance Job: %s", r)
	}
	job := "job/secrun-conformance-" + cluster.NodeName
	if r := c.Kubectl("-n", "secrun-system", "wait", "--for=condition=complete", job, "--timeout", "240s"); r.Code != 0 {
		t.Fatalf("conformance Job: %s\n%s", r, s.describeNS("secrun-system"))
	}
	logs := c.Kubectl("-n", "secrun-system", "logs", job, "-c", "keep")
	if logs.Code != 0 {
		t.Fatalf("kubectl logs %s -c keep: %s", job, logs)
	}
	var rep report.Report
	if err := json.Unmarshal([]byte(strings.TrimSpace(logs.Stdout)), &rep); err != nil {
		t.Fatalf("the Job's report is not a probe report: %v\n%s", err, logs.Stdout)
	}
	t.Logf("conformance Job report: uid=%d bounding=%v no_new_privs=%d seccomp=%d, %d ops", rep.UID, rep.Caps.Bounding, rep.NoNewPrivs, rep.Seccomp, len(rep.Ops))
	if rep.UID != 65534 || rep.NoNewPrivs != 1 || rep.Seccomp != 2 || !slices.Equal(rep.Caps.Bounding, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Errorf("the Job's probe did not run under restricted: %+v", rep)
	}
	files, _ := filepath.Glob(filepath.Join(reports, "*-"+cluster.NodeName+".json"))
	if len(files) != 1 {
		t.Errorf("reports kept on the node: %v, want one", files)
	}
	os.WriteFile(filepath.Join(c.Out, "conformance-job-report.json"), []byte(logs.Stdout), 0o644)
}

func (s *suite) describeNS(namespace string) string {
	return s.c.Kubectl("-n", namespace, "describe", "pods").String()
}

func dig(obj map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		obj = obj[k].(map[string]any)
	}
	return obj
}

func splitYAML(s string) []string {
	return regexp.MustCompile(`(?m)^---\s*$`).Split(s, -1)
}
