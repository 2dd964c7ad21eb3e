package conformance

import (
	"fmt"
	"strings"
)

// The refusal checks of the suite (checks.go has the types they share).

func (d *deriver) refusalCheck(r *refusal) {
	setting := ruleSetting(r.Rules[0])
	rule := string(r.Rules[0])
	d.c.final.cover(setting, fmt.Sprintf("policy %s (%s) refuses: %s", r.Policy, r.Mode, ruleList(r.Rules)))
	d.add(&check{
		Name:        "refused." + rule,
		Setting:     setting,
		Description: fmt.Sprintf("secrun policy %s (%s) refuses the container, naming the rule %s and a fix", r.Policy, r.Mode, rule),
		Expected:    fmt.Sprintf("non-zero exit before the container starts; stderr names policy %s, rule %s, and a fix", r.Policy, rule),
		eval: func(o *observation) verdict {
			if o.rep != nil {
				return failf("the container ran", "policy %s should have refused it (%s)", r.Policy, ruleList(r.Rules))
			}
			if o.exit == 0 && o.runErr == nil {
				return failf("exit 0", "the runtime exited 0 without running the probe")
			}
			if o.runErr != nil && strings.TrimSpace(o.stderr) == "" {
				return failf("", "the container did not run, but no refusal says why: %v", o.runErr)
			}
			msg := lastLine(o.stderr)
			want := []string{"policy " + r.Policy, rule, "fix"}
			for _, w := range want {
				if !strings.Contains(o.stderr, w) {
					return failf(msg, "refused, but the message does not name %q", w)
				}
			}
			return pass("refused: " + msg)
		},
		brk: &breaker{key: "requested", desc: "the bundle the manifest asks for, run by the delegate without the policy", requested: true},
	})
	if d.s.kube != nil {
		d.add(kubeEventCheck(r, setting))
	}
}
