package spec

import (
	"errors"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// sysctlSpec builds a spec with the given namespaces; each entry is a type
// or "type=path".
func sysctlSpec(nss ...string) *specs.Spec {
	s := &specs.Spec{Linux: &specs.Linux{}}
	for _, ns := range nss {
		t, path, _ := strings.Cut(ns, "=")
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.LinuxNamespaceType(t), Path: path})
	}
	return s
}

var (
	podSpec     = func() *specs.Spec { return sysctlSpec("pid", "ipc", "uts", "mount", "network") }
	sandboxSpec = func() *specs.Spec {
		return sysctlSpec("pid", "mount", "ipc=/proc/4242/ns/ipc", "uts=/proc/4242/ns/uts", "network=/var/run/netns/cni-0000-does-not-exist")
	}
	hostNetSpec  = func() *specs.Spec { return sysctlSpec("pid", "ipc", "uts", "mount") }
	hostIPCSpec  = func() *specs.Spec { return sysctlSpec("pid", "uts", "mount", "network") }
	hostUTSSpec  = func() *specs.Spec { return sysctlSpec("pid", "ipc", "mount", "network") }
	selfNetSpec  = func() *specs.Spec { return sysctlSpec("pid", "ipc", "uts", "mount", "network=/proc/self/ns/net") }
	selfIPCSpec  = func() *specs.Spec { return sysctlSpec("pid", "ipc=/proc/self/ns/ipc", "uts", "mount", "network") }
	noLinuxSpec  = func() *specs.Spec { return &specs.Spec{} }
	nilSpecMaker = func() *specs.Spec { return nil }
)

