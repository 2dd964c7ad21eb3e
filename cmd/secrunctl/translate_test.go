package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/secrun/secrun/kubespec"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/internal/testenv"
	"github.com/secrun/secrun/spec"
	"github.com/urfave/cli/v2"
)

// runCLI runs secrunctl with args and returns stdout, stderr, the exit
// code a cli.Exit asked for (0 if none) and the error.
func runCLI(t *testing.T, args ...string) (string, string, int, error) {
	t.Helper()
	return runCommands(t, []*cli.Command{translateCommand, checkCommand}, args...)
}

// runCommands runs a secrunctl made of cmds.
func runCommands(t *testing.T, cmds []*cli.Command, args ...string) (string, string, int, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := 0
	prev := cli.OsExiter
	cli.OsExiter = func(c int) { code = c }
	defer func() { cli.OsExiter = prev }()
	app := &cli.App{
		Name:      "secrunctl",
		Commands:  cmds,
		Writer:    &out,
		ErrWriter: &errOut,
	}
	err := app.Run(append([]string{"secrunctl"}, args...))
	return out.String(), errOut.String(), code, err
}

func seed(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "manifest", "testdata", "seed", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func writeManifest(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func loadConfig(t *testing.T, path string) *specs.Spec {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func TestTranslateWritesBundles(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bundles")
	stdout, _, _, err := runCLI(t, "translate", "-f", seed(t, "capabilities-demo.yaml"), "-o", out)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(out, "securitycontext-capabilities-demo-demo")
	if !strings.Contains(stdout, dir+": spec.containers[0]") {
		t.Errorf("stdout %q", stdout)
	}
	s := loadConfig(t, filepath.Join(dir, "config.json"))
	want := append(slices.DeleteFunc(slices.Clone(spec.DefaultCapabilities), func(c string) bool { return c == "CAP_CHOWN" }), "CAP_NET_ADMIN")
	if !slices.Equal(s.Process.Capabilities.Bounding, want) || s.Root.Path != "rootfs" {
		t.Fatalf("bounding %v root %+v", s.Process.Capabilities.Bounding, s.Root)
	}
	if _, err := os.Stat(filepath.Join(dir, "rootfs")); !os.IsNotExist(err) {
		t.Error("no rootfs was asked for, yet one was made")
	}

	// A second run must not overwrite without --force.
	_, _, _, err = runCLI(t, "translate", "-f", seed(t, "capabilities-demo.yaml"), "-o", out)
	if err == nil || !strings.Contains(err.Error(), "pass --force") {
		t.Fatalf("rerun: %v", err)
	}
	if _, _, _, err = runCLI(t, "translate", "-f", seed(t, "capabilities-demo.yaml"), "-o", out, "--force"); err != nil {
		t.Fatal(err)
	}
}

func TestTranslateRefusesBadManifests(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		errHas string
	}{
		{name: "the seed's runAsUer", args: []string{"-f", seed(t, "config-format.yaml")},
			errHas: "spec.securityContext.runAsUer: unknown field; did you mean runAsUser?"},
		{name: "a sysctl the node does not allow",
			args:   []string{"-f", writeManifest(t, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext: {sysctls: [{name: net.core.somaxconn, value: \"1024\"}]}\n  containers: [{name: c, image: x}]\n")},
			errHas: "spec.securityContext.sysctls[0]: net.core.somaxconn: unsafe sysctl"},
		{name: "two workloads, one bundle name",
			args:   []string{"-f", writeManifest(t, podFor("p", "c")+"---\n"+podFor("p", "c"))},
			errHas: "both make bundle p-c"},
		{name: "rootfs and busybox", args: []string{"-f", seed(t, "capabilities-demo.yaml"), "--rootfs", "/", "--busybox"},
			errHas: "choose one"},
		{name: "missing rootfs", args: []string{"-f", seed(t, "capabilities-demo.yaml"), "--rootfs", filepath.Join(t.TempDir(), "none")},
			errHas: "not a directory"},
		{name: "bad allowlist", args: []string{"-f", seed(t, "capabilities-demo.yaml"), "--allowed-unsafe-sysctls", "vm.*"},
			errHas: "would match node-level sysctls"},
		{name: "nothing to translate", args: []string{"-f", writeManifest(t, "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")},
			errHas: "no containers to translate"},
		{name: "stray argument", args: []string{"-f", seed(t, "capabilities-demo.yaml"), "extra"},
			errHas: "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"translate", "-o", t.TempDir()}, tt.args...)
			_, _, _, err := runCLI(t, args...)
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("err = %v, want %q", err, tt.errHas)
			}
		})
	}
}

func podFor(name, ctr string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  containers: [{name: %s, image: x}]\n", name, ctr)
}

func TestTranslateRootfsCopy(t *testing.T) {
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "etc"), 0o755))
	must(os.MkdirAll(filepath.Join(src, "tmp"), 0o755))
	must(os.Chmod(filepath.Join(src, "tmp"), os.ModeSticky|0o777))
	must(os.WriteFile(filepath.Join(src, "etc", "passwd"), []byte("root:x:0:0::/:/bin/sh\nweb:x:8080:8081::/:/bin/sh\n"), 0o644))
	must(os.Symlink("/etc/passwd", filepath.Join(src, "passwd-link")))
	must(syscall.Mkfifo(filepath.Join(src, "fifo"), 0o600))

	out := t.TempDir()
	m := writeManifest(t, podFor("p", "c"))
	if _, _, _, err := runCLI(t, "translate", "-f", m, "-o", out, "--rootfs", src, "--image-user", "web"); err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(out, "p-c", "rootfs")
	a, err1 := os.Stat(filepath.Join(src, "etc", "passwd"))
	b, err2 := os.Stat(filepath.Join(rootfs, "etc", "passwd"))
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		t.Errorf("etc/passwd not hard-linked: %v %v", err1, err2)
	}
	if l, err := os.Readlink(filepath.Join(rootfs, "passwd-link")); err != nil || l != "/etc/passwd" {
		t.Errorf("symlink %q %v", l, err)
	}
	if st, err := os.Stat(filepath.Join(rootfs, "tmp")); err != nil || st.Mode()&os.ModeSticky == 0 {
		t.Errorf("tmp mode %v %v", st.Mode(), err)
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "fifo")); !os.IsNotExist(err) {
		t.Error("a FIFO was copied")
	}
	s := loadConfig(t, filepath.Join(out, "p-c", "config.json"))
	if s.Process.User.UID != 8080 || s.Process.User.GID != 8081 {
		t.Errorf("the image user was not resolved in the given rootfs: %+v", s.Process.User)
	}
}

