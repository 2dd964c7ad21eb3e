//go:build linux

package main

import (
	"reflect"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/conformance/probe/report"
)

// A trimmed status document as printed by runc's default container.
const runcStatus = `Name:	probe
Umask:	0022
State:	R (running)
Uid:	0	0	0	0
Gid:	0	0	0	0
Groups:	
CapInh:	0000000000000000
CapPrm:	0000000020000420
CapEff:	0000000020000420
CapBnd:	0000000020000420
CapAmb:	0000000000000000
NoNewPrivs:	1
Seccomp:	2
Seccomp_filters:	1
Speculation_Store_Bypass:	thread vulnerable
`

func TestParseStatus(t *testing.T) {
	r := &report.Report{SeccompFilters: -1}
	if err := parseStatus(strings.NewReader(runcStatus), r); err != nil {
		t.Fatal(err)
	}
	want := []string{"CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"}
	for name, got := range map[string][]string{"effective": r.Caps.Effective, "permitted": r.Caps.Permitted, "bounding": r.Caps.Bounding} {
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if len(r.Caps.Inheritable) != 0 || len(r.Caps.Ambient) != 0 || r.Caps.Ambient == nil {
		t.Errorf("inheritable/ambient = %v/%v, want empty non-nil", r.Caps.Inheritable, r.Caps.Ambient)
	}
	if r.NoNewPrivs != 1 || r.Seccomp != 2 || r.SeccompFilters != 1 {
		t.Errorf("nnp/seccomp/filters = %d/%d/%d, want 1/2/1", r.NoNewPrivs, r.Seccomp, r.SeccompFilters)
	}
}

func TestParseStatusOldKernelKeepsFilterCountUnknown(t *testing.T) {
	r := &report.Report{SeccompFilters: -1}
	if err := parseStatus(strings.NewReader("CapEff:\t0000000000000000\nSeccomp:\t0\n"), r); err != nil {
		t.Fatal(err)
	}
	if r.SeccompFilters != -1 {
		t.Errorf("SeccompFilters = %d, want -1 when the kernel omits the line", r.SeccompFilters)
	}
}

func TestParseStatusBadMask(t *testing.T) {
	err := parseStatus(strings.NewReader("CapEff:\tzz\n"), &report.Report{})
	if err == nil || !strings.Contains(err.Error(), "CapEff") {
		t.Errorf("err = %v, want one naming CapEff", err)
	}
}

func TestParseMountInfo(t *testing.T) {
	const mi = `22 1 0:20 / / rw,relatime master:1 - ext4 /dev/vda rw
35 22 0:30 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
36 35 0:31 / /sys/firmware ro,relatime - tmpfs tmpfs ro,size=0k
40 22 0:33 / /mnt/with\040space rw shared:5 master:2 - tmpfs none rw
41 35 0:34 / /sys rw,nosuid - sysfs sysfs rw
`
	ms, err := parseMountInfo(strings.NewReader(mi))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 5 {
		t.Fatalf("parsed %d mounts, want 5", len(ms))
	}
	if ms[3].mountPoint != "/mnt/with space" || ms[3].fsType != "tmpfs" || ms[3].source != "none" {
		t.Errorf("escaped/optional-field line parsed as %+v", ms[3])
	}
	// The later /sys line is stacked on top and is what the process sees.
	top, ok := mountAt(ms, "/sys")
	if !ok || !reflect.DeepEqual(top.options, []string{"rw", "nosuid"}) {
		t.Errorf("mountAt(/sys) = %+v, %t; want the rw mount stacked last", top, ok)
	}
	if _, ok := mountAt(ms, "/nope"); ok {
		t.Error("mountAt found a mount that does not exist")
	}
	if _, err := parseMountInfo(strings.NewReader("1 2 3\n")); err == nil {
		t.Error("malformed line accepted")
	}
}

func TestUnescapeOctal(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`:   "/a b",
		`/tab\011`:  "/tab\t",
		`/back\134`: `/back\`,
		`/short\04`: `/short\04`,
		`/plain`:    "/plain",
	} {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSysctlPath(t *testing.T) {
	for in, want := range map[string]string{
		"net.ipv4.ip_unprivileged_port_start": "/proc/sys/net/ipv4/ip_unprivileged_port_start",
		"net/ipv4/conf/eth0.10/forwarding":    "/proc/sys/net/ipv4/conf/eth0.10/forwarding",
		"../../etc/shadow":                    "/proc/sys/etc/shadow",
	} {
		got, err := sysctlPath(in)
		if err != nil || got != want {
			t.Errorf("sysctlPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := sysctlPath(""); err == nil {
		t.Error("empty name accepted")
	}
}

func TestSelectOps(t *testing.T) {
	all, err := selectOps([]string{"all"})
	if err != nil || len(all) != len(allOps()) {
		t.Fatalf("all selected %d ops (err %v), want %d", len(all), err, len(allOps()))
	}
	sec, err := selectOps([]string{"seccomp.*", "cap.chown"})
	if err != nil {
		t.Fatal(err)
	}
	if sec[0].name != report.OpCapChown {
		t.Errorf("selection must keep allOps order, got first %s", sec[0].name)
	}
	for _, o := range sec[1:] {
		if !strings.HasPrefix(o.name, "seccomp.") {
			t.Errorf("seccomp.* selected %s", o.name)
		}
	}
	if _, err := selectOps([]string{"cap.nope"}); err == nil {
		t.Error("unknown op accepted")
	}
	seen := map[string]bool{}
	for _, o := range allOps() {
		if seen[o.name] {
			t.Errorf("duplicate op %s", o.name)
		}
		seen[o.name] = true
	}
}

func TestErrnoNames(t *testing.T) {
	wrapped := &netlinkError{msgType: 16, errno: unix.EPERM}
	for _, tt := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{unix.EOPNOTSUPP, "EOPNOTSUPP"},
		{unix.EROFS, "EROFS"},
		{wrapped, "EPERM"},
		{&syscallErr{syscall.EACCES}, "EACCES"},
	} {
		if got := errnoName(tt.err); got != tt.want {
			t.Errorf("errnoName(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

type syscallErr struct{ e syscall.Errno }

func (s *syscallErr) Error() string { return "wrapped: " + s.e.Error() }
func (s *syscallErr) Unwrap() error { return s.e }

func TestOutcomeHelpers(t *testing.T) {
	if o := validatedOutcome(unix.EINVAL, "x", unix.EINVAL); !o.OK || o.Errno != "EINVAL" {
		t.Errorf("validatedOutcome(EINVAL) = %+v, want OK with errno EINVAL", o)
	}
	if o := validatedOutcome(unix.EPERM, "x", unix.EINVAL); o.OK || o.Errno != "EPERM" {
		t.Errorf("validatedOutcome(EPERM) = %+v, want denied", o)
	}
	if o := seccompOutcome(unix.ENOSYS, "x", unix.EINVAL); o.OK {
		t.Errorf("seccompOutcome(ENOSYS) = %+v, want filtered", o)
	}
	if o := skipped("y", unix.EPERM); !o.Skipped || o.OK {
		t.Errorf("skipped() = %+v", o)
	}
}

func TestParseEUID(t *testing.T) {
	if n, err := parseEUID("noise\neuid=0\n"); err != nil || n != 0 {
		t.Errorf("parseEUID = %d, %v", n, err)
	}
	if _, err := parseEUID("uid=0"); err == nil {
		t.Error("missing euid line accepted")
	}
}
