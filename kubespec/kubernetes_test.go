package kubespec

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/secrun/secrun/spec/spectest"

	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/spec"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func strp(s string) *string { return &s }

// k8sCase is one translation: the two securityContexts, what differs in
// the inputs and in the base spec, and what must come out.
type k8sCase struct {
	name     string
	pod      *PodSecurityContext
	ctr      *spec.SecurityContext
	in       func(*KubernetesInputs)
	cfg      DefaultSpecConfig
	errHas   []string
	errIs    error
	warnHas  []string
	noWarn   bool
	check    func(t *testing.T, s *specs.Spec)
	wantStep []policy.Rule
}

// translateK8s does what manifest.Translate does for one container: the
// default spec, then the steps in order.
func translateK8s(t *testing.T, tc k8sCase) (*specs.Spec, []Step, []string, error) {
	t.Helper()
	var warns []string
	in := KubernetesInputs{
		ContainerName:                "app",
		ContainerPath:                "spec.containers[0]",
		PodPath:                      "spec",
		RootfsPath:                   testdataRootfs(t, "rootfs"),
		PrivilegedWithoutHostDevices: true,
		Warn:                         func(m string) { warns = append(warns, m) },
	}
	if tc.in != nil {
		tc.in(&in)
	}
	s, err := DefaultSpec(tc.cfg)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := KubernetesSteps(tc.pod, tc.ctr, in)
	if err != nil {
		return nil, nil, warns, err
	}
	for _, st := range steps {
		if err := st.Option(s); err != nil {
			return nil, steps, warns, err
		}
	}
	return s, steps, warns, nil
}

