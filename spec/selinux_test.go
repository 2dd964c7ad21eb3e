package spec

import (
	"testing"

	"github.com/secrun/secrun/spec/spectest"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestWithSELinuxOptions(t *testing.T) {
	tests := []struct {
		name                string
		opts                *SELinuxOptions
		wantProcess, wantMt string
		errHas              string
	}{
		{name: "all four parts", opts: &SELinuxOptions{User: "user_u", Role: "user_r", Type: "container_t", Level: "s0:c1,c2"},
			wantProcess: "user_u:user_r:container_t:s0:c1,c2", wantMt: "user_u:object_r:container_file_t:s0:c1,c2"},
		{name: "level only gets container-selinux defaults", opts: &SELinuxOptions{Level: "s0:c123,c456"},
			wantProcess: "system_u:system_r:container_t:s0:c123,c456", wantMt: "system_u:object_r:container_file_t:s0:c123,c456"},
		{name: "type only", opts: &SELinuxOptions{Type: "container_init_t"},
			wantProcess: "system_u:system_r:container_init_t:s0", wantMt: "system_u:object_r:container_file_t:s0"},
		{name: "nil changes nothing", opts: nil},
		{name: "empty changes nothing", opts: &SELinuxOptions{}},
		{name: "colon in type", opts: &SELinuxOptions{Type: "a:b"}, errHas: "seLinuxOptions.type"},
		{name: "space in level", opts: &SELinuxOptions{Level: "s0 c1"}, errHas: "seLinuxOptions.level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &specs.Spec{}
			err := WithSELinuxOptions(tt.opts)(s)
			if spectest.ErrorCase(t, err, tt.errHas) {
				return
			}
			var p, m string
			if s.Process != nil {
				p = s.Process.SelinuxLabel
			}
			if s.Linux != nil {
				m = s.Linux.MountLabel
			}
			if p != tt.wantProcess || m != tt.wantMt {
				t.Fatalf("process %q mount %q, want %q %q", p, m, tt.wantProcess, tt.wantMt)
			}
		})
	}
}

func TestSELinuxType(t *testing.T) {
	for label, want := range map[string]string{
		"system_u:system_r:container_t:s0": "container_t",
		"system_u:system_r:spc_t:s0:c1,c2": "spc_t",
		"":                                 "",
		"user:role":                        "",
	} {
		if got := SELinuxType(label); got != want {
			t.Errorf("SELinuxType(%q) = %q, want %q", label, got, want)
		}
	}
}
