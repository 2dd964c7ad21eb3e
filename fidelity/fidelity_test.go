package fidelity

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/manifest"
	"github.com/secrun/secrun/spec"
	corev1 "k8s.io/api/core/v1"
)

// node is the node the fixtures are "captured" on: AppArmor, so that
// the AppArmor fields are filled; no SELinux; cgroup v1.
var node = Node{AppArmor: true}

func opts() Options { return Options{Node: node} }

// capture writes dir/<ns>/<pod>/ as the harness would, with translate's
// own output as containerd's (then edit changes it), and returns dir.
func capture(t *testing.T, dir, podYAML string, edit func(container string, s *specs.Spec)) string {
	t.Helper()
	ws, err := manifest.Parse([]byte(podYAML))
	if err != nil {
		t.Fatal(err)
	}
	w := ws[0]
	podDir := filepath.Join(dir, w.Namespace, w.Name)
	if err := os.MkdirAll(podDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(podDir, PodFile), []byte(podYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range podContainers(w.Object.(*corev1.Pod)) {
		bs, err := manifest.Translate(w, translateOptions(w, &specs.Spec{}, opts(), c.Name))
		if err != nil {
			t.Fatalf("translate %s: %v", c.Name, err)
		}
		s := bs[0].Spec
		if edit != nil {
			edit(c.Name, s)
		}
		writeJSON(t, filepath.Join(podDir, c.Name+".json"), s)
	}
	return dir
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, dir string) *Report {
	t.Helper()
	r, err := Run(dir, opts())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const basePod = `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: team
spec:
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    supplementalGroups: [4000]
    sysctls:
    - name: net.ipv4.ip_unprivileged_port_start
      value: "80"
  containers:
  - name: app
    image: app:1
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities:
        drop: [ALL]
        add: [NET_BIND_SERVICE]
      seccompProfile:
        type: RuntimeDefault
`

// TestTranslateAgainstItself: translate's own output as the capture has
// no difference at all, for every conformance case (the comparator sees
// no ghosts).
func TestTranslateAgainstItself(t *testing.T) {
	cases, err := filepath.Glob("../conformance/cases/*.yaml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no conformance cases: %v", err)
	}
	dir := t.TempDir()
	compared := 0
	for _, f := range cases {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ws, err := manifest.Parse(b)
		if err != nil || len(ws) != 1 || ws[0].Kind != "Pod" {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := manifest.Translate(ws[0], translateOptions(ws[0], &specs.Spec{}, opts(), "")); err != nil {
			// A case that translate refuses (root under runAsNonRoot)
			// never reaches containerd either.
			t.Logf("%s: refused by translate: %v", filepath.Base(f), err)
			continue
		}
		capture(t, dir, string(b), nil)
		compared++
	}
	if compared < len(cases)/2 {
		t.Fatalf("only %d of %d cases translated", compared, len(cases))
	}
	r := run(t, dir)
	if r.Unexplained != 0 || r.Explained != 0 {
		t.Fatalf("identical specs gave differences: %+v", r)
	}
	if len(r.Containers) < compared {
		t.Fatalf("%d containers compared for %d Pods", len(r.Containers), compared)
	}
}

// TestEditsReported: every deliberate change to a security field of the
// capture is reported, unexplained, on that field and only there.
func TestEditsReported(t *testing.T) {
	ptr := func(v uint) *uint { return &v }
	edits := []struct {
		field string
		edit  func(s *specs.Spec)
	}{
		{"process.user.uid", func(s *specs.Spec) { s.Process.User.UID = 0 }},
		{"process.user.gid", func(s *specs.Spec) { s.Process.User.GID = 0 }},
		{"process.user.additionalGids", func(s *specs.Spec) { s.Process.User.AdditionalGids = append(s.Process.User.AdditionalGids, 1000) }},
		{"process.capabilities.bounding", func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")
		}},
		{"process.capabilities.effective", func(s *specs.Spec) { s.Process.Capabilities.Effective = nil }},
		{"process.capabilities.inheritable", func(s *specs.Spec) { s.Process.Capabilities.Inheritable = []string{"CAP_NET_BIND_SERVICE"} }},
		{"process.capabilities.permitted", func(s *specs.Spec) {
			s.Process.Capabilities.Permitted = append(s.Process.Capabilities.Permitted, "CAP_CHOWN")
		}},
		{"process.capabilities.ambient", func(s *specs.Spec) { s.Process.Capabilities.Ambient = []string{"CAP_NET_BIND_SERVICE"} }},
		{"process.noNewPrivileges", func(s *specs.Spec) { s.Process.NoNewPrivileges = false }},
		{"root.readonly", func(s *specs.Spec) { s.Root.Readonly = false }},
		{"linux.sysctl", func(s *specs.Spec) { s.Linux.Sysctl["kernel.shm_rmid_forced"] = "1" }},
		{"linux.seccomp", func(s *specs.Spec) { s.Linux.Seccomp = nil }},
		{"linux.seccomp.defaultAction", func(s *specs.Spec) { s.Linux.Seccomp.DefaultAction = specs.ActLog }},
		{"linux.seccomp.defaultErrnoRet", func(s *specs.Spec) { s.Linux.Seccomp.DefaultErrnoRet = ptr(38) }},
		{"linux.seccomp.architectures", func(s *specs.Spec) { s.Linux.Seccomp.Architectures = s.Linux.Seccomp.Architectures[1:] }},
		{"linux.seccomp.syscalls", func(s *specs.Spec) {
			s.Linux.Seccomp.Syscalls = append(s.Linux.Seccomp.Syscalls, specs.LinuxSyscall{Names: []string{"kexec_load"}, Action: specs.ActAllow})
		}},
		{"process.apparmorProfile", func(s *specs.Spec) { s.Process.ApparmorProfile = "unconfined" }},
		{"process.selinuxLabel", func(s *specs.Spec) { s.Process.SelinuxLabel = "system_u:system_r:spc_t:s0" }},
		{"linux.mountLabel", func(s *specs.Spec) { s.Linux.MountLabel = "system_u:object_r:container_file_t:s0" }},
		{"linux.maskedPaths", func(s *specs.Spec) { s.Linux.MaskedPaths = s.Linux.MaskedPaths[1:] }},
		{"linux.readonlyPaths", func(s *specs.Spec) { s.Linux.ReadonlyPaths = append(s.Linux.ReadonlyPaths, "/proc/kmsg") }},
		{"linux.namespaces[network]", func(s *specs.Spec) {
			s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace })
		}},
		{"linux.namespaces[pid]", func(s *specs.Spec) {
			for i := range s.Linux.Namespaces {
				if s.Linux.Namespaces[i].Type == specs.PIDNamespace {
					s.Linux.Namespaces[i].Path = "/proc/1/ns/pid"
				}
			}
		}},
		{"linux.namespaces[cgroup]", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
		}},
	}
	for _, e := range edits {
		t.Run(e.field, func(t *testing.T) {
			dir := capture(t, t.TempDir(), basePod, func(_ string, s *specs.Spec) { e.edit(s) })
			r := run(t, dir)
			if r.Unexplained != 1 || r.Explained != 0 {
				t.Fatalf("want one unexplained difference, got %d unexplained, %d explained: %+v", r.Unexplained, r.Explained, r.Containers)
			}
			if d := r.Containers[0].Differences[0]; d.Field != e.field {
				t.Fatalf("difference on %s, want %s: %+v", d.Field, e.field, d)
			}
		})
	}
}