func runK8sCases(t *testing.T, cases []k8sCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, steps, warns, err := translateK8s(t, tc)
			if len(tc.errHas) > 0 || tc.errIs != nil {
				if err == nil {
					t.Fatalf("no error; want %q", tc.errHas)
				}
				for _, want := range tc.errHas {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error\n  %v\ndoes not contain\n  %q", err, want)
					}
				}
				if tc.errIs != nil && !errors.Is(err, tc.errIs) {
					t.Errorf("error %v is not %v", err, tc.errIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.warnHas {
				if !slices.ContainsFunc(warns, func(w string) bool { return strings.Contains(w, want) }) {
					t.Errorf("warnings %q lack %q", warns, want)
				}
			}
			if tc.noWarn && len(warns) > 0 {
				t.Errorf("unexpected warnings %q", warns)
			}
			if tc.wantStep != nil {
				var names []policy.Rule
				for _, st := range steps {
					names = append(names, st.Name)
				}
				if !slices.Equal(names, tc.wantStep) {
					t.Errorf("steps %v, want %v", names, tc.wantStep)
				}
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

func caps3(t *testing.T, s *specs.Spec, want []string) {
	t.Helper()
	c := s.Process.Capabilities
	for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
		if !slices.Equal(set, want) {
			t.Errorf("%s = %v\nwant %v", name, set, want)
		}
	}
	if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
		t.Errorf("inheritable %v ambient %v, want empty", c.Inheritable, c.Ambient)
	}
}

func wantUser(t *testing.T, s *specs.Spec, uid, gid uint32, gids ...uint32) {
	t.Helper()
	u := s.Process.User
	if u.UID != uid || u.GID != gid || !slices.Equal(u.AdditionalGids, gids) {
		t.Errorf("user %d:%d %v, want %d:%d %v", u.UID, u.GID, u.AdditionalGids, uid, gid, gids)
	}
}

func TestKubernetesSteps(t *testing.T) {
	// Every Translated setting of the registry has its step here, and no
	// step applies a setting the registry does not declare Translated.
	order, err := policy.ApplyOrder()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range order {
		if stepBuilders[r] == nil {
			t.Errorf("setting %s is Translated but has no step", r)
		}
	}
	for r := range stepBuilders {
		if !slices.Contains(order, r) {
			t.Errorf("step %s applies a setting the registry does not declare Translated", r)
		}
	}
	// With every field set, every step is there, in policy.ApplyOrder.
	root := spectest.ProfileRoot(t, map[string]string{"p.json": spectest.OCIProfile})
	tc := k8sCase{
		pod: &PodSecurityContext{RunAsUser: i64(1000), Sysctls: []Sysctl{{Name: "kernel.shm_rmid_forced", Value: "1"}},
			SELinuxOptions: &spec.SELinuxOptions{Level: "s0:c1"}},
		ctr: &spec.SecurityContext{Capabilities: &spec.Capabilities{Add: []string{"NET_BIND_SERVICE"}}, AllowPrivilegeEscalation: boolp(false),
			ReadOnlyRootFilesystem: boolp(true), Privileged: boolp(false),
			SeccompProfile:  &spec.Profile{Type: "Localhost", LocalhostProfile: strp("p.json")},
			AppArmorProfile: &spec.Profile{Type: "Unconfined"}},
		in: func(in *KubernetesInputs) { in.AmbientCapabilities = true; in.SeccompProfileRoot = root },
	}
	_, steps, _, err := translateK8s(t, tc)
	if err != nil {
		t.Fatal(err)
	}
	var names []policy.Rule
	for _, st := range steps {
		names = append(names, st.Name)
		if st.Field == "" || st.Option == nil {
			t.Errorf("step %s lacks its field or option", st.Name)
		}
	}
	if want := spectest.Without(order, policy.RulePrivileged); !slices.Equal(names, want) {
		t.Fatalf("steps %v, want %v", names, want)
	}
	opts, err := KubernetesOptions(tc.pod, tc.ctr, KubernetesInputs{AmbientCapabilities: true, SeccompProfileRoot: root})
	if err != nil || len(opts) != len(steps) {
		t.Fatalf("KubernetesOptions: %d options, %v", len(opts), err)
	}
}

func TestKubernetesCapabilities(t *testing.T) {
	all := spec.AllCapabilities()
	runK8sCases(t, []k8sCase{
		{name: "nothing asked: the default set",
			check: func(t *testing.T, s *specs.Spec) { caps3(t, s, spec.DefaultCapabilities) }},
		{name: "done when: add NET_ADMIN, drop CHOWN",
			ctr: &spec.SecurityContext{Capabilities: &spec.Capabilities{Add: []string{"NET_ADMIN"}, Drop: []string{"CHOWN"}}},
			check: func(t *testing.T, s *specs.Spec) {
				caps3(t, s, append(spectest.Without(spec.DefaultCapabilities, "CAP_CHOWN"), "CAP_NET_ADMIN"))
			}},
		{name: "ALL in add", ctr: &spec.SecurityContext{Capabilities: &spec.Capabilities{Add: []string{"ALL"}}},
			check: func(t *testing.T, s *specs.Spec) { caps3(t, s, all) }},
		{name: "ALL in drop", ctr: &spec.SecurityContext{Capabilities: &spec.Capabilities{Drop: []string{"ALL"}}},
			check: func(t *testing.T, s *specs.Spec) { caps3(t, s, []string{}) }},
		{name: "drop ALL and add one", ctr: &spec.SecurityContext{Capabilities: &spec.Capabilities{Drop: []string{"ALL"}, Add: []string{"net_bind_service"}}},
			check: func(t *testing.T, s *specs.Spec) { caps3(t, s, []string{"CAP_NET_BIND_SERVICE"}) }},
		{name: "unknown capability, with a suggestion and the field path",
			ctr:    &spec.SecurityContext{Capabilities: &spec.Capabilities{Add: []string{"NET_RAW", "NET_ADMN"}}},
			errHas: []string{"spec.containers[0].securityContext.capabilities.add[1]: unknown capability NET_ADMN: did you mean NET_ADMIN?"}},
		{name: "unknown capability in drop",
			ctr:    &spec.SecurityContext{Capabilities: &spec.Capabilities{Drop: []string{"CAP_CHWON"}}},
			errHas: []string{"capabilities.drop[0]: unknown capability CAP_CHWON: did you mean CHOWN?"}},
		{name: "a name that resembles nothing",
			ctr:    &spec.SecurityContext{Capabilities: &spec.Capabilities{Add: []string{"TELEPORT"}}},
			errHas: []string{"unknown capability TELEPORT; capabilities are named like NET_ADMIN"}},
		{name: "an empty name",
			ctr:    &spec.SecurityContext{Capabilities: &spec.Capabilities{Drop: []string{" "}}},
			errHas: []string{"capabilities.drop[0]: empty capability name"}},
		{name: "every bad name is reported at once",
			ctr:    &spec.SecurityContext{Capabilities: &spec.Capabilities{Add: []string{"NET_ADMN"}, Drop: []string{"CHWON"}}},
			errHas: []string{"add[0]", "drop[0]"}},
		{name: "non-root with added capabilities: no ambient set by default (kubernetes#56374)",
			pod: &PodSecurityContext{RunAsUser: i64(1000)},
			ctr: &spec.SecurityContext{Capabilities: &spec.Capabilities{Drop: []string{"ALL"}, Add: []string{"NET_BIND_SERVICE"}}},
			check: func(t *testing.T, s *specs.Spec) {
				if len(s.Process.Capabilities.Ambient) != 0 {
					t.Errorf("ambient %v", s.Process.Capabilities.Ambient)
				}
			}},
		{name: "ambient opt-in raises added capabilities for non-root",
			pod: &PodSecurityContext{RunAsUser: i64(1000)},
			ctr: &spec.SecurityContext{Capabilities: &spec.Capabilities{Drop: []string{"ALL"}, Add: []string{"NET_BIND_SERVICE"}}},
			in:  func(in *KubernetesInputs) { in.AmbientCapabilities = true },
			check: func(t *testing.T, s *specs.Spec) {
				c := s.Process.Capabilities
				if !slices.Equal(c.Ambient, []string{"CAP_NET_BIND_SERVICE"}) || !slices.Equal(c.Inheritable, []string{"CAP_NET_BIND_SERVICE"}) {
					t.Errorf("ambient %v inheritable %v", c.Ambient, c.Inheritable)
				}
			}},
		{name: "ambient opt-in: only added capabilities, not the defaults",
			pod: &PodSecurityContext{RunAsUser: i64(1000)},
			ctr: &spec.SecurityContext{Capabilities: &spec.Capabilities{Add: []string{"NET_ADMIN"}}},
			in:  func(in *KubernetesInputs) { in.AmbientCapabilities = true },
			check: func(t *testing.T, s *specs.Spec) {
				if !slices.Equal(s.Process.Capabilities.Ambient, []string{"CAP_NET_ADMIN"}) {
					t.Errorf("ambient %v", s.Process.Capabilities.Ambient)
				}
			}},
		{name: "ambient opt-in does nothing for root",
			ctr: &spec.SecurityContext{Capabilities: &spec.Capabilities{Add: []string{"NET_ADMIN"}}},
			in:  func(in *KubernetesInputs) { in.AmbientCapabilities = true },
			check: func(t *testing.T, s *specs.Spec) {
				caps3(t, s, append(slices.Clone(spec.DefaultCapabilities), "CAP_NET_ADMIN"))
			}},
	})
}

func TestKubernetesCapabilityBeyondKernel(t *testing.T) {
	t.Cleanup(spec.FakeLastCapability(capability.CAP_AUDIT_READ))
	runK8sCases(t, []k8sCase{
		{name: "added capability the kernel lacks",
			ctr:    &spec.SecurityContext{Capabilities: &spec.Capabilities{Add: []string{"NET_ADMIN", "bpf"}}},
			errHas: []string{"capabilities.add[1]: BPF is beyond this node's kernel (its last capability is AUDIT_READ)"}},
		{name: "dropping one is harmless",
			ctr:   &spec.SecurityContext{Capabilities: &spec.Capabilities{Drop: []string{"CHECKPOINT_RESTORE"}}},
			check: func(t *testing.T, s *specs.Spec) { caps3(t, s, spec.DefaultCapabilities) }},
	})
}

func TestKubernetesPrivileged(t *testing.T) {
	fake := spectest.NewAppArmor(true, "k8s-custom")
	runK8sCases(t, []k8sCase{
		{name: "privileged has every capability, no masks, rw /sys, all devices, no seccomp, no default AppArmor",
			ctr: &spec.SecurityContext{Privileged: boolp(true)},
			in:  func(in *KubernetesInputs) { in.AppArmor = fake; in.SeccompDefault = true },
			check: func(t *testing.T, s *specs.Spec) {
				assertPrivileged(t, s)
				if s.Process.ApparmorProfile != "" {
					t.Errorf("apparmor %q", s.Process.ApparmorProfile)
				}
			},
			wantStep: []policy.Rule{policy.RuleUser, policy.RuleProcMount, policy.RulePrivileged, policy.RuleSeccomp}},
		{name: "privileged overrides drops, with a warning",
			ctr:     &spec.SecurityContext{Privileged: boolp(true), Capabilities: &spec.Capabilities{Drop: []string{"ALL"}}},
			warnHas: []string{"capabilities.drop: ignored: a privileged container gets every capability"},
			check:   func(t *testing.T, s *specs.Spec) { assertPrivileged(t, s) }},
		{name: "privileged ignores a seccomp profile, with a warning",
			ctr:     &spec.SecurityContext{Privileged: boolp(true), SeccompProfile: &spec.Profile{Type: "RuntimeDefault"}},
			warnHas: []string{"seccompProfile: ignored: a privileged container runs without seccomp"},
			check:   func(t *testing.T, s *specs.Spec) { assertPrivileged(t, s) }},
		{name: "privileged keeps a Localhost AppArmor profile",
			ctr: &spec.SecurityContext{Privileged: boolp(true), AppArmorProfile: &spec.Profile{Type: "Localhost", LocalhostProfile: strp("k8s-custom")}},
			in:  func(in *KubernetesInputs) { in.AppArmor = fake },
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.ApparmorProfile != "k8s-custom" {
					t.Errorf("apparmor %q", s.Process.ApparmorProfile)
				}
			}},
		{name: "privileged with RuntimeDefault AppArmor: skipped with a word",
			ctr:     &spec.SecurityContext{Privileged: boolp(true), AppArmorProfile: &spec.Profile{Type: "RuntimeDefault"}},
			in:      func(in *KubernetesInputs) { in.AppArmor = fake },
			warnHas: []string{"RuntimeDefault does not apply to a privileged container"}},
		{name: "privileged with host devices from a given root",
			ctr: &spec.SecurityContext{Privileged: boolp(true)},
			in: func(in *KubernetesInputs) {
				in.PrivilegedWithoutHostDevices = false
				in.HostDevRoot = filepath.Join(t.TempDir(), "nodev")
			},
			errHas: []string{"spec.containers[0].securityContext: privileged: host devices"}},
		{name: "privileged: false is no privilege",
			ctr:   &spec.SecurityContext{Privileged: boolp(false)},
			check: func(t *testing.T, s *specs.Spec) { caps3(t, s, spec.DefaultCapabilities) }},
	})
}

func TestKubernetesNoNewPrivileges(t *testing.T) {
	nnp := func(want bool) func(*testing.T, *specs.Spec) {
		return func(t *testing.T, s *specs.Spec) {
			if s.Process.NoNewPrivileges != want {
				t.Errorf("noNewPrivileges = %v, want %v", s.Process.NoNewPrivileges, want)
			}
		}
	}
	runK8sCases(t, []k8sCase{
		{name: "unset: escalation allowed", check: nnp(false)},
		{name: "allowPrivilegeEscalation false", ctr: &spec.SecurityContext{AllowPrivilegeEscalation: boolp(false)}, check: nnp(true)},
		{name: "allowPrivilegeEscalation true", ctr: &spec.SecurityContext{AllowPrivilegeEscalation: boolp(true)}, check: nnp(false)},
		{name: "false with privileged is invalid",
			ctr:    &spec.SecurityContext{AllowPrivilegeEscalation: boolp(false), Privileged: boolp(true)},
			errHas: []string{"spec.containers[0].securityContext.allowPrivilegeEscalation: false cannot be combined with privileged: true"}},
		{name: "false with SYS_ADMIN added is invalid",
			ctr:    &spec.SecurityContext{AllowPrivilegeEscalation: boolp(false), Capabilities: &spec.Capabilities{Add: []string{"SYS_ADMIN"}}},
			errHas: []string{"cannot be combined with capabilities.add of SYS_ADMIN"}},
		{name: "false with CAP_SYS_ADMIN spelt otherwise is invalid too",
			ctr:    &spec.SecurityContext{AllowPrivilegeEscalation: boolp(false), Capabilities: &spec.Capabilities{Add: []string{"cap_sys_admin"}}},
			errHas: []string{"SYS_ADMIN"}},
		{name: "false with ALL added is invalid (ALL holds SYS_ADMIN)",
			ctr:    &spec.SecurityContext{AllowPrivilegeEscalation: boolp(false), Capabilities: &spec.Capabilities{Add: []string{"ALL"}}},
			errHas: []string{"SYS_ADMIN"}},
		{name: "false with SYS_ADMIN added and dropped again is fine",
			ctr:   &spec.SecurityContext{AllowPrivilegeEscalation: boolp(false), Capabilities: &spec.Capabilities{Add: []string{"SYS_ADMIN"}, Drop: []string{"SYS_ADMIN"}}},
			check: nnp(true)},
		{name: "both invalid combinations reported together",
			ctr:    &spec.SecurityContext{AllowPrivilegeEscalation: boolp(false), Privileged: boolp(true), Capabilities: &spec.Capabilities{Add: []string{"SYS_ADMIN"}}},
			errHas: []string{"privileged: true", "SYS_ADMIN"}},
	})
}

func TestKubernetesUser(t *testing.T) {
	runK8sCases(t, []k8sCase{
		{name: "no user anywhere: root with root's groups", check: func(t *testing.T, s *specs.Spec) { wantUser(t, s, 0, 0, 0, 10) }},
		{name: "pod runAsUser", pod: &PodSecurityContext{RunAsUser: i64(1000)},
			check: func(t *testing.T, s *specs.Spec) { wantUser(t, s, 1000, 1000, 10, 29, 1000) }},
		{name: "container overrides pod", pod: &PodSecurityContext{RunAsUser: i64(1000), RunAsGroup: i64(5)},
			ctr:   &spec.SecurityContext{RunAsUser: i64(1001)},
			check: func(t *testing.T, s *specs.Spec) { wantUser(t, s, 1001, 5, 5, 29, 44, 100) }},
		{name: "the seed's example: runAsUser 1001, runAsGroup 1001",
			ctr:   &spec.SecurityContext{RunAsUser: i64(1001), RunAsGroup: i64(1001)},
			check: func(t *testing.T, s *specs.Spec) { wantUser(t, s, 1001, 1001, 29, 44, 100, 1001) }},
		{name: "runAsGroup alone applies to the image's user (the kubelet always passes one)",
			ctr:   &spec.SecurityContext{RunAsGroup: i64(3000)},
			in:    func(in *KubernetesInputs) { in.ImageUser = "alice" },
			check: func(t *testing.T, s *specs.Spec) { wantUser(t, s, 1000, 3000, 10, 29, 3000) }},
		{name: "image user by name", in: func(in *KubernetesInputs) { in.ImageUser = "bob" },
			check: func(t *testing.T, s *specs.Spec) { wantUser(t, s, 1001, 100, 29, 44, 100) }},
		{name: "supplementalGroupsPolicy Merge adds /etc/group memberships",
			pod:   &PodSecurityContext{RunAsUser: i64(1000), SupplementalGroups: []int64{4000}, SupplementalGroupsPolicy: strp("Merge")},
			check: func(t *testing.T, s *specs.Spec) { wantUser(t, s, 1000, 1000, 10, 29, 1000, 4000) }},
		{name: "supplementalGroupsPolicy Strict uses only the listed groups",
			pod:   &PodSecurityContext{RunAsUser: i64(1000), SupplementalGroups: []int64{4000}, SupplementalGroupsPolicy: strp("Strict")},
			check: func(t *testing.T, s *specs.Spec) { wantUser(t, s, 1000, 1000, 1000, 4000) }},
		{name: "fsGroup joins additionalGids",
			pod:   &PodSecurityContext{RunAsUser: i64(5555), FSGroup: i64(2000), SupplementalGroupsPolicy: strp("Strict")},
			check: func(t *testing.T, s *specs.Spec) { wantUser(t, s, 5555, 0, 0, 2000) }},
		{name: "unknown supplementalGroupsPolicy",
			pod:    &PodSecurityContext{SupplementalGroupsPolicy: strp("merge")},
			errHas: []string{`spec.securityContext.supplementalGroupsPolicy: unknown value "merge"; did you mean Merge?`}},
		{name: "runAsNonRoot with runAsUser 0",
			pod:    &PodSecurityContext{RunAsNonRoot: boolp(true)},
			ctr:    &spec.SecurityContext{RunAsUser: i64(0)},
			errHas: []string{"spec.securityContext: runAsNonRoot: runAsUser is 0 (root)"}, errIs: ErrRunAsRoot},
		{name: "runAsNonRoot with the image's root user by name",
			ctr:    &spec.SecurityContext{RunAsNonRoot: boolp(true)},
			in:     func(in *KubernetesInputs) { in.ImageUser = "root" },
			errHas: []string{"spec.containers[0].securityContext: runAsNonRoot", `the image's USER "root" is uid 0`}, errIs: ErrRunAsRoot},
		{name: "runAsNonRoot with a named non-root image user is resolved and allowed (the kubelet would refuse it)",
			ctr:   &spec.SecurityContext{RunAsNonRoot: boolp(true)},
			in:    func(in *KubernetesInputs) { in.ImageUser = "alice" },
			check: func(t *testing.T, s *specs.Spec) { wantUser(t, s, 1000, 1000, 10, 29, 1000) }},
		{name: "runAsNonRoot with an image user that does not resolve",
			ctr:    &spec.SecurityContext{RunAsNonRoot: boolp(true)},
			in:     func(in *KubernetesInputs) { in.ImageUser = "mallory" },
			errHas: []string{`non-numeric user "mallory"`}, errIs: ErrRunAsRoot},
		{name: "runAsNonRoot with no user at all: the bundle's root",
			pod:   &PodSecurityContext{RunAsNonRoot: boolp(true)},
			errIs: ErrRunAsRoot, errHas: []string{"would run as uid 0"}},
		{name: "runAsNonRoot false allows root", ctr: &spec.SecurityContext{RunAsNonRoot: boolp(false), RunAsUser: i64(0)},
			check: func(t *testing.T, s *specs.Spec) { wantUser(t, s, 0, 0, 0, 10) }},
		{name: "negative ids, each named",
			pod:    &PodSecurityContext{FSGroup: i64(-1), SupplementalGroups: []int64{1, -2}},
			ctr:    &spec.SecurityContext{RunAsUser: i64(-5)},
			errHas: []string{"spec.securityContext.fsGroup: -1", "spec.securityContext.supplementalGroups[1]: -2", "spec.containers[0].securityContext.runAsUser: -5"}},
		{name: "id beyond runc's range", pod: &PodSecurityContext{RunAsGroup: i64(1 << 31)},
			errHas: []string{"spec.securityContext.runAsGroup: 2147483648: larger than"}},
		{name: "missing rootfs", in: func(in *KubernetesInputs) { in.RootfsPath = filepath.Join(t.TempDir(), "gone") },
			errHas: []string{"container rootfs"}},
	})
}

// Without the image's files, ids stand as given and names cannot resolve.
func TestKubernetesUserWithoutRootfs(t *testing.T) {
	noRoot := func(in *KubernetesInputs) { in.RootfsPath = "" }
	runK8sCases(t, []k8sCase{
		{name: "numeric runAsUser", in: noRoot, pod: &PodSecurityContext{RunAsUser: i64(1001), RunAsGroup: i64(1001), FSGroup: i64(7), SupplementalGroups: []int64{9}},
			check: func(t *testing.T, s *specs.Spec) { wantUser(t, s, 1001, 1001, 7, 9, 1001) }},
		{name: "numeric image user", in: func(in *KubernetesInputs) { noRoot(in); in.ImageUser = "1234:99" },
			check: func(t *testing.T, s *specs.Spec) { wantUser(t, s, 1234, 0, 0) }},
		{name: "nothing", in: noRoot, check: func(t *testing.T, s *specs.Spec) { wantUser(t, s, 0, 0, 0) }},
		{name: "named image user", in: func(in *KubernetesInputs) { noRoot(in); in.ImageUser = "nginx" },
			errHas: []string{`image USER "nginx"`, "needs the image's /etc/passwd"}, errIs: ErrUserNotFound},
		{name: "named image user under runAsNonRoot", in: func(in *KubernetesInputs) { noRoot(in); in.ImageUser = "nginx" },
			pod: &PodSecurityContext{RunAsNonRoot: boolp(true)}, errIs: ErrRunAsRoot},
		{name: "root under runAsNonRoot", in: noRoot, pod: &PodSecurityContext{RunAsNonRoot: boolp(true), RunAsUser: i64(0)},
			errIs: ErrRunAsRoot, errHas: []string{"spec.securityContext: runAsNonRoot"}},
		{name: "root image user under runAsNonRoot", in: func(in *KubernetesInputs) { noRoot(in); in.ImageUser = "0" },
			pod: &PodSecurityContext{RunAsNonRoot: boolp(true)}, errIs: ErrRunAsRoot},
		{name: "bad image user", in: func(in *KubernetesInputs) { noRoot(in); in.ImageUser = ":5" },
			errHas: []string{"the user part is empty"}},
		{name: "an absolute root.path is the rootfs", in: noRoot, cfg: DefaultSpecConfig{RootPath: testdataRootfs(t, "rootfs")},
			pod:   &PodSecurityContext{RunAsUser: i64(1000)},
			check: func(t *testing.T, s *specs.Spec) { wantUser(t, s, 1000, 1000, 10, 29, 1000) }},
	})
}

func TestKubernetesProcMountAndRootfs(t *testing.T) {
	userns := DefaultSpecConfig{UserNamespace: &UserNamespaceConfig{
		UIDMappings: []specs.LinuxIDMapping{{HostID: 65536, Size: 65536}},
		GIDMappings: []specs.LinuxIDMapping{{HostID: 65536, Size: 65536}}}}
	runK8sCases(t, []k8sCase{
		{name: "procMount Default keeps the kubelet's masks", ctr: &spec.SecurityContext{ProcMount: strp("Default")},
			check: func(t *testing.T, s *specs.Spec) {
				if !slices.Equal(s.Linux.MaskedPaths, spec.DefaultMaskedPaths) {
					t.Errorf("masked %v", s.Linux.MaskedPaths)
				}
			}},
		{name: "procMount Unmasked without a user namespace is refused", ctr: &spec.SecurityContext{ProcMount: strp("Unmasked")},
			errHas: []string{"spec.containers[0].securityContext.procMount: Unmasked needs a user namespace", "hostUsers: false"}},
		{name: "procMount Unmasked with hostUsers: true is refused", ctr: &spec.SecurityContext{ProcMount: strp("Unmasked")},
			in: func(in *KubernetesInputs) { in.HostUsers = boolp(true) }, errHas: []string{"Unmasked needs a user namespace"}},
		{name: "procMount Unmasked with hostUsers: false", ctr: &spec.SecurityContext{ProcMount: strp("Unmasked")},
			in: func(in *KubernetesInputs) { in.HostUsers = boolp(false) }, cfg: userns,
			check: func(t *testing.T, s *specs.Spec) {
				if len(s.Linux.MaskedPaths)+len(s.Linux.ReadonlyPaths) != 0 {
					t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
				}
			}},
		{name: "hostUsers false but the spec has no user namespace: caught when applied",
			ctr: &spec.SecurityContext{ProcMount: strp("Unmasked")}, in: func(in *KubernetesInputs) { in.HostUsers = boolp(false) },
			errHas: []string{"spec.containers[0].securityContext: procMount: Unmasked needs a user namespace"}},
		{name: "unknown procMount", ctr: &spec.SecurityContext{ProcMount: strp("Unmask")},
			errHas: []string{`unknown value "Unmask"; did you mean Unmasked?`}},
		{name: "readOnlyRootFilesystem", ctr: &spec.SecurityContext{ReadOnlyRootFilesystem: boolp(true)},
			check: func(t *testing.T, s *specs.Spec) {
				if !s.Root.Readonly {
					t.Error("root is writable")
				}
			}},
		{name: "readOnlyRootFilesystem false", ctr: &spec.SecurityContext{ReadOnlyRootFilesystem: boolp(false)},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Root.Readonly {
					t.Error("root is read-only")
				}
			}},
	})
}

