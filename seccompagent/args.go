package seccompagent

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// keyArgs are the syscalls whose decisive argument RuntimeDefault's
// rules look at (or that secrun's generated profile may allow for exact
// values): the index of that argument. clone's flags are its first
// argument except on s390x, where the kernel swaps the first two
// (moby/profiles seccomp default.go has the same exception).
func keyArg(arch, name string) (uint, bool) {
	switch name {
	case "clone":
		if arch == "SCMP_ARCH_S390X" || arch == "SCMP_ARCH_S390" {
			return 1, true
		}
		return 0, true
	case "unshare", "socket", "personality":
		return 0, true
	}
	return 0, false
}

var cloneFlags = []struct {
	bit  uint64
	name string
}{
	{unix.CLONE_VM, "CLONE_VM"}, {unix.CLONE_FS, "CLONE_FS"}, {unix.CLONE_FILES, "CLONE_FILES"},
	{unix.CLONE_SIGHAND, "CLONE_SIGHAND"}, {unix.CLONE_PIDFD, "CLONE_PIDFD"}, {unix.CLONE_PTRACE, "CLONE_PTRACE"},
	{unix.CLONE_VFORK, "CLONE_VFORK"}, {unix.CLONE_PARENT, "CLONE_PARENT"}, {unix.CLONE_THREAD, "CLONE_THREAD"},
	{unix.CLONE_NEWNS, "CLONE_NEWNS"}, {unix.CLONE_SYSVSEM, "CLONE_SYSVSEM"}, {unix.CLONE_SETTLS, "CLONE_SETTLS"},
	{unix.CLONE_PARENT_SETTID, "CLONE_PARENT_SETTID"}, {unix.CLONE_CHILD_CLEARTID, "CLONE_CHILD_CLEARTID"},
	{unix.CLONE_UNTRACED, "CLONE_UNTRACED"}, {unix.CLONE_CHILD_SETTID, "CLONE_CHILD_SETTID"},
	{unix.CLONE_NEWCGROUP, "CLONE_NEWCGROUP"}, {unix.CLONE_NEWUTS, "CLONE_NEWUTS"}, {unix.CLONE_NEWIPC, "CLONE_NEWIPC"},
	{unix.CLONE_NEWUSER, "CLONE_NEWUSER"}, {unix.CLONE_NEWPID, "CLONE_NEWPID"}, {unix.CLONE_NEWNET, "CLONE_NEWNET"},
	{unix.CLONE_IO, "CLONE_IO"}, {unix.CLONE_NEWTIME, "CLONE_NEWTIME"},
}

var personaFlags = []struct {
	bit  uint64
	name string
}{
	{0x0020000, "UNAME26"}, {0x0040000, "ADDR_NO_RANDOMIZE"}, {0x0080000, "FDPIC_FUNCPTRS"},
	{0x0100000, "MMAP_PAGE_ZERO"}, {0x0200000, "ADDR_COMPAT_LAYOUT"}, {0x0400000, "READ_IMPLIES_EXEC"},
	{0x0800000, "ADDR_LIMIT_32BIT"}, {0x1000000, "SHORT_INODE"}, {0x2000000, "WHOLE_SECONDS"},
	{0x4000000, "STICKY_TIMEOUTS"}, {0x8000000, "ADDR_LIMIT_3GB"},
}

var families = map[uint64]string{
	unix.AF_UNIX: "AF_UNIX", unix.AF_INET: "AF_INET", unix.AF_INET6: "AF_INET6", unix.AF_NETLINK: "AF_NETLINK",
	unix.AF_PACKET: "AF_PACKET", unix.AF_VSOCK: "AF_VSOCK", unix.AF_ALG: "AF_ALG", unix.AF_KEY: "AF_KEY",
	unix.AF_BLUETOOTH: "AF_BLUETOOTH", unix.AF_XDP: "AF_XDP", unix.AF_CAN: "AF_CAN", unix.AF_TIPC: "AF_TIPC",
	unix.AF_RDS: "AF_RDS", unix.AF_SMC: "AF_SMC", unix.AF_MCTP: "AF_MCTP", unix.AF_QIPCRTR: "AF_QIPCRTR",
}

func flagNames(v uint64, table []struct {
	bit  uint64
	name string
}) string {
	var out []string
	for _, f := range table {
		if v&f.bit != 0 {
			out = append(out, f.name)
			v &^= f.bit
		}
	}
	if v != 0 || len(out) == 0 {
		out = append(out, fmt.Sprintf("%#x", v))
	}
	return strings.Join(out, "|")
}

// summarize is a short, stable description of the arguments that say
// what a call wanted, for the syscalls where they matter; "" elsewhere.
// Only register arguments are read: the agent never reads the caller's
// memory.
func summarize(arch, name string, args []uint64) string {
	arg := func(i int) uint64 {
		if i < len(args) {
			return args[i]
		}
		return 0
	}
	switch name {
	case "clone":
		i, _ := keyArg(arch, name)
		// The low byte is the exit signal, not a flag.
		return "flags=" + flagNames(arg(int(i))&^0xff, cloneFlags)
	case "unshare":
		return "flags=" + flagNames(arg(0), cloneFlags)
	case "setns":
		return "nstype=" + flagNames(arg(1), cloneFlags)
	case "clone3":
		return "flags in struct clone_args (not visible to seccomp)"
	case "socket":
		fam := families[arg(0)]
		if fam == "" {
			fam = fmt.Sprintf("family %d", arg(0))
		}
		return fmt.Sprintf("family=%s type=%d protocol=%d", fam, arg(1)&0xf, arg(2))
	case "personality":
		p := arg(0)
		if p == 0xffffffff {
			return "persona=query (0xffffffff)"
		}
		dom := fmt.Sprintf("domain %#x", p&0xff)
		switch p & 0xff {
		case 0:
			dom = "PER_LINUX"
		case 8:
			dom = "PER_LINUX32"
		}
		if p&^0xff == 0 {
			return "persona=" + dom
		}
		return "persona=" + dom + "+" + flagNames(p&^0xff, personaFlags)
	case "ptrace":
		return fmt.Sprintf("request=%d", arg(0))
	case "keyctl":
		return fmt.Sprintf("operation=%d", arg(0))
	case "ioctl":
		return fmt.Sprintf("request=%#x", arg(1))
	case "prctl":
		return fmt.Sprintf("option=%d", arg(0))
	}
	return ""
}
