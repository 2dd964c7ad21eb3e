// Package containerd tests secrun behind a real containerd: the runc shim
// calling secrun through a handler's BinaryName, the policy in force inside
// the container as the kernel reports it, Pod annotations passing the
// handler's allowlist, and secrun's refusal reaching the client.
//
// The suite runs only when SECRUN_CONTAINERD_TEST=1, as root, with
// containerd installed; `make test-containerd` (scripts/containerd-test.sh)
// installs what it needs and runs it.
package containerd

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrun/secrun/conformance/probe/report"
)

// probeArgs are what every probe container runs: the state, and the ops
// that prove capabilities, no_new_privs and a read-only root.
var probeArgs = []string{"/probe", "-scratch", "/tmp", "cap.net_raw", "cap.chown", "cap.setuid", "nnp.setuid", "fs.rootfs_write"}

func TestContainerd(t *testing.T) {
	requireSuite(t)
	start := time.Now()
	e := newEnv(t)

	t.Run("ctr/restricted", e.testCtrRestricted)
	t.Run("ctr/baseline-refuses-privileged", e.testCtrRefusal)
	t.Run("cri/restricted-pod", e.testCRIRestricted)
	t.Run("cri/annotations-need-allowlist", e.testCRIAllowlist)
	t.Run("cri/baseline-refuses-privileged", e.testCRIRefusal)
	t.Run("ctr/kill-delete-with-broken-config", e.testCtrBrokenConfig)
	t.Run("secrunctl/uninstall", e.testUninstall)
	t.Logf("suite took %v", time.Since(start).Round(time.Millisecond))
}

