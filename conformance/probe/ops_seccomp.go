//go:build linux

package main

// Each seccomp op calls the syscall with arguments the kernel itself rejects
// with a known "natural" errno before doing anything, so the call is
// harmless when allowed and the errno tells the two cases apart: a filter
// answers with its own errno (EPERM in the Docker/containerd default
// profile, sometimes ENOSYS) without the kernel ever seeing the arguments.

import (
	"fmt"
	"io"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/conformance/probe/report"
)

func sysErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// keyctl's dispatcher answers an unknown operation with EOPNOTSUPP.
func opSeccompKeyctl(c *config) report.Op {
	const bogusOp = 0x7fffffff
	_, _, e := unix.Syscall(unix.SYS_KEYCTL, bogusOp, 0, 0)
	return seccompOutcome(sysErr(e), "keyctl(0x7fffffff)", unix.EOPNOTSUPP)
}

// add_key rejects an empty key type with EINVAL before touching any keyring.
func opSeccompAddKey(c *config) report.Op {
	empty := []byte{0}
	desc := []byte("secrun-probe\x00")
	_, _, e := unix.Syscall6(unix.SYS_ADD_KEY, uintptr(unsafe.Pointer(&empty[0])), uintptr(unsafe.Pointer(&desc[0])), 0, 0, 0, 0)
	return seccompOutcome(sysErr(e), `add_key(type="")`, unix.EINVAL)
}

// Creating a user namespace is unprivileged on most kernels, so success is
// the natural outcome; it is done in a child because unshare(CLONE_NEWUSER)
// fails with EINVAL in a multithreaded process. EPERM is ambiguous here: a
// chrooted caller and some distribution sysctls also produce it, and
// user.max_user_namespaces=0 gives ENOSPC.
func opSeccompUnshareUserns(c *config) report.Op {
	_, err := runChildOp(c, "noop", &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWUSER})
	return withDetail(outcome(err, "unshare(CLONE_NEWUSER) in a child"), sysctlDetail("user.max_user_namespaces"))
}

// PTRACE_PEEKDATA looks the pid up first; no pid reaches 0x7fffffff, which
// is above the maximum pid_max, so the kernel answers ESRCH.
func opSeccompPtrace(c *config) report.Op {
	const noSuchPid = 0x7fffffff
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKDATA, noSuchPid, 0, 0, 0, 0)
	return seccompOutcome(sysErr(e), "ptrace(PTRACE_PEEKDATA, pid 0x7fffffff)", unix.ESRCH)
}

// bpf with an unknown command and a zero-sized attribute is answered EINVAL
// by the command switch; ENOSYS means a kernel without bpf(2).
func opSeccompBPF(c *config) report.Op {
	const bogusCmd = 0x7fff
	_, _, e := unix.Syscall(unix.SYS_BPF, bogusCmd, 0, 0)
	return seccompOutcome(sysErr(e), "bpf(0x7fff, NULL, 0)", unix.EINVAL, unix.ENOSYS)
}

// perf_event_open rejects unknown flag bits with EINVAL before reading the
// attribute or consulting perf_event_paranoid.
func opSeccompPerfEventOpen(c *config) report.Op {
	const bogusFlags = 1 << 30
	negOne := -1
	_, _, e := unix.Syscall6(unix.SYS_PERF_EVENT_OPEN, 0, 0, uintptr(negOne), uintptr(negOne), bogusFlags, 0)
	return seccompOutcome(sysErr(e), "perf_event_open(NULL, flags=1<<30)", unix.EINVAL, unix.EFAULT)
}

// kexec_load checks CAP_SYS_BOOT first (EPERM), then rejects more segments
// than KEXEC_SEGMENT_MAX (16) with EINVAL, so nothing can be loaded. Without
// CAP_SYS_BOOT a filter's EPERM is indistinguishable from the kernel's.
func opSeccompKexecLoad(c *config) report.Op {
	const tooManySegments = 1024
	_, _, e := unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, tooManySegments, 0, 0, 0, 0)
	o := seccompOutcome(sysErr(e), "kexec_load(nr_segments=1024)", unix.EINVAL, unix.ENOSYS)
	if e == unix.EPERM {
		o.Detail += "; EPERM is also the kernel's answer without CAP_SYS_BOOT, so it only proves filtering when that capability is held"
	}
	return o
}

