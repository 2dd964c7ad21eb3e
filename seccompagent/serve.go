package seccompagent

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/spec"
)

// serveFd answers the notifications of one notify fd until every process
// under its filter has exited (the fd reports POLLHUP) or the agent
// stops.
func (a *Agent) serveFd(fd int, e *entry, meta *spec.AgentMetadata) {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(a.stopR.Fd()), Events: unix.POLLIN}}
	for {
		pfd[0].Revents, pfd[1].Revents = 0, 0
		if _, err := unix.Poll(pfd, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			a.logf("container %s: poll: %v", e.rec.Container, err)
			return
		}
		if pfd[1].Revents != 0 {
			return
		}
		if pfd[0].Revents&unix.POLLIN != 0 {
			if err := a.answer(fd, e, meta); err != nil {
				a.logf("container %s: %v", e.rec.Container, err)
			}
			continue
		}
		if pfd[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
			now := time.Now().UTC()
			e.mu.Lock()
			e.rec.Ended = &now
			e.dirty = true
			e.mu.Unlock()
			return
		}
	}
}

// answer receives one notification and answers it.
func (a *Agent) answer(fd int, e *entry, meta *spec.AgentMetadata) error {
	req, err := libseccomp.NotifReceive(libseccomp.ScmpFd(fd))
	if err != nil {
		// ENOENT: the caller was interrupted (a signal) between the
		// wake-up and the receive; there is nothing to answer.
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINTR) {
			return nil
		}
		return fmt.Errorf("receive a notification: %w", err)
	}
	name, err := req.Data.Syscall.GetNameByArch(req.Data.Arch)
	if err != nil || name == "" {
		name = "syscall#" + strconv.Itoa(int(req.Data.Syscall))
	}
	arch := archName(req.Data.Arch)
	d := meta.DenialFor(name, req.Data.Args)
	resp := &libseccomp.ScmpNotifResp{ID: req.ID}
	answer := "continued"
	switch {
	case spec.AgentContinues(meta.Mode):
		resp.Flags = libseccomp.NotifRespFlagContinue
	case d.Action == specs.ActErrno && d.Errno > 0:
		resp.Error = int32(d.Errno)
		answer = unix.ErrnoName(unix.Errno(d.Errno))
	default:
		// explain mode converts only errno denials; anything else here
		// is a listener whose metadata was not secrun's.
		resp.Error = int32(unix.EPERM)
		answer = "EPERM"
	}
	if answer == "" {
		answer = "errno " + strconv.Itoa(int(resp.Error))
	}
	// /proc/<pid>/comm is read before the answer and trusted only if
	// the notification is still valid afterwards: the pid could have
	// been reused in between (seccomp_unotify(2), "Design goals").
	comm := readComm(req.Pid)
	if comm != "" && libseccomp.NotifIDValid(libseccomp.ScmpFd(fd), req.ID) != nil {
		comm = ""
	}
	var key *uint
	var value uint64
	if i, ok := keyArg(arch, name); ok && int(i) < len(req.Data.Args) {
		key, value = &i, req.Data.Args[i]
	}
	if e.note(time.Now().UTC(), name, d, answer, summarize(arch, name, req.Data.Args), key, value, comm) {
		a.poke()
	}
	if err := libseccomp.NotifRespond(libseccomp.ScmpFd(fd), resp); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("answer %s: %w", name, err)
	}
	return nil
}

func readComm(pid uint32) string {
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// archName is the OCI name of a libseccomp architecture, as profiles
// and secrun's metadata spell it.
func archName(a libseccomp.ScmpArch) string {
	return ociArches[a]
}

var ociArches = map[libseccomp.ScmpArch]string{
	libseccomp.ArchX86: "SCMP_ARCH_X86", libseccomp.ArchAMD64: "SCMP_ARCH_X86_64", libseccomp.ArchX32: "SCMP_ARCH_X32",
	libseccomp.ArchARM: "SCMP_ARCH_ARM", libseccomp.ArchARM64: "SCMP_ARCH_AARCH64",
	libseccomp.ArchPPC64LE: "SCMP_ARCH_PPC64LE", libseccomp.ArchS390: "SCMP_ARCH_S390", libseccomp.ArchS390X: "SCMP_ARCH_S390X",
	libseccomp.ArchRISCV64: "SCMP_ARCH_RISCV64",
}