// testCtrRestricted runs the probe through containerd's runc shim with
// secrun-restricted as its runc binary: ctr's default container runs as
// root with 14 capabilities; harden must leave NET_BIND_SERVICE only, set
// no_new_privs, a non-root user and a seccomp filter.
func (e *env) testCtrRestricted(t *testing.T) {
	id := "restricted-" + randHex(6)
	r := e.ctr(ctrNamespace, append(append(e.ctrRun("secrun-restricted"), probeRef, id), probeArgs...)...)
	if r.code != 0 {
		t.Fatalf("ctr run through secrun-restricted: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	rep := decodeReport(t, r.stdout)
	t.Logf("inside: uid=%d bounding=%v effective=%v no_new_privs=%d seccomp=%d", rep.UID, rep.Caps.Bounding, rep.Caps.Effective, rep.NoNewPrivs, rep.Seccomp)
	checkRestricted(t, rep, 65534)

	rec := auditRecord(t, e.audit, id)
	if rec["policy"] != "restricted" || rec["decision"] != "hardened" {
		t.Errorf("audit record for %s: policy=%v decision=%v, want restricted/hardened", id, rec["policy"], rec["decision"])
	}
}

// ctrRun starts a `ctr run` whose runc shim runs binary instead of runc:
// what a CRI handler's BinaryName does, without the CRI plugin. The runc
// state and the I/O fifos stay in the test's directory.
func (e *env) ctrRun(binary string) []string {
	return []string{"run", "--rm",
		"--runtime", "io.containerd.runc.v2",
		"--runc-binary", filepath.Join(e.binDir, binary),
		"--runc-root", filepath.Join(e.dir, "runc"),
		"--fifo-dir", filepath.Join(e.dir, "fifo"),
	}
}

// checkRestricted asserts what the restricted policy promises, as the
// kernel reports it and as the probe's attempts show.
func checkRestricted(t *testing.T, rep *report.Report, uid int) {
	t.Helper()
	want := []string{"CAP_NET_BIND_SERVICE"}
	if !slices.Equal(rep.Caps.Bounding, want) {
		t.Errorf("bounding set %v, want %v", rep.Caps.Bounding, want)
	}
	for name, set := range map[string][]string{"effective": rep.Caps.Effective, "permitted": rep.Caps.Permitted, "inheritable": rep.Caps.Inheritable, "ambient": rep.Caps.Ambient} {
		for _, c := range set {
			if c != "CAP_NET_BIND_SERVICE" {
				t.Errorf("%s set holds %s", name, c)
			}
		}
	}
	if rep.NoNewPrivs != 1 {
		t.Errorf("NoNewPrivs = %d, want 1", rep.NoNewPrivs)
	}
	if rep.Seccomp != 2 {
		t.Errorf("seccomp mode %d, want 2 (filter)", rep.Seccomp)
	}
	if rep.UID != uid || rep.EUID != uid {
		t.Errorf("uid %d euid %d, want %d", rep.UID, rep.EUID, uid)
	}
	for _, op := range []string{report.OpCapNetRaw, report.OpCapChown, report.OpCapSetuid} {
		if o := rep.Ops[op]; o.OK || o.Skipped {
			t.Errorf("%s was not denied: %+v", op, o)
		}
	}
	// The setuid-root copy of the probe must not raise the euid: that is
	// no_new_privs at work, not a reading of /proc.
	if o := rep.Ops[report.OpNNPSetuid]; o.OK || o.Skipped || strings.Contains(o.Detail, "euid=0") {
		t.Errorf("nnp.setuid escalated or did not run: %+v", o)
	}
}

// testCtrRefusal asks for a privileged container under baseline (enforce):
// secrun refuses before runc runs, and ctr must print secrun's own line,
// which the runc shim read from runc's --log file.
func (e *env) testCtrRefusal(t *testing.T) {
	id := "privileged-" + randHex(6)
	r := e.ctr(ctrNamespace, append(e.ctrRun("secrun-baseline"), "--privileged", probeRef, id, "/probe")...)
	if r.code == 0 {
		t.Fatalf("privileged container ran under baseline (enforce):\n%s", r.stdout)
	}
	t.Logf("ctr says: %s", strings.TrimSpace(r.stderr))
	want := "secrun: policy baseline (enforce) refused container " + id + ": privileged:"
	if !strings.Contains(r.stderr, want) {
		t.Errorf("ctr output lacks secrun's reason %q:\n%s", want, r.stderr)
	}
	if strings.Contains(r.stderr, "unable to retrieve OCI runtime error") {
		t.Errorf("the shim did not find secrun's error in runc's log:\n%s", r.stderr)
	}
	if rec := auditRecord(t, e.audit, id); rec["decision"] != "refused" {
		t.Errorf("audit decision %v, want refused", rec["decision"])
	}
	// The refused container left nothing running.
	if out := e.ctr(ctrNamespace, "tasks", "ls", "-q").stdout; strings.Contains(out, id) {
		t.Errorf("task %s still listed after the refusal", id)
	}
}

// pod describes one CRI Pod with one probe container.
type pod struct {
	name, handler string
	annotations   map[string]string
	privileged    bool
	// container is the container's securityContext (CRI JSON).
	container map[string]any
}

// testCRIRestricted runs a Pod through the installed secrun-restricted
// handler the way the kubelet would: a sandbox, then a container whose
// securityContext asks for uid 1000 with all capabilities dropped but
// NET_BIND_SERVICE. The Pod's annotation asks for a read-only root, which
// neither the CRI request nor the policy sets: seeing it in force proves
// the annotation passed pod_annotations and reached secrun.
func (e *env) testCRIRestricted(t *testing.T) {
	e.requireCRI(t)
	cid, rep := e.runPod(t, pod{
		name:        "restricted",
		handler:     "secrun-restricted",
		annotations: map[string]string{"secrun.dev/security-context.probe": `{"readOnlyRootFilesystem":true}`},
		container:   restrictedContext(),
	})
	checkRestricted(t, rep, 1000)
	if o := rep.Ops[report.OpFSRootfsWrite]; o.OK || o.Errno != "EROFS" {
		t.Errorf("fs.rootfs_write = %+v, want EROFS: the Pod annotation did not reach secrun", o)
	}
	if rec := auditRecord(t, e.audit, cid); rec["policy"] != "restricted" || rec["decision"] == "refused" {
		t.Errorf("audit record: policy=%v decision=%v", rec["policy"], rec["decision"])
	}
}

// testCRIAllowlist runs the same Pod through a handler that runs the same
// binary without pod_annotations: containerd must drop the annotation, so
// the root stays writable (a non-root write fails with EACCES, not EROFS).
func (e *env) testCRIAllowlist(t *testing.T) {
	e.requireCRI(t)
	_, rep := e.runPod(t, pod{
		name:        "plain",
		handler:     plainHandler,
		annotations: map[string]string{"secrun.dev/security-context.probe": `{"readOnlyRootFilesystem":true}`},
		container:   restrictedContext(),
	})
	checkRestricted(t, rep, 1000)
	if o := rep.Ops[report.OpFSRootfsWrite]; o.Errno == "EROFS" {
		t.Errorf("fs.rootfs_write = %+v: the root is read-only although %s has no annotation allowlist", o, plainHandler)
	}
}

// testCRIRefusal asks for a privileged container in a privileged Pod under
// secrun-baseline: the sandbox is hardened and runs, the container is
// refused, and crictl shows secrun's line.
func (e *env) testCRIRefusal(t *testing.T) {
	e.requireCRI(t)
	podID := e.startPod(t, pod{name: "privileged", handler: "secrun-baseline", privileged: true})
	cid, r := e.createContainer(t, podID, pod{name: "privileged", privileged: true, container: map[string]any{"privileged": true}})
	if r.code != 0 {
		t.Fatalf("crictl create: exit %d\n%s", r.code, r.stderr)
	}
	r = e.cri("start", cid)
	if r.code == 0 {
		t.Fatal("privileged container started under baseline (enforce)")
	}
	t.Logf("crictl says: %s", strings.TrimSpace(r.stderr))
	want := "secrun: policy baseline (enforce) refused container " + cid + ": privileged:"
	if !strings.Contains(r.stderr, want) {
		t.Errorf("crictl output lacks secrun's reason %q:\n%s", want, r.stderr)
	}
}

func restrictedContext() map[string]any {
	return map[string]any{
		"run_as_user":  map[string]any{"value": 1000},
		"run_as_group": map[string]any{"value": 1000},
		"capabilities": map[string]any{"drop_capabilities": []string{"ALL"}, "add_capabilities": []string{"NET_BIND_SERVICE"}},
		"no_new_privs": true,
		"seccomp":      map[string]any{"profile_type": 0}, // RuntimeDefault
	}
}

func (e *env) requireCRI(t *testing.T) {
	t.Helper()
	if e.crictl == "" {
		t.Skip("skipped: " + e.criSkip)
	}
}

// runPod starts p's sandbox and probe container, waits for the probe to
// exit and returns the container's id and the probe's report; cleanup
// removes the Pod.
func (e *env) runPod(t *testing.T, p pod) (string, *report.Report) {
	t.Helper()
	podID := e.startPod(t, p)
	cid, r := e.createContainer(t, podID, p)
	if r.code != 0 {
		t.Fatalf("crictl create: exit %d\n%s", r.code, r.stderr)
	}
	if r := e.cri("start", cid); r.code != 0 {
		t.Fatalf("crictl start: exit %d\n%s", r.code, r.stderr)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := e.cri("inspect", "-o", "go-template", "--template", "{{.status.state}}", cid)
		if strings.TrimSpace(r.stdout) == "CONTAINER_EXITED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s did not exit within 60s: %s%s", cid, r.stdout, r.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	logs := e.cri("logs", cid)
	if logs.code != 0 {
		t.Fatalf("crictl logs: %s", logs.stderr)
	}
	return cid, decodeReport(t, logs.stdout)
}

// startPod runs a Pod sandbox through p.handler and removes it when the
// test ends.
func (e *env) startPod(t *testing.T, p pod) string {
	t.Helper()
	sec := map[string]any{"namespace_options": map[string]any{}}
	if p.privileged {
		sec["privileged"] = true
	}
	cfg := map[string]any{
		"metadata":      map[string]any{"name": p.name, "namespace": "secrun-test", "uid": "uid-" + p.name + "-" + randHex(8), "attempt": 0},
		"hostname":      p.name,
		"log_directory": filepath.Join(e.dir, "pods", p.name),
		"annotations":   p.annotations,
		"linux":         map[string]any{"security_context": sec},
	}
	path := e.writeJSON(t, "pod-"+p.name+".json", cfg)
	r := e.cri("runp", "--runtime", p.handler, path)
	if r.code != 0 {
		t.Fatalf("crictl runp --runtime %s: exit %d\n%s", p.handler, r.code, r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	t.Cleanup(func() {
		e.cri("stopp", id)
		if r := e.cri("rmp", id); r.code != 0 {
			t.Logf("crictl rmp %s: %s", id, r.stderr)
		}
	})
	return id
}

func (e *env) createContainer(t *testing.T, podID string, p pod) (string, result) {
	t.Helper()
	sec := p.container
	if sec == nil {
		sec = map[string]any{}
	}
	cfg := map[string]any{
		"metadata": map[string]any{"name": "probe"},
		"image":    map[string]any{"image": probeRef},
		"command":  probeArgs,
		"log_path": "probe.log",
		"linux":    map[string]any{"security_context": sec},
	}
	// A writable /tmp for the probe's scratch files, as an emptyDir
	// would give: the Pod may have asked for a read-only root.
	scratch := filepath.Join(e.dir, "scratch", p.name)
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(scratch, 0o1777); err != nil {
		t.Fatal(err)
	}
	cfg["mounts"] = []map[string]any{{"container_path": "/tmp", "host_path": scratch}}
	podCfg := filepath.Join(e.dir, "pod-"+p.name+".json")
	path := e.writeJSON(t, "ctr-"+p.name+".json", cfg)
	r := e.cri("create", podID, path, podCfg)
	return strings.TrimSpace(r.stdout), r
}

func (e *env) writeJSON(t *testing.T, name string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	e.write(name, string(b))
	return filepath.Join(e.dir, name)
}

// decodeReport reads the probe's JSON document from a container's output.
func decodeReport(t *testing.T, out string) *report.Report {
	t.Helper()
	var rep report.Report
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &rep); err != nil {
		t.Fatalf("probe output is not a report: %v\n%s", err, out)
	}
	if rep.Version != report.Version {
		t.Fatalf("probe report version %d, want %d", rep.Version, report.Version)
	}
	return &rep
}

// auditRecord is the last create record secrun wrote for container id.
func auditRecord(t *testing.T, path, id string) map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	defer f.Close()
	var last map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("audit line is not JSON: %v: %s", err, sc.Text())
		}
		if rec["container"] == id && (rec["command"] == "create" || rec["command"] == "run") {
			last = rec
		}
	}
	if last == nil {
		t.Fatalf("no audit record for container %s in %s", id, path)
	}
	return last
}

// testCtrBrokenConfig is what a typo in config.yaml must not do: strand
// running containers. A task started through secrun-baseline is killed and
// deleted by containerd's runc shim (secrun-baseline kill, delete) after
// config.yaml became invalid YAML, while a new container is refused with
// secrun's line.
func (e *env) testCtrBrokenConfig(t *testing.T) {
	cfg := filepath.Join(e.dir, "secrun", "config.yaml")
	orig, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer os.WriteFile(cfg, orig, 0o644)
	id := "lifecycle-" + randHex(6)
	// ctr refuses --rm with --detach.
	args := append(slices.DeleteFunc(e.ctrRun("secrun-baseline"), func(a string) bool { return a == "--rm" }), "--detach", pauseRef, id)
	if r := e.ctr(ctrNamespace, args...); r.code != 0 {
		t.Fatalf("ctr run --detach through secrun-baseline: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := os.WriteFile(cfg, []byte("policies: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := e.ctr(ctrNamespace, "tasks", "kill", "--signal", "SIGKILL", id); r.code != 0 {
		t.Fatalf("ctr tasks kill with a broken config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The bound only turns a task that never stops into a failure.
	for i := 0; ; i++ {
		out := e.ctr(ctrNamespace, "tasks", "ls").stdout
		if line := taskLine(out, id); strings.Contains(line, "STOPPED") {
			break
		} else if i == 300 {
			t.Fatalf("task %s did not stop after SIGKILL: %q", id, line)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := e.ctr(ctrNamespace, "tasks", "delete", id); r.code != 0 {
		t.Fatalf("ctr tasks delete with a broken config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := e.ctr(ctrNamespace, "containers", "delete", id); r.code != 0 {
		t.Errorf("ctr containers delete: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if out := e.ctr(ctrNamespace, "tasks", "ls").stdout; taskLine(out, id) != "" {
		t.Errorf("task %s still listed after delete:\n%s", id, out)
	}
	if left, _ := filepath.Glob(filepath.Join(e.dir, "secrun-state", "*", id+".json")); len(left) != 0 {
		t.Errorf("secrun's record outlived the container: %v", left)
	}
	id2 := "lifecycle-new-" + randHex(6)
	r := e.ctr(ctrNamespace, append(e.ctrRun("secrun-baseline"), pauseRef, id2)...)
	if r.code == 0 || !strings.Contains(r.stderr, "not valid YAML") {
		t.Errorf("a new container with a broken config: exit %d, %s", r.code, r.stderr)
	}
	t.Logf("ctr says: %s", strings.TrimSpace(r.stderr))
	e.ctr(ctrNamespace, "containers", "delete", id2)
}

func taskLine(ls, id string) string {
	for _, l := range strings.Split(ls, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == id {
			return l
		}
	}
	return ""
}

// testUninstall takes the handlers out of the configuration containerd
// ran with: the file must be what it was before the install.
func (e *env) testUninstall(t *testing.T) {
	cfg := filepath.Join(e.dir, "containerd.toml")
	r := e.secrunctl("install", "containerd", "--config", cfg, "--uninstall")
	if r.code != 0 {
		t.Fatalf("secrunctl install containerd --uninstall: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != e.baseConfig {
		t.Errorf("after uninstall containerd.toml is\n%s\nwant\n%s", b, e.baseConfig)
	}
	backups, _ := filepath.Glob(cfg + ".secrun-backup-*")
	if len(backups) != 2 {
		t.Errorf("backups %v, want one per change (install, uninstall)", backups)
	}
}
