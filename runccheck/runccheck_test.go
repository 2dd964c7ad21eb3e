package runccheck

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/secrun/secrun/kubespec"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/internal/testenv"
	"github.com/secrun/secrun/manifest"
	"github.com/secrun/secrun/spec"
)

func base(t *testing.T) *specs.Spec {
	t.Helper()
	s, err := kubespec.DefaultSpec(kubespec.DefaultSpecConfig{Hostname: "web"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bundle is a directory with an empty rootfs.
func bundle(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCheckAccepts(t *testing.T) {
	res, err := Check(bundle(t), base(t))
	if err != nil {
		t.Fatalf("runc would refuse secrun's default spec: %v", err)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings %q", res.Warnings)
	}
}

// TestCheckRefuses: each config runc refuses is reported with its field.
func TestCheckRefuses(t *testing.T) {
	drop := func(typ specs.LinuxNamespaceType) func(*specs.Spec) {
		return func(s *specs.Spec) {
			s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == typ })
		}
	}
	cases := []struct {
		name, field, msg string
		edit             func(*specs.Spec)
	}{
		{"hostname without a UTS namespace", "hostname", "unable to set hostname without a private UTS namespace", drop(specs.UTSNamespace)},
		{"masked paths without a mount namespace", "linux.maskedPaths", "unable to restrict sys entries without a private MNT namespace", drop(specs.MountNamespace)},
		{"a namespace twice", "linux.namespaces", "duplicated ns", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
		}},
		{"an unknown namespace", "linux.namespaces", `"bogus"`, func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "bogus"})
		}},
		{"a user namespace without mappings", "linux.uidMappings", "no uid mappings found", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		}},
		{"a net sysctl in the host's network namespace", "linux.sysctl", "sysctl", func(s *specs.Spec) {
			drop(specs.NetworkNamespace)(s)
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
		}},
		{"a sysctl of no namespace", "linux.sysctl", "sysctl", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"vm.swappiness": "1"} }},
		{"an unknown seccomp action", "linux.seccomp", "", func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_BOGUS"}
		}},
		{"a relative cwd", "process.cwd", "Cwd must be an absolute path", func(s *specs.Spec) { s.Process.Cwd = "tmp" }},
		{"no args", "process.args", "args must not be empty", func(s *specs.Spec) { s.Process.Args = nil }},
		{"bad rootfs propagation", "linux.rootfsPropagation", "rootfsPropagation=sideways is not supported", func(s *specs.Spec) { s.Linux.RootfsPropagation = "sideways" }},
		{"no root", "root", "root must be specified", func(s *specs.Spec) { s.Root = nil }},
	}
	if !spec.SELinuxEnabled() {
		cases = append(cases, struct {
			name, field, msg string
			edit             func(*specs.Spec)
		}{"an SELinux label on a node without SELinux", "process.selinuxLabel", "selinux is disabled", func(s *specs.Spec) {
			s.Process.SelinuxLabel = "system_u:system_r:container_t:s0:c1,c2"
		}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := base(t)
			tc.edit(s)
			before, _ := clone(s)
			_, err := Check(bundle(t), s)
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("err = %v, want a refusal", err)
			}
			if p.Field != tc.field || !strings.Contains(p.Message, tc.msg) {
				t.Fatalf("refusal %q on %q, want %q on %q", p.Message, p.Field, tc.msg, tc.field)
			}
			if !strings.HasPrefix(err.Error(), "runc would refuse this config.json: "+tc.field+": ") {
				t.Errorf("message %q", err)
			}
			if after, _ := clone(s); !equalJSON(before, after) {
				t.Error("Check changed the spec")
			}
		})
	}
}

func equalJSON(a, b *specs.Spec) bool {
	x, _ := clone(a)
	y, _ := clone(b)
	return strings.EqualFold(mustJSON(x), mustJSON(y))
}

func mustJSON(s *specs.Spec) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestCheckMissingRootfs: a bundle translate wrote without a rootfs is
// checked as if it had an empty one, and says so.
func TestCheckMissingRootfs(t *testing.T) {
	res, err := Check(t.TempDir(), base(t))
	if err != nil {
		t.Fatal(err)
	}
	if !res.RootfsMissing || len(res.Warnings) != 0 {
		t.Fatalf("result %+v", res)
	}
}

// TestTranslatedCasesAccepted: runc accepts every bundle translate makes
// of the conformance cases, on this node.
func TestTranslatedCasesAccepted(t *testing.T) {
	cases := testenv.ConformanceCases(t)
	dir := bundle(t)
	checked := 0
	for _, c := range cases {
		b := c.Data
		ws, err := manifest.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			bs, _ := manifest.Translate(w, manifest.Options{PrivilegedWithoutHostDevices: true, SeccompProfileRoot: "../conformance/profiles/seccomp"})
			for _, bd := range bs {
				if _, err := Check(dir, bd.Spec); err != nil {
					t.Errorf("%s %s: %v", c.Name, bd.Name, err)
				}
				checked++
			}
		}
	}
	if checked < len(cases)/2 {
		t.Fatalf("only %d bundles checked", checked)
	}
}

// TestCheckNotOnDisk: a config with no bundle directory has no rootfs yet.
func TestCheckNotOnDisk(t *testing.T) {
	res, err := Check("", base(t))
	if err != nil || !res.RootfsMissing {
		t.Fatalf("%+v, %v", res, err)
	}
}