func TestKubernetesSysctls(t *testing.T) {
	sysctl := func(pairs ...string) *PodSecurityContext {
		p := &PodSecurityContext{}
		for i := 0; i < len(pairs); i += 2 {
			p.Sysctls = append(p.Sysctls, Sysctl{Name: pairs[i], Value: pairs[i+1]})
		}
		return p
	}
	has := func(want map[string]string) func(*testing.T, *specs.Spec) {
		return func(t *testing.T, s *specs.Spec) {
			if len(s.Linux.Sysctl) != len(want) {
				t.Errorf("sysctl %v, want %v", s.Linux.Sysctl, want)
			}
			for k, v := range want {
				if s.Linux.Sysctl[k] != v {
					t.Errorf("sysctl %v, want %v", s.Linux.Sysctl, want)
				}
			}
		}
	}
	runK8sCases(t, []k8sCase{
		{name: "done when: the seed's example, both safe",
			pod:   sysctl("kernel.shm_rmid_forced", "0", "net.ipv4.ip_unprivileged_port_start", "0"),
			check: has(map[string]string{"kernel.shm_rmid_forced": "0", "net.ipv4.ip_unprivileged_port_start": "0"})},
		{name: "the seed's misspellings, each with its correction",
			pod: sysctl("kernel.shm_rmid_force", "1", "net.ipv4.ip_local_range", "1024 65000", "net.ipv4.tcp_sysncookies", "1"),
			errHas: []string{
				"spec.securityContext.sysctls[0]: kernel.shm_rmid_force: unknown sysctl; did you mean kernel.shm_rmid_forced?",
				"spec.securityContext.sysctls[1]: net.ipv4.ip_local_range: unknown sysctl; did you mean net.ipv4.ip_local_port_range?",
				"spec.securityContext.sysctls[2]: net.ipv4.tcp_sysncookies: unknown sysctl; did you mean net.ipv4.tcp_syncookies?",
			}},
		{name: "done when: net.core.somaxconn is unsafe",
			pod: sysctl("net.core.somaxconn", "1024"), errHas: []string{"net.core.somaxconn: unsafe sysctl", "allowlist"}},
		{name: "done when: net.core.somaxconn allowlisted by name",
			pod: sysctl("net.core.somaxconn", "1024"), in: func(in *KubernetesInputs) { in.Sysctls.AllowedUnsafe = []string{"net.core.somaxconn"} },
			check: has(map[string]string{"net.core.somaxconn": "1024"})},
		{name: "allowlisted by glob",
			pod: sysctl("net.core.somaxconn", "1024"), in: func(in *KubernetesInputs) { in.Sysctls.AllowedUnsafe = []string{"net.core.*"} },
			check: has(map[string]string{"net.core.somaxconn": "1024"})},
		{name: "done when: kernel.hostname is always refused",
			pod: sysctl("kernel.hostname", "x"), in: func(in *KubernetesInputs) { in.Sysctls.AllowedUnsafe = []string{"net.*"} },
			errHas: []string{"kernel.hostname: hostname sysctl"}},
		{name: "an allowlist naming kernel.hostname is itself refused",
			pod: sysctl("kernel.hostname", "x"), in: func(in *KubernetesInputs) { in.Sysctls.AllowedUnsafe = []string{"kernel.hostname"} },
			errHas: []string{"the node's sysctl policy is invalid", "would allow kernel.hostname"}},
		{name: "node-level sysctls are refused", pod: sysctl("vm.swappiness", "10"),
			errHas: []string{"vm.swappiness is a node-level sysctl"}},
		{name: "slash separators are normalised", pod: sysctl("net/ipv4/ip_local_port_range", "1024 65000"),
			check: has(map[string]string{"net.ipv4.ip_local_port_range": "1024 65000"})},
		{name: "the same sysctl twice", pod: sysctl("kernel.shm_rmid_forced", "0", "kernel/shm_rmid_forced", "1"),
			errHas: []string{"spec.securityContext.sysctls[1].name: kernel.shm_rmid_forced is already set by sysctls[0]"}},
		{name: "safe only from a later Kubernetes", pod: sysctl("net.ipv4.ip_unprivileged_port_start", "0"),
			in:     func(in *KubernetesInputs) { in.Sysctls.KubernetesVersion = "1.21" },
			errHas: []string{"not in the safe set of Kubernetes 1.21 (it is safe from 1.22)"}},
		{name: "net.* in the host's network namespace", pod: sysctl("net.ipv4.ip_local_port_range", "1024 65000"),
			cfg:    DefaultSpecConfig{HostNetwork: true},
			errHas: []string{"spec.securityContext.sysctls: net.ipv4.ip_local_port_range", "hostNetwork"}},
		{name: "IPC sysctl with hostIPC", pod: sysctl("kernel.shm_rmid_forced", "1"), cfg: DefaultSpecConfig{HostIPC: true},
			errHas: []string{"hostIPC"}},
		{name: "kernel.domainname needs its own UTS namespace", pod: sysctl("kernel.domainname", "example"),
			in:  func(in *KubernetesInputs) { in.Sysctls.AllowedUnsafe = []string{"kernel.domainname"} },
			cfg: DefaultSpecConfig{HostNetwork: true}, errHas: []string{"kernel.domainname", "uts"}},
		{name: "kernel.domainname allowlisted with a UTS namespace", pod: sysctl("kernel.domainname", "example"),
			in:    func(in *KubernetesInputs) { in.Sysctls.AllowedUnsafe = []string{"kernel.domainname"} },
			check: has(map[string]string{"kernel.domainname": "example"})},
		{name: "empty value", pod: sysctl("kernel.shm_rmid_forced", ""), errHas: []string{"the value is empty"}},
	})
}

