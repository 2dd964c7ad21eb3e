//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/conformance/probe/report"
)

// As root, changing a file's owner to anyone else needs CAP_CHOWN; without
// it (or as non-root) the kernel answers EPERM. EINVAL means 1234 is not
// mapped in the container's user namespace.
func opChown(c *config) report.Op {
	p, err := c.workFile("chown", 0o600)
	if err != nil {
		return skipped("create scratch file", err)
	}
	return outcome(unix.Chown(p, foreignUID, foreignGID), fmt.Sprintf("chown(%s, %d, %d)", p, foreignUID, foreignGID))
}

// A mode-0000 file owned by the caller is enough: the owner class applies to
// the owner, so opening it for writing is refused (EACCES) unless
// CAP_DAC_OVERRIDE bypasses the mode. CAP_DAC_READ_SEARCH never grants
// write access, so this op isolates CAP_DAC_OVERRIDE.
func opDacOverride(c *config) report.Op {
	p, err := c.workFile("dac-override", 0)
	if err != nil {
		return skipped("create mode-0000 scratch file", err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err == nil {
		f.Close()
	}
	return outcome(err, "open(mode-0000 file, O_WRONLY)")
}

// Reading a mode-0000 file is allowed by CAP_DAC_OVERRIDE too, so it cannot
// isolate CAP_DAC_READ_SEARCH. open_by_handle_at can: it demands
// CAP_DAC_READ_SEARCH (EPERM without). Since Linux 6.10 CAP_SYS_ADMIN over
// the mount's user namespace also relaxes that check, and seccomp profiles
// commonly deny the call with EPERM as well; the read result is recorded in
// Detail for context.
func opDacReadSearch(c *config) report.Op {
	p, err := c.workFile("dac-read-search", 0)
	if err != nil {
		return skipped("create mode-0000 scratch file", err)
	}
	readRes := "read(mode-0000 file): ok"
	if f, err := os.Open(p); err != nil {
		readRes = "read(mode-0000 file): " + errnoName(err)
	} else {
		f.Close()
	}
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, p, 0)
	if err != nil {
		return withDetail(skipped("name_to_handle_at on scratch file (filesystem may not export handles)", err), readRes)
	}
	mfd, err := unix.Open(filepath.Dir(p), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return withDetail(skipped("open scratch dir as mount fd", err), readRes)
	}
	defer unix.Close(mfd)
	fd, err := unix.OpenByHandleAt(mfd, h, unix.O_RDONLY|unix.O_CLOEXEC)
	if err == nil {
		unix.Close(fd)
	}
	return withDetail(outcome(err, "open_by_handle_at(scratch file)"), readRes)
}

// chmod of a file one does not own needs CAP_FOWNER (EPERM without). The
// mode written is the file's current mode, so a permitted call changes
// nothing. A foreign-owned target is taken from -foreign, the scratch mount
// itself (runners can mount it with uid=1234), a file chowned away (possible
// only with CAP_CHOWN), or /.
func opFowner(c *config) report.Op {
	euid := os.Geteuid()
	var cands []string
	if c.foreign != "" {
		cands = append(cands, c.foreign)
	}
	cands = append(cands, c.scratch)
	if p, err := c.workFile("fowner", 0o644); err == nil && unix.Chown(p, foreignUID, foreignGID) == nil {
		cands = append(cands, p)
	}
	cands = append(cands, "/")
	for _, p := range cands {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil || int(st.Uid) == euid {
			continue
		}
		// chmod on a read-only mount fails with EROFS before the
		// ownership check (fs/open.c chmod_common), so such a file
		// cannot show CAP_FOWNER either way.
		var fs unix.Statfs_t
		if unix.Statfs(p, &fs) == nil && fs.Flags&unix.ST_RDONLY != 0 {
			continue
		}
		mode := st.Mode & 0o7777
		return outcome(unix.Chmod(p, mode), fmt.Sprintf("chmod(%s owned by uid %d, current mode %#o)", p, st.Uid, mode))
	}
	return skipped(fmt.Sprintf("no file owned by a uid other than %d among %v (pass -foreign or mount scratch with another owner)", euid, cands), nil)
}

// The kernel strips the setuid bit from a regular file when it is written by
// a process without CAP_FSETID. Using a file the probe owns avoids needing
// a foreign group (which would require CAP_CHOWN to arrange). OK means the
// bit survived the write.
func opFsetid(c *config) report.Op {
	p, err := c.workFile("fsetid", 0o755)
	if err != nil {
		return skipped("create scratch file", err)
	}
	if err := os.Chmod(p, 0o755|os.ModeSetuid); err != nil {
		return skipped("chmod u+s on own file", err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return skipped("open own file for writing", err)
	}
	_, werr := f.Write([]byte("x"))
	f.Close()
	if werr != nil {
		return skipped("write own setuid file", werr)
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return skipped("stat after write", err)
	}
	if st.Mode&unix.S_ISUID != 0 {
		return report.Op{OK: true, Detail: fmt.Sprintf("write to own mode-04755 file kept the setuid bit (mode %#o)", st.Mode&0o7777)}
	}
	return report.Op{Detail: fmt.Sprintf("write to own mode-04755 file cleared the setuid bit (mode %#o): no CAP_FSETID", st.Mode&0o7777)}
}

// kill(pid, 0) against a process with another uid needs CAP_KILL (EPERM
// without). Creating that process requires CAP_SETUID, so the op is skipped
// when the child cannot switch to uid 1234.
func opKill(c *config) report.Op {
	h, err := startHeld(c, &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: foreignUID, Gid: uint32(os.Getgid()), NoSetGroups: true},
		Pdeathsig:  syscall.SIGKILL,
	})
	if err != nil {
		return skipped(fmt.Sprintf("start a child as uid %d (needs CAP_SETUID)", foreignUID), err)
	}
	defer h.stop()
	return outcome(unix.Kill(h.pid(), 0), fmt.Sprintf("kill(pid %d running as uid %d, 0)", h.pid(), foreignUID))
}

