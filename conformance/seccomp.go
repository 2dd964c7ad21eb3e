package conformance

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/conformance/probe/report"
	"github.com/secrun/secrun/spec"
)

// What a seccomp filter does to each probe op is computed from the
// profile itself: RuntimeDefault is moby's default profile generated for
// the model's final capabilities (the profile containerd ports in
// contrib/seccomp/seccomp_default.go),
// Localhost is the file the Pod names. The suite evaluates the profile's
// rules for the exact syscall and arguments each op makes.

// sysCall is one syscall an op makes, with the arguments a filter may
// look at.
type sysCall struct {
	name string
	args []uint64
}

func sc(name string, args ...uint64) sysCall { return sysCall{name: name, args: args} }

// Socket constants as the probe passes them.
const (
	afInet     = unix.AF_INET
	afNetlink  = unix.AF_NETLINK
	sockStream = unix.SOCK_STREAM | unix.SOCK_CLOEXEC
	sockRaw    = unix.SOCK_RAW | unix.SOCK_CLOEXEC
)

// opSyscalls lists, per probe op, the syscalls whose filtering decides the
// op (the decisive call, and the ones it cannot do without).
var opSyscalls = map[string][]sysCall{
	report.OpCapChown:            {sc("fchownat")},
	report.OpCapDacOverride:      {sc("openat")},
	report.OpCapDacReadSearch:    {sc("name_to_handle_at"), sc("open_by_handle_at")},
	report.OpCapFowner:           {sc("fchmodat")},
	report.OpCapFsetid:           {sc("fchmodat"), sc("write")},
	report.OpCapKill:             {sc("kill")},
	report.OpCapSetgid:           {sc("setgid")},
	report.OpCapSetuid:           {sc("setuid")},
	report.OpCapSetpcap:          {sc("prctl", unix.PR_CAPBSET_DROP, 27)},
	report.OpCapNetBindService:   {sc("socket", afInet, sockStream, 0), sc("bind")},
	report.OpCapNetRaw:           {sc("socket", afInet, sockRaw, unix.IPPROTO_ICMP)},
	report.OpCapNetAdmin:         {sc("socket", afNetlink, sockRaw, unix.NETLINK_ROUTE), sc("sendto")},
	report.OpCapSysChroot:        {sc("chroot")},
	report.OpCapMknod:            {sc("mknodat")},
	report.OpCapSysAdminMount:    {sc("mount")},
	report.OpCapSysAdminHostname: {sc("sethostname")},
	report.OpCapSysTime:          {sc("adjtimex")},
	report.OpCapSysPtrace:        {sc("ptrace", unix.PTRACE_SEIZE)},
	report.OpCapSysModule:        {sc("delete_module")},
	report.OpCapAuditWrite:       {sc("socket", afNetlink, sockRaw, unix.NETLINK_AUDIT), sc("sendto")},
	report.OpCapSetfcap:          {sc("setxattr")},

	report.OpSeccompKeyctl:         {sc("keyctl", 0x7fffffff)},
	report.OpSeccompAddKey:         {sc("add_key")},
	report.OpSeccompUnshareUserns:  {sc("unshare", unix.CLONE_NEWUSER)},
	report.OpSeccompPtrace:         {sc("ptrace", unix.PTRACE_PEEKDATA, 0x7fffffff)},
	report.OpSeccompBPF:            {sc("bpf", 0x7fff)},
	report.OpSeccompPerfEventOpen:  {sc("perf_event_open", 0, 0, ^uint64(0), ^uint64(0), 1<<30)},
	report.OpSeccompKexecLoad:      {sc("kexec_load", 0, 1024)},
	report.OpSeccompOpenByHandleAt: {sc("open_by_handle_at", ^uint64(0), 0, unix.O_RDONLY)},
	report.OpSeccompPersonality:    {sc("personality", 0x0040000)},
	report.OpSeccompMount:          {sc("mount")},
	report.OpSeccompCloneNewns:     {sc("clone", unix.CLONE_NEWNS|unix.CLONE_FS|uint64(unix.SIGCHLD))},
	report.OpSeccompClone3:         {sc("clone3")},
	report.OpSeccompIOUringSetup:   {sc("io_uring_setup")},
	report.OpSeccompNormal:         {sc("getpid"), sc("openat"), sc("read"), sc("write"), sc("pipe2"), sc("close")},
}

