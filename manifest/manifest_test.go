package manifest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/secrun/secrun/spec/spectest"

	"github.com/secrun/secrun/kubespec"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

const podYAML = `apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  containers:
  - name: c
    image: busybox
`

func TestParseKinds(t *testing.T) {
	tmpl := `  template:
    metadata:
      annotations: {a: b}
    spec:
      containers:
      - name: c
        image: busybox
`
	tests := []struct {
		name, doc           string
		kind, podPath, meta string
		namespace           string
		objectIs            func(any) bool
	}{
		{name: "Pod", doc: podYAML, kind: "Pod", podPath: "spec", meta: "metadata", namespace: "default",
			objectIs: func(o any) bool { _, ok := o.(*corev1.Pod); return ok }},
		{name: "Deployment", doc: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: prod}\nspec:\n  selector: {}\n" + tmpl,
			kind: "Deployment", podPath: "spec.template.spec", meta: "spec.template.metadata", namespace: "prod",
			objectIs: func(o any) bool { _, ok := o.(*appsv1.Deployment); return ok }},
		{name: "StatefulSet", doc: "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: d}\nspec:\n" + tmpl,
			kind: "StatefulSet", podPath: "spec.template.spec", meta: "spec.template.metadata", namespace: "default"},
		{name: "DaemonSet", doc: "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d}\nspec:\n" + tmpl,
			kind: "DaemonSet", podPath: "spec.template.spec", meta: "spec.template.metadata", namespace: "default"},
		{name: "ReplicaSet", doc: "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: d}\nspec:\n" + tmpl,
			kind: "ReplicaSet", podPath: "spec.template.spec", meta: "spec.template.metadata", namespace: "default"},
		{name: "Job", doc: "apiVersion: batch/v1\nkind: Job\nmetadata: {name: d}\nspec:\n" + tmpl,
			kind: "Job", podPath: "spec.template.spec", meta: "spec.template.metadata", namespace: "default",
			objectIs: func(o any) bool { _, ok := o.(*batchv1.Job); return ok }},
		{name: "CronJob", doc: "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: d}\nspec:\n  schedule: '* * * * *'\n  jobTemplate:\n    spec:\n" + indent(tmpl, "    "),
			kind: "CronJob", podPath: "spec.jobTemplate.spec.template.spec", meta: "spec.jobTemplate.spec.template.metadata", namespace: "default"},
		{name: "ReplicationController", doc: "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: d}\nspec:\n" + tmpl,
			kind: "ReplicationController", podPath: "spec.template.spec", meta: "spec.template.metadata", namespace: "default"},
		{name: "PodTemplate", doc: "apiVersion: v1\nkind: PodTemplate\nmetadata: {name: d}\n" + strings.TrimPrefix(strings.ReplaceAll(tmpl, "\n  ", "\n"), "  "),
			kind: "PodTemplate", podPath: "template.spec", meta: "template.metadata", namespace: "default"},
		{name: "JSON", doc: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"x"}]}}`,
			kind: "Pod", podPath: "spec", meta: "metadata", namespace: "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, err := Parse([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if len(ws) != 1 {
				t.Fatalf("%d workloads", len(ws))
			}
			w := ws[0]
			if w.Kind != tt.kind || w.PodPath != tt.podPath || w.MetaPath != tt.meta || w.Namespace != tt.namespace || w.Document != 1 {
				t.Fatalf("workload %+v", w)
			}
			if len(w.PodSpec.Containers) != 1 || w.PodSpec.Containers[0].Name != "c" {
				t.Fatalf("pod spec %+v", w.PodSpec)
			}
			if tt.objectIs != nil && !tt.objectIs(w.Object) {
				t.Fatalf("object %T", w.Object)
			}
			if tt.meta != "metadata" && w.PodMeta.Annotations["a"] != "b" {
				t.Fatalf("pod template annotations %v", w.PodMeta.Annotations)
			}
		})
	}
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestParseStreams(t *testing.T) {
	doc := "---\n# leading comment\n---\n" + podYAML + "---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {}\n---\n" +
		strings.Replace(podYAML, "name: p", "name: q", 1) + "---\n# only a comment\n"
	ws, skipped, err := ParseAll([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2 || ws[0].Name != "p" || ws[1].Name != "q" || ws[0].Document != 1 || ws[1].Document != 3 {
		t.Fatalf("workloads %v", ws)
	}
	if len(skipped) != 1 || skipped[0].Kind != "Service" || skipped[0].Document != 2 {
		t.Fatalf("skipped %+v", skipped)
	}
	if ws[0].String() != "Pod/p" {
		t.Fatalf("String() = %q", ws[0].String())
	}

	list := `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a}
  spec: {containers: [{name: c, image: x}]}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: b}
  spec: {selector: {}, template: {spec: {containers: [{name: c, image: x, securityContext: {runAsUer: 1}}]}}}