func TestKubernetesSeccomp(t *testing.T) {
	arch, sub, goArch := spectest.NativeArch(t)
	root := spectest.ProfileRoot(t, map[string]string{
		"oci.json":    spectest.OCIProfile,
		"docker.json": spectest.DockerProfile(arch, sub, goArch),
		"typo.json":   `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["mkdirat","chmood"],"action":"SCMP_ACT_ERRNO"}]}`,
	})
	withRoot := func(in *KubernetesInputs) { in.SeccompProfileRoot = root }
	isDefault := func(t *testing.T, s *specs.Spec) {
		t.Helper()
		if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno || len(s.Linux.Seccomp.Syscalls) < 20 {
			t.Fatalf("want the RuntimeDefault profile, got %+v", s.Linux.Seccomp)
		}
	}
	isOCI := func(t *testing.T, s *specs.Spec) {
		t.Helper()
		if s.Linux.Seccomp == nil || !slices.Equal(spectest.Allowed(s.Linux.Seccomp), []string{"read", "write", "exit_group"}) {
			t.Fatalf("want oci.json, got %+v", s.Linux.Seccomp)
		}
	}
	none := func(t *testing.T, s *specs.Spec) {
		t.Helper()
		if s.Linux.Seccomp != nil {
			t.Fatalf("want no seccomp, got %+v", s.Linux.Seccomp)
		}
	}
	ann := func(kv ...string) func(*KubernetesInputs) {
		return func(in *KubernetesInputs) {
			withRoot(in)
			in.Annotations = map[string]string{}
			for i := 0; i < len(kv); i += 2 {
				in.Annotations[kv[i]] = kv[i+1]
			}
		}
	}
	at := func(version string, f func(*KubernetesInputs)) func(*KubernetesInputs) {
		return func(in *KubernetesInputs) {
			f(in)
			in.KubernetesVersion = version
		}
	}
	v126 := func(f func(*KubernetesInputs)) func(*KubernetesInputs) { return at("1.26", f) }
	runK8sCases(t, []k8sCase{
		{name: "unset is Unconfined", check: none},
		{name: "unset with --seccomp-default is RuntimeDefault", in: func(in *KubernetesInputs) { in.SeccompDefault = true }, check: isDefault},
		{name: "pod RuntimeDefault", pod: &PodSecurityContext{SeccompProfile: &spec.Profile{Type: "RuntimeDefault"}}, check: isDefault},
		{name: "container Localhost overrides pod RuntimeDefault", in: withRoot,
			pod:   &PodSecurityContext{SeccompProfile: &spec.Profile{Type: "RuntimeDefault"}},
			ctr:   &spec.SecurityContext{SeccompProfile: &spec.Profile{Type: "Localhost", LocalhostProfile: strp("oci.json")}},
			check: isOCI},
		{name: "container Unconfined overrides pod", pod: &PodSecurityContext{SeccompProfile: &spec.Profile{Type: "RuntimeDefault"}},
			ctr: &spec.SecurityContext{SeccompProfile: &spec.Profile{Type: "Unconfined"}}, check: none},
		{name: "Docker-format Localhost honours includes.caps with SYS_ADMIN added last", in: withRoot,
			ctr: &spec.SecurityContext{Capabilities: &spec.Capabilities{Add: []string{"SYS_ADMIN"}},
				SeccompProfile: &spec.Profile{Type: "Localhost", LocalhostProfile: strp("docker.json")}},
			check: func(t *testing.T, s *specs.Spec) {
				if !slices.Contains(spectest.Allowed(s.Linux.Seccomp), "mount") {
					t.Fatal("the includes.caps SYS_ADMIN rule is missing: seccomp did not see the final capabilities")
				}
			}},
		{name: "Docker-format Localhost without SYS_ADMIN", in: withRoot,
			ctr: &spec.SecurityContext{SeccompProfile: &spec.Profile{Type: "Localhost", LocalhostProfile: strp("docker.json")}},
			check: func(t *testing.T, s *specs.Spec) {
				if slices.Contains(spectest.Allowed(s.Linux.Seccomp), "mount") {
					t.Fatal("the includes.caps SYS_ADMIN rule is present without SYS_ADMIN")
				}
			}},
		{name: "RuntimeDefault sees capabilities added in the same context",
			ctr: &spec.SecurityContext{Capabilities: &spec.Capabilities{Add: []string{"SYS_ADMIN"}}, SeccompProfile: &spec.Profile{Type: "RuntimeDefault"}},
			check: func(t *testing.T, s *specs.Spec) {
				if !slices.Contains(spectest.Allowed(s.Linux.Seccomp), "mount") {
					t.Fatal("RuntimeDefault was generated before the capabilities")
				}
			}},
		{name: "Localhost path traversal", in: withRoot,
			ctr:    &spec.SecurityContext{SeccompProfile: &spec.Profile{Type: "Localhost", LocalhostProfile: strp("../etc/x.json")}},
			errHas: []string{"spec.containers[0].securityContext: seccompProfile Localhost \"../etc/x.json\"", `may not contain ".."`}},
		{name: "Localhost typo in a syscall name", in: withRoot,
			ctr:    &spec.SecurityContext{SeccompProfile: &spec.Profile{Type: "Localhost", LocalhostProfile: strp("typo.json")}},
			errHas: []string{"unknown syscall name(s) chmood"}},
		{name: "Localhost without localhostProfile",
			ctr:    &spec.SecurityContext{SeccompProfile: &spec.Profile{Type: "Localhost"}},
			errHas: []string{"spec.containers[0].securityContext.seccompProfile.localhostProfile: required when type is Localhost"}},
		{name: "localhostProfile with another type",
			pod:    &PodSecurityContext{SeccompProfile: &spec.Profile{Type: "RuntimeDefault", LocalhostProfile: strp("x")}},
			errHas: []string{"spec.securityContext.seccompProfile.localhostProfile: may only be set when type is Localhost"}},
		{name: "unknown type", ctr: &spec.SecurityContext{SeccompProfile: &spec.Profile{Type: "runtimedefault"}},
			errHas: []string{`seccompProfile.type: unknown value "runtimedefault"; did you mean RuntimeDefault?`}},
		// Up to 1.26 an annotation stood in for its level's unset field.
		{name: "1.26: legacy pod annotation runtime/default", in: v126(ann(SeccompPodAnnotation, "runtime/default")), check: isDefault},
		{name: "1.24: legacy pod annotation docker/default", in: at("1.24", ann(SeccompPodAnnotation, "docker/default")), check: isDefault},
		{name: "1.26: legacy container annotation wins over the pod annotation",
			in: v126(ann(SeccompPodAnnotation, "runtime/default", SeccompContainerAnnotationPrefix+"app", "localhost/oci.json")), check: isOCI, noWarn: true},
		{name: "1.26: another container's annotation does not apply",
			in: v126(ann(SeccompContainerAnnotationPrefix+"other", "localhost/oci.json")), check: none},
		{name: "1.26: legacy container annotation unconfined over pod RuntimeDefault annotation",
			in: v126(ann(SeccompPodAnnotation, "runtime/default", SeccompContainerAnnotationPrefix+"app", "unconfined")), check: none},
		{name: "1.26: container annotation wins over the pod field (copied into the container's field)",
			pod: &PodSecurityContext{SeccompProfile: &spec.Profile{Type: "RuntimeDefault"}},
			in:  v126(ann(SeccompContainerAnnotationPrefix+"app", "localhost/oci.json")), check: isOCI},
		{name: "1.26: a field wins over the other level's annotation, with a warning",
			ctr:     &spec.SecurityContext{SeccompProfile: &spec.Profile{Type: "RuntimeDefault"}},
			in:      v126(ann(SeccompPodAnnotation, "unconfined")),
			check:   isDefault,
			warnHas: []string{`metadata.annotations["seccomp.security.alpha.kubernetes.io/pod"]: ignored: spec.containers[0].securityContext.seccompProfile decides`}},
		{name: "v1.26.15 counts as 1.26", in: at("v1.26.15", ann(SeccompPodAnnotation, "runtime/default")), check: isDefault},
		// From 1.27 the annotations decide nothing.
		{name: "1.27: a Pod annotation alone leaves the container unconfined, with a warning",
			in: at("1.27", ann(SeccompPodAnnotation, "runtime/default")), check: none,
			warnHas: []string{`metadata.annotations["seccomp.security.alpha.kubernetes.io/pod"]: ignored: Kubernetes 1.27 and later ignore the seccomp annotations (the kubelet since 1.25), so the container runs with no seccomp profile (Unconfined); set securityContext.seccompProfile instead`}},
		{name: "newest: a container annotation alone is ignored", in: ann(SeccompContainerAnnotationPrefix+"app", "localhost/oci.json"), check: none,
			warnHas: []string{`container.seccomp.security.alpha.kubernetes.io/app"]: ignored: Kubernetes 1.27 and later`}},
		{name: "newest: the container annotation does not beat the pod field",
			pod: &PodSecurityContext{SeccompProfile: &spec.Profile{Type: "RuntimeDefault"}},
			in:  ann(SeccompContainerAnnotationPrefix+"app", "unconfined"), check: isDefault,
			warnHas: []string{"runs with the profile of spec.securityContext.seccompProfile"}},
		{name: "newest: an ignored annotation under --seccomp-default says what runs",
			in: func(in *KubernetesInputs) {
				ann(SeccompPodAnnotation, "unconfined")(in)
				in.SeccompDefault = true
			}, check: isDefault,
			warnHas: []string{"runs with RuntimeDefault, from the kubelet's --seccomp-default"}},
		// Every version refuses an annotation that contradicts its level's
		// field.
		{name: "1.26: annotation and field of one level disagree",
			ctr:    &spec.SecurityContext{SeccompProfile: &spec.Profile{Type: "RuntimeDefault"}},
			in:     v126(ann(SeccompContainerAnnotationPrefix+"app", "unconfined")),
			errHas: []string{`metadata.annotations["container.seccomp.security.alpha.kubernetes.io/app"]: "unconfined" contradicts spec.containers[0].securityContext.seccompProfile (type RuntimeDefault)`}},
		{name: "newest: annotation and field of one level disagree",
			pod:    &PodSecurityContext{SeccompProfile: &spec.Profile{Type: "Localhost", LocalhostProfile: strp("oci.json")}},
			in:     ann(SeccompPodAnnotation, "localhost/other.json"),
			errHas: []string{`"localhost/other.json" contradicts spec.securityContext.seccompProfile (type Localhost)`}},
		{name: "newest: annotation and field of one level agree",
			pod:   &PodSecurityContext{SeccompProfile: &spec.Profile{Type: "RuntimeDefault"}},
			in:    ann(SeccompPodAnnotation, "docker/default"),
			check: isDefault},
		{name: "bad annotation value", in: ann(SeccompPodAnnotation, "runtime/defualt"),
			errHas: []string{`metadata.annotations["seccomp.security.alpha.kubernetes.io/pod"]: unknown value "runtime/defualt"; did you mean runtime/default?`}},
		{name: "annotation localhost/ without a name", in: ann(SeccompPodAnnotation, "localhost/"),
			errHas: []string{"unknown value"}},
	})
}

