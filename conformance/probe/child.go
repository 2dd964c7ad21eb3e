//go:build linux

package main

// Credential and personality changes are made in a re-executed copy of the
// probe: the Go runtime applies setuid/setgid to every thread of the
// process, and prctl/personality to only one, so doing either in the probe
// itself would alter (or split) the identity whose state it reports.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/conformance/probe/report"
)

const childTimeout = 10 * time.Second

// ADDR_NO_RANDOMIZE from linux/personality.h: the default Docker/containerd
// seccomp profile refuses it because it disables ASLR for the caller.
const addrNoRandomize = 0x0040000

// runChild executes one helper mode and prints its report.Op as JSON. Modes
// that only need to exist as a target ("hold") print "ready" instead.
func runChild(mode string, args []string, stdout, stderr io.Writer) int {
	var o report.Op
	switch mode {
	case "noop":
		o = report.Op{OK: true, Detail: "child started"}
	case "setuid":
		o = outcome(unix.Setuid(foreignUID), fmt.Sprintf("setuid(%d)", foreignUID))
	case "setgid":
		o = outcome(unix.Setgid(foreignGID), fmt.Sprintf("setgid(%d)", foreignGID))
	case "capbset-drop":
		capNum, _ := report.CapNumber("CAP_MKNOD")
		o = outcome(unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(capNum), 0, 0, 0), "prctl(PR_CAPBSET_DROP, CAP_MKNOD)")
	case "personality":
		old, _, e := unix.Syscall(unix.SYS_PERSONALITY, addrNoRandomize, 0, 0)
		var err error
		if e != 0 {
			err = e
		}
		o = seccompOutcome(err, "personality(ADDR_NO_RANDOMIZE) in a child")
		if err == nil {
			o.Detail += fmt.Sprintf("; previous persona 0x%x", old)
		}
	case "clone-newns":
		o = cloneNewnsFS()
	case "hold":
		return hold(args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "probe: unknown child mode %q\n", mode)
		return 2
	}
	if err := json.NewEncoder(stdout).Encode(o); err != nil {
		fmt.Fprintf(stderr, "probe: child %s: write result: %v\n", mode, err)
		return 1
	}
	return 0
}

// cloneNewnsFS asks for CLONE_NEWNS together with CLONE_FS, a combination
// copy_process rejects with EINVAL before it looks at capabilities, while a
// seccomp filter on clone's namespace flags answers first with its own
// errno. No process or namespace is ever created.
func cloneNewnsFS() report.Op {
	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_FS | uintptr(unix.SIGCHLD))
	a0, a1 := flags, uintptr(0)
	if runtime.GOARCH == "s390x" {
		// s390x passes the new stack first and the flags second.
		a0, a1 = 0, flags
	}
	pid, _, e := unix.RawSyscall6(unix.SYS_CLONE, a0, a1, 0, 0, 0, 0)
	if e == 0 && pid == 0 {
		// Unreachable on any Linux since 2.4; if a kernel ever accepts the
		// combination, the copy must vanish before running Go code.
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	var err error
	if e != 0 {
		err = e
	}
	return seccompOutcome(err, "clone(CLONE_NEWNS|CLONE_FS) in a child", unix.EINVAL)
}

// hold announces readiness, then lives until stdin reaches EOF so that the
// parent controls its lifetime without needing to be allowed to signal it.
func hold(args []string, stdout, stderr io.Writer) int {
	for _, a := range args {
		if a == "nodump" {
			// Non-dumpable processes may only be traced with
			// CAP_SYS_PTRACE, even by a same-uid parent.
			if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
				fmt.Fprintf(stderr, "probe: hold: prctl(PR_SET_DUMPABLE, 0): %v\n", err)
				return 1
			}
		}
	}
	fmt.Fprintln(stdout, "ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// runChildOp re-executes the probe in mode and returns the helper's result.
// An error means the child never ran the helper (fork/exec or its
// SysProcAttr setup failed); it wraps the errno of that failure.
func runChildOp(c *config, mode string, attr *syscall.SysProcAttr) (report.Op, error) {
	ctx, cancel := context.WithTimeout(context.Background(), childTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.self, "-child", mode)
	cmd.SysProcAttr = attr
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		return report.Op{}, fmt.Errorf("start child %q: %w", mode, err)
	}
	if err := cmd.Wait(); err != nil {
		return report.Op{}, fmt.Errorf("child %q: %w (stderr: %s)", mode, err, strings.TrimSpace(errb.String()))
	}
	var o report.Op
	if err := json.Unmarshal(out.Bytes(), &o); err != nil {
		return report.Op{}, fmt.Errorf("decode child %q result %q: %w", mode, out.String(), err)
	}
	return o, nil
}

// heldChild is a re-executed probe in "hold" mode. Stdio are *os.File so
// that exec starts no copying goroutines and the child may be reaped with
// wait4 directly (needed once it is ptraced).
type heldChild struct {
	cmd    *exec.Cmd
	stdin  *os.File // write end; closing it ends the child
	stdout *os.File
	reaped bool
}

func startHeld(c *config, attr *syscall.SysProcAttr, args ...string) (*heldChild, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe for child stdin: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("pipe for child stdout: %w", err)
	}
	cmd := exec.Command(c.self, append([]string{"-child", "hold"}, args...)...)
	cmd.SysProcAttr = attr
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, os.Stderr
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("start held child: %w", err)
	}
	h := &heldChild{cmd: cmd, stdin: inW, stdout: outR}
	_ = outR.SetReadDeadline(time.Now().Add(childTimeout))
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		h.stop()
		return nil, fmt.Errorf("held child did not become ready (read %q): %w", line, err)
	}
	return h, nil
}

func (h *heldChild) pid() int { return h.cmd.Process.Pid }

// stop ends the child and reaps it.
func (h *heldChild) stop() {
	h.stdin.Close()
	h.stdout.Close()
	if h.reaped {
		return
	}
	_ = h.cmd.Wait()
	h.reaped = true
}

// killAndReap is for a child this process may be tracing: SIGKILL ends it
// from any ptrace stop, and wait4 is looped because a tracer also receives
// stop notifications, which exec.Cmd.Wait would mistake for the exit.
func (h *heldChild) killAndReap() error {
	defer func() {
		h.stdin.Close()
		h.stdout.Close()
	}()
	if err := unix.Kill(h.pid(), unix.SIGKILL); err != nil {
		return fmt.Errorf("kill traced child %d: %w", h.pid(), err)
	}
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(h.pid(), &ws, unix.WALL, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for traced child %d: %w", h.pid(), err)
		}
		if ws.Exited() || ws.Signaled() {
			h.reaped = true
			_ = h.cmd.Process.Release()
			return nil
		}
	}
}

// parseEUID reads the "euid=N" line printed by -report-euid.
func parseEUID(out string) (int, error) {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "euid="); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return 0, fmt.Errorf("parse %q: %w", l, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no euid= line in %q", out)
}