`
	_, err = Parse([]byte(list))
	if err == nil || !strings.Contains(err.Error(), "items[1].spec.template.spec.containers[0].securityContext.runAsUer: unknown field; did you mean runAsUser?") {
		t.Fatalf("List with a typo: %v", err)
	}
	ws, err = Parse([]byte(strings.Replace(list, "runAsUer", "runAsUser", 1)))
	if err != nil || len(ws) != 2 || ws[1].PodPath != "items[1].spec.template.spec" {
		t.Fatalf("List: %v %+v", err, ws)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, doc string
		errHas    []string
	}{
		{name: "misspelt field in a container", doc: strings.Replace(podYAML, "    image: busybox\n", "    image: busybox\n    securityContext:\n      runAsUer: 1000\n", 1),
			errHas: []string{"document 1 (Pod p): spec.containers[0].securityContext.runAsUer: unknown field; did you mean runAsUser?"}},
		{name: "field names are case-sensitive", doc: strings.Replace(podYAML, "    image: busybox\n", "    image: busybox\n    securityContext:\n      RunAsUser: 1000\n", 1),
			errHas: []string{"securityContext.RunAsUser: unknown field; did you mean runAsUser?"}},
		{name: "misspelt nested field", doc: strings.Replace(podYAML, "    image: busybox\n", "    image: busybox\n    securityContext:\n      capabilities: {ad: [NET_ADMIN]}\n", 1),
			errHas: []string{"spec.containers[0].securityContext.capabilities.ad: unknown field; did you mean add?"}},
		{name: "misspelt top-level field", doc: strings.Replace(podYAML, "spec:", "sepc:", 1),
			errHas: []string{"sepc: unknown field; did you mean spec?"}},
		{name: "misspelt metadata field", doc: strings.Replace(podYAML, "  name: p", "  name: p\n  namspace: x", 1),
			errHas: []string{"metadata.namspace: unknown field; did you mean namespace?"}},
		{name: "a field with no near spelling", doc: strings.Replace(podYAML, "spec:", "zzz: 1\nspec:", 1),
			errHas: []string{"zzz: unknown field"}},
		{name: "all unknown fields at once", doc: strings.Replace(podYAML, "    image: busybox\n", "    image: busybox\n    imagePullPolcy: Always\n    tyy: true\n", 1),
			errHas: []string{"imagePullPolcy: unknown field; did you mean imagePullPolicy?", "tyy: unknown field; did you mean tty?"}},
		{name: "duplicate key", doc: strings.Replace(podYAML, "  name: p", "  name: p\n  name: q", 1),
			errHas: []string{"not valid YAML", `"name" already set`}},
		{name: "wrong type", doc: strings.Replace(podYAML, "    image: busybox\n", "    image: busybox\n    securityContext:\n      runAsUser: root\n", 1),
			errHas: []string{"spec.containers.securityContext.runAsUser: expected an integer, got a string"}},
		{name: "unquoted sysctl value", doc: strings.Replace(podYAML, "spec:\n", "spec:\n  securityContext:\n    sysctls:\n    - name: kernel.shm_rmid_forced\n      value: 0\n", 1),
			errHas: []string{"spec.securityContext.sysctls.value: expected a string, got a number; quote the value"}},
		{name: "YAML reads off as a boolean", doc: strings.Replace(podYAML, "    image: busybox\n", "    image: busybox\n    securityContext:\n      procMount: off\n", 1),
			errHas: []string{"spec.containers.securityContext.procMount: expected a string, got a bool; quote the value"}},
		{name: "kind typo", doc: strings.Replace(podYAML, "kind: Pod", "kind: Deploymnet", 1),
			errHas: []string{`kind "Deploymnet" is unknown; did you mean Deployment?`}},
		{name: "old apiVersion", doc: "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n",
			errHas: []string{`apiVersion "extensions/v1beta1" does not serve Deployment; use apiVersion: apps/v1`}},
		{name: "no kind", doc: "apiVersion: v1\nmetadata: {name: x}\n", errHas: []string{"kind is missing"}},
		{name: "not a mapping", doc: "- a\n- b\n", errHas: []string{"not a Kubernetes object"}},
		{name: "second document broken, first fine", doc: podYAML + "---\nkind: Pod\napiVersion: v1\nspec: {containerz: []}\n",
			errHas: []string{"document 2 (Pod): spec.containerz: unknown field; did you mean containers?"}},
		{name: "YAML syntax", doc: "apiVersion: v1\nkind: Pod\nspec: [\n", errHas: []string{"document 1: not valid YAML"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("no error; workloads %v", ws)
			}
			for _, want := range tt.errHas {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error\n%v\nlacks %q", err, want)
				}
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	_, err := Parse(make([]byte, MaxManifestSize+1))
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("err = %v", err)
	}
}

func TestSkippedUnknownKind(t *testing.T) {
	ws, skipped, err := ParseAll([]byte("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {anything: 1}\n"))
	if err != nil || len(ws) != 0 || len(skipped) != 1 || skipped[0].Kind != "Widget" {
		t.Fatalf("ws %v skipped %v err %v", ws, skipped, err)
	}
	if len(WorkloadKinds()) != 9 {
		t.Fatalf("WorkloadKinds %v", WorkloadKinds())
	}
}

func parseOne(t *testing.T, doc string) *Workload {
	t.Helper()
	ws, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 {
		t.Fatalf("%d workloads", len(ws))
	}
	return ws[0]
}

func TestTranslateContainers(t *testing.T) {
	w := parseOne(t, `apiVersion: v1
