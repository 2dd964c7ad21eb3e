package manifest

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

var update = flag.Bool("update", false, "rewrite the golden config.json files under testdata/golden")

func testdata(t testing.TB, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func parseFile(t testing.TB, rel string) []*Workload {
	t.Helper()
	b, err := os.ReadFile(testdata(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	ws, err := Parse(b)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return ws
}

// goldenOptions are host-independent: the image's users come from
// testdata, root.path stays relative, there is no AppArmor and no host
// device, SELinux is taken to be on (so labels show), and no profile is
// generated from the host's kernel version.
func goldenOptions(t testing.TB) Options {
	selinux := true
	n := 0
	return Options{
		SELinux: &selinux,
		// Deterministic pairs, drawn in order: the Pod's first.
		NewSELinuxLevel: func() string {
			n++
			return fmt.Sprintf("s0:c%d,c%d", n, n+100)
		},
		RootfsPath:                   "rootfs",
		ImageRootfs:                  testdata(t, "rootfs"),
		SeccompProfileRoot:           testdata(t, "seccomp"),
		PrivilegedWithoutHostDevices: true,
	}
}

// TestGolden translates the Pod examples of the seed text (and one
// Deployment that uses every field) and compares each config.json with
// testdata/golden. Run with -update to rewrite them after a deliberate
// change, then review the diff.
func TestGolden(t *testing.T) {
	for _, file := range []string{"seed/capabilities-demo.yaml", "seed/sysctls-demo.yaml", "restricted-deployment.yaml"} {
		for _, w := range parseFile(t, file) {
			bundles, err := Translate(w, goldenOptions(t))
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			for _, b := range bundles {
				name := w.Name + "-" + b.Name + ".json"
				t.Run(name, func(t *testing.T) {
					got, err := json.MarshalIndent(b.Spec, "", "\t")
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, '\n')
					path := testdata(t, filepath.Join("golden", name))
					if *update {
						if err := os.WriteFile(path, got, 0o644); err != nil {
							t.Fatal(err)
						}
						return
					}
					want, err := os.ReadFile(path)
					if err != nil {
						t.Fatalf("%v (run go test ./manifest -run TestGolden -update to create it)", err)
					}
					if !bytes.Equal(got, want) {
						t.Errorf("%s differs from the golden file; if the change is meant, run with -update and review the diff.\n%s", name, firstDiff(string(want), string(got)))
					}
				})
			}
		}
	}
}

// firstDiff shows the first differing line with a little context.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl
		}
	}
	return "(no line differs)"
}

func translateOne(t *testing.T, file string, opts Options) ContainerBundle {
	t.Helper()
	ws := parseFile(t, file)
	if len(ws) != 1 {
		t.Fatalf("%s: %d workloads", file, len(ws))
	}
	bs, err := Translate(ws[0], opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 {
		t.Fatalf("%s: %d bundles", file, len(bs))
	}
	return bs[0]
}

func capSets(s *specs.Spec) map[string][]string {
	c := s.Process.Capabilities
	return map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted}
}

// Done when: the user's capabilities example yields the default set plus
// NET_ADMIN minus CHOWN in bounding, effective and permitted, nothing else.
func TestDoneWhenCapabilitiesExample(t *testing.T) {
	b := translateOne(t, "seed/capabilities-demo.yaml", Options{})
	want := append(slices.DeleteFunc(slices.Clone(spec.DefaultCapabilities), func(c string) bool { return c == "CAP_CHOWN" }), "CAP_NET_ADMIN")
	for name, set := range capSets(b.Spec) {
		if !slices.Equal(set, want) {
			t.Errorf("%s = %v\nwant %v", name, set, want)
		}
	}
	c := b.Spec.Process.Capabilities
	if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
		t.Errorf("inheritable %v ambient %v: want nothing else", c.Inheritable, c.Ambient)
	}
	if b.Name != "demo" || b.Path != "spec.containers[0]" || b.Image != "myapp:v1.0" {
		t.Errorf("bundle %+v", b)
	}
}