// TestSeccompRulesNormalised: the same filter grouped differently is
// the same filter.
func TestSeccompRulesNormalised(t *testing.T) {
	dir := capture(t, t.TempDir(), basePod, func(_ string, s *specs.Spec) {
		var split []specs.LinuxSyscall
		for _, r := range s.Linux.Seccomp.Syscalls {
			for _, n := range r.Names {
				c := r
				c.Names = []string{n}
				split = append(split, c)
			}
		}
		slices.Reverse(split)
		s.Linux.Seccomp.Syscalls = split
	})
	if r := run(t, dir); r.Unexplained+r.Explained != 0 {
		t.Fatalf("regrouped rules reported: %+v", r.Containers)
	}
}

const privilegedPod = `apiVersion: v1
kind: Pod
metadata:
  name: priv
spec:
  hostNetwork: true
  hostPID: true
  containers:
  - name: tool
    image: tool:1
    securityContext:
      privileged: true
    volumeMounts:
    - name: data
      mountPath: /data
  volumes:
  - name: data
    emptyDir: {}
`

// TestExplanations pins each entry of Explanations: the difference it
// describes is explained by it alone, and a near miss is not.
func TestExplanations(t *testing.T) {
	joinHost := func(types ...specs.LinuxNamespaceType) func(string, *specs.Spec) {
		return func(_ string, s *specs.Spec) {
			for _, typ := range types {
				s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: typ, Path: "/proc/42/ns/" + string(typ)})
			}
		}
	}
	kubeletMounts := func(_ string, s *specs.Spec) {
		s.Mounts = slices.DeleteFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/dev/shm" })
		for _, d := range []string{"/etc/hosts", "/dev/termination-log", "/etc/hostname", "/etc/resolv.conf", "/dev/shm", "/data"} {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: d, Type: "bind", Source: "/var/lib/kubelet/x" + d, Options: []string{"rbind", "rprivate", "rw"}})
		}
	}
	cases := []struct {
		id, pod     string
		edit        func(string, *specs.Spec)
		sandbox     *specs.Spec
		explained   int
		unexplained int
	}{
		{id: "apparmor-default-name", pod: basePod, edit: func(_ string, s *specs.Spec) { s.Process.ApparmorProfile = "cri-containerd.apparmor.d" }, explained: 1},
		{id: "apparmor-default-name (other name)", pod: basePod, edit: func(_ string, s *specs.Spec) { s.Process.ApparmorProfile = "docker-default" }, unexplained: 1},
		{id: "host-namespace-through-sandbox", pod: privilegedPod, edit: joinHost(specs.NetworkNamespace, specs.UTSNamespace, specs.PIDNamespace), explained: 3},
		{id: "host-namespace-through-sandbox (not a host namespace)", pod: privilegedPod, edit: joinHost(specs.CgroupNamespace), unexplained: 1},
		{id: "sysctls-on-sandbox", pod: basePod, edit: func(_ string, s *specs.Spec) { s.Linux.Sysctl = nil }, explained: 1},
		{id: "sysctls-on-sandbox (sandbox has them)", pod: basePod, edit: func(_ string, s *specs.Spec) { s.Linux.Sysctl = nil },
			sandbox: &specs.Spec{Linux: &specs.Linux{Sysctl: map[string]string{"net.ipv4.ip_unprivileged_port_start": "80"}}}, explained: 1},
		{id: "sysctls-on-sandbox (sandbox lacks them)", pod: basePod, edit: func(_ string, s *specs.Spec) { s.Linux.Sysctl = nil },
			sandbox: &specs.Spec{Linux: &specs.Linux{Sysctl: map[string]string{"net.ipv4.ip_unprivileged_port_start": "1024"}}}, unexplained: 1},
		{id: "kubelet-mounts", pod: privilegedPod, edit: kubeletMounts, explained: 1},
		{id: "kubelet-mounts (a mount the kubelet does not make)", pod: privilegedPod, edit: func(n string, s *specs.Spec) {
			kubeletMounts(n, s)
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/host", Type: "bind", Source: "/", Options: []string{"rbind"}})
		}, explained: 1, unexplained: 1},
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			dir := capture(t, t.TempDir(), c.pod, c.edit)
			if c.sandbox != nil {
				ws, _ := manifest.Parse([]byte(c.pod))
				writeJSON(t, filepath.Join(dir, ws[0].Namespace, ws[0].Name, SandboxFile), c.sandbox)
			}
			r := run(t, dir)
			if r.Explained != c.explained || r.Unexplained != c.unexplained {
				t.Fatalf("got %d explained, %d unexplained; want %d, %d: %+v", r.Explained, r.Unexplained, c.explained, c.unexplained, r.Containers)
			}
			id, _, _ := strings.Cut(c.id, " ")
			for _, d := range r.Containers[0].Differences {
				if d.Explained() && d.Explanation != id {
					t.Errorf("explained by %s, want %s: %+v", d.Explanation, id, d)
				}
			}
		})
	}
	// Every entry has a pinning case above.
	for _, e := range Explanations {
		if !slices.ContainsFunc(cases, func(c struct {
			id, pod     string
			edit        func(string, *specs.Spec)
			sandbox     *specs.Spec
			explained   int
			unexplained int
		}) bool {
			return c.id == e.ID
		}) {
			t.Errorf("explanation %s has no test case", e.ID)
		}
		if e.Reason == "" || e.Source == "" || e.Summary == "" {
			t.Errorf("explanation %s lacks a reason, summary or source", e.ID)
		}
	}
}

