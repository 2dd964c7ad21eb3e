package conformance

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/conformance/probe/report"
	"github.com/secrun/secrun/spec"
)

// The seccomp checks of the suite (checks.go has the types they share).

func (d *deriver) seccompChecks() error {
	m := d.m
	h := d.s.host
	mode := 0
	var brk *breaker
	if d.profile != nil {
		mode = 2
		brk = &breaker{key: "seccomp-off", desc: "the bundle has no seccomp filter", model: func(m *model) { m.Seccomp = seccompNone }}
	} else {
		brk = &breaker{key: "seccomp-default", desc: "the bundle has the RuntimeDefault filter", model: func(m *model) { m.Seccomp = seccompRuntimeDefault }}
	}
	kind := m.Seccomp
	if kind == seccompNone {
		kind = "no filter"
	} else if kind == seccompLocalhost {
		kind += " " + m.SeccompLocalhost
	}
	d.add(&check{
		Name:        "seccomp.mode",
		Setting:     SettingSeccomp,
		Description: "the kernel's seccomp mode matches the profile (" + kind + ")",
		Expected:    map[int]string{0: "0 (disabled)", 2: "2 (filter)"}[mode],
		eval: func(o *observation) verdict {
			rep, v := o.started()
			if v != nil {
				return *v
			}
			got := strconv.Itoa(rep.Seccomp)
			if rep.Seccomp != mode {
				return failf(got, "seccomp mode %d, expected %d", rep.Seccomp, mode)
			}
			return pass(got)
		},
		brk: brk,
	})
	ops := seccompOps
	switch {
	case m.SeccompAgent != "":
		ops = append(slices.Clone(ops), agentOps...)
	case d.c.sc.SeccompAgent != "" && d.c.sc.SeccompAgent != "off" && d.c.policy == nil:
		d.notApplicable("seccomp.agent.*: the Pod asks for the seccomp agent (%s), which only secrun's policy gives; %s runs the bundle without one", d.c.sc.SeccompAgent, filepath.Base(d.c.runtime))
	}
	var checked []string
	for _, op := range ops {
		switch op {
		case report.OpSeccompKexecLoad:
			if h.Kexec && !m.capEffective("CAP_SYS_BOOT") {
				d.notApplicable("%s: without CAP_SYS_BOOT the kernel's own EPERM hides the filter's", op)
				continue
			}
		case report.OpSeccompOpenByHandleAt:
			if !h.kernelAtLeast(6, 10) && !m.capEffective("CAP_DAC_READ_SEARCH") {
				d.notApplicable("%s: before Linux 6.10 the kernel's own EPERM hides the filter's", op)
				continue
			}
		case report.OpSeccompUnshareUserns:
			if h.MaxUserNS == 0 {
				d.notApplicable("%s: user.max_user_namespaces=0 refuses user namespaces whatever the filter", op)
				continue
			}
		case report.OpSeccompIOUringSetup:
			if v := h.ioUringDisabled(); v != "0" && v != "" {
				d.notApplicable("%s: kernel.io_uring_disabled=%s refuses io_uring whatever the filter", op, v)
				continue
			}
			if n, ok := d.s.kubeContainerd(); ok && n < 2 && m.Seccomp == seccompRuntimeDefault {
				// The node's runtime writes RuntimeDefault there, and
				// containerd allowed io_uring until 2.0 (containerd PR
				// 9320; moby PR 46762 for the profile the suite reads).
				d.notApplicable("%s: containerd %d.x's RuntimeDefault still allows io_uring (removed in 2.0), unlike the profile the suite derives", op, n)
				continue
			}
		}
		checked = append(checked, op)
		fv := d.opVerdict(op)
		plain := opFilterVerdict(d.profile, op)
		var b *breaker
		switch {
		case !plain.allowed && spec.AgentContinues(m.SeccompAgent):
			// The agent is what lets the call run.
			b = agentOffBreaker
		case !plain.allowed && m.SeccompAgent != "":
			// explain answers with the filter's errno: an agent that
			// lets the call run instead must fail the check.
			b = agentRecordBreaker
		case fv.allowed && op == report.OpSeccompCloneNewns:
			// Refusing clone outright would stop every process start;
			// only the namespace flag is refused.
			b = &breaker{key: "seccomp-deny:clone-newns", desc: "the bundle's filter also denies clone with CLONE_NEWNS", spec: denyCloneNewns}
		case fv.allowed:
			names := []string{}
			for _, c := range opSyscalls[op] {
				names = append(names, c.name)
			}
			b = &breaker{key: "seccomp-deny:" + strings.Join(names, "+"), desc: "the bundle's filter also denies " + strings.Join(names, ", "),
				spec: denySyscalls(names...)}
		default:
			b = &breaker{key: "seccomp-off", desc: "the bundle has no seccomp filter", model: func(m *model) { m.Seccomp = seccompNone }}
		}
		errnos := []string{fv.errno}
		desc := fmt.Sprintf("%s is %s by the filter (%s)", op, map[bool]string{true: "allowed", false: "denied"}[fv.allowed], fv.rule)
		d.add(&check{
			Name:        op,
			Setting:     SettingSeccomp,
			Description: desc,
			Expected:    expectText(fv.allowed, errnos),
			eval:        expectOp(op, fv.allowed, errnos),
			brk:         b,
		})
	}
	d.add(&check{
		Name:        report.OpSeccompNormal,
		Setting:     SettingSeccomp,
		Description: "everyday syscalls (getpid, open/read, pipe, stat) keep working under the filter",
		Expected:    "allowed",
		eval:        expectOp(report.OpSeccompNormal, true, nil),
		brk:         &breaker{key: "seccomp-deny:pipe2+pipe", desc: "the bundle's filter denies pipe2", spec: denySyscalls("pipe2", "pipe")},
	})
	if m.SeccompAgent != "" {
		d.agentChecks(checked)
	}
	return nil
}

// denySyscalls makes the bundle's filter (or a new allow-by-default one)
// refuse the named syscalls with EPERM. Other rules for the same names
// go, so that no allow rule competes with the denial.
func denySyscalls(names ...string) func(s *specs.Spec) error {
	return func(s *specs.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Seccomp == nil {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
		}
		p := s.Linux.Seccomp
		var kept []specs.LinuxSyscall
		for _, r := range p.Syscalls {
			r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return slices.Contains(names, n) })
			if len(r.Names) > 0 {
				kept = append(kept, r)
			}
		}
		eperm := uint(1)
		p.Syscalls = append(kept, specs.LinuxSyscall{Names: slices.Clone(names), Action: specs.ActErrno, ErrnoRet: &eperm})
		return nil
	}
}

// denyCloneNewns makes clone fail with EPERM when CLONE_NEWNS is set and
// work otherwise, replacing the filter's own clone rules.
func denyCloneNewns(s *specs.Spec) error {
	if err := denySyscalls("clone")(s); err != nil {
		return err
	}
	p := s.Linux.Seccomp
	p.Syscalls = p.Syscalls[:len(p.Syscalls)-1]
	eperm := uint(1)
	newns := uint64(unix.CLONE_NEWNS)
	p.Syscalls = append(p.Syscalls,
		specs.LinuxSyscall{Names: []string{"clone"}, Action: specs.ActErrno, ErrnoRet: &eperm,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: newns, ValueTwo: newns, Op: specs.OpMaskedEqual}}},
		specs.LinuxSyscall{Names: []string{"clone"}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: newns, ValueTwo: 0, Op: specs.OpMaskedEqual}}},
	)
	return nil
}
