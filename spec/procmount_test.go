package spec

import (
	"slices"
	"testing"

	"github.com/secrun/secrun/spec/spectest"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestWithProcMount(t *testing.T) {
	userns := func() *specs.Spec {
		return &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.UserNamespace}}, MaskedPaths: []string{"/proc/x"}}}
	}
	tests := []struct {
		name         string
		kind         string
		spec         *specs.Spec
		wantMasked   []string
		wantReadonly []string
		errHas       string
	}{
		{name: "Default on an empty spec", kind: ProcMountDefault, spec: &specs.Spec{},
			wantMasked: DefaultMaskedPaths, wantReadonly: DefaultReadonlyPaths},
		{name: "empty means Default", kind: "", spec: &specs.Spec{},
			wantMasked: DefaultMaskedPaths, wantReadonly: DefaultReadonlyPaths},
		{name: "Default keeps what the bundle masks already", kind: ProcMountDefault,
			spec:       &specs.Spec{Linux: &specs.Linux{MaskedPaths: []string{"/proc/x", "/proc/kcore"}}},
			wantMasked: append([]string{"/proc/x", "/proc/kcore"}, spectest.Without(DefaultMaskedPaths, "/proc/kcore")...), wantReadonly: DefaultReadonlyPaths},
		{name: "Unmasked inside a user namespace", kind: ProcMountUnmasked, spec: userns(),
			wantMasked: []string{}, wantReadonly: []string{}},
		{name: "Unmasked without a user namespace", kind: ProcMountUnmasked, spec: &specs.Spec{},
			errHas: "Unmasked needs a user namespace (hostUsers: false)"},
		{name: "unknown value", kind: "unmasked", spec: &specs.Spec{}, errHas: `unknown value "unmasked"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WithProcMount(tt.kind)(tt.spec)
			if spectest.ErrorCase(t, err, tt.errHas) {
				return
			}
			if !slices.Equal(tt.spec.Linux.MaskedPaths, tt.wantMasked) || !slices.Equal(tt.spec.Linux.ReadonlyPaths, tt.wantReadonly) {
				t.Fatalf("masked %v readonly %v\nwant %v %v", tt.spec.Linux.MaskedPaths, tt.spec.Linux.ReadonlyPaths, tt.wantMasked, tt.wantReadonly)
			}
		})
	}
}

func TestMissingProcMasks(t *testing.T) {
	m, r := MissingProcMasks(&specs.Spec{})
	if len(m) != len(DefaultMaskedPaths)-len(laterMaskedPaths) || len(r) != len(DefaultReadonlyPaths) {
		t.Fatalf("bare spec: missing %v %v", m, r)
	}
	s := &specs.Spec{}
	if err := WithProcMount(ProcMountDefault)(s); err != nil {
		t.Fatal(err)
	}
	if m, r := MissingProcMasks(s); len(m)+len(r) != 0 {
		t.Fatalf("after procMount Default: missing %v %v", m, r)
	}
	// runc's own default list lacks the powercap entry; it is still
	// procMount Default as runc writes it.
	s.Linux.MaskedPaths = spectest.Without(s.Linux.MaskedPaths, "/sys/devices/virtual/powercap")
	if m, _ := MissingProcMasks(s); len(m) != 0 {
		t.Fatalf("powercap alone must not count: %v", m)
	}
}