func TestKubernetesAppArmor(t *testing.T) {
	on := func() *spectest.AppArmor { return spectest.NewAppArmor(true, "k8s-deny-write") }
	host := func(h spec.AppArmorHost, kv ...string) func(*KubernetesInputs) {
		return func(in *KubernetesInputs) {
			in.AppArmor = h
			in.Annotations = map[string]string{}
			for i := 0; i < len(kv); i += 2 {
				in.Annotations[kv[i]] = kv[i+1]
			}
		}
	}
	profile := func(want string) func(*testing.T, *specs.Spec) {
		return func(t *testing.T, s *specs.Spec) {
			if s.Process.ApparmorProfile != want {
				t.Errorf("apparmor %q, want %q", s.Process.ApparmorProfile, want)
			}
		}
	}
	runK8sCases(t, []k8sCase{
		{name: "unset on an AppArmor node: the runtime default, as containerd", in: host(on()), check: profile(spec.DefaultAppArmorProfile)},
		{name: "unset without AppArmor: nothing, silently", in: host(spectest.NewAppArmor(false)), check: profile(""), noWarn: true},
		{name: "unset with a nil host", in: host(nil), check: profile(""), noWarn: true},
		{name: "RuntimeDefault", ctr: &spec.SecurityContext{AppArmorProfile: &spec.Profile{Type: "RuntimeDefault"}}, in: host(on()), check: profile(spec.DefaultAppArmorProfile)},
		{name: "RuntimeDefault without AppArmor: skipped with a warning",
			pod: &PodSecurityContext{AppArmorProfile: &spec.Profile{Type: "RuntimeDefault"}}, in: host(spectest.NewAppArmor(false)), check: profile(""),
			warnHas: []string{"spec.securityContext.appArmorProfile: RuntimeDefault skipped: AppArmor is not enabled in this kernel"}},
		{name: "Localhost, loaded", ctr: &spec.SecurityContext{AppArmorProfile: &spec.Profile{Type: "Localhost", LocalhostProfile: strp("k8s-deny-write")}},
			in: host(on()), check: profile("k8s-deny-write")},
		{name: "Localhost, not loaded", ctr: &spec.SecurityContext{AppArmorProfile: &spec.Profile{Type: "Localhost", LocalhostProfile: strp("k8s-other")}},
			in: host(on()), errHas: []string{"spec.containers[0].securityContext: appArmorProfile Localhost \"k8s-other\": no profile of that name is loaded"}},
		{name: "Localhost without AppArmor is refused", ctr: &spec.SecurityContext{AppArmorProfile: &spec.Profile{Type: "Localhost", LocalhostProfile: strp("k8s-deny-write")}},
			in: host(nil), errHas: []string{"AppArmor is not enabled in this kernel"}},
		{name: "Unconfined", pod: &PodSecurityContext{AppArmorProfile: &spec.Profile{Type: "Unconfined"}}, in: host(on()), check: profile("")},
		{name: "container overrides pod", pod: &PodSecurityContext{AppArmorProfile: &spec.Profile{Type: "Unconfined"}},
			ctr: &spec.SecurityContext{AppArmorProfile: &spec.Profile{Type: "RuntimeDefault"}}, in: host(on()), check: profile(spec.DefaultAppArmorProfile)},
		{name: "legacy annotation localhost/", in: host(on(), AppArmorContainerAnnotationPrefix+"app", "localhost/k8s-deny-write"), check: profile("k8s-deny-write")},
		{name: "legacy annotation runtime/default", in: host(on(), AppArmorContainerAnnotationPrefix+"app", "runtime/default"), check: profile(spec.DefaultAppArmorProfile)},
		{name: "legacy annotation unconfined", in: host(on(), AppArmorContainerAnnotationPrefix+"app", "unconfined"), check: profile("")},
		{name: "legacy annotation beats the pod field", pod: &PodSecurityContext{AppArmorProfile: &spec.Profile{Type: "RuntimeDefault"}},
			in: host(on(), AppArmorContainerAnnotationPrefix+"app", "unconfined"), check: profile("")},
		{name: "the container field beats the annotation, with a warning",
			ctr:     &spec.SecurityContext{AppArmorProfile: &spec.Profile{Type: "Unconfined"}},
			in:      host(on(), AppArmorContainerAnnotationPrefix+"app", "localhost/k8s-deny-write"),
			check:   profile(""),
			warnHas: []string{"ignored: spec.containers[0].securityContext.appArmorProfile decides the AppArmor profile"}},
		{name: "docker/default is a seccomp word only", in: host(on(), AppArmorContainerAnnotationPrefix+"app", "docker/default"),
			errHas: []string{`unknown value "docker/default"`}},
		{name: "unknown type", ctr: &spec.SecurityContext{AppArmorProfile: &spec.Profile{Type: "Local"}}, in: host(on()),
			errHas: []string{`appArmorProfile.type: unknown value "Local"`}},
	})
}

