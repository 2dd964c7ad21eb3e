package spec

import "testing"

func TestSuggest(t *testing.T) {
	caps := []string{"CHOWN", "DAC_OVERRIDE", "NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE", "SYS_ADMIN", "SYS_NICE", "SYS_TIME", "SYS_PTRACE", "KILL"}
	sysctls := []string{
		"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
		"net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports", "net.core.somaxconn",
	}
	fields := []string{"runAsUser", "runAsGroup", "runAsNonRoot", "supplementalGroups", "fsGroup"}

	tests := []struct {
		name       string
		input      string
		candidates []string
		want       string
	}{
		{"missing letter", "NET_ADMN", caps, "NET_ADMIN"},
		{"lower case typo", "net_admn", caps, "NET_ADMIN"},
		{"case only", "net_admin", caps, "NET_ADMIN"},
		{"exact", "KILL", caps, "KILL"},
		{"transposition", "SYS_PTARCE", caps, "SYS_PTRACE"},
		{"short prefix still close", "SYS_TIM", caps, "SYS_TIME"},
		{"too far for SYS_NICE", "SYS_NICX_FOO", caps, ""},
		{"unrelated", "FLY_TO_MOON", caps, ""},
		{"missing word", "net.ipv4.ip_local_range", sysctls, "net.ipv4.ip_local_port_range"},
		{"extra letter", "net.ipv4.tcp_sysncookies", sysctls, "net.ipv4.tcp_syncookies"},
		{"dropped last letter", "kernel.shm_rmid_force", sysctls, "kernel.shm_rmid_forced"},
		{"field name", "runAsUsr", fields, "runAsUser"},
		{"field name case", "fsgroup", fields, "fsGroup"},
		{"field typo transposed", "runAsNonRoto", fields, "runAsNonRoot"},
		{"empty name", "", caps, ""},
		{"no candidates", "NET_ADMIN", nil, ""},
		{"empty candidate skipped", "a", []string{"", "b"}, ""},
		{"tiny name one edit", "ab", []string{"abc"}, "abc"},
		{"unicode", "grüse", []string{"grüsse", "gruss"}, "grüsse"},
		{"one letter is not a typo of another", "x", []string{"y", "xy"}, "xy"},
		// Equal distance: the longer shared prefix wins, not list order.
		{"tie by prefix", "net.core.abc", []string{"net.corx.abc", "net.core.abd"}, "net.core.abd"},
		// Equal distance and prefix: first in the list wins.
		{"tie by order", "abcx", []string{"abcy", "abcz"}, "abcy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Suggest(tc.input, tc.candidates); got != tc.want {
				t.Errorf("Suggest(%q) = %q, want %q", tc.input, got, tc.want)
			}
		})
	}
}

func TestOSADistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"", "abc", 3},
		{"kitten", "sitting", 3},
		{"ab", "ba", 1},
		{"ca", "abc", 3}, // OSA, unlike true Damerau, cannot edit a transposed pair again
		{"same", "same", 0},
	}
	for _, tc := range tests {
		got, _, _, _ := osaDistance([]rune(tc.a), []rune(tc.b), 100, nil, nil, nil)
		if got != tc.want {
			t.Errorf("osaDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func BenchmarkSuggestSysctl(b *testing.B) {
	names := knownSysctls().list
	for b.Loop() {
		Suggest("net.ipv4.tcp_sysncookies", names)
	}
}