func TestNormalizeSysctlName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"net/ipv4/ip_local_port_range", "net.ipv4.ip_local_port_range"},
		{"net.ipv4.ip_local_port_range", "net.ipv4.ip_local_port_range"},
		{"net/ipv4/conf/eth0.100/rp_filter", "net.ipv4.conf.eth0/100.rp_filter"},
		{"net.ipv4.conf.eth0/100.rp_filter", "net.ipv4.conf.eth0/100.rp_filter"},
		{"kernel", "kernel"},
		{"", ""},
		{"/net/core", ".net.core"},
	}
	for _, tc := range tests {
		if got := NormalizeSysctlName(tc.in); got != tc.want {
			t.Errorf("NormalizeSysctlName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestClassifySysctl(t *testing.T) {
	tests := []struct {
		name string
		want SysctlClass
	}{
		{"kernel.sem", IPCNamespace},
		{"kernel.shm_rmid_forced", IPCNamespace},
		{"kernel.shmmax", IPCNamespace},
		{"kernel.msgmax", IPCNamespace},
		{"fs.mqueue.msg_max", IPCNamespace},
		{"fs/mqueue/queues_max", IPCNamespace},
		{"net.core.somaxconn", NetNamespace},
		{"net.ipv4.conf.eth0.forwarding", NetNamespace},
		{"net/ipv4/ip_local_port_range", NetNamespace},
		{"kernel.domainname", UTSNamespace},
		{"kernel.hostname", UTSNamespace},
		{"kernel.sem_next_id", NotNamespaced}, // kubelet's table: only kernel.sem exactly
		{"kernel.panic", NotNamespaced},
		{"vm.swappiness", NotNamespaced},
		{"fs.mqueue", NotNamespaced},
		{"fs.file-max", NotNamespaced},
		{"network.x", NotNamespaced},
		{"", NotNamespaced},
	}
	for _, tc := range tests {
		if got := ClassifySysctl(tc.name); got != tc.want {
			t.Errorf("ClassifySysctl(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSafeSysctls(t *testing.T) {
	tests := []struct {
		version string
		want    int
		has     string
		hasNot  string
	}{
		{"1.0", 3, "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range"},
		{"1.17", 3, "kernel.shm_rmid_forced", "net.ipv4.ping_group_range"},
		{"1.18", 4, "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"},
		{"1.21", 4, "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"},
		{"1.22", 5, "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports"},
		{"1.27", 6, "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time"},
		{"1.29", 10, "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem"},
		{"v1.31.2", 10, "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_wmem"},
		{"1.31.0-rc.1", 10, "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_rmem"},
		{"1.32", 12, "net.ipv4.tcp_wmem", "net.ipv4.tcp_notsent_lowat"},
		{"1.36+k3s1", 12, "net.ipv4.tcp_rmem", "net.ipv4.tcp_slow_start_after_idle"},
		{"1.37", 14, "net.ipv4.tcp_notsent_lowat", ""},
		{"1.45", 14, "net.ipv4.tcp_slow_start_after_idle", ""},
		{"", 14, "net.ipv4.tcp_notsent_lowat", ""},
	}
	for _, tc := range tests {
		got, err := SafeSysctls(tc.version)
		if err != nil {
			t.Errorf("SafeSysctls(%q): %v", tc.version, err)
			continue
		}
		if len(got) != tc.want || !slices.Contains(got, tc.has) || (tc.hasNot != "" && slices.Contains(got, tc.hasNot)) {
			t.Errorf("SafeSysctls(%q) = %v (%d), want %d with %s without %q", tc.version, got, len(got), tc.want, tc.has, tc.hasNot)
		}
	}
	for _, bad := range []string{"2.0", "1", "x", "1.x", "1.31.2.4", "1.-1", "1.031", "0.9", "v", "1.", "1..2"} {
		if _, err := SafeSysctls(bad); !errors.Is(err, ErrSysctlPolicy) {
			t.Errorf("SafeSysctls(%q) err = %v, want ErrSysctlPolicy", bad, err)
		}
	}
	// Callers may modify what they get.
	a, _ := SafeSysctls("")
	a[0] = "x"
	if b, _ := SafeSysctls(""); b[0] == "x" {
		t.Error("SafeSysctls shares its backing array")
	}
}

// TestSafeSysctlsAreKnownAndNamespaced guards the embedded table: a safe
// sysctl that the table lacked would be refused as unknown.
func TestSafeSysctlsAreKnownAndNamespaced(t *testing.T) {
	all, _ := SafeSysctls("")
	for _, n := range all {
		if !SysctlKnown(n) {
			t.Errorf("safe sysctl %s is not in sysctl_names.txt", n)
		}
		if ClassifySysctl(n) == NotNamespaced {
			t.Errorf("safe sysctl %s is classified node-level", n)
		}
	}
}

func TestSysctlKnown(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"net.ipv4.conf.eth0.forwarding", true},
		{"net.ipv4.conf.cali1234abcd.rp_filter", true}, // interfaces that exist only in Pods
		{"net.ipv4.conf.eth0/100.forwarding", true},    // VLAN interface eth0.100
		{"net/ipv4/conf/eth0.100/forwarding", true},
		{"net.ipv4.conf.all.forwarding", true},
		{"net.ipv4.conf.default.forwarding", true},
		{"net.ipv6.conf.eth0.disable_ipv6", true},
		{"net.ipv4.neigh.eth0.base_reachable_time_ms", true},
		{"net.ipv4.neigh.default.gc_thresh1", true},
		{"net.ipv4.neigh.eth0.gc_thresh1", false}, // only under default
		{"net.ipv4.conf.*.forwarding", false},     // the placeholder is not an interface
		{"net.ipv4.conf.averyveryverylongname.forwarding", false},
		{"net.ipv4.conf.eth0/../x.forwarding", false},
		{"net.ipv4.conf.eth0.forwarding.extra", false},
		{"net.ipv4.conf.eth0", false},
		{"net.core.somaxconn", true},
		{"kernel.shm_rmid_forced", true},
		{"vm.swappiness", true},
		{"kernel.panic", true},
		{"net.ipv4.ip_local_range", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := SysctlKnown(tc.name); got != tc.want {
			t.Errorf("SysctlKnown(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSysctlCheck(t *testing.T) {
	tests := []struct {
		name    string
		policy  SysctlPolicy
		sysctl  string
		value   string
		spec    func() *specs.Spec
		wantErr error    // nil: accepted
		want    []string // substrings of the error
	}{
		// The user's examples.
		{name: "safe shm_rmid_forced", sysctl: "kernel.shm_rmid_forced", value: "0", spec: podSpec},
		{name: "safe unprivileged port start", sysctl: "net.ipv4.ip_unprivileged_port_start", value: "0", spec: podSpec},
		{name: "somaxconn not allowlisted", sysctl: "net.core.somaxconn", value: "1024", spec: podSpec,
			wantErr: ErrSysctlUnsafe, want: []string{"net.core.somaxconn", "allowlist", `"net.core.*"`, "--allowed-unsafe-sysctls"}},
		{name: "somaxconn allowlisted exactly", policy: SysctlPolicy{AllowedUnsafe: []string{"net.core.somaxconn"}},
			sysctl: "net.core.somaxconn", value: "1024", spec: podSpec},
		{name: "somaxconn allowlisted by glob", policy: SysctlPolicy{AllowedUnsafe: []string{"net.core.*"}},
			sysctl: "net.core.somaxconn", value: "1024", spec: podSpec},
		{name: "somaxconn allowlisted by slash glob", policy: SysctlPolicy{AllowedUnsafe: []string{"net/core/*"}},
			sysctl: "net.core.somaxconn", value: "1024", spec: podSpec},
		{name: "other glob does not match", policy: SysctlPolicy{AllowedUnsafe: []string{"net.ipv6.*"}},
			sysctl: "net.core.somaxconn", value: "1024", spec: podSpec, wantErr: ErrSysctlUnsafe},
		{name: "swappiness node-level", sysctl: "vm.swappiness", value: "10", spec: podSpec,
			wantErr: ErrSysctlNode, want: []string{"vm.swappiness is a node-level sysctl", "not namespaced", "set it on the node, not in the Pod"}},
		{name: "swappiness node-level despite broad allowlist", policy: SysctlPolicy{AllowedUnsafe: []string{"net.*", "kernel.shm*"}},
			sysctl: "vm.swappiness", value: "10", spec: podSpec, wantErr: ErrSysctlNode},
		{name: "swappiness allowlisted is a policy error", policy: SysctlPolicy{AllowedUnsafe: []string{"vm.swappiness"}},
			sysctl: "vm.swappiness", value: "10", spec: podSpec, wantErr: ErrSysctlPolicy, want: []string{"node-level"}},
		{name: "kernel.panic node-level", sysctl: "kernel.panic", value: "10", spec: podSpec, wantErr: ErrSysctlNode},
		{name: "kernel.sem_next_id node-level", sysctl: "kernel.sem_next_id", value: "10", spec: podSpec, wantErr: ErrSysctlNode},
		{name: "typo ip_local_range", sysctl: "net.ipv4.ip_local_range", value: "1024 65000", spec: podSpec,
			wantErr: ErrSysctlUnknown, want: []string{"net.ipv4.ip_local_range: unknown sysctl; did you mean net.ipv4.ip_local_port_range?"}},
		{name: "typo tcp_sysncookies", sysctl: "net.ipv4.tcp_sysncookies", value: "1", spec: podSpec,
			wantErr: ErrSysctlUnknown, want: []string{"did you mean net.ipv4.tcp_syncookies?"}},
		{name: "typo shm_rmid_force", sysctl: "kernel.shm_rmid_force", value: "1", spec: podSpec,
			wantErr: ErrSysctlUnknown, want: []string{"did you mean kernel.shm_rmid_forced?"}},
		{name: "typo in slash form reported dotted", sysctl: "net/ipv4/tcp_sysncookies", value: "1", spec: podSpec,
			wantErr: ErrSysctlUnknown, want: []string{"net.ipv4.tcp_sysncookies: unknown", "did you mean net.ipv4.tcp_syncookies?"}},
		{name: "typo of a node-level sysctl", sysctl: "vm.swapiness", value: "1", spec: podSpec,
			wantErr: ErrSysctlUnknown, want: []string{"did you mean vm.swappiness?", "node-level"}},
		{name: "typo per interface keeps interface", sysctl: "net.ipv4.conf.eth1.forwardin", value: "1", spec: podSpec,
			wantErr: ErrSysctlUnknown, want: []string{"did you mean net.ipv4.conf.eth1.forwarding?"}},
		{name: "typo hidden by glob still caught", policy: SysctlPolicy{AllowedUnsafe: []string{"net.ipv4.*"}},
			sysctl: "net.ipv4.tcp_sysncookies", value: "1", spec: podSpec, wantErr: ErrSysctlUnknown},
		{name: "unknown without suggestion", sysctl: "net.zzzzzz.qqqqqqqqqqqq", value: "1", spec: podSpec,
			wantErr: ErrSysctlUnknown, want: []string{"no such sysctl is known", "exact name"}},
		{name: "exact allowlist vouches for a module sysctl", policy: SysctlPolicy{AllowedUnsafe: []string{"net.sctp.rto_min"}},
			sysctl: "net.sctp.rto_min", value: "100", spec: podSpec},
		{name: "glob does not vouch", policy: SysctlPolicy{AllowedUnsafe: []string{"net.*"}},
			sysctl: "net.sctp.rto_min", value: "100", spec: podSpec, wantErr: ErrSysctlUnknown},
		{name: "1.21 refuses unprivileged port start", policy: SysctlPolicy{KubernetesVersion: "1.21"},
			sysctl: "net.ipv4.ip_unprivileged_port_start", value: "0", spec: podSpec,
			wantErr: ErrSysctlUnsafe, want: []string{"Kubernetes 1.21", "safe from 1.22"}},
		{name: "1.22 accepts unprivileged port start", policy: SysctlPolicy{KubernetesVersion: "1.22"},
			sysctl: "net.ipv4.ip_unprivileged_port_start", value: "0", spec: podSpec},
		{name: "1.21 with allowlist", policy: SysctlPolicy{KubernetesVersion: "1.21", AllowedUnsafe: []string{"net.ipv4.ip_unprivileged_port_start"}},
			sysctl: "net.ipv4.ip_unprivileged_port_start", value: "0", spec: podSpec},
		{name: "bad version", policy: SysctlPolicy{KubernetesVersion: "one.thirty"},
			sysctl: "kernel.shm_rmid_forced", value: "1", spec: podSpec, wantErr: ErrSysctlPolicy},
		{name: "slash form", sysctl: "net/ipv4/ip_local_port_range", value: "1024 65000", spec: podSpec},
		{name: "per-interface is unsafe", sysctl: "net.ipv4.conf.eth0.forwarding", value: "1", spec: podSpec,
			wantErr: ErrSysctlUnsafe, want: []string{`"net.ipv4.conf.eth0.*"`}},
		{name: "per-interface allowlisted", policy: SysctlPolicy{AllowedUnsafe: []string{"net.ipv4.conf.*"}},
			sysctl: "net.ipv4.conf.eth0.forwarding", value: "1", spec: podSpec},
		{name: "per-interface VLAN slash form", policy: SysctlPolicy{AllowedUnsafe: []string{"net.ipv4.conf.*"}},
			sysctl: "net/ipv4/conf/eth0.100/rp_filter", value: "1", spec: podSpec},
		{name: "fs.mqueue allowlisted", policy: SysctlPolicy{AllowedUnsafe: []string{"fs.mqueue.*"}},
			sysctl: "fs.mqueue.msg_max", value: "100", spec: podSpec},
		{name: "kernel.sem allowlisted", policy: SysctlPolicy{AllowedUnsafe: []string{"kernel.sem"}},
			sysctl: "kernel.sem", value: "250 32000 32 128", spec: podSpec},
		{name: "kernel.msg glob", policy: SysctlPolicy{AllowedUnsafe: []string{"kernel.msg*"}},
			sysctl: "kernel.msgmax", value: "8192", spec: podSpec},

		// Namespaces.
		{name: "host network refuses safe net sysctl", sysctl: "net.ipv4.ip_local_port_range", value: "1024 65000", spec: hostNetSpec,
			wantErr: ErrSysctlHostNS, want: []string{"network namespace", "hostNetwork", "would change the host"}},
		{name: "host network refuses allowlisted", policy: SysctlPolicy{AllowedUnsafe: []string{"net.core.*"}},
			sysctl: "net.core.somaxconn", value: "1", spec: hostNetSpec, wantErr: ErrSysctlHostNS},
		{name: "host network refused before unsafe", sysctl: "net.core.somaxconn", value: "1", spec: hostNetSpec, wantErr: ErrSysctlHostNS},
		{name: "no linux section is host", sysctl: "net.ipv4.tcp_syncookies", value: "1", spec: noLinuxSpec, wantErr: ErrSysctlHostNS},
		{name: "host IPC refuses shm", sysctl: "kernel.shm_rmid_forced", value: "1", spec: hostIPCSpec,
			wantErr: ErrSysctlHostNS, want: []string{"hostIPC"}},
		{name: "host IPC leaves net alone", sysctl: "net.ipv4.tcp_syncookies", value: "1", spec: hostIPCSpec},
		{name: "sandbox paths are fine", sysctl: "net.ipv4.tcp_syncookies", value: "1", spec: sandboxSpec},
		{name: "sandbox IPC path fine", sysctl: "kernel.shm_rmid_forced", value: "1", spec: sandboxSpec},
		{name: "path to our own netns is the host's", sysctl: "net.ipv4.tcp_syncookies", value: "1", spec: selfNetSpec,
			wantErr: ErrSysctlHostNS, want: []string{"/proc/self/ns/net is the host's"}},
		{name: "path to our own ipc ns is the host's", sysctl: "kernel.shm_rmid_forced", value: "1", spec: selfIPCSpec, wantErr: ErrSysctlHostNS},
		{name: "nil spec skips namespaces", sysctl: "net.ipv4.tcp_syncookies", value: "1", spec: nilSpecMaker},

		// UTS.
		{name: "hostname always refused", sysctl: "kernel.hostname", value: "x", spec: podSpec,
			wantErr: ErrSysctlHostname, want: []string{"hostname field"}},
		{name: "hostname allowlist is a policy error", policy: SysctlPolicy{AllowedUnsafe: []string{"kernel.hostname"}},
			sysctl: "kernel.hostname", value: "x", spec: podSpec, wantErr: ErrSysctlPolicy},
		{name: "domainname needs allowlist", sysctl: "kernel.domainname", value: "example.org", spec: podSpec,
			wantErr: ErrSysctlUnsafe, want: []string{`allowlist "kernel.domainname"`}},
		{name: "domainname allowlisted", policy: SysctlPolicy{AllowedUnsafe: []string{"kernel.domainname"}},
			sysctl: "kernel.domainname", value: "example.org", spec: podSpec},
		{name: "domainname joined UTS", policy: SysctlPolicy{AllowedUnsafe: []string{"kernel.domainname"}},
			sysctl: "kernel.domainname", value: "example.org", spec: sandboxSpec},
		{name: "domainname host UTS", policy: SysctlPolicy{AllowedUnsafe: []string{"kernel.domainname"}},
			sysctl: "kernel.domainname", value: "example.org", spec: hostUTSSpec, wantErr: ErrSysctlHostNS, want: []string{"uts namespace"}},

		// Names and values.
		{name: "empty value", sysctl: "net.ipv4.tcp_syncookies", value: "", spec: podSpec,
			wantErr: ErrSysctlValue, want: []string{"net.ipv4.tcp_syncookies", "empty"}},
		{name: "newline in value", sysctl: "net.ipv4.tcp_syncookies", value: "1\n0", spec: podSpec, wantErr: ErrSysctlValue},
		{name: "CR in value", sysctl: "net.ipv4.tcp_syncookies", value: "1\r", spec: podSpec, wantErr: ErrSysctlValue},
		{name: "NUL in value", sysctl: "net.ipv4.tcp_syncookies", value: "1\x00", spec: podSpec, wantErr: ErrSysctlValue},
		{name: "spaces in value are fine", sysctl: "net.ipv4.ip_local_port_range", value: "1024\t65000", spec: podSpec},
		{name: "empty name", sysctl: "", value: "1", spec: podSpec, wantErr: ErrSysctlName},
		{name: "double dot", sysctl: "net..core", value: "1", spec: podSpec, wantErr: ErrSysctlName},
		{name: "trailing dot", sysctl: "net.core.", value: "1", spec: podSpec, wantErr: ErrSysctlName},
		{name: "leading slash", sysctl: "/net/core/somaxconn", value: "1", spec: podSpec, wantErr: ErrSysctlName},
		{name: "dotdot inside component", sysctl: "net.ipv4.conf.eth0/../../x.forwarding", value: "1", spec: podSpec, wantErr: ErrSysctlName},
		{name: "equals sign", sysctl: "net.core.somaxconn=1", value: "1", spec: podSpec, wantErr: ErrSysctlName},
		{name: "glob as name", sysctl: "net.core.*", value: "1", spec: podSpec, wantErr: ErrSysctlName},
		{name: "space in name", sysctl: "net.core. somaxconn", value: "1", spec: podSpec, wantErr: ErrSysctlName},
		{name: "too long", sysctl: "net." + strings.Repeat("a", 260), value: "1", spec: podSpec, wantErr: ErrSysctlName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.Check(tc.sysctl, tc.value, tc.spec())
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Check(%q=%q) = %v, want nil", tc.sysctl, tc.value, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Check(%q=%q) = %v, want %v", tc.sysctl, tc.value, err, tc.wantErr)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestSysctlPolicyValidate(t *testing.T) {
	tests := []struct {
		entry string
		ok    bool
	}{
		{"net.core.*", true},
		{"net.*", true},
		{"net/core/*", true},
		{"kernel.shm*", true},
		{"kernel.msg*", true},
		{"kernel.sem", true},
		{"fs.mqueue.*", true},
		{"net.core.somaxconn", true},
		{"net.sctp.rto_min", true}, // unknown here, but namespaced: the admin vouches
		{"kernel.domainname", true},
		{"", false},
		{"*", false},
		{"net*", false},
		{"fs.mqueue*", false},
		{"kernel.*", false},
		{"kernel.s*", false},
		{"vm.*", false},
		{"vm.swappiness", false},
		{"kernel.panic", false},
		{"net.*.forwarding", false},
		{"net.core.**", false},
		{"kernel.hostname", false},
		{"kernel.hostname*", false},
		{"net..core", false},
	}
	for _, tc := range tests {
		err := SysctlPolicy{AllowedUnsafe: []string{tc.entry}}.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("AllowedUnsafe %q: Validate() = %v, want ok=%v", tc.entry, err, tc.ok)
		}
		if err != nil && (!errors.Is(err, ErrSysctlPolicy) || !strings.Contains(err.Error(), tc.entry)) {
			t.Errorf("AllowedUnsafe %q: error %q should wrap ErrSysctlPolicy and quote the entry", tc.entry, err)
		}
	}
}

func TestWithSysctls(t *testing.T) {
	t.Run("sets normalised names", func(t *testing.T) {
		s := podSpec()
		s.Linux.Sysctl = map[string]string{"net/ipv4/tcp_syncookies": "0", "kernel.shmmax": "1"}
		err := Apply(s, WithSysctls(SysctlPolicy{}, map[string]string{
			"kernel.shm_rmid_forced":       "1",
			"net/ipv4/ip_local_port_range": "1024 65000",
			"net.ipv4.tcp_syncookies":      "1",
		}))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"kernel.shm_rmid_forced":       "1",
			"net.ipv4.ip_local_port_range": "1024 65000",
			"net.ipv4.tcp_syncookies":      "1",
			"kernel.shmmax":                "1", // not ours to judge here: CheckSpecSysctls does
		}
		if len(s.Linux.Sysctl) != len(want) {
			t.Fatalf("sysctl = %v, want %v", s.Linux.Sysctl, want)
		}
		for k, v := range want {
			if s.Linux.Sysctl[k] != v {
				t.Errorf("sysctl[%s] = %q, want %q", k, s.Linux.Sysctl[k], v)
			}
		}
	})
	t.Run("all or nothing, every refusal reported", func(t *testing.T) {
		s := podSpec()
		err := WithSysctls(SysctlPolicy{}, map[string]string{
			"kernel.shm_rmid_forced":   "1",
			"vm.swappiness":            "1",
			"net.ipv4.tcp_sysncookies": "1",
		})(s)
		if !errors.Is(err, ErrSysctlNode) || !errors.Is(err, ErrSysctlUnknown) {
			t.Fatalf("err = %v, want node-level and unknown", err)
		}
		msg := err.Error()
		if i, j := strings.Index(msg, "net.ipv4.tcp_sysncookies"), strings.Index(msg, "vm.swappiness"); i < 0 || j < 0 || i > j {
			t.Errorf("refusals not in name order: %q", msg)
		}
		if s.Linux.Sysctl != nil {
			t.Errorf("spec changed on error: %v", s.Linux.Sysctl)
		}
	})
	t.Run("two spellings of one sysctl", func(t *testing.T) {
		err := WithSysctls(SysctlPolicy{}, map[string]string{
			"net.ipv4.tcp_syncookies": "1",
			"net/ipv4/tcp_syncookies": "0",
		})(podSpec())
		if !errors.Is(err, ErrSysctlName) || !strings.Contains(err.Error(), "set twice") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("namespaces come from the spec", func(t *testing.T) {
		err := WithSysctls(SysctlPolicy{}, map[string]string{"net.ipv4.tcp_syncookies": "1"})(hostNetSpec())
		if !errors.Is(err, ErrSysctlHostNS) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("empty is a no-op", func(t *testing.T) {
		s := &specs.Spec{}
		if err := WithSysctls(SysctlPolicy{KubernetesVersion: "bogus"}, nil)(s); err != nil || s.Linux != nil {
			t.Fatalf("err = %v, linux = %v", err, s.Linux)
		}
	})
	t.Run("bad policy", func(t *testing.T) {
		err := WithSysctls(SysctlPolicy{AllowedUnsafe: []string{"vm.*"}}, map[string]string{"kernel.shm_rmid_forced": "1"})(podSpec())
		if !errors.Is(err, ErrSysctlPolicy) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestCheckSpecSysctls(t *testing.T) {
	s := podSpec()
	s.Linux.Sysctl = map[string]string{
		"net.ipv4.tcp_syncookies": "1",
		"net.core.somaxconn":      "4096",
		"kernel/panic":            "1",
		"net.ipv4.ip_local_range": "1 2",
	}
	errs := CheckSpecSysctls(SysctlPolicy{}, s)
	if len(errs) != 3 {
		t.Fatalf("got %d errors, want 3: %v", len(errs), errs)
	}
	for i, want := range []error{ErrSysctlNode, ErrSysctlUnsafe, ErrSysctlUnknown} {
		if !errors.Is(errs[i], want) {
			t.Errorf("errs[%d] = %v, want %v", i, errs[i], want)
		}
	}
	if errs := CheckSpecSysctls(SysctlPolicy{AllowedUnsafe: []string{"net.core.*"}}, s); len(errs) != 2 {
		t.Errorf("with allowlist: %v", errs)
	}
	if errs := CheckSpecSysctls(SysctlPolicy{}, nil); errs != nil {
		t.Errorf("nil spec: %v", errs)
	}
	if errs := CheckSpecSysctls(SysctlPolicy{}, hostNetSpec()); errs != nil {
		t.Errorf("no sysctls: %v", errs)
	}
	if errs := CheckSpecSysctls(SysctlPolicy{KubernetesVersion: "x"}, s); len(errs) != 1 || !errors.Is(errs[0], ErrSysctlPolicy) {
		t.Errorf("bad policy: %v", errs)
	}
}

func TestSysctlClassString(t *testing.T) {
	for c, want := range map[SysctlClass]string{NotNamespaced: "not namespaced", IPCNamespace: "ipc", NetNamespace: "network", UTSNamespace: "uts"} {
		if c.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(c), c.String(), want)
		}
	}
}

func FuzzSysctlName(f *testing.F) {
	for _, seed := range []string{
		"net.ipv4.ip_local_port_range", "net/ipv4/conf/eth0.100/rp_filter", "kernel.shm_rmid_force",
		"vm.swappiness", "kernel.hostname", "", ".", "/", "net.ipv4.conf..x", "net.ipv4.conf.*.forwarding",
		"\x00", "ü.ß", "net.ipv4.neigh.eth0",
	} {
		f.Add(seed, "1")
	}
	policies := []SysctlPolicy{
		{},
		{KubernetesVersion: "1.21", AllowedUnsafe: []string{"net.*", "kernel.domainname", "fs.mqueue.*"}},
	}
	specs := []*specs.Spec{nil, podSpec(), hostNetSpec(), noLinuxSpec(), sandboxSpec()}
	f.Fuzz(func(t *testing.T, name, value string) {
		n := NormalizeSysctlName(name)
		if NormalizeSysctlName(n) != n {
			t.Fatalf("NormalizeSysctlName not idempotent on %q", name)
		}
		for _, p := range policies {
			for _, s := range specs {
				err := p.Check(name, value, s)
				if err == nil && (ClassifySysctl(n) == NotNamespaced || n == "kernel.hostname") {
					t.Fatalf("Check accepted %q (%q)", name, n)
				}
			}
		}
	})
}