// childCredOp runs a credential-changing helper in a re-executed child;
// the needed capability is only named for Detail.
func childCredOp(mode, capName string) func(*config) report.Op {
	return func(c *config) report.Op {
		o, err := runChildOp(c, mode, nil)
		if err != nil {
			return skipped("run helper child", err)
		}
		o.Detail += " in a child (EPERM without " + capName + ")"
		return o
	}
}

// Binding a port below net.ipv4.ip_unprivileged_port_start needs
// CAP_NET_BIND_SERVICE; without it bind fails with EACCES. When the sysctl
// is 0 (or at most the port) success proves nothing, which Detail states.
// 0.0.0.0 is used because a fresh network namespace may have lo down.
func opNetBindService(c *config) report.Op {
	start := sysctlDetail("net.ipv4.ip_unprivileged_port_start")
	var last report.Op
	for _, port := range []int{80, 443, 1023, 7} {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return skipped("socket(AF_INET, SOCK_STREAM)", err)
		}
		err = unix.Bind(fd, &unix.SockaddrInet4{Port: port})
		unix.Close(fd)
		last = withDetail(outcome(err, fmt.Sprintf("bind(0.0.0.0:%d)", port)), start)
		if err == nil {
			if v, rerr := readSysctl("net.ipv4.ip_unprivileged_port_start"); rerr == nil {
				if s, perr := strconv.Atoi(v); perr == nil && s <= port {
					last.Detail += " (the sysctl makes this port unprivileged: success does not prove CAP_NET_BIND_SERVICE)"
				}
			}
		}
		// EADDRINUSE comes after the permission check; try another
		// port so that OK reflects a real bind.
		if !isErrno(err, unix.EADDRINUSE) {
			break
		}
	}
	return last
}

// Raw IP sockets need CAP_NET_RAW (EPERM without). ICMP ping sockets are a
// different type (SOCK_DGRAM) and are not what this checks.
func opNetRaw(c *config) report.Op {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err == nil {
		unix.Close(fd)
	}
	return outcome(err, "socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)")
}

// RTM_NEWLINK on lo needs CAP_NET_ADMIN (the netlink ack carries EPERM
// without). The request sets lo's MTU to its current value and leaves
// ifi_change zero so no flag is touched: the kernel short-circuits an
// unchanged MTU.
func opNetAdmin(c *config) report.Op {
	ifi, err := net.InterfaceByName("lo")
	if err != nil {
		return skipped("look up lo", err)
	}
	what := fmt.Sprintf("netlink RTM_NEWLINK lo(index %d) IFLA_MTU=%d (current value)", ifi.Index, ifi.MTU)
	err = setLinkMTU(ifi.Index, ifi.MTU)
	var nerr *netlinkError
	if errors.As(err, &nerr) || err == nil {
		return outcome(err, what)
	}
	return skipped(what, err)
}

// chroot("/") re-roots the process at its current root, so success changes
// nothing; without CAP_SYS_CHROOT it fails with EPERM.
func opSysChroot(c *config) report.Op {
	return outcome(unix.Chroot("/"), `chroot("/")`)
}

// Creating a device node needs CAP_MKNOD (EPERM without, and always inside a
// user namespace). The node is created in the private scratch dir and
// removed again.
func opMknod(c *config) report.Op {
	d, err := c.work()
	if err != nil {
		return skipped("private scratch dir", err)
	}
	p := filepath.Join(d, "null")
	err = unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3)))
	if err == nil {
		_ = os.Remove(p)
	}
	return outcome(err, "mknod(scratch/null, S_IFCHR, 1:3)")
}

