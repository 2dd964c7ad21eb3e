package policy

import (
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

func withIntent(t *testing.T, podWide, own string) *specs.Spec {
	s := runcSpec(t)
	s.Annotations = map[string]string{"io.kubernetes.cri.container-name": "app"}
	if podWide != "" {
		s.Annotations[IntentAnnotation] = podWide
	}
	if own != "" {
		s.Annotations[IntentAnnotationPrefix+"app"] = own
	}
	return s
}

func TestIntentTightens(t *testing.T) {
	s := withIntent(t, `{"capabilities":{"drop":["ALL"],"add":["NET_BIND_SERVICE"]},"readOnlyRootFilesystem":true}`,
		`{"runAsUser":1000,"runAsGroup":1000,"seccompProfile":{"type":"RuntimeDefault"}}`)
	s.Process.NoNewPrivileges = false
	out := builtin(t, "privileged", "").Decide(noAppArmor(), s)
	if out.Refused() {
		t.Fatalf("refused: %v", out.Err)
	}
	if !slices.Equal(s.Process.Capabilities.Bounding, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Errorf("bounding = %v", s.Process.Capabilities.Bounding)
	}
	if !s.Root.Readonly || s.Process.User.UID != 1000 || s.Process.User.GID != 1000 || !spec.Confined(s) {
		t.Errorf("intent not applied: ro %v uid %d gid %d", s.Root.Readonly, s.Process.User.UID, s.Process.User.GID)
	}
	if out.Decision != "hardened" || len(out.Changes) < 4 {
		t.Errorf("outcome %s changes %v", out.Decision, out.Changes)
	}
}

func TestIntentContainerOverridesPod(t *testing.T) {
	s := withIntent(t, `{"runAsUser":1000}`, `{"runAsUser":2000}`)
	if out := builtin(t, "baseline", "").Decide(noAppArmor(), s); out.Refused() || s.Process.User.UID != 2000 {
		t.Fatalf("uid %d, outcome %s %v", s.Process.User.UID, out.Decision, out.Err)
	}
	// Another container's annotation does not apply.
	s = withIntent(t, "", "")
	s.Annotations[IntentAnnotationPrefix+"other"] = `{"runAsUser":3000}`
	builtin(t, "baseline", "").Decide(noAppArmor(), s)
	if s.Process.User.UID != 0 {
		t.Errorf("another container's intent applied: uid %d", s.Process.User.UID)
	}
}

func TestIntentRefusesLoosening(t *testing.T) {
	cases := map[string]struct {
		setup  func(*specs.Spec)
		intent string
		want   string
	}{
		"privileged":       {nil, `{"privileged":true}`, "privileged"},
		"add cap":          {nil, `{"capabilities":{"add":["SYS_ADMIN"]}}`, "capabilities.add: SYS_ADMIN is not held"},
		"add all":          {nil, `{"capabilities":{"add":["ALL"]}}`, "capabilities.add"},
		"escalation":       {nil, `{"allowPrivilegeEscalation":true}`, "allowPrivilegeEscalation"},
		"root":             {func(s *specs.Spec) { s.Process.User.UID = 1000 }, `{"runAsUser":0}`, "runAsUser: 0 would make the container root"},
		"root group":       {func(s *specs.Spec) { s.Process.User.GID = 1000 }, `{"runAsGroup":0}`, "runAsGroup"},
		"writable root":    {func(s *specs.Spec) { s.Root.Readonly = true }, `{"readOnlyRootFilesystem":false}`, "readOnlyRootFilesystem"},
		"unmask proc":      {nil, `{"procMount":"Unmasked"}`, "procMount"},
		"unconfined":       {func(s *specs.Spec) { spec.WithRuntimeDefaultSeccomp()(s) }, `{"seccompProfile":{"type":"Unconfined"}}`, "seccompProfile"},
		"typo":             {nil, `{"runAsUer":1000}`, `unknown field "runAsUer": did you mean runAsUser?`},
		"not json":         {nil, `runAsUser=1000`, "must be a JSON object"},
		"huge":             {nil, `{"x":"` + strings.Repeat("a", 20000) + `"}`, "bytes"},
		"trailing":         {nil, `{"runAsUser":1000} {}`, "trailing"},
		"nonroot as root":  {nil, `{"runAsNonRoot":true}`, "runAsNonRoot"},
		"bad cap name":     {nil, `{"capabilities":{"drop":["NET_ADMN"]}}`, "did you mean NET_ADMIN?"},
		"negative uid":     {nil, `{"runAsUser":-1}`, "not a valid uid"},
		"seccomp no local": {nil, `{"seccompProfile":{"type":"Localhost"}}`, "localhostProfile"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := withIntent(t, tc.intent, "")
			if tc.setup != nil {
				tc.setup(s)
			}
			out := builtin(t, "privileged", "").Decide(noAppArmor(), s)
			if !out.Refused() || out.Err == nil || !strings.Contains(out.Err.Error(), tc.want) {
				t.Fatalf("outcome %s err %v, want refusal mentioning %q", out.Decision, out.Err, tc.want)
			}
		})
	}
}

func TestIntentIgnoredForSandbox(t *testing.T) {
	s := withIntent(t, `{"runAsUser":1000}`, "")
	s.Annotations["io.kubernetes.cri.container-type"] = "sandbox"
	s.Process.Args = []string{"/pause"}
	builtin(t, "privileged", "").Decide(noAppArmor(), s)
	if s.Process.User.UID != 0 {
		t.Error("intent applied to the sandbox")
	}
	// A bundle that only calls itself a sandbox is a container: its
	// Pod's intent applies.
	s = withIntent(t, `{"runAsUser":1000}`, "")
	s.Annotations["io.kubernetes.cri.container-type"] = "sandbox"
	out := builtin(t, "privileged", "").Decide(noAppArmor(), s)
	if s.Process.User.UID != 1000 {
		t.Errorf("intent not applied to a fake sandbox (%s)", out.Decision)
	}
}

func FuzzParseIntent(f *testing.F) {
	f.Add(`{"capabilities":{"drop":["ALL"]},"runAsUser":1000}`)
	f.Add(`{"seccompProfile":{"type":"Localhost","localhostProfile":"a/../b"}}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, v string) {
		sc, err := ParseIntent(v)
		if err != nil {
			return
		}
		s := runcSpec(t)
		// Must never panic, and an accepted intent never adds capabilities.
		before := spec.CapabilitiesOutside(s.Process, nil)
		if _, err := ApplyIntent(&Env{AppArmor: &fakeAppArmor{}, SeccompProfileRoot: t.TempDir()}, s, sc); err != nil {
			return
		}
		for _, c := range spec.CapabilitiesOutside(s.Process, nil) {
			if !slices.Contains(before, c) {
				t.Fatalf("intent %s added %s", v, c)
			}
		}
	})
}

func TestPodRef(t *testing.T) {
	for _, ann := range []map[string]string{
		{"io.kubernetes.cri.sandbox-name": "web-0", "io.kubernetes.cri.sandbox-namespace": "shop"},
		{"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop"},
	} {
		ns, name := PodRef(&specs.Spec{Annotations: ann})
		if ns != "shop" || name != "web-0" {
			t.Errorf("PodRef(%v) = %q, %q", ann, ns, name)
		}
	}
}