// Recent kernels (6.10 reworked the permission logic; 6.18 observed) copy
// the handle header before any capability check, so a NULL handle yields
// EFAULT (or EBADF for the -1 mount fd). Older kernels checked
// CAP_DAC_READ_SEARCH first and answered EPERM without it, which a filter's
// EPERM cannot be told apart from; Detail then needs the cap sets.
func opSeccompOpenByHandleAt(c *config) report.Op {
	negOne := -1
	_, _, e := unix.Syscall(unix.SYS_OPEN_BY_HANDLE_AT, uintptr(negOne), 0, unix.O_RDONLY)
	return seccompOutcome(sysErr(e), "open_by_handle_at(-1, NULL)", unix.EBADF, unix.EFAULT)
}

// personality(ADDR_NO_RANDOMIZE) is what the default profile refuses (it
// only allows querying and a few compatibility personas). It succeeds when
// unfiltered, so it runs in a child to keep the probe's own persona.
func opSeccompPersonality(c *config) report.Op {
	o, err := runChildOp(c, "personality", nil)
	if err != nil {
		return skipped("run helper child", err)
	}
	return o
}

// mount resolves the target path before any capability check, so an empty
// target gives ENOENT whatever the caller's privileges.
func opSeccompMount(c *config) report.Op {
	empty := []byte{0}
	_, _, e := unix.Syscall6(unix.SYS_MOUNT, 0, uintptr(unsafe.Pointer(&empty[0])), 0, 0, 0, 0)
	return seccompOutcome(sysErr(e), `mount(NULL, "", NULL, 0, NULL)`, unix.ENOENT)
}

// The raw clone runs in a helper child (see cloneNewnsFS) so that even an
// impossible success could not disturb the probe.
func opSeccompCloneNewns(c *config) report.Op {
	o, err := runChildOp(c, "clone-newns", nil)
	if err != nil {
		return skipped("run helper child", err)
	}
	return o
}

// Everyday syscalls must keep working under any profile a runtime applies;
// a profile that breaks them is as wrong as one that allows too much.
func opSeccompNormal(c *config) report.Op {
	var steps []string
	fail := func(what string, err error) report.Op {
		return report.Op{Errno: errnoName(err), Detail: fmt.Sprintf("%s failed: %v (after %v)", what, err, steps)}
	}
	if os.Getpid() <= 0 {
		return report.Op{Detail: "getpid returned a non-positive pid"}
	}
	steps = append(steps, "getpid")
	f, err := os.Open(c.self)
	if err != nil {
		return fail("open own executable", err)
	}
	head := make([]byte, 4)
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil {
		return fail("read own executable", err)
	}
	steps = append(steps, "open/read")
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fail("clock_gettime", err)
	}
	steps = append(steps, "clock_gettime")
	r, w, err := os.Pipe()
	if err != nil {
		return fail("pipe", err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := w.Write([]byte("x")); err != nil {
		return fail("write pipe", err)
	}
	one := make([]byte, 1)
	if _, err := r.Read(one); err != nil {
		return fail("read pipe", err)
	}
	steps = append(steps, "pipe write/read")
	if _, err := os.Stat("/"); err != nil {
		return fail("stat /", err)
	}
	steps = append(steps, "stat")
	return report.Op{OK: true, Detail: fmt.Sprintf("%v all succeeded", steps)}
}

// clone3 checks its size argument before anything else: a NULL
// clone_args of size 0 is EINVAL (kernel/fork.c copy_clone_args_from_user),
// and nothing is created. RuntimeDefault answers ENOSYS, which makes libc
// fall back to clone, whose flags the filter can see.
func opSeccompClone3(c *config) report.Op {
	_, _, e := unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
	return seccompOutcome(sysErr(e), "clone3(NULL, 0)", unix.EINVAL)
}

// io_uring_setup copies its NULL params first (EFAULT; kernels that check
// the zero entries first say EINVAL) and creates no ring; a kernel built
// without io_uring answers ENOSYS, and kernel.io_uring_disabled=2 EPERM,
// which the Detail says.
func opSeccompIOUringSetup(c *config) report.Op {
	_, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 0, 0, 0)
	return withDetail(seccompOutcome(sysErr(e), "io_uring_setup(0, NULL)", unix.EFAULT, unix.EINVAL), sysctlDetail("kernel.io_uring_disabled"))
}
