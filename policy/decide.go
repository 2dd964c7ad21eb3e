package policy

import (
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

// Outcome is what a policy makes of one bundle or exec process.
type Outcome struct {
	// Decision is allowed, hardened, refused or audited.
	Decision string
	// Changes lists what was rewritten (harden, intent).
	Changes []string
	// Findings are the violations: the refusing ones when refused, all
	// of them when audited.
	Findings []Finding
	Warnings []string
	// Err is a refusal that is not a rule finding (a malformed annotation,
	// a loosening intent, a fix that failed).
	Err error
}

// Refused reports whether the container must not start.
func (o *Outcome) Refused() bool { return o.Decision == "refused" }

// Decide applies the Pod's intent and the policy to s in place, by mode.
// The caller writes s back only when the outcome is not refused and the
// mode is not audit (Decide leaves s unchanged in audit mode).
//
// A sandbox (pause) container is hardened and never refused: the user
// cannot change it, and the Pod's own containers carry the decision.
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
		var ch []string
		ch, err = ApplyIntent(env, target, intent)
		o.Changes = append(o.Changes, ch...)
	}
	if err != nil {
		o.Decision, o.Err = "refused", err
		if p.Mode == Audit {
			o.Decision = "audited"
		}
		return o
	}

	mode := p.Mode
	if sandbox && mode == Enforce {
		// The sandbox is the runtime's, not the Pod author's: what a
		// rewrite can fix is fixed; what it cannot is still refused.
		mode = Harden
		env.sandbox = true
	}
	if sandbox {
		env.sandbox = true
	}
	switch mode {
	case Enforce:
		if f := Refusing(p.Check(env, target)); len(f) > 0 {
			o.Decision, o.Findings = "refused", f
			return o
		}
	case Harden, Audit:
		left, changes, err := p.Harden(env, target)
		if err != nil {
			o.Decision, o.Err = "refused", err
		}
		o.Changes = append(o.Changes, changes...)
		if left = Refusing(left); len(left) > 0 {
			o.Decision, o.Findings = "refused", left
		}
		if mode == Audit {
			if o.Decision == "refused" || len(o.Changes) > 0 {
				o.Decision = "audited"
			} else {
				o.Decision = ""
			}
			o.Findings = p.Check(env, s)
		}
		if o.Decision != "" {
			return o
		}
	}
	if mode == Harden && p.AmbientCapabilities {
		if ch, err := grantAmbient(target); err != nil {
			o.Decision, o.Err = "refused", err
			return o
		} else if ch != "" {
			o.Changes = append(o.Changes, ch)
		}
	}
	if err := ensureDefaultAppArmor(env, target.Process); err != nil {
		o.Decision, o.Err = "refused", err
		return o
	}
	o.Decision = "allowed"
	if len(o.Changes) > 0 {
		o.Decision = "hardened"
	}
	return o
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
	return fmt.Sprintf("ambientCapabilities: raised %s for uid %d", strings.Join(trimCap(c.Ambient), ", "), s.Process.User.UID), nil
}

// DecideProcess is Decide for the process document of `runc exec
// --process`: an exec must not get what the container's policy forbids.
func (p *Policy) DecideProcess(env *Env, proc *specs.Process) *Outcome {
	o := &Outcome{}
	var warns []string
	env = withWarnings(env, &warns)
	defer func() { o.Warnings = dedupe(warns) }()
	switch p.Mode {
	case Enforce:
		if f := Refusing(p.CheckProcess(env, proc)); len(f) > 0 {
			o.Decision, o.Findings = "refused", f
			return o
		}
	case Harden:
		left, changes, err := p.HardenProcess(env, proc)
		if err != nil {
			o.Decision, o.Err = "refused", err
			return o
		}
		o.Changes = changes
		if left = Refusing(left); len(left) > 0 {
			o.Decision, o.Findings = "refused", left
			return o
		}
	case Audit:
		if f := p.CheckProcess(env, proc); len(f) > 0 {
			o.Decision, o.Findings = "audited", f
			return o
		}
	}
	if p.Mode != Audit {
		if err := ensureDefaultAppArmor(env, proc); err != nil {
			o.Decision, o.Err = "refused", err
			return o
		}
	}
	o.Decision = "allowed"
	if len(o.Changes) > 0 {
		o.Decision = "hardened"
	}
	return o
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
