package report

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestDecodeCapMask(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want []string
	}{
		{"empty", "0000000000000000", []string{}},
		// runc spec's default set: AUDIT_WRITE(29), KILL(5), NET_BIND_SERVICE(10).
		{"runc default", "0000000020000420", []string{"CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"}},
		{"chown only", "0000000000000001", []string{"CAP_CHOWN"}},
		{"highest known", "0000010000000000", []string{"CAP_CHECKPOINT_RESTORE"}},
		// A future kernel's bit must stay visible rather than vanish.
		{"unknown bit", "0000020000000000", []string{"CAP_41"}},
		{"0x prefix and spaces", " 0x3 ", []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseCapHex(tt.hex)
			if err != nil {
				t.Fatalf("ParseCapHex(%q): %v", tt.hex, err)
			}
			if got := DecodeCapMask(m); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodeCapMask(%#x) = %v, want %v", m, got, tt.want)
			}
		})
	}
}

func TestDecodeCapMaskFullSet(t *testing.T) {
	// 41 capabilities exist as of Linux 5.9 (0..40).
	got := DecodeCapMask(0x000001ffffffffff)
	if len(got) != 41 {
		t.Fatalf("got %d names, want 41: %v", len(got), got)
	}
	for i, n := range got {
		if n != CapName(i) {
			t.Errorf("position %d = %s, want %s (order must follow capability numbers)", i, n, CapName(i))
		}
	}
	if got[21] != "CAP_SYS_ADMIN" || got[40] != "CAP_CHECKPOINT_RESTORE" {
		t.Errorf("table misnumbered: [21]=%s [40]=%s", got[21], got[40])
	}
}

func TestParseCapHexRejectsGarbage(t *testing.T) {
	for _, s := range []string{"", "xyz", "1ffffffffffffffff0"} {
		if _, err := ParseCapHex(s); err == nil {
			t.Errorf("ParseCapHex(%q) succeeded, want error", s)
		}
	}
}

func TestCapNumberAndHasCap(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"CAP_NET_ADMIN", 12, true},
		{"net_admin", 12, true},
		{"cap_sys_admin", 21, true},
		{"CAP_41", 41, true},
		{"CAP_NOPE", 0, false},
		{"CAP_64", 0, false},
	} {
		n, ok := CapNumber(tt.in)
		if n != tt.want || ok != tt.ok {
			t.Errorf("CapNumber(%q) = %d, %t; want %d, %t", tt.in, n, ok, tt.want, tt.ok)
		}
	}
	set := []string{"CAP_KILL", "CAP_AUDIT_WRITE"}
	if !HasCap(set, "kill") || HasCap(set, "CAP_CHOWN") || HasCap(set, "bogus") {
		t.Errorf("HasCap gave wrong answers for %v", set)
	}
}

// The runner decodes what the probe encodes; field names are the contract.
func TestReportJSONShape(t *testing.T) {
	r := Report{
		Version: Version, EUID: 1000, Groups: []int{},
		Caps:    Caps{Effective: DecodeCapMask(1)},
		Sysctls: map[string]string{"kernel.ostype": "Linux"},
		Ops:     map[string]Op{PathOp(OpProcMasked, "/proc/kcore"): {Skipped: true, Errno: "ENOENT", Detail: "absent"}},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "uid", "euid", "gid", "egid", "groups", "caps", "no_new_privs", "seccomp", "seccomp_filters", "apparmor", "selinux", "hostname", "sysctls", "ops"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("encoded report lacks %q: %s", k, b)
		}
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("round trip changed the report:\n got %+v\nwant %+v", back, r)
	}
	if _, ok := back.Ops["proc.masked:/proc/kcore"]; !ok {
		t.Errorf("PathOp key format changed: %v", back.Ops)
	}
}