kind: Pod
metadata:
  name: multi
  annotations:
    secrun.dev/security-context.app: '{"runAsUser": 1000}'
    other: x
spec:
  initContainers:
  - name: init
    image: i
  containers:
  - name: app
    image: a
    command: [/app]
    args: [--port, "$(PORT)", "$$(PORT)", "$(MISSING)"]
    env:
    - {name: PORT, value: "8080"}
    - {name: URL, value: "http://localhost:$(PORT)/"}
    - name: SECRET
      valueFrom: {secretKeyRef: {name: s, key: k}}
    - name: SA
      valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}
    envFrom:
    - configMapRef: {name: cm}
  - name: sidecar
    image: s
    args: [--verbose]
`)
	bs, err := Translate(w, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names, paths []string
	for _, b := range bs {
		names = append(names, b.Name)
		paths = append(paths, b.Path)
	}
	if !slices.Equal(names, []string{"init", "app", "sidecar"}) || !slices.Equal(paths, []string{"spec.initContainers[0]", "spec.containers[0]", "spec.containers[1]"}) {
		t.Fatalf("bundles %v %v", names, paths)
	}
	if !bs[0].Init || bs[1].Init || bs[2].Index != 1 {
		t.Fatalf("init/index: %+v %+v %+v", bs[0].Init, bs[1].Init, bs[2].Index)
	}
	if got := bs[0].Spec.Process.Args; !slices.Equal(got, kubespec.DefaultArgs) {
		t.Errorf("no command, no args: %q, want the placeholder %q", got, kubespec.DefaultArgs)
	}
	app := bs[1].Spec
	if got, want := app.Process.Args, []string{"/app", "--port", "8080", "$(PORT)", "$(MISSING)"}; !slices.Equal(got, want) {
		t.Errorf("args %q, want %q", got, want)
	}
	wantEnv := []string{kubespec.DefaultPath, "HOSTNAME=multi", "PORT=8080", "URL=http://localhost:8080/", "SA=default"}
	if !slices.Equal(app.Process.Env, wantEnv) {
		t.Errorf("env %q, want %q", app.Process.Env, wantEnv)
	}
	for _, want := range []string{"spec.containers[0].envFrom: left out", "spec.containers[0].env[2] (SECRET): left out"} {
		if !slices.ContainsFunc(bs[1].Warnings, func(w string) bool { return strings.Contains(w, want) }) {
			t.Errorf("warnings %q lack %q", bs[1].Warnings, want)
		}
	}
	if !slices.ContainsFunc(bs[2].Warnings, func(w string) bool { return strings.Contains(w, "no command, so args run as the whole command line") }) {
		t.Errorf("sidecar warnings %q", bs[2].Warnings)
	}
	wantAnn := map[string]string{
		AnnotationContainerType: "container", AnnotationContainerName: "app", AnnotationSandboxName: "multi",
		AnnotationSandboxNamespace: "default", AnnotationImageName: "a",
		"secrun.dev/security-context.app": `{"runAsUser": 1000}`,
	}
	if len(app.Annotations) != len(wantAnn) {
		t.Errorf("annotations %v", app.Annotations)
	}
	for k, v := range wantAnn {
		if app.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, app.Annotations[k], v)
		}
	}

	only, err := Translate(w, Options{Containers: []string{"sidecar"}})
	if err != nil || len(only) != 1 || only[0].Name != "sidecar" || only[0].Path != "spec.containers[1]" {
		t.Fatalf("filter: %v %+v", err, only)
	}
	_, err = Translate(w, Options{Containers: []string{"sidecr"}})
	if err == nil || !strings.Contains(err.Error(), `Pod/multi has no container "sidecr"; did you mean sidecar?`) {
		t.Fatalf("filter typo: %v", err)
	}
}

func TestTranslateErrorsKeepTheGoodBundles(t *testing.T) {
	w := parseOne(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {}
  template:
    spec:
      containers:
      - name: good
        image: g
      - name: bad
        image: b
        securityContext:
          capabilities: {add: [NET_ADMN]}
          allowPrivilegeEscalation: false
          privileged: true
`)
	bs, err := Translate(w, Options{})
	if len(bs) != 1 || bs[0].Name != "good" {
		t.Fatalf("bundles %+v", bs)
	}
	for _, want := range []string{
		"Deployment/d: spec.template.spec.containers[1].securityContext.capabilities.add[0]: unknown capability NET_ADMN: did you mean NET_ADMIN?",
		"spec.template.spec.containers[1].securityContext.allowPrivilegeEscalation: false cannot be combined with privileged: true",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error\n%v\nlacks %q", err, want)
		}
	}
}

