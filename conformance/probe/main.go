//go:build linux

// Command probe is the whole rootfs of a secrun conformance test container.
// It prints one JSON document (see package report) describing its own
// security state and the outcome of each operation it attempted, so the
// suite can prove the kernel enforces a setting instead of trusting what the
// runtime claims to have configured.
//
// Usage:
//
//	/probe [flags] [op ...]
//
// "all" selects every op, "<prefix>.*" (e.g. "seccomp.*") a group, and any
// other argument an op by exact name; with no op only the state is reported.
// -list prints the op names.
//
// Every op is built to leave the machine unchanged even when run as real
// root on a host: values are set to what they already are, invalid
// arguments are chosen so that a permitted call fails validation after its
// permission check, files are only created under a private directory inside
// -scratch, and writable kernel interfaces are opened for writing but never
// written.
//
// The probe re-executes itself for operations that would alter the
// credentials or personality of its own (multithreaded) process; see
// child.go. Those internal modes (-child, -report-euid) are not part of the
// report interface.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/secrun/secrun/conformance/probe/report"
)

// Arbitrary ids that a container image never uses, so a successful change to
// them can only come from the privilege being probed.
const (
	foreignUID = 1234
	foreignGID = 1234
)

type config struct {
	scratch   string
	sysctls   []string
	masked    []string
	readonly  []string
	denyWrite string
	suidPath  string
	foreign   string

	self string // path used to re-execute the probe

	workDir    string // private directory under scratch, created lazily
	workDirErr error
}

// op records one or more entries into ops; most record exactly one under
// their own name.
type op struct {
	name string
	run  func(c *config, ops map[string]report.Op)
}

// one adapts an op that records a single entry under its own name.
func one(name string, f func(c *config) report.Op) op {
	return op{name: name, run: func(c *config, ops map[string]report.Op) { ops[name] = f(c) }}
}

// allOps lists every op in the order "all" runs them. No op depends on
// another's side effects, so any subset may be selected.
func allOps() []op {
	return []op{
		one(report.OpCapChown, opChown),
		one(report.OpCapDacOverride, opDacOverride),
		one(report.OpCapDacReadSearch, opDacReadSearch),
		one(report.OpCapFowner, opFowner),
		one(report.OpCapFsetid, opFsetid),
		one(report.OpCapKill, opKill),
		one(report.OpCapSetgid, childCredOp("setgid", "CAP_SETGID")),
		one(report.OpCapSetuid, childCredOp("setuid", "CAP_SETUID")),
		one(report.OpCapSetpcap, childCredOp("capbset-drop", "CAP_SETPCAP")),
		one(report.OpCapNetBindService, opNetBindService),
		one(report.OpCapNetRaw, opNetRaw),
		one(report.OpCapNetAdmin, opNetAdmin),
		one(report.OpCapSysChroot, opSysChroot),
		one(report.OpCapMknod, opMknod),
		one(report.OpCapSysAdminMount, opMount),
		one(report.OpCapSysAdminHostname, opSethostname),
		one(report.OpCapSysTime, opSysTime),
		one(report.OpCapSysPtrace, opSysPtrace),
		one(report.OpCapSysModule, opSysModule),
		one(report.OpCapAuditWrite, opAuditWrite),
		one(report.OpCapSetfcap, opSetfcap),

		one(report.OpFSRootfsWrite, opRootfsWrite),
		one(report.OpFSScratchWrite, opScratchWrite),

		one(report.OpNNPSetuid, opNNPSetuid),

		one(report.OpSeccompKeyctl, opSeccompKeyctl),
		one(report.OpSeccompAddKey, opSeccompAddKey),
		one(report.OpSeccompUnshareUserns, opSeccompUnshareUserns),
		one(report.OpSeccompPtrace, opSeccompPtrace),
		one(report.OpSeccompBPF, opSeccompBPF),
		one(report.OpSeccompPerfEventOpen, opSeccompPerfEventOpen),
		one(report.OpSeccompKexecLoad, opSeccompKexecLoad),
		one(report.OpSeccompOpenByHandleAt, opSeccompOpenByHandleAt),
		one(report.OpSeccompPersonality, opSeccompPersonality),
		one(report.OpSeccompMount, opSeccompMount),
		one(report.OpSeccompCloneNewns, opSeccompCloneNewns),
		one(report.OpSeccompClone3, opSeccompClone3),
		one(report.OpSeccompIOUringSetup, opSeccompIOUringSetup),
		one(report.OpSeccompNormal, opSeccompNormal),

		{name: report.OpProcMasked, run: opProcMasked},
		{name: report.OpProcReadonly, run: opProcReadonly},

		one(report.OpPrivDevices, opPrivDevices),
		one(report.OpPrivSysRW, opPrivSysRW),

		one(report.OpAppArmorLabel, opAppArmorLabel),
		one(report.OpAppArmorDenied, opAppArmorDenied),
	}
}

var defaultMasked = []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"}

