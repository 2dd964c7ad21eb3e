package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Seccomp agent modes: what the agent answers a call the profile denies.
const (
	// AgentRecord lets the call run (SECCOMP_USER_NOTIF_FLAG_CONTINUE)
	// and records it: nothing breaks, the record says what would have.
	AgentRecord = "record"
	// AgentExplain answers with the errno the profile would have
	// returned, and records the call.
	AgentExplain = "explain"
	// AgentRecordAll notifies every syscall (write excepted, see
	// agentNeverNotified) and lets it run: a learning run whose record
	// lists everything the workload made, for a minimal profile. Every
	// call then costs a round trip through the agent.
	AgentRecordAll = "record-all"
)

// AgentContinues reports whether an agent mode lets the calls it is
// handed run.
func AgentContinues(mode string) bool { return mode == AgentRecord || mode == AgentRecordAll }

// AgentMetadataVersion marks listenerMetadata that secrun wrote.
const AgentMetadataVersion = 1

// Denial is what a profile does to a call: its action, and for
// SCMP_ACT_ERRNO the errno.
type Denial struct {
	Action specs.LinuxSeccompAction `json:"action"`
	Errno  uint                     `json:"errno,omitempty"`
}

func (d Denial) String() string {
	if d.Action == specs.ActErrno {
		return fmt.Sprintf("%s(%d)", d.Action, d.Errno)
	}
	return string(d.Action)
}

// AgentMetadata travels to the agent in linux.seccomp.listenerMetadata,
// which runc hands over with the notify fd in the container process
// state (runtime-spec config-linux.md, "listenerMetadata"). It says how
// to answer and what the profile would have done, so the agent needs no
// copy of the profile: every notified call the profile denies with
// Default unless Denials names it.
type AgentMetadata struct {
	Secrun  int    `json:"secrun"`
	Mode    string `json:"mode"`
	Policy  string `json:"policy,omitempty"`
	Profile string `json:"profile,omitempty"`
	Arch    string `json:"arch,omitempty"`
	// Capabilities is the container's bounding set, for which
	// RuntimeDefault was generated.
	Capabilities []string `json:"capabilities,omitempty"`
	// Default is what the profile does to a notified call that Denials
	// does not name.
	Default Denial `json:"default"`
	// Denials holds the notified syscalls the profile denies otherwise
	// than Default (clone3's ENOSYS in RuntimeDefault).
	Denials map[string]Denial `json:"denials,omitempty"`
	// Allowed (record-all) names the notified syscalls the profile
	// allows whatever their arguments, and Conditional the profile's
	// rules for those it allows by argument.
	Allowed     []string                        `json:"allowed,omitempty"`
	Conditional map[string][]specs.LinuxSyscall `json:"conditional,omitempty"`
}

// DenialFor is what the profile does to a call of name with args.
func (m *AgentMetadata) DenialFor(name string, args []uint64) Denial {
	if rules, ok := m.Conditional[name]; ok {
		d, _ := SeccompAnswer(&specs.LinuxSeccomp{DefaultAction: m.Default.Action, DefaultErrnoRet: &m.Default.Errno, Syscalls: rules}, name, args)
		return d
	}
	if slices.Contains(m.Allowed, name) {
		return Denial{Action: specs.ActAllow}
	}
	if d, ok := m.Denials[name]; ok {
		return d
	}
	return m.Default
}

// ParseAgentMetadata reads listenerMetadata that secrun wrote.
func ParseAgentMetadata(s string) (*AgentMetadata, error) {
	var m AgentMetadata
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("listenerMetadata is not secrun's: %w", err)
	}
	if m.Secrun != AgentMetadataVersion {
		return nil, fmt.Errorf("listenerMetadata has version %d, want %d", m.Secrun, AgentMetadataVersion)
	}
	switch m.Mode {
	case AgentRecord, AgentExplain, AgentRecordAll:
	default:
		return nil, fmt.Errorf("listenerMetadata mode %q is not record, explain or record-all", m.Mode)
	}
	return &m, nil
}

// agentNeverNotified are the syscalls that keep the profile's own action.
// runc's init writes the notify fd's number to its parent with write(2)
// after the filter is loaded and before any agent has the fd
// (libcontainer/init_linux.go syncParentSeccomp); a notified write would
// wait for an agent that can never answer, so runc refuses the rule
// (libcontainer/seccomp/seccomp_linux.go InitSeccomp). The parent's
// pidfd_getfd and sendmsg to the agent run outside the filter; read and
// close, which the init also makes, may be notified (runc says so there).
var agentNeverNotified = []string{"write"}