func TestTranslatePodLevel(t *testing.T) {
	tests := []struct {
		name   string
		doc    string
		opts   Options
		errHas string
		check  func(t *testing.T, b ContainerBundle)
	}{
		{name: "hostUsers false gets a user namespace and may unmask /proc",
			doc: "spec:\n  hostUsers: false\n  containers:\n  - name: c\n    image: x\n    securityContext: {procMount: Unmasked}\n",
			check: func(t *testing.T, b ContainerBundle) {
				s := b.Spec
				if !spec.HasNamespace(s, specs.UserNamespace) || len(s.Linux.UIDMappings) != 1 || s.Linux.UIDMappings[0].HostID != 65536 {
					t.Errorf("namespaces %+v maps %+v", s.Linux.Namespaces, s.Linux.UIDMappings)
				}
				if len(s.Linux.MaskedPaths) != 0 {
					t.Errorf("masked %v", s.Linux.MaskedPaths)
				}
			}},
		{name: "hostUsers false with a mapping of the caller's",
			doc:  "spec:\n  hostUsers: false\n  containers:\n  - {name: c, image: x}\n",
			opts: Options{UserNamespace: &kubespec.UserNamespaceConfig{UIDMappings: []specs.LinuxIDMapping{{HostID: 200000, Size: 65536}}, GIDMappings: []specs.LinuxIDMapping{{HostID: 200000, Size: 65536}}}},
			check: func(t *testing.T, b ContainerBundle) {
				if b.Spec.Linux.GIDMappings[0].HostID != 200000 {
					t.Errorf("maps %+v", b.Spec.Linux.GIDMappings)
				}
			}},
		{name: "procMount Unmasked without hostUsers false",
			doc:    "spec:\n  containers:\n  - name: c\n    image: x\n    securityContext: {procMount: Unmasked}\n",
			errHas: "spec.containers[0].securityContext.procMount: Unmasked needs a user namespace"},
		{name: "hostUsers false with hostNetwork",
			doc:    "spec:\n  hostUsers: false\n  hostNetwork: true\n  containers:\n  - {name: c, image: x}\n",
			errHas: "spec.hostUsers: false cannot be combined with hostNetwork"},
		{name: "Windows Pods are refused",
			doc:    "spec:\n  os: {name: windows}\n  containers:\n  - {name: c, image: x}\n",
			errHas: "spec.os.name: windows"},
		{name: "hostname from spec.hostname, cut to 63",
			doc: "spec:\n  hostname: " + strings.Repeat("h", 70) + "\n  containers:\n  - {name: c, image: x}\n",
			check: func(t *testing.T, b ContainerBundle) {
				if b.Spec.Hostname != strings.Repeat("h", 63) {
					t.Errorf("hostname %q", b.Spec.Hostname)
				}
			}},
		{name: "hostPID, hostIPC", doc: "spec:\n  hostPID: true\n  hostIPC: true\n  containers:\n  - {name: c, image: x}\n",
			check: func(t *testing.T, b ContainerBundle) {
				if spec.HasNamespace(b.Spec, specs.PIDNamespace) || spec.HasNamespace(b.Spec, specs.IPCNamespace) {
					t.Errorf("namespaces %+v", b.Spec.Linux.Namespaces)
				}
			}},
		{name: "sandbox namespace paths", doc: "spec:\n  containers:\n  - {name: c, image: x}\n",
			opts: Options{NamespacePaths: map[specs.LinuxNamespaceType]string{specs.NetworkNamespace: "/proc/7/ns/net"}, CgroupNamespace: true},
			check: func(t *testing.T, b ContainerBundle) {
				if !slices.Contains(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/7/ns/net"}) || !spec.HasNamespace(b.Spec, specs.CgroupNamespace) {
					t.Errorf("namespaces %+v", b.Spec.Linux.Namespaces)
				}
			}},
		{name: "per-container image user", doc: "spec:\n  containers:\n  - {name: c, image: x}\n",
			opts: Options{ImageUser: "0", ImageUsers: map[string]string{"c": "4242"}},
			check: func(t *testing.T, b ContainerBundle) {
				if b.Spec.Process.User.UID != 4242 {
					t.Errorf("uid %d", b.Spec.Process.User.UID)
				}
			}},
		{name: "a named image user without the image's files",
			doc: "spec:\n  containers:\n  - {name: c, image: x}\n", opts: Options{ImageUser: "nginx"},
			errHas: `spec.containers[0]: image USER "nginx"`},
		{name: "a named image user resolved in the image rootfs",
			doc: "spec:\n  containers:\n  - {name: c, image: x}\n", opts: Options{ImageUser: "app"},
			check: func(t *testing.T, b ContainerBundle) {
				if u := b.Spec.Process.User; u.UID != 1001 || u.GID != 1001 || !slices.Equal(u.AdditionalGids, []uint32{1001, 2001}) {
					t.Errorf("user %+v", u)
				}
			}},
		{name: "legacy AppArmor annotation on a node without AppArmor",
			doc:    "metadata:\n  annotations:\n    container.apparmor.security.beta.kubernetes.io/c: localhost/k8s-x\nspec:\n  containers:\n  - {name: c, image: x}\n",
			errHas: `metadata.annotations["container.apparmor.security.beta.kubernetes.io/c"]: appArmorProfile Localhost "k8s-x": AppArmor is not enabled`},
		{name: "legacy seccomp annotation, Kubernetes 1.26", opts: Options{KubernetesVersion: "1.26"}, doc: "metadata:\n  annotations:\n    seccomp.security.alpha.kubernetes.io/pod: localhost/deny-chmod.json\nspec:\n  containers:\n  - {name: c, image: x}\n",
			check: func(t *testing.T, b ContainerBundle) {
				if b.Spec.Linux.Seccomp == nil || b.Spec.Linux.Seccomp.DefaultAction != specs.ActAllow {
					t.Errorf("seccomp %+v", b.Spec.Linux.Seccomp)
				}
			}},
		{name: "legacy seccomp annotation, newest Kubernetes: ignored, said so", doc: "metadata:\n  annotations:\n    seccomp.security.alpha.kubernetes.io/pod: localhost/deny-chmod.json\nspec:\n  containers:\n  - {name: c, image: x}\n",
			check: func(t *testing.T, b ContainerBundle) {
				if b.Spec.Linux.Seccomp != nil {
					t.Errorf("seccomp %+v", b.Spec.Linux.Seccomp)
				}
				if len(b.Warnings) != 1 || !strings.Contains(b.Warnings[0], `metadata.annotations["seccomp.security.alpha.kubernetes.io/pod"]: ignored: Kubernetes 1.27 and later`) {
					t.Errorf("warnings %q", b.Warnings)
				}
			}},
		{name: "a relative root.path with an absolute image rootfs", doc: "spec:\n  containers:\n  - {name: c, image: x}\n",
			opts: Options{RootfsPath: "/abs/rootfs"}, errHas: "container rootfs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := "apiVersion: v1\nkind: Pod\n"
			if !strings.HasPrefix(tt.doc, "metadata:") {
				doc += "metadata: {name: p}\n"
			} else {
				tt.doc = strings.Replace(tt.doc, "metadata:\n", "metadata:\n  name: p\n", 1)
			}
			w := parseOne(t, doc+tt.doc)
			opts := tt.opts
			if opts.ImageRootfs == "" && opts.RootfsPath == "" {
				opts.ImageRootfs = testdata(t, "rootfs")
			}
			opts.SeccompProfileRoot = testdata(t, "seccomp")
			if opts.ImageUser == "nginx" {
				opts.ImageRootfs = ""
			}
			bs, err := Translate(w, opts)
			if spectest.ErrorCase(t, err, tt.errHas) {
				return
			}
			tt.check(t, bs[0])
		})
	}
}

