package spec

import (
	"slices"
	"strings"
	"testing"

	"github.com/secrun/secrun/spec/spectest"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// withDefaultCaps is what containerd hands a container before its
// securityContext applies.
func withDefaultCaps() *specs.Spec {
	d := slices.Clone(DefaultCapabilities)
	return &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
		Bounding: d, Effective: slices.Clone(d), Permitted: slices.Clone(d),
	}}}
}

// fakeLastCap makes the kernel look older for one test: capabilities
// after last are "beyond the kernel".
func fakeLastCap(t *testing.T, last capability.Cap) {
	t.Helper()
	t.Cleanup(FakeLastCapability(last))
}

func TestNormalizeCapability(t *testing.T) {
	tests := []struct {
		in, want string
		errHas   string
	}{
		{in: "NET_ADMIN", want: "CAP_NET_ADMIN"},
		{in: "net_admin", want: "CAP_NET_ADMIN"},
		{in: "CAP_NET_ADMIN", want: "CAP_NET_ADMIN"},
		{in: "cap_net_admin", want: "CAP_NET_ADMIN"},
		{in: " Sys_Admin ", want: "CAP_SYS_ADMIN"},
		{in: "checkpoint_restore", want: "CAP_CHECKPOINT_RESTORE"},
		{in: "", errHas: "empty capability name"},
		{in: "NET_ADMN", errHas: "did you mean NET_ADMIN?"},
		{in: "CAP_SYS_TIM", errHas: "did you mean SYS_TIME?"},
		{in: "FLY", errHas: `unknown capability "FLY"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizeCapability(tt.in)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("NormalizeCapability(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.errHas)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeCapability(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNormalizeCapabilitiesKeepsALL(t *testing.T) {
	got, err := NormalizeCapabilities([]string{"all", "chown", "ALL"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ALL", "CAP_CHOWN", "ALL"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestWithCapabilities(t *testing.T) {
	all := AllCapabilities()
	tests := []struct {
		name       string
		add, drop  []string
		want       []string // bounding = effective = permitted
		errHas     string
		beforeHook func(*specs.Spec)
	}{
		{name: "nothing asked keeps the default set",
			want: DefaultCapabilities},
		{name: "the user's example: add NET_ADMIN, drop CHOWN",
			add: []string{"NET_ADMIN"}, drop: []string{"CHOWN"},
			want: append(spectest.Without(DefaultCapabilities, "CAP_CHOWN"), "CAP_NET_ADMIN")},
		{name: "names in any case, with or without CAP_",
			add: []string{"cap_net_admin", "Sys_Time"}, drop: []string{"CAP_chown"},
			want: append(spectest.Without(DefaultCapabilities, "CAP_CHOWN"), "CAP_NET_ADMIN", "CAP_SYS_TIME")},
		{name: "add ALL is every capability the runtime holds",
			add: []string{"ALL"}, want: all},
		{name: "add all in lower case",
			add: []string{"all"}, want: all},
		{name: "drop ALL empties every set",
			drop: []string{"ALL"}, want: []string{}},
		{name: "drop ALL then add one back",
			add: []string{"NET_BIND_SERVICE"}, drop: []string{"ALL"},
			want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "add ALL and drop one",
			add: []string{"ALL"}, drop: []string{"CHOWN"}, want: spectest.Without(all, "CAP_CHOWN")},
		{name: "add ALL and drop ALL: drop wins, then single adds",
			add: []string{"ALL", "KILL"}, drop: []string{"ALL"}, want: []string{"CAP_KILL"}},
		{name: "drops apply after adds",
			add: []string{"NET_ADMIN"}, drop: []string{"NET_ADMIN"}, want: DefaultCapabilities},
		{name: "adding a held capability does not repeat it",
			add: []string{"CHOWN", "chown"}, want: DefaultCapabilities},
		{name: "dropping a capability not held is fine",
			drop: []string{"SYS_ADMIN"}, want: DefaultCapabilities},
		{name: "inheritable and ambient are cleared",
			beforeHook: func(s *specs.Spec) {
				s.Process.Capabilities.Inheritable = []string{"CAP_KILL"}
				s.Process.Capabilities.Ambient = []string{"CAP_KILL"}
			},
			add: []string{"NET_ADMIN"}, want: append(slices.Clone(DefaultCapabilities), "CAP_NET_ADMIN")},
		{name: "unknown name in add, with a suggestion",
			add: []string{"NET_ADMN"}, errHas: "capabilities.add: unknown capability \"NET_ADMN\": did you mean NET_ADMIN?"},
		{name: "unknown name in drop",
			drop: []string{"CHOWNN"}, errHas: "capabilities.drop: unknown capability \"CHOWNN\": did you mean CHOWN?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := withDefaultCaps()
			if tt.beforeHook != nil {
				tt.beforeHook(s)
			}
			err := WithCapabilities(tt.add, tt.drop)(s)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want one containing %q", err, tt.errHas)
				}
				if !slices.Equal(s.Process.Capabilities.Bounding, DefaultCapabilities) {
					t.Fatalf("a refused option changed the spec: %v", s.Process.Capabilities.Bounding)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := s.Process.Capabilities
			for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
				if !slices.Equal(set, tt.want) {
					t.Errorf("%s = %v\nwant %v", name, set, tt.want)
				}
			}
			if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
				t.Errorf("inheritable %v, ambient %v; want both empty (CVE-2022-24769, kubernetes#56374)", c.Inheritable, c.Ambient)
			}
		})
	}
}

func TestWithCapabilitiesBeyondKernel(t *testing.T) {
	fakeLastCap(t, capability.CAP_AUDIT_READ)
	if SupportedByKernel("CAP_BPF") {
		t.Fatal("CAP_BPF should be beyond a kernel whose last capability is AUDIT_READ")
	}
	if !SupportedByKernel("CAP_AUDIT_READ") || !SupportedByKernel("CAP_CHOWN") {
		t.Fatal("capabilities up to the last one must be supported")
	}
	s := withDefaultCaps()
	err := WithCapabilities([]string{"BPF"}, nil)(s)
	if err == nil || !strings.Contains(err.Error(), "BPF is not supported by this node's kernel") {
		t.Fatalf("err = %v", err)
	}
	// Dropping it is harmless: the process cannot hold it anyway.
	if err := WithCapabilities(nil, []string{"PERFMON"})(s); err != nil {
		t.Fatal(err)
	}
}

func TestSupportedByKernelUnknownName(t *testing.T) {
	if SupportedByKernel("CAP_FLY") {
		t.Fatal("an unknown name cannot be supported")
	}
}

func TestAllCapabilitiesIsHeld(t *testing.T) {
	all := AllCapabilities()
	mask, err := readBoundingMask()
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	_, byName := knownCaps()
	for _, c := range all {
		if mask&(1<<uint(byName[c])) == 0 {
			t.Errorf("%s is in AllCapabilities but not in this process's bounding set", c)
		}
	}
	if len(all) == 0 {
		t.Fatal("AllCapabilities is empty")
	}
	all[0] = "changed"
	if AllCapabilities()[0] == "changed" {
		t.Fatal("AllCapabilities must return a copy")
	}
}

func TestWithAmbientCapabilities(t *testing.T) {
	tests := []struct {
		name        string
		uid         uint32
		names       []string
		wantAmbient []string
		errHas      string
	}{
		{name: "non-root gets its added capability in ambient", uid: 1000,
			names: []string{"NET_BIND_SERVICE"}, wantAmbient: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "root needs no ambient set", uid: 0,
			names: []string{"NET_BIND_SERVICE"}},
		{name: "a capability outside bounding is not raised", uid: 1000,
			names: []string{"SYS_ADMIN"}},
		{name: "ALL is ignored here (callers expand it)", uid: 1000,
			names: []string{"ALL"}},
		{name: "unknown name", uid: 1000, names: []string{"NET_BIND_SERVIC"}, errHas: "did you mean NET_BIND_SERVICE?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := withDefaultCaps()
			s.Process.User.UID = tt.uid
			s.Process.Capabilities.Effective = nil
			err := WithAmbientCapabilities(tt.names)(s)
			if spectest.ErrorCase(t, err, tt.errHas) {
				return
			}
			c := s.Process.Capabilities
			if !slices.Equal(c.Ambient, tt.wantAmbient) {
				t.Fatalf("ambient = %v, want %v", c.Ambient, tt.wantAmbient)
			}
			// The kernel keeps an ambient capability only while it is
			// also inheritable and permitted.
			for _, a := range c.Ambient {
				if !slices.Contains(c.Inheritable, a) || !slices.Contains(c.Permitted, a) || !slices.Contains(c.Effective, a) {
					t.Errorf("%s is ambient but inheritable=%v permitted has it=%v effective=%v", a, c.Inheritable, slices.Contains(c.Permitted, a), c.Effective)
				}
			}
		})
	}
}

func TestCapabilitiesOutsideAndDrop(t *testing.T) {
	p := &specs.Process{Capabilities: &specs.LinuxCapabilities{
		Bounding:  []string{"CAP_CHOWN", "CAP_NET_ADMIN"},
		Effective: []string{"net_raw"},
		Ambient:   []string{"CAP_SYS_ADMIN"},
	}}
	got := CapabilitiesOutside(p, []string{"CAP_CHOWN"})
	if want := []string{"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN"}; !slices.Equal(got, want) {
		t.Fatalf("CapabilitiesOutside = %v, want %v", got, want)
	}
	if CapabilitiesOutside(p, []string{"ALL"}) != nil {
		t.Fatal("ALL allows everything")
	}
	DropProcessCapabilities(p, []string{"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN"})
	if got := CapabilitiesOutside(p, nil); !slices.Equal(got, []string{"CAP_CHOWN"}) {
		t.Fatalf("after drop: %v", got)
	}
	if err := DropCapabilities([]string{"CAP_CHOWN"})(&specs.Spec{}); err != nil {
		t.Fatal("dropping from a spec without a process must be a no-op:", err)
	}
}