// TestSELinuxPerPodPair: containerd's random pair compares as a pair,
// and a container off its sandbox's pair is reported.
func TestSELinuxPerPodPair(t *testing.T) {
	label := func(level string) func(string, *specs.Spec) {
		return func(_ string, s *specs.Spec) {
			s.Process.SelinuxLabel = "system_u:system_r:container_t:" + level
		}
	}
	if got, want := selinuxShape("system_u:system_r:container_t:s0:c1,c2"), selinuxShape("system_u:system_r:container_t:s0:c7,c900"); got != want {
		t.Fatalf("two pairs differ after masking: %s vs %s", got, want)
	}
	dir := capture(t, t.TempDir(), basePod, label("s0:c1,c2"))
	writeJSON(t, filepath.Join(dir, "team", "web", SandboxFile), &specs.Spec{Process: &specs.Process{SelinuxLabel: "system_u:system_r:container_t:s0:c3,c4"}})
	r := run(t, dir)
	var fields []string
	for _, d := range r.Containers[0].Differences {
		fields = append(fields, d.Field)
	}
	if !slices.Contains(fields, "process.selinuxLabel (level shared with the sandbox)") {
		t.Fatalf("a container off its sandbox's pair was not reported: %v", fields)
	}
}

// TestCaptureProblems: a capture for a container the Pod lacks, an
// unreadable capture and a container without capture are all visible.
func TestCaptureProblems(t *testing.T) {
	dir := capture(t, t.TempDir(), basePod, nil)
	podDir := filepath.Join(dir, "team", "web")
	if err := os.WriteFile(filepath.Join(podDir, "ghost.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, dir)
	if r.Unexplained != 1 || !strings.Contains(r.Containers[len(r.Containers)-1].Error, `no container "ghost"`) {
		t.Fatalf("stray capture not reported: %+v", r.Containers)
	}
	if err := os.WriteFile(filepath.Join(podDir, "app.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(podDir, "ghost.json"))
	r = run(t, dir)
	if r.Unexplained != 1 || !strings.Contains(r.Containers[0].Error, "not an OCI config.json") {
		t.Fatalf("broken capture not reported: %+v", r.Containers)
	}
	os.Remove(filepath.Join(podDir, "app.json"))
	r = run(t, dir)
	if !slices.Equal(r.NotCaptured, []string{"team/web/app"}) {
		t.Fatalf("missing capture not listed: %+v", r)
	}
	if _, err := Run(t.TempDir(), opts()); err == nil {
		t.Fatal("an empty directory passed")
	}
}

// TestDocsUpToDate keeps docs/translate-fidelity.md rendered from the
// table.
func TestDocsUpToDate(t *testing.T) {
	const doc = "../docs/translate-fidelity.md"
	got, err := os.ReadFile(doc)
	if os.Getenv("SECRUN_UPDATE_DOCS") != "" {
		if err := os.WriteFile(doc, []byte(RenderMarkdown()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != RenderMarkdown() {
		t.Fatalf("%s is stale; regenerate with SECRUN_UPDATE_DOCS=1 go test ./fidelity -run TestDocsUpToDate", doc)
	}
}

var _ = spec.DefaultAppArmorProfile

// TestSELinuxNode: on an SELinux node containerd's labels, with their
// own random pair, compare equal to translate's.
func TestSELinuxNode(t *testing.T) {
	o := Options{Node: Node{SELinux: true}}
	dir := t.TempDir()
	ws, _ := manifest.Parse([]byte(basePod))
	podDir := filepath.Join(dir, "team", "web")
	if err := os.MkdirAll(podDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(podDir, PodFile), []byte(basePod), 0o644); err != nil {
		t.Fatal(err)
	}
	bs, err := manifest.Translate(ws[0], translateOptions(ws[0], &specs.Spec{}, o, "app"))
	if err != nil {
		t.Fatal(err)
	}
	s := bs[0].Spec
	s.Process.SelinuxLabel = "system_u:system_r:container_t:s0:c111,c222"
	s.Linux.MountLabel = "system_u:object_r:container_file_t:s0:c111,c222"
	writeJSON(t, filepath.Join(podDir, "app.json"), s)
	writeJSON(t, filepath.Join(podDir, SandboxFile), &specs.Spec{Process: &specs.Process{SelinuxLabel: "system_u:system_r:container_t:s0:c111,c222"}})
	r, err := Run(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Unexplained+r.Explained != 0 {
		t.Fatalf("differences: %+v", r.Containers)
	}
	// containerd's container_t with translate's spc_t is a difference.
	s.Process.SelinuxLabel = "system_u:system_r:spc_t:s0:c111,c222"
	writeJSON(t, filepath.Join(podDir, "app.json"), s)
	if r, _ = Run(dir, o); r.Unexplained != 1 {
		t.Fatalf("type change not reported: %+v", r.Containers)
	}
}

// TestEphemeralTarget: an ephemeral container is compared like the
// others, and its target's PID namespace is joined as containerd joins it.
func TestEphemeralTarget(t *testing.T) {
	pod := `apiVersion: v1
kind: Pod
metadata: {name: dbg, namespace: team}
spec:
  containers:
  - {name: app, image: x}
  ephemeralContainers:
  - {name: debugger, image: busybox, targetContainerName: app, securityContext: {capabilities: {add: [SYS_PTRACE]}}}
`
	dir := capture(t, t.TempDir(), pod, nil)
	r := run(t, dir)
	if len(r.Containers) != 2 || r.Containers[1].Container != "debugger" || r.Unexplained+r.Explained != 0 {
		t.Fatalf("report %+v", r)
	}
	// A capture whose debugger has a PID namespace of its own is off.
	dir = capture(t, t.TempDir(), pod, func(name string, s *specs.Spec) {
		for i := range s.Linux.Namespaces {
			if name == "debugger" && s.Linux.Namespaces[i].Type == specs.PIDNamespace {
				s.Linux.Namespaces[i].Path = ""
			}
		}
	})
	if r := run(t, dir); r.Unexplained != 1 || r.Containers[1].Differences[0].Field != "linux.namespaces[pid]" {
		t.Fatalf("report %+v", r.Containers)
	}
}