func TestKubernetesSELinuxAndWindows(t *testing.T) {
	label := func(p, m string) func(*testing.T, *specs.Spec) {
		return func(t *testing.T, s *specs.Spec) {
			if s.Process.SelinuxLabel != p || s.Linux.MountLabel != m {
				t.Errorf("labels %q %q, want %q %q", s.Process.SelinuxLabel, s.Linux.MountLabel, p, m)
			}
		}
	}
	selinux := func(on bool) func(*KubernetesInputs) { return func(in *KubernetesInputs) { in.SELinux = &on } }
	// The Pod's pair is s0:c3,c4; fresh pairs are s0:c7,c8.
	selinuxPair := func(on bool) func(*KubernetesInputs) {
		return func(in *KubernetesInputs) {
			in.SELinux = &on
			in.SELinuxLevel = "s0:c3,c4"
			in.NewSELinuxLevel = func() string { return "s0:c7,c8" }
		}
	}
	runK8sCases(t, []k8sCase{
		{name: "pod seLinuxOptions", pod: &PodSecurityContext{SELinuxOptions: &spec.SELinuxOptions{Level: "s0:c1,c2"}}, in: selinux(true),
			check: label("system_u:system_r:container_t:s0:c1,c2", "system_u:object_r:container_file_t:s0:c1,c2")},
		{name: "container seLinuxOptions replace the pod's whole: a fresh pair, not the Pod's (go-selinux InitLabels)",
			pod: &PodSecurityContext{SELinuxOptions: &spec.SELinuxOptions{Level: "s0:c1,c2"}},
			ctr: &spec.SecurityContext{SELinuxOptions: &spec.SELinuxOptions{Type: "container_init_t"}}, in: selinuxPair(true),
			check: label("system_u:system_r:container_init_t:s0:c7,c8", "system_u:object_r:container_file_t:s0:c7,c8")},
		{name: "an SELinux node labels a container without options: container_t and the Pod's pair",
			in:    selinuxPair(true),
			check: label("system_u:system_r:container_t:s0:c3,c4", "system_u:object_r:container_file_t:s0:c3,c4"), noWarn: true},
		{name: "a privileged container is labelled too (containerd clears only the sandbox's)",
			ctr: &spec.SecurityContext{Privileged: boolp(true)}, in: selinuxPair(true),
			check: label("system_u:system_r:container_t:s0:c3,c4", "system_u:object_r:container_file_t:s0:c3,c4")},
		{name: "user and level reach the mount label, role and type do not",
			ctr: &spec.SecurityContext{SELinuxOptions: &spec.SELinuxOptions{User: "user_u", Role: "user_r", Type: "spc_t", Level: "s0:c9,c10"}}, in: selinuxPair(true),
			check: label("user_u:user_r:spc_t:s0:c9,c10", "user_u:object_r:container_file_t:s0:c9,c10")},
		{name: "without SELinux no label and no word", in: selinuxPair(false), check: label("", ""), noWarn: true},
		{name: "a drawn pair has two distinct categories, lower first", in: selinux(true),
			check: func(t *testing.T, s *specs.Spec) {
				parts := strings.SplitN(s.Process.SelinuxLabel, ":", 4)
				var a, b int
				if n, err := fmt.Sscanf(parts[3], "s0:c%d,c%d", &a, &b); n != 2 || err != nil || a >= b || b >= 1024 {
					t.Errorf("level %q", parts[3])
				}
			}},
		{name: "invalid SELinux type", ctr: &spec.SecurityContext{SELinuxOptions: &spec.SELinuxOptions{Type: "a b"}}, in: selinux(true),
			errHas: []string{"spec.containers[0].securityContext: seLinuxOptions.type"}},
		{name: "invalid SELinux type on a node without SELinux", ctr: &spec.SecurityContext{SELinuxOptions: &spec.SELinuxOptions{Type: "a b"}}, in: selinux(false),
			errHas: []string{"spec.containers[0].securityContext: seLinuxOptions.type"}},
		{name: "no labels on a node without SELinux, as containerd", pod: &PodSecurityContext{SELinuxOptions: &spec.SELinuxOptions{Level: "s0:c1,c2"}}, in: selinux(false),
			warnHas: []string{"SELinux is not enabled on this node"}, check: label("", "")},
		{name: "windowsOptions are ignored on Linux, with a warning",
			pod:     &PodSecurityContext{WindowsOptions: &spec.WindowsOptions{RunAsUserName: strp("ContainerUser")}},
			warnHas: []string{"spec.securityContext.windowsOptions: ignored: windowsOptions apply only to Windows nodes"}},
		{name: "hostProcess is refused",
			ctr:    &spec.SecurityContext{WindowsOptions: &spec.WindowsOptions{HostProcess: boolp(true)}},
			errHas: []string{"spec.containers[0].securityContext.windowsOptions.hostProcess: true asks for a Windows HostProcess container"}},
		{name: "hostProcess from the pod, other fields from the container: merged",
			pod:    &PodSecurityContext{WindowsOptions: &spec.WindowsOptions{HostProcess: boolp(true)}},
			ctr:    &spec.SecurityContext{WindowsOptions: &spec.WindowsOptions{RunAsUserName: strp("x")}},
			errHas: []string{"windowsOptions.hostProcess: true"}},
		{name: "volume-only policies are validated", pod: &PodSecurityContext{FSGroupChangePolicy: strp("OnRootMismatc"), SELinuxChangePolicy: strp("Recursive")},
			errHas: []string{`fsGroupChangePolicy: unknown value "OnRootMismatc"; did you mean OnRootMismatch?`}},
		{name: "volume-only policies change nothing in the spec",
			pod: &PodSecurityContext{FSGroupChangePolicy: strp("Always"), SELinuxChangePolicy: strp("MountOption")},
			check: func(t *testing.T, s *specs.Spec) {
				d := mustDefaultSpec(t, DefaultSpecConfig{})
				if s.Root.Readonly != d.Root.Readonly || s.Linux.MountLabel != "" {
					t.Error("volume policies leaked into the spec")
				}
			}},
	})
}

