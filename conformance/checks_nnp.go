package conformance

import (
	"fmt"
	"strconv"

	"github.com/secrun/secrun/conformance/probe/report"
)

// The no_new_privs checks of the suite (checks.go has the types they share).

func (d *deriver) nnpChecks() {
	m := d.m
	want := 0
	if m.NNP {
		want = 1
	}
	toggle := &breaker{key: "nnp-toggle", desc: fmt.Sprintf("the bundle sets noNewPrivileges %v", !m.NNP), model: func(m *model) { m.NNP = !m.NNP }}
	d.add(&check{
		Name:        "no_new_privs",
		Setting:     SettingNoNewPrivs,
		Description: "the kernel's no_new_privs flag matches allowPrivilegeEscalation and the policy",
		Expected:    strconv.Itoa(want),
		eval: func(o *observation) verdict {
			rep, v := o.started()
			if v != nil {
				return *v
			}
			got := strconv.Itoa(rep.NoNewPrivs)
			if rep.NoNewPrivs != want {
				return failf(got, "NoNewPrivs is %d, expected %d", rep.NoNewPrivs, want)
			}
			return pass(got)
		},
		brk: toggle,
	})
	if m.UID == 0 {
		d.notApplicable("nnp.setuid: a root process cannot show a setuid escalation")
		return
	}
	d.add(&check{
		Name:    report.OpNNPSetuid,
		Setting: SettingNoNewPrivs,
		Description: fmt.Sprintf("uid %d executing a setuid-root copy of the probe %s euid 0", m.UID,
			map[bool]string{true: "does not get", false: "gets"}[m.NNP]),
		Expected: map[bool]string{true: "escalation blocked", false: "escalation works (euid=0)"}[m.NNP],
		eval: func(o *observation) verdict {
			op, v := o.opOf(report.OpNNPSetuid)
			if v != nil {
				return *v
			}
			got := map[bool]string{true: "escalated", false: "blocked"}[op.OK] + ": " + op.Detail
			if op.OK == m.NNP {
				return failf(got, "expected escalation %s", map[bool]string{true: "blocked", false: "to work"}[m.NNP])
			}
			return pass(got)
		},
		brk: toggle,
	})
}