// seccompOps are the probe's seccomp ops in report order.
var seccompOps = []string{
	report.OpSeccompKeyctl, report.OpSeccompAddKey, report.OpSeccompUnshareUserns,
	report.OpSeccompPtrace, report.OpSeccompBPF, report.OpSeccompPerfEventOpen,
	report.OpSeccompKexecLoad, report.OpSeccompOpenByHandleAt, report.OpSeccompPersonality,
	report.OpSeccompMount, report.OpSeccompCloneNewns,
}

// actionRank orders actions the way the kernel resolves several filters:
// the most restrictive wins.
func actionRank(a specs.LinuxSeccompAction) int {
	switch a {
	case specs.ActKillProcess, specs.ActKillThread, specs.ActKill:
		return 6
	case specs.ActTrap:
		return 5
	case specs.ActErrno:
		return 4
	case specs.ActTrace:
		return 3
	case specs.ActNotify:
		return 2
	case specs.ActLog:
		return 1
	}
	return 0
}

// filterVerdict is what a filter does to one call: allowed, or the errno
// the process sees ("" when it is killed instead).
type filterVerdict struct {
	allowed bool
	errno   string
	rule    string
}

// evalFilter applies the profile's rules to a call. A rule matches when
// it names the syscall and every argument condition holds; among
// matching rules the most restrictive action wins; no match means the
// default action. A nil profile allows everything.
func evalFilter(p *specs.LinuxSeccomp, c sysCall) filterVerdict {
	if p == nil {
		return filterVerdict{allowed: true, rule: "no seccomp filter"}
	}
	action, errRet, rule := p.DefaultAction, p.DefaultErrnoRet, "default action "+string(p.DefaultAction)
	found := false
	for i, r := range p.Syscalls {
		if !slices.Contains(r.Names, c.name) || !argsMatch(r.Args, c.args) {
			continue
		}
		if !found || actionRank(r.Action) > actionRank(action) {
			action, errRet, rule = r.Action, r.ErrnoRet, fmt.Sprintf("rule %d (%s)", i, r.Action)
			found = true
		}
	}
	switch action {
	case specs.ActAllow, specs.ActLog:
		return filterVerdict{allowed: true, rule: rule}
	case specs.ActErrno:
		n := uint(unix.EPERM)
		if errRet != nil {
			n = *errRet
		}
		return filterVerdict{errno: errnoName(syscall.Errno(n)), rule: rule}
	case specs.ActTrace:
		// With no tracer attached the kernel answers ENOSYS.
		return filterVerdict{errno: "ENOSYS", rule: rule}
	}
	return filterVerdict{rule: rule}
}

func argsMatch(conds []specs.LinuxSeccompArg, args []uint64) bool {
	return spec.SeccompArgsHold(conds, args)
}

// opFilterVerdict is the verdict for an op: denied if any of its
// syscalls is.
func opFilterVerdict(p *specs.LinuxSeccomp, op string) filterVerdict {
	calls := opSyscalls[op]
	for _, c := range calls {
		if v := evalFilter(p, c); !v.allowed {
			v.rule = c.name + ": " + v.rule
			return v
		}
	}
	return filterVerdict{allowed: true, rule: "allowed"}
}

func errnoName(e syscall.Errno) string {
	if e == unix.EOPNOTSUPP {
		return "EOPNOTSUPP"
	}
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return fmt.Sprintf("errno%d", int(e))
}