func TestTranslateBusybox(t *testing.T) {
	if _, err := os.Stat(busyboxPath); err != nil {
		t.Skip("no busybox-static:", err)
	}
	out := t.TempDir()
	if _, _, _, err := runCLI(t, "translate", "-f", writeManifest(t, podFor("p", "a")+"---\n"+podFor("q", "b")), "-o", out, "--busybox", "--image-user", "nobody"); err != nil {
		t.Fatal(err)
	}
	bb, err := os.Stat(filepath.Join(out, "p-a", "rootfs", "bin", "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	sh, err := os.Stat(filepath.Join(out, "q-b", "rootfs", "bin", "sh"))
	if err != nil || !os.SameFile(bb, sh) {
		t.Fatalf("applets must be hard links to the one busybox: %v", err)
	}
	if s := loadConfig(t, filepath.Join(out, "p-a", "config.json")); s.Process.User.UID != 65534 {
		t.Errorf("USER nobody must resolve in the busybox rootfs: %+v", s.Process.User)
	}
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".busybox-") {
			t.Errorf("template %s left behind", e.Name())
		}
	}
}

// TestTranslatedBundleRuns runs a translated bundle with real runc and
// reads the kernel's view of the process: what the manifest asked is what
// the container gets.
func TestTranslatedBundleRuns(t *testing.T) {
	runc := testenv.RequireContainers(t)
	out := t.TempDir()
	m := writeManifest(t, `apiVersion: v1
kind: Pod
metadata: {name: caps}
spec:
  securityContext:
    runAsUser: 65534
    runAsGroup: 65534
    supplementalGroups: [4000]
    sysctls:
    - {name: kernel.shm_rmid_forced, value: "1"}
  containers:
  - name: probe
    image: busybox
    command: [/bin/sh, -c, 'grep -E "^(Cap|NoNewPrivs|Seccomp|Uid|Gid|Groups)" /proc/self/status; cat /proc/sys/kernel/shm_rmid_forced']
    securityContext:
      allowPrivilegeEscalation: false
      seccompProfile: {type: RuntimeDefault}
      readOnlyRootFilesystem: true
      capabilities:
        add: [NET_ADMIN]
        drop: [CHOWN]
`)
	if _, _, _, err := runCLI(t, "translate", "-f", m, "-o", out, "--busybox"); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(out, "caps-probe")
	r := testenv.Run(t, nil, runc, "--root", testenv.StateRoot(t), "run", "--bundle", bundle, "caps-probe-"+strconv.Itoa(os.Getpid()))
	if r.Code != 0 {
		t.Fatalf("runc run: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	status := map[string]string{}
	for _, line := range strings.Split(r.Stdout, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			status[k] = strings.TrimSpace(v)
		}
	}
	var mask uint64
	for _, c := range append(slices.DeleteFunc(slices.Clone(spec.DefaultCapabilities), func(c string) bool { return c == "CAP_CHOWN" }), "CAP_NET_ADMIN") {
		for _, k := range capability.ListKnown() {
			if "CAP_"+strings.ToUpper(k.String()) == c {
				mask |= 1 << uint(k)
			}
		}
	}
	want := fmt.Sprintf("%016x", mask)
	if status["CapBnd"] != want {
		t.Errorf("CapBnd %s, want %s (default set + NET_ADMIN - CHOWN)", status["CapBnd"], want)
	}
	// A non-root process keeps its bounding set but gets nothing in
	// effective: containerd's semantics, kubernetes#56374.
	if status["CapEff"] != "0000000000000000" || status["CapAmb"] != "0000000000000000" {
		t.Errorf("CapEff %s CapAmb %s for uid 65534", status["CapEff"], status["CapAmb"])
	}
	if status["NoNewPrivs"] != "1" || status["Seccomp"] != "2" {
		t.Errorf("NoNewPrivs %s Seccomp %s", status["NoNewPrivs"], status["Seccomp"])
	}
	if !strings.HasPrefix(status["Uid"], "65534") || !strings.HasPrefix(status["Gid"], "65534") || !strings.Contains(status["Groups"], "4000") {
		t.Errorf("Uid %q Gid %q Groups %q", status["Uid"], status["Gid"], status["Groups"])
	}
	if !strings.HasSuffix(strings.TrimSpace(r.Stdout), "1") {
		t.Errorf("kernel.shm_rmid_forced not set in the container: %q", r.Stdout)
	}
}

func writeSecrunConfig(t *testing.T, body string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SECRUN_CONFIG", p)
}

func TestCheck(t *testing.T) {
	writeSecrunConfig(t, "defaultPolicy: baseline\npolicies:\n  web:\n    preset: baseline\n    mode: enforce\n    allowedUnsafeSysctls: [\"net.core.somaxconn\"]\n")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		outHas   []string
		outLacks []string
	}{
		{name: "baseline refuses the added NET_ADMIN, at the add field",
			args: []string{"-f", seed(t, "capabilities-demo.yaml")}, wantCode: 3,
			outHas: []string{"Pod/securitycontext-capabilities-demo container demo (spec.containers[0]): policy baseline (enforce): refused",
				"refuse  spec.containers[0].securityContext.capabilities.add: holds NET_ADMIN"}},
		{name: "privileged maps to the privileged field, host network to hostNetwork",
			args: []string{"-f", seed(t, "kube-proxy.yaml"), "--privileged-without-host-devices"}, wantCode: 3,
			outHas:   []string{"refuse  spec.containers[0].securityContext.privileged: the container is privileged", "refuse  spec.hostNetwork: no network namespace"},
			outLacks: []string{"securityContext.capabilities.drop:", "securityContext.procMount:"}},
		{name: "the privileged policy allows everything",
			args: []string{"-f", seed(t, "kube-proxy.yaml"), "--policy", "privileged", "--privileged-without-host-devices"}, wantCode: 0,
			outHas: []string{"policy privileged (enforce): allowed"}},
		{name: "restricted in harden mode changes, per field",
			args: []string{"-f", seed(t, "sysctls-demo.yaml"), "--policy", "restricted", "--mode", "harden"}, wantCode: 0,
			outHas: []string{"hardened", "change  spec.containers[0].securityContext.capabilities.drop: fixed", "change  spec.containers[0].securityContext.allowPrivilegeEscalation: fixed",
				"change  spec.containers[0].securityContext.seccompProfile: fixed"}},
		{name: "restricted in enforce mode refuses root at runAsUser",
			args: []string{"-f", seed(t, "capabilities-demo.yaml"), "--policy", "restricted"}, wantCode: 3,
			outHas: []string{"refuse  spec.containers[0].securityContext.runAsUser: the container would run as uid 0"}},
		{name: "audit mode reports and refuses nothing",
			args: []string{"-f", seed(t, "capabilities-demo.yaml"), "--mode", "audit"}, wantCode: 0,
			outHas: []string{"policy baseline (audit): audited", "audit   spec.containers[0].securityContext.capabilities.add"}},
		{name: "an invalid manifest is a refusal",
			args: []string{"-f", seed(t, "config-format.yaml")}, wantCode: 3,
			outHas: []string{"refused: the manifest is invalid", "did you mean runAsUser?"}},
		{name: "a sysctl the kubelet refuses is a refusal, at its list entry",
			args:     []string{"-f", writeManifest(t, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext: {sysctls: [{name: net.core.somaxconn, value: \"1\"}]}\n  containers: [{name: c, image: x}]\n")},
			wantCode: 3, outHas: []string{"Pod/p container c: policy baseline (enforce): refused", "refuse  spec.securityContext.sysctls[0]: net.core.somaxconn: unsafe sysctl"}},
		{name: "the policy's own allowlist is the node's",
			args:     []string{"-f", writeManifest(t, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext: {sysctls: [{name: net.core.somaxconn, value: \"1\"}]}\n  containers: [{name: c, image: x}]\n"), "--policy", "web"},
			wantCode: 0, outHas: []string{"policy web (enforce): allowed"}},
		{name: "a loosening Pod annotation is refused at the annotations",
			args:     []string{"-f", writeManifest(t, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    secrun.dev/security-context: '{\"privileged\":true}'\nspec:\n  containers: [{name: c, image: x}]\n")},
			wantCode: 3, outHas: []string{"refuse  metadata.annotations: privileged: true would make the container privileged"}},
		{name: "a malformed Pod annotation is refused at its key",
			args:     []string{"-f", writeManifest(t, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    secrun.dev/security-context: '{\"privilegd\":true}'\nspec:\n  containers: [{name: c, image: x}]\n")},
			wantCode: 3, outHas: []string{`refuse  metadata.annotations["secrun.dev/security-context"]: annotation secrun.dev/security-context: `, "privilegd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, code, err := runCLI(t, append([]string{"check"}, tt.args...)...)
			if err != nil && code == 0 {
				t.Fatalf("err %v\n%s", err, out)
			}
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\n%s", code, tt.wantCode, out)
			}
			for _, want := range tt.outHas {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			for _, bad := range tt.outLacks {
				if strings.Contains(out, bad) {
					t.Errorf("output has %q:\n%s", bad, out)
				}
			}
		})
	}
}

func TestCheckJSON(t *testing.T) {
	writeSecrunConfig(t, "defaultPolicy: baseline\n")
	out, _, code, _ := runCLI(t, "check", "-f", seed(t, "capabilities-demo.yaml"), "--json")
	if code != 3 {
		t.Fatalf("exit %d", code)
	}
	var report struct {
		Policy  string        `json:"policy"`
		Results []checkResult `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if report.Policy != "baseline" || len(report.Results) != 1 || report.Results[0].Refusals[0].Field != "spec.containers[0].securityContext.capabilities.add" ||
		report.Results[0].Refusals[0].OCIField != "process.capabilities" {
		t.Fatalf("report %+v", report)
	}
}

func TestCheckUnknownPolicy(t *testing.T) {
	writeSecrunConfig(t, "defaultPolicy: baseline\n")
	_, _, _, err := runCLI(t, "check", "-f", seed(t, "capabilities-demo.yaml"), "--policy", "restrictd")
	if err == nil || !strings.Contains(err.Error(), "did you mean restricted?") {
		t.Fatalf("err = %v", err)
	}
}

// TestCheckLegacySeccompAnnotation: a Pod whose only seccomp setting is
// the annotation runs unconfined on Kubernetes 1.27 and later, so the
// restricted policy refuses it there and says why; on 1.26 the API server
// would have copied it into the field.
func TestCheckLegacySeccompAnnotation(t *testing.T) {
	m := writeManifest(t, `apiVersion: v1
kind: Pod
metadata:
  name: ann
  annotations:
    seccomp.security.alpha.kubernetes.io/pod: runtime/default
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 1000}
  containers:
  - name: app
    image: x
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
`)
	for _, tc := range []struct {
		version string
		code    int
		has     []string
	}{
		{"", 3, []string{"policy restricted (enforce): refused", "securityContext.seccompProfile: no seccomp filter confines the process",
			`metadata.annotations["seccomp.security.alpha.kubernetes.io/pod"]: ignored: Kubernetes 1.27 and later ignore the seccomp annotations`}},
		{"1.27", 3, []string{"refused"}},
		{"1.26", 0, []string{"policy restricted (enforce): allowed"}},
	} {
		args := []string{"check", "--policy", "restricted", "--mode", "enforce", "-f", m}
		if tc.version != "" {
			args = append(args, "--kubernetes-version", tc.version)
		}
		out, _, code, _ := runCLI(t, args...)
		if code != tc.code {
			t.Errorf("version %q: exit %d, want %d\n%s", tc.version, code, tc.code, out)
		}
		for _, h := range tc.has {
			if !strings.Contains(out, h) {
				t.Errorf("version %q: output lacks %q\n%s", tc.version, h, out)
			}
		}
	}
}

// TestCheckEphemeralContainers: check reports an ephemeral container's
// findings against its own field path instead of skipping it.
func TestCheckEphemeralContainers(t *testing.T) {
	m, err := filepath.Abs(filepath.Join("..", "..", "manifest", "testdata", "ephemeral-debug.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out, _, code, _ := runCLI(t, "check", "--policy", "baseline", "--mode", "enforce", "-f", m)
	if code != 3 || !strings.Contains(out, "Pod/p container debugger (spec.ephemeralContainers[0]): policy baseline (enforce): refused") ||
		!strings.Contains(out, "spec.ephemeralContainers[0].securityContext.capabilities.add") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "Pod/p container app (spec.containers[0]): policy baseline (enforce): allowed") {
		t.Fatalf("app not checked:\n%s", out)
	}
	dir := filepath.Join(t.TempDir(), "b")
	if _, _, _, err := runCLI(t, "translate", "-f", m, "-o", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "p-debugger", "config.json")); err != nil {
		t.Fatalf("no bundle for the ephemeral container: %v", err)
	}
}

// TestTranslateChecksWithRunc: translate checks each bundle as runc's
// create will before writing it; what runc refuses comes back with the
// field, and a bundle whose rootfs comes from --rootfs is checked with it.
func TestTranslateChecksWithRunc(t *testing.T) {
	s, err := kubespec.DefaultSpec(kubespec.DefaultSpecConfig{Hostname: "web"})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if err := runcAccepts(filepath.Join(t.TempDir(), "b"), s, src); err != nil {
		t.Fatalf("runc would refuse translate's default spec: %v", err)
	}
	s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.UTSNamespace })
	err = runcAccepts(filepath.Join(t.TempDir(), "b"), s, src)
	if err == nil || !strings.Contains(err.Error(), "runc would refuse this config.json: hostname:") {
		t.Fatalf("err = %v", err)
	}
	if s.Root.Path != "rootfs" {
		t.Fatalf("the check changed root.path to %q", s.Root.Path)
	}
}