func TestKubernetesDefaultPaths(t *testing.T) {
	_, err := KubernetesSteps(nil, &spec.SecurityContext{Capabilities: &spec.Capabilities{Add: []string{"NET_ADMN"}}}, KubernetesInputs{ContainerName: "web"})
	if err == nil || !strings.Contains(err.Error(), `container "web".securityContext.capabilities.add[0]`) {
		t.Fatalf("err = %v", err)
	}
	_, err = KubernetesSteps(&PodSecurityContext{SupplementalGroupsPolicy: strp("x")}, nil, KubernetesInputs{})
	if err == nil || !strings.HasPrefix(err.Error(), "pod.securityContext.supplementalGroupsPolicy") {
		t.Fatalf("err = %v", err)
	}
}

// A translated spec must be one runc accepts; the golden and end-to-end
// tests in manifest and cmd/secrunctl run real ones.
func TestKubernetesInputsDoNotLeak(t *testing.T) {
	pod := &PodSecurityContext{SupplementalGroups: []int64{1, 2}, RunAsUser: i64(1000)}
	ctr := &spec.SecurityContext{Capabilities: &spec.Capabilities{Add: []string{"NET_ADMIN"}}}
	steps, err := KubernetesSteps(pod, ctr, KubernetesInputs{RootfsPath: testdataRootfs(t, "rootfs")})
	if err != nil {
		t.Fatal(err)
	}
	pod.SupplementalGroups[0] = 99
	*pod.RunAsUser = 0
	ctr.Capabilities.Add[0] = "SYS_ADMIN"
	s := mustDefaultSpec(t, DefaultSpecConfig{})
	for _, st := range steps {
		if err := st.Option(s); err != nil {
			t.Fatal(err)
		}
	}
	if slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") || slices.Contains(s.Process.User.AdditionalGids, 99) || s.Process.User.UID != 1000 {
		t.Error("changing the input after KubernetesSteps changed what the steps do")
	}
}
