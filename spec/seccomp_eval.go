package spec

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// SeccompAnswer is what filter p does to a call of name with args, as
// libseccomp compiles runc's rules: an unconditional rule decides its
// syscall (libseccomp drops a syscall's argument checks once it has one);
// otherwise the conditional rules that match (any conjunction of a rule,
// see conjunctions) decide, and the default action the rest. ambiguous
// reports matching rules with different actions, whose order libseccomp
// decides; the answer is then the first of them.
func SeccompAnswer(p *specs.LinuxSeccomp, name string, args []uint64) (d Denial, ambiguous bool) {
	if p == nil {
		return Denial{Action: specs.ActAllow}, false
	}
	var uncond, cond []specs.LinuxSyscall
	for _, r := range p.Syscalls {
		if !slices.Contains(r.Names, name) {
			continue
		}
		if len(r.Args) == 0 {
			uncond = append(uncond, r)
			continue
		}
		for _, c := range conjunctions(r.Args) {
			if SeccompArgsHold(c, args) {
				cond = append(cond, r)
				break
			}
		}
	}
	pick := uncond
	if len(pick) == 0 {
		pick = cond
	}
	if len(pick) == 0 {
		return denialOf(p.DefaultAction, p.DefaultErrnoRet), false
	}
	d = denialOf(pick[0].Action, pick[0].ErrnoRet)
	for _, r := range pick[1:] {
		if denialOf(r.Action, r.ErrnoRet) != d {
			ambiguous = true
		}
	}
	return d, ambiguous
}

// Denies reports whether the call does not run: an errno, a kill or a
// trap.
func (d Denial) Denies() bool { return denies(d.Action) }

// SeccompArgsHold reports whether every condition holds for args (a
// missing argument reads as 0).
func SeccompArgsHold(conds []specs.LinuxSeccompArg, args []uint64) bool {
	for _, a := range conds {
		var v uint64
		if int(a.Index) < len(args) {
			v = args[a.Index]
		}
		var ok bool
		switch a.Op {
		case specs.OpNotEqual:
			ok = v != a.Value
		case specs.OpLessThan:
			ok = v < a.Value
		case specs.OpLessEqual:
			ok = v <= a.Value
		case specs.OpEqualTo:
			ok = v == a.Value
		case specs.OpGreaterEqual:
			ok = v >= a.Value
		case specs.OpGreaterThan:
			ok = v > a.Value
		case specs.OpMaskedEqual:
			ok = v&a.Value == a.ValueTwo
		}
		if !ok {
			return false
		}
	}
	return true
}
