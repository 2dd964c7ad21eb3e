package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

// Decision is what a policy makes of a bundle or an exec process.
type Decision string

const (
	// Allowed: the document complies as it is.
	Allowed Decision = "allowed"
	// Hardened: the document was rewritten until it complied.
	Hardened Decision = "hardened"
	// Refused: the container or exec must not start.
	Refused Decision = "refused"
	// Audited: audit mode found what enforce or harden would act on.
	Audited Decision = "audited"
)

// Outcome is what a policy makes of one bundle or exec process.
type Outcome struct {
	Decision Decision
	// Changes lists what was rewritten (harden, intent).
	Changes []Change
	// Findings are the violations: the refusing ones when refused, all
	// of them when audited.
	Findings []Finding
	Warnings []string
	// Err is a refusal that is not a rule finding (a malformed annotation,
	// a loosening intent, a fix that failed).
	Err error
}

// Change is one rewrite: the setting it serves and what was done.
type Change struct {
	// Rule is the setting, or "intent" for what the Pod's annotation
	// asked, or "ambientCapabilities" for the policy's ambient opt-in.
	Rule    Rule   `json:"rule"`
	Message string `json:"message"`
}

func (c Change) String() string { return string(c.Rule) + ": " + c.Message }

// RuleIntent marks the changes the Pod's annotation asked for, which
// serve no single setting.
const RuleIntent Rule = "intent"

// Refused reports whether the container must not start.
func (o *Outcome) Refused() bool { return o.Decision == Refused }

// subject is what a decision works on, a bundle or an exec process, so
// that one state machine serves both.
type subject struct {
	// check returns the findings of the working document.
	check func(env *Env) []Finding
	// harden rewrites the working document and returns what no rewrite
	// fixed.
	harden func(env *Env) (left []Finding, changes []Change, err error)
	// original returns the findings of the document as read, for audit,
	// whose working document is a copy.
	original func(env *Env) []Finding
	// finish runs once the document complies (ambient capabilities, the
	// default AppArmor profile loaded).
	finish func(env *Env, mode Mode) (changes []Change, err error)
}

// decide is the mode state machine: enforce refuses on any finding,
// harden rewrites and refuses what is left, audit hardens a copy and
// reports.
func decide(env *Env, mode Mode, o *Outcome, d subject) *Outcome {
	switch mode {
	case Enforce:
		if f := Refusing(d.check(env)); len(f) > 0 {
			o.Decision, o.Findings = Refused, f
			return o
		}
	case Harden, Audit:
		left, changes, err := d.harden(env)
		o.Changes = append(o.Changes, changes...)
		if err != nil {
			o.Decision, o.Err = Refused, err
		} else if left = Refusing(left); len(left) > 0 {
			o.Decision, o.Findings = Refused, left
		}
		if mode == Audit {
			if o.Decision == Refused || len(o.Changes) > 0 {
				o.Decision, o.Findings = Audited, d.original(env)
				return o
			}
			o.Decision = ""
		}
		if o.Decision != "" {
			return o
		}
	}
	changes, err := d.finish(env, mode)
	if err != nil {
		o.Decision, o.Err = Refused, err
		return o
	}
	o.Changes = append(o.Changes, changes...)
	o.Decision = Allowed
	if len(o.Changes) > 0 {
		o.Decision = Hardened
	}
	return o
}

// Decide applies the Pod's intent and the policy to s in place, by mode.
// The caller writes s back only when the outcome is not refused and the
// mode is not audit (Decide leaves s unchanged in audit mode).
//
// A verified Pod sandbox is hardened even in enforce mode (the user
// cannot change it), and refused only for what no rewrite fixes.
func (p *Policy) Decide(env *Env, s *specs.Spec) *Outcome {
	o := &Outcome{}
	var warns []string
	env = withWarnings(env, &warns)
	defer func() { o.Warnings = dedupe(warns) }()

	target := s
	if p.Mode == Audit {
		// Audit works on a copy: it reports, it never writes.
		target = cloneSpec(s)
	}
	sandbox := p.IsSandbox(s)
	if ClaimsSandbox(s) && !sandbox {
		env.warn(fmt.Sprintf("the bundle calls itself a Pod sandbox, but its process is %q, not the pause command; checked as a container", s.Process.Args))
	}
	var intent *spec.SecurityContext
	var err error
	if !sandbox {
		intent, err = IntentFromAnnotations(target)
	}
	if err == nil {
		var ch []Change
		ch, err = ApplyIntent(env, target, intent)
		o.Changes = append(o.Changes, ch...)
	}
	if err != nil {
		var ie *IntentError
		if !errors.As(err, &ie) {
			err = &IntentError{Err: err}
		}
		o.Decision, o.Err = Refused, err
		if p.Mode == Audit {
			o.Decision = Audited
		}
		return o
	}
	mode := p.Mode
	if sandbox {
		// The sandbox is the runtime's, not the Pod author's: what a
		// rewrite can fix is fixed; what it cannot is still refused.
		env.sandbox = true
		if mode == Enforce {
			mode = Harden
		}
	}
	return decide(env, mode, o, subject{
		check:    func(env *Env) []Finding { return p.Check(env, target) },
		harden:   func(env *Env) ([]Finding, []Change, error) { return p.Harden(env, target) },
		original: func(env *Env) []Finding { return p.Check(env, s) },
		finish: func(env *Env, mode Mode) ([]Change, error) {
			var changes []Change
			if mode == Harden && p.AmbientCapabilities {
				ch, err := grantAmbient(target)
				if err != nil {
					return nil, err
				}
				if ch != "" {
					changes = append(changes, Change{Rule: RuleAmbient, Message: ch})
				}
			}
			if err := ensureDefaultAppArmor(env, target.Process); err != nil {
				return nil, err
			}
			agent, err := p.applySeccompAgent(env, mode, target)
			return append(changes, agent...), err
		},
	})
}