// profileFor builds the seccomp profile a model stands for, for the
// final capabilities in m.Caps.
func (s *suite) profileFor(m *model) (*specs.LinuxSeccomp, error) {
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: slices.Clone(m.Caps)}}}
	switch m.Seccomp {
	case seccompNone:
		return nil, nil
	case seccompRuntimeDefault:
		p, err := mobyseccomp.GetDefaultProfile(rs)
		if err != nil {
			return nil, fmt.Errorf("RuntimeDefault seccomp profile: %w", err)
		}
		return p, nil
	case seccompLocalhost:
		if strings.Contains(m.SeccompLocalhost, "..") || filepath.IsAbs(m.SeccompLocalhost) {
			return nil, fmt.Errorf("localhost seccomp profile %q must be a relative path below the profile root", m.SeccompLocalhost)
		}
		body, err := os.ReadFile(filepath.Join(s.profileRoot, m.SeccompLocalhost))
		if err != nil {
			return nil, fmt.Errorf("localhost seccomp profile: %w", err)
		}
		p, err := mobyseccomp.LoadProfile(string(body), rs)
		if err != nil {
			return nil, fmt.Errorf("localhost seccomp profile %s: %w", m.SeccompLocalhost, err)
		}
		return p, nil
	}
	return nil, fmt.Errorf("unknown seccomp kind %q", m.Seccomp)
}

// confined reports whether the model's filter refuses anything by default
// (a filter that allows by default is Unconfined in all but name, which is
// how secrun's policies read it).
func (s *suite) confined(m *model) (bool, error) {
	p, err := s.profileFor(m)
	if err != nil || p == nil {
		return false, err
	}
	switch p.DefaultAction {
	case specs.ActAllow, specs.ActLog, "":
		return false, nil
	}
	return true, nil
}

// LocalhostProfileName is the Localhost seccomp profile the suite writes
// into its profile root (see writeLocalhostProfile).
const LocalhostProfileName = "secrun-conformance.json"

// localhostDenied are the syscalls the suite's Localhost profile refuses.
// ptrace is allowed by RuntimeDefault, and keyctl/add_key are refused by
// RuntimeDefault but allowed here, so the probe's results tell the
// Localhost profile from RuntimeDefault and from no filter at all.
var localhostDenied = []string{"ptrace"}

// writeLocalhostProfile writes the suite's Localhost profile: every
// syscall this node's libseccomp knows for the native architecture is
// allowed except localhostDenied, and everything else fails with EPERM.
// It is generated on the node rather than shipped so that every name in
// it is one the node's libseccomp (which runc and secrun validate with)
// knows: a default-deny profile must list what the probe, the Go runtime
// and runc's init need, and a static list would break on other
// architectures and library versions.
func writeLocalhostProfile(dir string) error {
	native, err := libseccomp.GetNativeArch()
	if err != nil {
		return fmt.Errorf("libseccomp native architecture: %w", err)
	}
	var allow []string
	for n := 0; n < 1024; n++ {
		name, err := libseccomp.ScmpSyscall(n).GetNameByArch(native)
		if err != nil || name == "" || slices.Contains(localhostDenied, name) {
			continue
		}
		allow = append(allow, name)
	}
	sort.Strings(allow)
	allow = slices.Compact(allow)
	if len(allow) < 100 {
		return fmt.Errorf("libseccomp resolved only %d syscall names for %s; cannot build the Localhost profile", len(allow), native)
	}
	eperm := uint(unix.EPERM)
	arch, err := ociArch(native)
	if err != nil {
		return err
	}
	prof := specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: &eperm,
		Architectures:   []specs.Arch{arch},
		Syscalls: []specs.LinuxSyscall{
			{Names: allow, Action: specs.ActAllow},
			{Names: slices.Clone(localhostDenied), Action: specs.ActErrno, ErrnoRet: &eperm},
		},
	}
	b, err := json.MarshalIndent(prof, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("profile root: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, LocalhostProfileName), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write Localhost seccomp profile: %w", err)
	}
	return nil
}

func ociArch(a libseccomp.ScmpArch) (specs.Arch, error) {
	m := map[libseccomp.ScmpArch]specs.Arch{
		libseccomp.ArchAMD64:   specs.ArchX86_64,
		libseccomp.ArchX86:     specs.ArchX86,
		libseccomp.ArchARM64:   specs.ArchAARCH64,
		libseccomp.ArchARM:     specs.ArchARM,
		libseccomp.ArchPPC64LE: specs.ArchPPC64LE,
		libseccomp.ArchS390X:   specs.ArchS390X,
		libseccomp.ArchRISCV64: specs.ArchRISCV64,
	}
	if v, ok := m[a]; ok {
		return v, nil
	}
	return "", fmt.Errorf("no OCI seccomp architecture for %s", a)
}
