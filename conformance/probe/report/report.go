// Package report defines the JSON document printed by the conformance probe
// (conformance/probe) so that the suite runner can decode it without
// depending on the probe's main package.
//
// The probe prints exactly one Report on stdout. Process state (credentials,
// capability sets, no_new_privs, seccomp mode, LSM labels) is what the
// kernel reports; Ops holds the outcome of each operation the probe actually
// attempted, because reading /proc only shows what is configured while an
// attempt shows what is enforced.
package report

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Version is bumped whenever a field changes meaning, so a runner can refuse
// a probe built from a different revision instead of misreading it.
const Version = 1

// Report is the probe's complete output.
type Report struct {
	Version int `json:"version"`

	UID    int   `json:"uid"`
	EUID   int   `json:"euid"`
	GID    int   `json:"gid"`
	EGID   int   `json:"egid"`
	Groups []int `json:"groups"`

	Caps Caps `json:"caps"`

	// NoNewPrivs is the NoNewPrivs field of /proc/self/status (0 or 1).
	NoNewPrivs int `json:"no_new_privs"`
	// Seccomp is the seccomp mode: 0 disabled, 1 strict, 2 filter.
	Seccomp int `json:"seccomp"`
	// SeccompFilters is the number of attached filters (kernel ≥5.9), or -1
	// when the kernel does not report it.
	SeccompFilters int `json:"seccomp_filters"`

	// AppArmor is the AppArmor label ("unconfined", "name (enforce)"), or ""
	// when AppArmor is not active.
	AppArmor string `json:"apparmor"`
	// SELinux is the SELinux context, or "" when SELinux is not active.
	SELinux string `json:"selinux"`

	Hostname string `json:"hostname"`

	// Sysctls maps each requested name (dotted form, e.g.
	// "net.ipv4.ip_unprivileged_port_start") to its value with surrounding
	// whitespace removed. Names that could not be read are in SysctlErrors.
	Sysctls      map[string]string `json:"sysctls"`
	SysctlErrors map[string]string `json:"sysctl_errors,omitempty"`

	// Ops is keyed by op name (see the Op* constants). Ops that test one
	// path per entry use "<op>:<path>" keys, e.g. "proc.masked:/proc/kcore".
	Ops map[string]Op `json:"ops"`

	// Errors lists failures gathering the state fields above; they do not
	// affect Ops.
	Errors []string `json:"errors,omitempty"`
}

// Caps holds the decoded capability sets, each sorted by capability number.
type Caps struct {
	Bounding    []string `json:"bounding"`
	Effective   []string `json:"effective"`
	Permitted   []string `json:"permitted"`
	Inheritable []string `json:"inheritable"`
	Ambient     []string `json:"ambient"`
}

// Op is the outcome of one attempted operation.
//
// OK answers "did the kernel let the privileged operation through?". Where
// the probe deliberately passes an invalid argument so that a permitted call
// still changes nothing (cap.sys_time, cap.sys_module, the seccomp.* ops),
// OK is true and Errno holds the errno the kernel returns after its
// permission check passed (e.g. EINVAL). Otherwise OK means the call
// returned success.
type Op struct {
	OK bool `json:"ok"`
	// Errno is the symbolic errno ("EPERM", "EACCES", "EROFS", ...) of the
	// decisive call, or "" when it returned success or no errno applies.
	Errno string `json:"errno"`
	// Detail explains the result: the arguments used, relevant sysctls,
	// and why a prerequisite failed.
	Detail string `json:"detail"`
	// Skipped is true when the op could not be attempted (a prerequisite
	// failed or the target is absent). OK is then false and says nothing
	// about enforcement; runners must not count it as a denial.
	Skipped bool `json:"skipped,omitempty"`
}