// ensureDefaultAppArmor loads secrun's default profile when the process
// names it but the kernel no longer has it: a bundle hardened before a
// reboot, or a profile an admin unloaded, would otherwise fail in runc with
// an obscure "write /proc/thread-self/attr/exec" error.
func ensureDefaultAppArmor(env *Env, p *specs.Process) error {
	if p == nil || p.ApparmorProfile != spec.DefaultAppArmorProfile || env == nil || env.AppArmor == nil || !env.AppArmor.Enabled() {
		return nil
	}
	if err := env.AppArmor.LoadDefault(spec.DefaultAppArmorProfile); err != nil {
		return fmt.Errorf("appArmorProfile: the process names %s, which is not loaded and could not be: %w", spec.DefaultAppArmorProfile, err)
	}
	return nil
}

// grantAmbient raises a non-root process's permitted capabilities into its
// inheritable and ambient sets, so they are effective after execve. Root
// needs no help, and a process with no capabilities has nothing to raise.
func grantAmbient(s *specs.Spec) (string, error) {
	if s.Process == nil || s.Process.User.UID == 0 || s.Process.Capabilities == nil {
		return "", nil
	}
	c := s.Process.Capabilities
	before := len(c.Ambient)
	if err := spec.WithAmbientCapabilities(c.Permitted)(s); err != nil {
		return "", err
	}
	if len(c.Ambient) == before {
		return "", nil
	}
	return fmt.Sprintf("raised %s for uid %d", strings.Join(trimCap(c.Ambient), ", "), s.Process.User.UID), nil
}

// DecideProcess is Decide for the process document of `runc exec
// --process`: an exec must not get what the container's policy forbids.
func (p *Policy) DecideProcess(env *Env, proc *specs.Process) *Outcome {
	o := &Outcome{}
	var warns []string
	env = withWarnings(env, &warns)
	defer func() { o.Warnings = dedupe(warns) }()
	target := proc
	if p.Mode == Audit {
		target = cloneSpec(&specs.Spec{Process: proc}).Process
	}
	return decide(env, p.Mode, o, subject{
		check:    func(env *Env) []Finding { return p.CheckProcess(env, target) },
		harden:   func(env *Env) ([]Finding, []Change, error) { return p.HardenProcess(env, target) },
		original: func(env *Env) []Finding { return p.CheckProcess(env, proc) },
		finish: func(env *Env, mode Mode) ([]Change, error) {
			if mode == Audit {
				return nil, nil
			}
			return nil, ensureDefaultAppArmor(env, proc)
		},
	})
}

// withWarnings returns a copy of env whose warnings also land in *dst.
func withWarnings(env *Env, dst *[]string) *Env {
	e := Env{}
	if env != nil {
		e = *env
	}
	prev := e.Warn
	e.Warn = func(msg string) {
		*dst = append(*dst, msg)
		if prev != nil {
			prev(msg)
		}
	}
	return &e
}

func dedupe(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Error renders a refusal's cause for logs.
func (o *Outcome) Error() string {
	if o.Err != nil {
		return o.Err.Error()
	}
	if len(o.Findings) > 0 {
		return o.Findings[0].String()
	}
	return ""
}

// String summarises an outcome in one line.
func (o *Outcome) String() string {
	return fmt.Sprintf("%s (%d changes, %d findings)", o.Decision, len(o.Changes), len(o.Findings))
}