// NotifyPlan says what a rewrite did.
type NotifyPlan struct {
	// Notified counts the syscall names (whole or by argument) that now
	// go to the agent.
	Notified int
	// Kept names the denied syscalls left with the profile's own action,
	// each with the reason.
	Kept []string
}

// WithSeccompNotify rewrites the filter so that every call it denies is
// notified to the agent at socket instead: every name in names (every
// syscall of the architecture) that no rule allows becomes an explicit
// SCMP_ACT_NOTIFY rule, since runc refuses NOTIFY as the default action;
// a denying rule becomes a NOTIFY rule; and where the profile allows a
// syscall only for some arguments (clone without namespace flags, socket
// for some families, personality for some personas) the other arguments
// are notified through rules on the complement. What record mode lets
// run, explain mode would answer with the errno, so explain converts only
// SCMP_ACT_ERRNO denials (the agent cannot kill or trap through a
// response); record converts kills and traps too.
//
// The default action stays: a call whose name is not in names (a 32-bit
// compat syscall, one newer than the table) keeps the profile's answer,
// unseen.
func WithSeccompNotify(p *specs.LinuxSeccomp, names []string, meta AgentMetadata, socket string) (*specs.LinuxSeccomp, NotifyPlan, error) {
	var plan NotifyPlan
	if p == nil || !denies(p.DefaultAction) {
		return nil, plan, errors.New("the container has no seccomp filter that denies by default, so there is nothing for the agent to see")
	}
	if p.ListenerPath != "" || slices.ContainsFunc(p.Syscalls, func(r specs.LinuxSyscall) bool { return r.Action == specs.ActNotify }) {
		return nil, plan, errors.New("the bundle's filter already hands calls to a seccomp listener; it cannot be given to secrun's agent as well")
	}
	notifiable := func(a specs.LinuxSeccompAction) bool {
		if meta.Mode == AgentExplain {
			return a == specs.ActErrno
		}
		return denies(a)
	}
	meta.Secrun = AgentMetadataVersion
	meta.Default = denialOf(p.DefaultAction, p.DefaultErrnoRet)
	meta.Denials, meta.Allowed, meta.Conditional = nil, nil, nil
	if meta.Mode == AgentRecordAll {
		return notifyAll(p, names, meta, socket)
	}

	byName := map[string][]int{}
	for i, r := range p.Syscalls {
		for _, n := range r.Names {
			byName[n] = append(byName[n], i)
		}
	}
	all := slices.Clone(names)
	for n := range byName {
		all = append(all, n)
	}
	sort.Strings(all)
	all = slices.Compact(all)

	out := *p
	out.Syscalls = nil
	drop := map[int][]string{} // rule index -> names taken out of it
	var whole []string
	var partial []specs.LinuxSyscall
	for _, n := range all {
		idx := byName[n]
		if slices.Contains(agentNeverNotified, n) {
			if len(idx) == 0 || !allowsSome(p, idx) {
				plan.Kept = append(plan.Kept, n+": runc's init writes the notify fd to its parent with it")
			}
			continue
		}
		if len(idx) == 0 {
			if notifiable(p.DefaultAction) {
				whole = append(whole, n)
			}
			continue
		}
		var uncond []int
		for _, i := range idx {
			if len(p.Syscalls[i].Args) == 0 {
				uncond = append(uncond, i)
			}
		}
		if len(uncond) > 0 {
			// An unconditional rule decides the syscall whatever the
			// conditional ones say: libseccomp drops the argument checks
			// of a syscall that has one.
			d := denialOf(p.Syscalls[uncond[0]].Action, p.Syscalls[uncond[0]].ErrnoRet)
			same := true
			for _, i := range uncond[1:] {
				if denialOf(p.Syscalls[i].Action, p.Syscalls[i].ErrnoRet) != d {
					same = false
				}
			}
			switch {
			case !same:
				plan.Kept = append(plan.Kept, n+": unconditional rules with different actions")
			case !denies(d.Action):
			case !notifiable(d.Action):
				plan.Kept = append(plan.Kept, fmt.Sprintf("%s: %s cannot be answered by the agent in %s mode", n, d.Action, meta.Mode))
			default:
				for _, i := range uncond {
					drop[i] = append(drop[i], n)
				}
				whole = append(whole, n)
				if d != meta.Default {
					setDenial(&meta, n, d)
				}
			}
			continue
		}
		rules, why := complementRules(n, p, idx)
		switch {
		case why != "":
			plan.Kept = append(plan.Kept, n+": "+why)
		case len(rules) == 0:
		case !notifiable(p.DefaultAction):
			plan.Kept = append(plan.Kept, fmt.Sprintf("%s: its other arguments get %s, which the agent cannot answer in %s mode", n, p.DefaultAction, meta.Mode))
		default:
			partial = append(partial, rules...)
			plan.Notified++
		}
	}
	for i, r := range p.Syscalls {
		if gone := drop[i]; len(gone) > 0 {
			r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return slices.Contains(gone, n) })
			if len(r.Names) == 0 {
				continue
			}
		}
		out.Syscalls = append(out.Syscalls, r)
	}
	if len(whole) > 0 {
		out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{Names: whole, Action: specs.ActNotify})
	}
	out.Syscalls = append(out.Syscalls, partial...)
	plan.Notified += len(whole)
	if plan.Notified == 0 {
		return nil, plan, errors.New("the filter denies no syscall the agent could be told of")
	}
	return listen(&out, plan, meta, socket)
}

