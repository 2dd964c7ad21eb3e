package conformance

import (
	"fmt"
	"slices"
	"strings"

	"github.com/secrun/secrun/conformance/probe/report"
)

// The procMount checks of the suite (checks.go has the types they share).

func (d *deriver) procChecks() {
	m := d.m
	h := d.s.host
	for _, p := range kubeletMaskedPaths {
		if !h.pathExists(p) {
			d.notApplicable("%s: %s does not exist on this kernel", report.OpProcMasked, p)
			continue
		}
		masked := slices.Contains(m.Masked, p)
		key := report.PathOp(report.OpProcMasked, p)
		var brk *breaker
		if masked {
			brk = &breaker{key: "masked-off", desc: "the bundle has no maskedPaths", model: func(m *model) { m.Masked = nil }}
		} else {
			brk = &breaker{key: "masked-on:" + p, desc: "the bundle masks " + p,
				model: func(m *model) { m.Masked = append(m.Masked, p) }}
		}
		d.add(&check{
			Name:        key,
			Setting:     SettingProcMount,
			Description: fmt.Sprintf("%s is %s", p, map[bool]string{true: "masked (procMount Default)", false: "visible (unmasked /proc)"}[masked]),
			Expected:    map[bool]string{true: "masked", false: "not masked"}[masked],
			eval: func(o *observation) verdict {
				op, v := o.opOf(key)
				if v != nil {
					return *v
				}
				isMasked := !op.OK && strings.Contains(op.Detail, "masked by")
				isOpen := strings.Contains(op.Detail, "not masked")
				switch {
				case masked && isMasked, !masked && isOpen:
					return pass(op.Detail)
				case masked:
					return failf(op.Detail, "%s is not masked", p)
				}
				return failf(op.Detail, "%s is masked", p)
			},
			brk: brk,
		})
	}
	if m.UID != 0 || !m.capEffective("CAP_DAC_OVERRIDE") {
		// Opening a file for writing checks permissions before the
		// mount's read-only flag: only a process that passes them can
		// show EROFS.
		d.notApplicable("%s: a process without uid 0 and CAP_DAC_OVERRIDE is refused by file permissions before the read-only mount", report.OpProcReadonly)
		return
	}
	for _, p := range kubeletReadonlyPaths {
		if !h.pathExists(p) {
			d.notApplicable("%s: %s does not exist on this kernel", report.OpProcReadonly, p)
			continue
		}
		ro := slices.Contains(m.Readonly, p)
		key := report.PathOp(report.OpProcReadonly, p)
		var brk *breaker
		if ro {
			brk = &breaker{key: "readonly-off", desc: "the bundle has no readonlyPaths", model: func(m *model) { m.Readonly = nil }}
		} else {
			brk = &breaker{key: "readonly-on:" + p, desc: "the bundle makes " + p + " read-only",
				model: func(m *model) { m.Readonly = append(m.Readonly, p) }}
		}
		errnos := []string{"EROFS"}
		d.add(&check{
			Name:        key,
			Setting:     SettingProcMount,
			Description: fmt.Sprintf("%s is %s", p, map[bool]string{true: "read-only (opening for writing fails with EROFS)", false: "writable (unmasked /proc)"}[ro]),
			Expected:    expectText(!ro, errnos),
			eval:        expectOp(key, !ro, errnos),
			brk:         brk,
		})
	}
}