// Done when: the user's sysctl example yields both sysctls in
// linux.sysctl (both are in the safe set), with the container's user.
func TestDoneWhenSysctlsExample(t *testing.T) {
	b := translateOne(t, "seed/sysctls-demo.yaml", Options{})
	want := map[string]string{"kernel.shm_rmid_forced": "0", "net.ipv4.ip_unprivileged_port_start": "0"}
	if len(b.Spec.Linux.Sysctl) != 2 || b.Spec.Linux.Sysctl["kernel.shm_rmid_forced"] != "0" || b.Spec.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"] != "0" {
		t.Fatalf("linux.sysctl = %v, want %v", b.Spec.Linux.Sysctl, want)
	}
	if u := b.Spec.Process.User; u.UID != 1001 || u.GID != 1001 {
		t.Fatalf("user %+v, want 1001:1001", u)
	}
	// The node's Kubernetes version decides: before 1.22 the second one
	// was not safe.
	ws := parseFile(t, "seed/sysctls-demo.yaml")
	_, err := Translate(ws[0], Options{KubernetesVersion: "1.21"})
	if err == nil || !strings.Contains(err.Error(), "spec.securityContext.sysctls[1]: net.ipv4.ip_unprivileged_port_start: unsafe sysctl") {
		t.Fatalf("Kubernetes 1.21: err = %v", err)
	}
}

// The kube-proxy example is privileged: its host-dependent parts (every
// capability this process holds, the host's devices) are checked here
// rather than in a golden file.
func TestKubeProxyPrivileged(t *testing.T) {
	b := translateOne(t, "seed/kube-proxy.yaml", Options{NodeName: "node-1"})
	s := b.Spec
	all := spec.AllCapabilities()
	for name, set := range capSets(s) {
		if !slices.Equal(set, all) {
			t.Errorf("%s = %v, want every capability", name, set)
		}
	}
	if len(s.Linux.MaskedPaths)+len(s.Linux.ReadonlyPaths) != 0 {
		t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	for _, m := range s.Mounts {
		if (m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup") && slices.Contains(m.Options, "ro") {
			t.Errorf("%s is read-only in a privileged container", m.Destination)
		}
	}
	if s.Linux.Seccomp != nil || !spec.AllowsAllDevices(s) || !spec.LooksPrivileged(s) {
		t.Errorf("seccomp %v, all devices %v", s.Linux.Seccomp, spec.AllowsAllDevices(s))
	}
	if _, err := os.Stat("/dev/null"); err == nil && !slices.ContainsFunc(s.Linux.Devices, func(d specs.LinuxDevice) bool { return d.Path == "/dev/null" }) {
		t.Error("host devices missing")
	}
	if spec.HasNamespace(s, specs.NetworkNamespace) || spec.HasNamespace(s, specs.UTSNamespace) || s.Hostname != "" {
		t.Errorf("hostNetwork: namespaces %+v hostname %q", s.Linux.Namespaces, s.Hostname)
	}
	wantArgs := []string{"/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--hostname-override=node-1"}
	if !slices.Equal(s.Process.Args, wantArgs) {
		t.Errorf("args %q, want %q ($(NODE_NAME) expanded from spec.nodeName)", s.Process.Args, wantArgs)
	}
	if !slices.Contains(s.Process.Env, "NODE_NAME=node-1") || !slices.Contains(s.Process.Env, "HOSTNAME=node-1") {
		t.Errorf("env %q", s.Process.Env)
	}

	// Without a node name the reference stays as written, as the kubelet
	// leaves an undefined $(VAR), and the variable is reported.
	b = translateOne(t, "seed/kube-proxy.yaml", Options{PrivilegedWithoutHostDevices: true})
	if b.Spec.Process.Args[2] != "--hostname-override=$(NODE_NAME)" || len(b.Spec.Linux.Devices) != 0 {
		t.Errorf("args %q devices %d", b.Spec.Process.Args, len(b.Spec.Linux.Devices))
	}
	if !slices.ContainsFunc(b.Warnings, func(w string) bool { return strings.Contains(w, "spec.containers[0].env[0] (NODE_NAME)") }) {
		t.Errorf("warnings %q", b.Warnings)
	}
}

// The seed's configuration-format block misspells runAsUser (twice) and
// sysctls; the API server refuses it, and so must Parse, naming the fix.
func TestConfigFormatBlockIsRefused(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"seed/config-format.yaml", []string{
			"spec.securityContext.runAsUer: unknown field; did you mean runAsUser?",
			"spec.containers[0].securityContext.runAsUer: unknown field; did you mean runAsUser?",
			"spec.securityContext.sysctl: unknown field; did you mean sysctls?",
		}},
		{"seed/config-format-verbatim.yaml", []string{
			"not valid YAML",
			`"field <type>" notation`,
			"line 8: runAsUer is not a field; did you mean runAsUser?",
			"line 14: sysctl is not a field; did you mean sysctls?",
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(testdata(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(b)
			if err == nil {
				t.Fatal("parsed without error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks %q", err, w)
				}
			}
		})
	}
}