var defaultReadonly = []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("probe", flag.ContinueOnError)
	flags.SetOutput(stderr)
	c := &config{}
	flags.StringVar(&c.scratch, "scratch", "/tmp", "writable `dir` (ideally a tmpfs) for files the ops create")
	sysctls := flags.String("sysctl", "", "comma-separated sysctl `names` to read (dotted or slash form)")
	masked := flags.String("masked", strings.Join(defaultMasked, ","), "comma-separated `paths` that proc.masked expects to be masked")
	readonly := flags.String("readonly", strings.Join(defaultReadonly, ","), "comma-separated `paths` that proc.readonly expects to be read-only")
	flags.StringVar(&c.denyWrite, "deny-write", "", "`path` apparmor.denied tries to open for writing")
	flags.StringVar(&c.suidPath, "suid", "/probe-suid", "`path` of the setuid-root probe copy used by nnp.setuid")
	flags.StringVar(&c.foreign, "foreign", "", "`path` of a file owned by another uid, for cap.fowner")
	list := flags.Bool("list", false, "print the op names and exit")
	reportEUID := flags.Bool("report-euid", false, "internal: print \"euid=N\" and exit (run via the setuid copy)")
	setuidChild := flags.Bool("setuid-child", false, "alias of -report-euid")
	child := flags.String("child", "", "internal: run one helper `mode` in a fresh process")
	if err := flags.Parse(args); err != nil {
		return 2
	}

	// The nnp.setuid runner plants a setuid-root copy of this binary; it must
	// not double as a root helper for an unprivileged container user, so a
	// setuid invocation may only report its euid.
	if os.Geteuid() != os.Getuid() && !*reportEUID && !*setuidChild {
		fmt.Fprintln(stderr, "probe: running setuid: only -report-euid is allowed")
		return 2
	}

	switch {
	case *reportEUID || *setuidChild:
		fmt.Fprintf(stdout, "euid=%d\n", os.Geteuid())
		return 0
	case *child != "":
		return runChild(*child, flags.Args(), stdout, stderr)
	case *list:
		for _, o := range allOps() {
			fmt.Fprintln(stdout, o.name)
		}
		return 0
	}

	c.sysctls = splitList(*sysctls)
	c.masked = splitList(*masked)
	c.readonly = splitList(*readonly)
	c.self = selfPath()

	selected, err := selectOps(flags.Args())
	if err != nil {
		fmt.Fprintf(stderr, "probe: %v\n", err)
		return 2
	}

	rep := collectState(c)
	for _, o := range selected {
		o.run(c, rep.Ops)
	}
	c.cleanup()

	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		fmt.Fprintf(stderr, "probe: write report: %v\n", err)
		return 1
	}
	return 0
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// selfPath prefers /proc/self/exe so that re-execution works whatever argv[0]
// was, falling back to argv[0] when /proc is not mounted.
func selfPath() string {
	if p, err := os.Executable(); err == nil {
		return p
	}
	if filepath.IsAbs(os.Args[0]) {
		return os.Args[0]
	}
	return "/probe"
}

func selectOps(args []string) ([]op, error) {
	all := allOps()
	chosen := map[string]bool{}
	for _, a := range args {
		matched := false
		for _, o := range all {
			if a == "all" || a == o.name || (strings.HasSuffix(a, ".*") && strings.HasPrefix(o.name, strings.TrimSuffix(a, "*"))) {
				chosen[o.name] = true
				matched = true
			}
		}
		if !matched {
			return nil, fmt.Errorf("unknown op %q (see -list)", a)
		}
	}
	var out []op
	for _, o := range all {
		if chosen[o.name] {
			out = append(out, o)
		}
	}
	return out, nil
}

// work returns the probe's private directory under -scratch. Keeping every
// created file inside a directory the probe owns (mode 0700) means cleanup
// never depends on the sticky bit or on capabilities of the scratch mount.
func (c *config) work() (string, error) {
	if c.workDir == "" && c.workDirErr == nil {
		d, err := os.MkdirTemp(c.scratch, ".secrun-probe-")
		if err != nil {
			c.workDirErr = fmt.Errorf("create private dir in scratch %s: %w", c.scratch, err)
		} else {
			c.workDir = d
		}
	}
	return c.workDir, c.workDirErr
}

// workFile creates an empty file with the given mode in the private dir.
func (c *config) workFile(name string, mode os.FileMode) (string, error) {
	d, err := c.work()
	if err != nil {
		return "", err
	}
	p := filepath.Join(d, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("close %s: %w", p, err)
	}
	// Chmod rather than rely on the create mode, which the umask filters.
	if err := os.Chmod(p, mode); err != nil {
		return "", fmt.Errorf("chmod %s: %w", p, err)
	}
	return p, nil
}

func (c *config) cleanup() {
	if c.workDir != "" {
		// Best effort: a file chowned away or a leftover mount must not
		// turn a finished report into a failure.
		_ = os.RemoveAll(c.workDir)
	}
}