// notifyAll is record-all: every name of the architecture but write is
// notified whatever the profile says of it, and the metadata keeps what
// the profile would have done, so the record tells used from denied.
func notifyAll(p *specs.LinuxSeccomp, names []string, meta AgentMetadata, socket string) (*specs.LinuxSeccomp, NotifyPlan, error) {
	var plan NotifyPlan
	out := *p
	out.Syscalls = nil
	var notified []string
	for _, n := range names {
		if slices.Contains(agentNeverNotified, n) {
			continue
		}
		notified = append(notified, n)
		var rules []specs.LinuxSyscall
		for _, r := range p.Syscalls {
			if slices.Contains(r.Names, n) {
				rules = append(rules, specs.LinuxSyscall{Names: []string{n}, Action: r.Action, ErrnoRet: r.ErrnoRet, Args: r.Args})
			}
		}
		probe := &specs.LinuxSeccomp{DefaultAction: p.DefaultAction, DefaultErrnoRet: p.DefaultErrnoRet, Syscalls: rules}
		d, _ := SeccompAnswer(probe, n, nil)
		conditional := slices.ContainsFunc(rules, func(r specs.LinuxSyscall) bool { return len(r.Args) > 0 })
		hasUncond := slices.ContainsFunc(rules, func(r specs.LinuxSyscall) bool { return len(r.Args) == 0 })
		switch {
		case conditional && !hasUncond:
			if meta.Conditional == nil {
				meta.Conditional = map[string][]specs.LinuxSyscall{}
			}
			meta.Conditional[n] = rules
		case !d.Denies():
			meta.Allowed = append(meta.Allowed, n)
		case d != meta.Default:
			setDenial(&meta, n, d)
		}
	}
	// The profile's rules stay for the names outside the table (other
	// architectures' names, which runc skips on this one).
	for _, r := range p.Syscalls {
		r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return slices.Contains(notified, n) })
		if len(r.Names) > 0 {
			out.Syscalls = append(out.Syscalls, r)
		}
	}
	out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{Names: notified, Action: specs.ActNotify})
	plan.Notified = len(notified)
	return listen(&out, plan, meta, socket)
}

// listen points the filter at the agent's socket with the metadata.
func listen(out *specs.LinuxSeccomp, plan NotifyPlan, meta AgentMetadata, socket string) (*specs.LinuxSeccomp, NotifyPlan, error) {
	b, err := json.Marshal(meta)
	if err != nil {
		return nil, plan, err
	}
	out.ListenerPath = socket
	out.ListenerMetadata = string(b)
	return out, plan, nil
}

func setDenial(m *AgentMetadata, name string, d Denial) {
	if m.Denials == nil {
		m.Denials = map[string]Denial{}
	}
	m.Denials[name] = d
}

func denialOf(a specs.LinuxSeccompAction, errnoRet *uint) Denial {
	d := Denial{Action: a}
	if a == specs.ActErrno {
		// runc's default errno for SCMP_ACT_ERRNO without errnoRet is
		// EPERM (libcontainer/seccomp/seccomp_linux.go actErrno).
		d.Errno = 1
		if errnoRet != nil {
			d.Errno = *errnoRet
		}
	}
	return d
}

func allowsSome(p *specs.LinuxSeccomp, idx []int) bool {
	for _, i := range idx {
		if !denies(p.Syscalls[i].Action) {
			return true
		}
	}
	return false
}

// interval is a closed range of one argument's values.
type interval struct{ lo, hi uint64 }