func TestTranslateNil(t *testing.T) {
	if _, err := Translate(nil, Options{}); err == nil {
		t.Fatal("nil workload")
	}
}

func TestExpandVars(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	lookup := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	for in, want := range map[string]string{
		"plain":        "plain",
		"$(A)":         "1",
		"x$(A)y$(B)z":  "x1ytwoz",
		"$$(A)":        "$(A)",
		"$$":           "$",
		"$(C)":         "$(C)",
		"$(A":          "$(A",
		"$":            "$",
		"$x":           "$x",
		"$()":          "$()",
		"cost: $$5":    "cost: $5",
		"$(A)$(A)$$$$": "11$$",
	} {
		if got := expandVars(in, lookup); got != want {
			t.Errorf("expandVars(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConvertRoundTrip(t *testing.T) {
	if PodSecurityContext(nil) != nil || SecurityContext(nil) != nil {
		t.Fatal("nil must stay nil")
	}
	w := parseOne(t, `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  securityContext:
    runAsUser: 1
    runAsGroup: 2
    runAsNonRoot: true
    supplementalGroups: [3]
    supplementalGroupsPolicy: Strict
    fsGroup: 4
    fsGroupChangePolicy: Always
    seLinuxChangePolicy: Recursive
    sysctls: [{name: a.b, value: "1"}]
    seccompProfile: {type: Localhost, localhostProfile: p.json}
    appArmorProfile: {type: RuntimeDefault}
    seLinuxOptions: {user: u, role: r, type: t, level: l}
    windowsOptions: {runAsUserName: w, hostProcess: false, gmsaCredentialSpecName: gn, gmsaCredentialSpec: s}
  containers:
  - name: c
    image: x
    securityContext:
      capabilities: {add: [A], drop: [B]}
      privileged: false
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      procMount: Default
      runAsUser: 5
`)
	p := PodSecurityContext(w.PodSpec.SecurityContext)
	if *p.RunAsUser != 1 || *p.RunAsGroup != 2 || !*p.RunAsNonRoot || p.SupplementalGroups[0] != 3 || *p.SupplementalGroupsPolicy != "Strict" ||
		*p.FSGroup != 4 || *p.FSGroupChangePolicy != "Always" || *p.SELinuxChangePolicy != "Recursive" || p.Sysctls[0] != (kubespec.Sysctl{Name: "a.b", Value: "1"}) ||
		p.SeccompProfile.Type != "Localhost" || *p.SeccompProfile.LocalhostProfile != "p.json" || p.AppArmorProfile.Type != "RuntimeDefault" ||
		*p.SELinuxOptions != (spec.SELinuxOptions{User: "u", Role: "r", Type: "t", Level: "l"}) || *p.WindowsOptions.RunAsUserName != "w" ||
		*p.WindowsOptions.GMSACredentialSpec != "s" || *p.WindowsOptions.GMSACredentialSpecName != "gn" || *p.WindowsOptions.HostProcess {
		t.Fatalf("pod: %+v", p)
	}
	c := SecurityContext(w.PodSpec.Containers[0].SecurityContext)
	if !slices.Equal(c.Capabilities.Add, []string{"A"}) || !slices.Equal(c.Capabilities.Drop, []string{"B"}) || *c.Privileged ||
		!*c.ReadOnlyRootFilesystem || *c.AllowPrivilegeEscalation || *c.ProcMount != "Default" || *c.RunAsUser != 5 {
		t.Fatalf("container: %+v", c)
	}
}

func TestSeedFilesParse(t *testing.T) {
	files, err := filepath.Glob(testdata(t, "seed/*.yaml"))
	if err != nil || len(files) < 5 {
		t.Fatalf("seed files %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Parse(b)
		wantErr := strings.Contains(f, "config-format")
		if (err != nil) != wantErr {
			t.Errorf("%s: err = %v", filepath.Base(f), err)
		}
	}
}

// TestTranslateSELinuxPodPair: on an SELinux node every container is
// labelled; those without seLinuxOptions share the Pod's pair, one with
// options gets a pair of its own, as containerd's go-selinux InitLabels.
func TestTranslateSELinuxPodPair(t *testing.T) {
	ws, err := Parse([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: x}\n  - {name: d, image: x}\n  - {name: e, image: x, securityContext: {seLinuxOptions: {type: container_init_t}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	on := true
	bs, err := Translate(ws[0], Options{SELinux: &on})
	if err != nil || len(bs) != 3 {
		t.Fatalf("%d bundles, %v", len(bs), err)
	}
	level := func(b ContainerBundle) string {
		parts := strings.SplitN(b.Spec.Process.SelinuxLabel, ":", 4)
		if len(parts) != 4 {
			t.Fatalf("%s: label %q", b.Name, b.Spec.Process.SelinuxLabel)
		}
		return parts[3]
	}
	if !strings.HasPrefix(bs[0].Spec.Process.SelinuxLabel, "system_u:system_r:container_t:s0:c") {
		t.Errorf("label %q", bs[0].Spec.Process.SelinuxLabel)
	}
	if level(bs[0]) != level(bs[1]) || level(bs[2]) == level(bs[0]) || !strings.Contains(bs[2].Spec.Process.SelinuxLabel, ":container_init_t:") {
		t.Errorf("labels %q %q %q", bs[0].Spec.Process.SelinuxLabel, bs[1].Spec.Process.SelinuxLabel, bs[2].Spec.Process.SelinuxLabel)
	}
}

// TestTranslateEphemeralContainers: ephemeral containers are translated
// like the others, last, with their securityContext, and join their
// target's PID namespace when its path is known.
func TestTranslateEphemeralContainers(t *testing.T) {
	ws := parseFile(t, "ephemeral-debug.yaml")
	bs, err := Translate(ws[0], Options{})
	if err != nil || len(bs) != 2 {
		t.Fatalf("%d bundles, %v", len(bs), err)
	}
	d := bs[1]
	if d.Name != "debugger" || d.Path != "spec.ephemeralContainers[0]" || !d.Ephemeral || d.Init || d.Index != 0 {
		t.Fatalf("bundle %+v", d)
	}
	if !slices.Contains(d.Spec.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") {
		t.Errorf("securityContext not applied: %v", d.Spec.Process.Capabilities.Bounding)
	}
	if len(d.Warnings) != 1 || !strings.Contains(d.Warnings[0], "spec.ephemeralContainers[0].targetContainerName: on a node this container joins app's process namespace") {
		t.Errorf("warnings %q", d.Warnings)
	}
	bs, err = Translate(ws[0], Options{Containers: []string{"debugger"}, ContainerPIDNamespaces: map[string]string{"app": "/proc/42/ns/pid"}})
	if err != nil || len(bs) != 1 {
		t.Fatalf("%d bundles, %v", len(bs), err)
	}
	joined := false
	for _, n := range bs[0].Spec.Linux.Namespaces {
		joined = joined || n.Type == specs.PIDNamespace && n.Path == "/proc/42/ns/pid"
	}
	if !joined || len(bs[0].Warnings) != 0 {
		t.Errorf("namespaces %+v, warnings %q", bs[0].Spec.Linux.Namespaces, bs[0].Warnings)
	}
}
