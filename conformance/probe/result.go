//go:build linux

package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/conformance/probe/report"
)

// errnoOf extracts the errno wrapped anywhere in err (os.PathError,
// net.OpError, os.SyscallError all unwrap to it).
func errnoOf(err error) (syscall.Errno, bool) {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e, true
	}
	return 0, false
}

// errnoName renders the errno inside err symbolically, "" if err is nil or
// carries no errno.
func errnoName(err error) string {
	e, ok := errnoOf(err)
	if !ok {
		return ""
	}
	return errnoString(e)
}

// errnoString prefers the kernel's own spelling where libc names alias one
// value: x/sys calls 95 ENOTSUP, but the kernel (and keyctl(2)) say
// EOPNOTSUPP.
func errnoString(e syscall.Errno) string {
	if e == unix.EOPNOTSUPP {
		return "EOPNOTSUPP"
	}
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return fmt.Sprintf("errno%d", int(e))
}

func isErrno(err error, want ...syscall.Errno) bool {
	e, ok := errnoOf(err)
	return ok && slices.Contains(want, e)
}

// outcome is the result of an op whose decisive call must succeed to count
// as permitted.
func outcome(err error, what string) report.Op {
	if err == nil {
		return report.Op{OK: true, Detail: what + ": ok"}
	}
	return report.Op{Errno: errnoName(err), Detail: what + ": " + err.Error()}
}

// validatedOutcome is the result of an op that passes an argument the kernel
// rejects only after its permission check, so that a permitted call changes
// nothing. Any errno in passed proves the permission check succeeded.
func validatedOutcome(err error, what string, passed ...syscall.Errno) report.Op {
	if err == nil {
		return report.Op{OK: true, Detail: what + ": ok"}
	}
	o := report.Op{Errno: errnoName(err), Detail: what + ": " + err.Error()}
	if isErrno(err, passed...) {
		o.OK = true
		o.Detail += " (permission check passed; " + names(passed) + " is the post-check rejection, nothing was changed)"
	}
	return o
}

// seccompOutcome is the result of a seccomp probe: natural lists the errnos
// the kernel itself returns for the deliberately useless arguments, so any
// other errno (typically EPERM or ENOSYS from a filter) means the call never
// reached the syscall implementation.
func seccompOutcome(err error, what string, natural ...syscall.Errno) report.Op {
	o := report.Op{OK: err == nil || isErrno(err, natural...), Errno: errnoName(err)}
	res := "ok"
	if err != nil {
		res = err.Error()
	}
	o.Detail = fmt.Sprintf("%s: %s (unfiltered kernel: %s)", what, res, names(natural))
	return o
}

func skipped(what string, err error) report.Op {
	d := what
	if err != nil {
		d += ": " + err.Error()
	}
	return report.Op{Skipped: true, Errno: errnoName(err), Detail: "not attempted, " + d}
}

func names(errs []syscall.Errno) string {
	if len(errs) == 0 {
		return "success"
	}
	s := make([]string, len(errs))
	for i, e := range errs {
		s[i] = errnoString(e)
	}
	return strings.Join(s, "/")
}

func withDetail(o report.Op, extra string) report.Op {
	if extra != "" {
		o.Detail += "; " + extra
	}
	return o
}