// complementRules returns NOTIFY rules for the arguments of syscall n
// that none of its conditional allow rules (idx) lets through, or why it
// cannot: rules must allow, and after runc's compilation (conjunctions)
// each must be one condition on one shared argument index. A single
// masked-equal rule (clone's namespace flags) is complemented bit by bit,
// anything else as a union of ranges.
func complementRules(n string, p *specs.LinuxSeccomp, idx []int) ([]specs.LinuxSyscall, string) {
	var conds []specs.LinuxSeccompArg
	for _, i := range idx {
		r := p.Syscalls[i]
		if r.Action != specs.ActAllow {
			return nil, "allowing and denying rules by argument"
		}
		for _, c := range conjunctions(r.Args) {
			if len(c) != 1 {
				return nil, "rules with several argument conditions"
			}
			conds = append(conds, c[0])
		}
	}
	index := conds[0].Index
	for _, c := range conds {
		if c.Index != index {
			return nil, "rules on several arguments"
		}
	}
	rule := func(args ...specs.LinuxSeccompArg) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: []string{n}, Action: specs.ActNotify, Args: args}
	}
	if slices.ContainsFunc(conds, func(c specs.LinuxSeccompArg) bool { return c.Op == specs.OpMaskedEqual }) {
		if len(conds) != 1 {
			return nil, "a masked-equal rule next to others"
		}
		// Allowed: x&mask == v. Denied: some bit of mask differs from v.
		mask, v := conds[0].Value, conds[0].ValueTwo
		var out []specs.LinuxSyscall
		for m := mask; m != 0; m &= m - 1 {
			b := m & -m
			out = append(out, rule(specs.LinuxSeccompArg{Index: index, Op: specs.OpMaskedEqual, Value: b, ValueTwo: (v & b) ^ b}))
		}
		return out, ""
	}
	var allowed []interval
	for _, c := range conds {
		allowed = append(allowed, intervalsOf(c)...)
	}
	var out []specs.LinuxSyscall
	for _, iv := range complement(allowed) {
		for _, a := range argsFor(index, iv) {
			out = append(out, rule(a))
		}
	}
	return out, ""
}

func intervalsOf(c specs.LinuxSeccompArg) []interval {
	v := c.Value
	switch c.Op {
	case specs.OpEqualTo:
		return []interval{{v, v}}
	case specs.OpNotEqual:
		var out []interval
		if v > 0 {
			out = append(out, interval{0, v - 1})
		}
		if v < math.MaxUint64 {
			out = append(out, interval{v + 1, math.MaxUint64})
		}
		return out
	case specs.OpLessThan:
		if v == 0 {
			return nil
		}
		return []interval{{0, v - 1}}
	case specs.OpLessEqual:
		return []interval{{0, v}}
	case specs.OpGreaterThan:
		if v == math.MaxUint64 {
			return nil
		}
		return []interval{{v + 1, math.MaxUint64}}
	case specs.OpGreaterEqual:
		return []interval{{v, math.MaxUint64}}
	}
	return nil
}

// complement returns the values no interval holds, as sorted intervals.
func complement(in []interval) []interval {
	sort.Slice(in, func(i, j int) bool { return in[i].lo < in[j].lo })
	var out []interval
	next := uint64(0) // lowest value not yet covered
	done := false
	for _, iv := range in {
		if done {
			break
		}
		if iv.lo > next {
			out = append(out, interval{next, iv.lo - 1})
		}
		if iv.hi >= next {
			if iv.hi == math.MaxUint64 {
				done = true
			}
			next = iv.hi + 1
		}
	}
	if !done {
		out = append(out, interval{next, math.MaxUint64})
	}
	return out
}

// argsFor expresses one interval as conditions of which any may hold,
// one per rule: runc ANDs conditions on distinct arguments only, so a
// range with both ends open is cut into aligned blocks, each a
// masked-equal test on its high bits.
func argsFor(index uint, iv interval) []specs.LinuxSeccompArg {
	switch {
	case iv.lo == iv.hi:
		return []specs.LinuxSeccompArg{{Index: index, Op: specs.OpEqualTo, Value: iv.lo}}
	case iv.lo == 0:
		return []specs.LinuxSeccompArg{{Index: index, Op: specs.OpLessEqual, Value: iv.hi}}
	case iv.hi == math.MaxUint64:
		return []specs.LinuxSeccompArg{{Index: index, Op: specs.OpGreaterEqual, Value: iv.lo}}
	}
	var out []specs.LinuxSeccompArg
	lo := iv.lo
	for {
		// The largest aligned block that starts at lo and ends by hi.
		k := bits.TrailingZeros64(lo)
		for k > 0 && lo+(uint64(1)<<k)-1 > iv.hi {
			k--
		}
		size := uint64(1) << k
		out = append(out, specs.LinuxSeccompArg{Index: index, Op: specs.OpMaskedEqual, Value: ^(size - 1), ValueTwo: lo})
		if lo+size-1 >= iv.hi {
			return out
		}
		lo += size
	}
}

// String is the plan in one line, for the audit record.
func (p NotifyPlan) String() string {
	s := fmt.Sprintf("%d syscalls notified", p.Notified)
	if len(p.Kept) > 0 {
		s += "; kept as the profile has them: " + strings.Join(p.Kept, "; ")
	}
	return s
}