// mount(2) needs CAP_SYS_ADMIN over the mount namespace (EPERM without). A
// tiny tmpfs goes on a private scratch dir and is detached immediately.
func opMount(c *config) report.Op {
	d, err := c.work()
	if err != nil {
		return skipped("private scratch dir", err)
	}
	target := filepath.Join(d, "mnt")
	if err := os.Mkdir(target, 0o700); err != nil {
		return skipped("create mount point", err)
	}
	err = unix.Mount("secrun-probe", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=4k,mode=0700")
	o := outcome(err, "mount(tmpfs, scratch/mnt)")
	if err == nil {
		if uerr := unix.Unmount(target, unix.MNT_DETACH); uerr != nil {
			o.Detail += fmt.Sprintf("; unmount failed: %v", uerr)
		}
	}
	return o
}

// sethostname needs CAP_SYS_ADMIN over the UTS namespace (EPERM without).
// The name set is the one just read, so success changes nothing.
func opSethostname(c *config) report.Op {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return skipped("uname", err)
	}
	name := unix.ByteSliceToString(uts.Nodename[:])
	return outcome(unix.Sethostname([]byte(name)), fmt.Sprintf("sethostname(%q) (its current value)", name))
}

// adjtimex with any mode bit needs CAP_SYS_TIME and the kernel checks that
// before validating arguments. ADJ_TICK with tick=1 is far outside the
// accepted ±10% of USER_HZ, so a permitted call fails with EINVAL and the
// clock is never touched. settimeofday(NULL, tz) was rejected because the
// first such call warps the clock when the RTC is in local time, and
// rewriting a value just read races with NTP daemons.
func opSysTime(c *config) report.Op {
	tx := unix.Timex{Modes: unix.ADJ_TICK, Tick: 1}
	_, err := unix.Adjtimex(&tx)
	return validatedOutcome(err, "adjtimex(ADJ_TICK, tick=1)", unix.EINVAL)
}

// PTRACE_SEIZE of a same-uid child normally needs no privilege; making the
// child non-dumpable forces the CAP_SYS_PTRACE check (EPERM without). Yama
// (scope 3, or scope 2 without the cap) and seccomp can also deny with
// EPERM, so Detail records kernel.yama.ptrace_scope.
func opSysPtrace(c *config) report.Op {
	h, err := startHeld(c, &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}, "nodump")
	if err != nil {
		return skipped("start non-dumpable child", err)
	}
	err = unix.PtraceSeize(h.pid())
	o := withDetail(outcome(err, fmt.Sprintf("ptrace(PTRACE_SEIZE, non-dumpable child %d)", h.pid())), sysctlDetail("kernel.yama.ptrace_scope"))
	if err != nil {
		h.stop()
		return o
	}
	if kerr := h.killAndReap(); kerr != nil {
		o.Detail += "; " + kerr.Error()
	}
	return o
}

// delete_module checks CAP_SYS_MODULE (and kernel.modules_disabled) before
// looking the name up, so a name that cannot exist yields ENOENT when
// permitted and EPERM otherwise. Nothing is ever loaded.
func opSysModule(c *config) report.Op {
	name, err := unix.BytePtrFromString("secrun_probe_no_such_module")
	if err != nil {
		return skipped("encode module name", err)
	}
	_, _, e := unix.Syscall(unix.SYS_DELETE_MODULE, uintptr(unsafe.Pointer(name)), uintptr(unix.O_NONBLOCK), 0)
	var serr error
	if e != 0 {
		serr = e
	}
	if isErrno(serr, unix.ENOSYS) {
		return skipped("kernel without module support", serr)
	}
	return withDetail(validatedOutcome(serr, `delete_module("secrun_probe_no_such_module")`, unix.ENOENT), sysctlDetail("kernel.modules_disabled"))
}

// Sending an AUDIT_USER message needs CAP_AUDIT_WRITE (EPERM without). The
// kernel answers ECONNREFUSED outside the initial user namespace, and when
// auditing is enabled a permitted call logs the (self-describing) message.
func opAuditWrite(c *config) report.Op {
	err := sendAuditUser("secrun conformance probe: cap.audit_write check, no action needed")
	var nerr *netlinkError
	switch {
	case err == nil || errors.As(err, &nerr):
		o := outcome(err, "NETLINK_AUDIT AUDIT_USER message")
		if isErrno(err, unix.ECONNREFUSED) {
			o.Detail += " (ECONNREFUSED: audit is refused in a non-initial user namespace; inconclusive)"
		}
		return o
	default:
		return skipped("NETLINK_AUDIT socket", err)
	}
}

// Writing security.capability needs CAP_SETFCAP (EPERM without). The value
// is a well-formed revision-2 header with empty sets, because the kernel
// validates the format before the capability check.
func opSetfcap(c *config) report.Op {
	p, err := c.workFile("setfcap", 0o755)
	if err != nil {
		return skipped("create scratch file", err)
	}
	const vfsCapRevision2 = 0x02000000
	val := make([]byte, 20)
	binary.LittleEndian.PutUint32(val, vfsCapRevision2)
	err = unix.Setxattr(p, "security.capability", val, 0)
	if err == nil {
		_ = unix.Removexattr(p, "security.capability")
	}
	return outcome(err, "setxattr(scratch file, security.capability, empty v2 caps)")
}