// Op names. Names are stable: runners and policies refer to them.
const (
	OpCapChown            = "cap.chown"
	OpCapDacOverride      = "cap.dac_override"
	OpCapDacReadSearch    = "cap.dac_read_search"
	OpCapFowner           = "cap.fowner"
	OpCapFsetid           = "cap.fsetid"
	OpCapKill             = "cap.kill"
	OpCapSetgid           = "cap.setgid"
	OpCapSetuid           = "cap.setuid"
	OpCapSetpcap          = "cap.setpcap"
	OpCapNetBindService   = "cap.net_bind_service"
	OpCapNetRaw           = "cap.net_raw"
	OpCapNetAdmin         = "cap.net_admin"
	OpCapSysChroot        = "cap.sys_chroot"
	OpCapMknod            = "cap.mknod"
	OpCapSysAdminMount    = "cap.sys_admin.mount"
	OpCapSysAdminHostname = "cap.sys_admin.sethostname"
	OpCapSysTime          = "cap.sys_time"
	OpCapSysPtrace        = "cap.sys_ptrace"
	OpCapSysModule        = "cap.sys_module"
	OpCapAuditWrite       = "cap.audit_write"
	OpCapSetfcap          = "cap.setfcap"

	OpFSRootfsWrite  = "fs.rootfs_write"
	OpFSScratchWrite = "fs.scratch_write"

	OpNNPSetuid = "nnp.setuid"

	OpSeccompKeyctl         = "seccomp.keyctl"
	OpSeccompAddKey         = "seccomp.add_key"
	OpSeccompUnshareUserns  = "seccomp.unshare_userns"
	OpSeccompPtrace         = "seccomp.ptrace"
	OpSeccompBPF            = "seccomp.bpf"
	OpSeccompPerfEventOpen  = "seccomp.perf_event_open"
	OpSeccompKexecLoad      = "seccomp.kexec_load"
	OpSeccompOpenByHandleAt = "seccomp.open_by_handle_at"
	OpSeccompPersonality    = "seccomp.personality"
	OpSeccompMount          = "seccomp.mount"
	OpSeccompCloneNewns     = "seccomp.clone_newns"
	OpSeccompClone3         = "seccomp.clone3"
	OpSeccompIOUringSetup   = "seccomp.io_uring_setup"
	OpSeccompNormal         = "seccomp.normal"

	// OpProcMasked and OpProcReadonly produce one entry per path, keyed
	// PathOp(OpProcMasked, path).
	OpProcMasked   = "proc.masked"
	OpProcReadonly = "proc.readonly"

	OpPrivDevices = "priv.devices"
	OpPrivSysRW   = "priv.sys_rw"

	OpAppArmorLabel  = "apparmor.label"
	OpAppArmorDenied = "apparmor.denied"
)

// PathOp is the Ops key for a per-path op.
func PathOp(op, path string) string { return op + ":" + path }

// capNames is indexed by capability number (linux/capability.h).
var capNames = [...]string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_DAC_READ_SEARCH",
	"CAP_FOWNER",
	"CAP_FSETID",
	"CAP_KILL",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST",
	"CAP_NET_ADMIN",
	"CAP_NET_RAW",
	"CAP_IPC_LOCK",
	"CAP_IPC_OWNER",
	"CAP_SYS_MODULE",
	"CAP_SYS_RAWIO",
	"CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE",
	"CAP_SYS_PACCT",
	"CAP_SYS_ADMIN",
	"CAP_SYS_BOOT",
	"CAP_SYS_NICE",
	"CAP_SYS_RESOURCE",
	"CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG",
	"CAP_MKNOD",
	"CAP_LEASE",
	"CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL",
	"CAP_SETFCAP",
	"CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN",
	"CAP_SYSLOG",
	"CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND",
	"CAP_AUDIT_READ",
	"CAP_PERFMON",
	"CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// CapName returns the name of capability number n. Numbers newer than this
// table are rendered "CAP_<n>" so that a newer kernel's extra bits are
// still visible rather than dropped.
func CapName(n int) string {
	if n >= 0 && n < len(capNames) {
		return capNames[n]
	}
	return "CAP_" + strconv.Itoa(n)
}

// CapNumber returns the number of a capability name ("CAP_CHOWN" or
// "CAP_<n>"), accepting any letter case and an omitted "CAP_" prefix.
func CapNumber(name string) (int, bool) {
	up := strings.ToUpper(name)
	if !strings.HasPrefix(up, "CAP_") {
		up = "CAP_" + up
	}
	for i, n := range capNames {
		if n == up {
			return i, true
		}
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(up, "CAP_")); err == nil && n >= 0 && n < 64 {
		return n, true
	}
	return 0, false
}

// DecodeCapMask turns a capability bitmask into names ordered by number.
// It never returns nil so that an empty set encodes as [] rather than null.
func DecodeCapMask(mask uint64) []string {
	names := make([]string, 0, bits.OnesCount64(mask))
	for n := 0; n < 64; n++ {
		if mask&(1<<uint(n)) != 0 {
			names = append(names, CapName(n))
		}
	}
	return names
}

// ParseCapHex parses a mask as printed in /proc/<pid>/status
// ("000001ffffffffff", no 0x prefix).
func ParseCapHex(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	if err != nil {
		return 0, fmt.Errorf("parse capability mask %q: %w", s, err)
	}
	return v, nil
}

// HasCap reports whether set contains the named capability.
func HasCap(set []string, name string) bool {
	want, ok := CapNumber(name)
	if !ok {
		return false
	}
	for _, s := range set {
		if n, ok := CapNumber(s); ok && n == want {
			return true
		}
	}
	return false
}
