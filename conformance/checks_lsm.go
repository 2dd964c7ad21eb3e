package conformance

import (
	"slices"
	"strings"

	"github.com/secrun/secrun/conformance/probe/report"
	"github.com/secrun/secrun/spec"
)

// The AppArmor and SELinux checks of the suite (checks.go has the types they share).

// appArmorDenyPath is the file the suite's Localhost AppArmor profile
// forbids writing; the probe image holds it writable for everyone.
const appArmorDenyPath = "/secrun-apparmor-denied"

// appArmorToggle is the twin of every AppArmor check: a container with a
// profile runs without one, and one without gets RuntimeDefault. Twins
// are grouped by key and built from the first check's breaker
// (validity.go), so the AppArmor checks share this one.
var appArmorToggle = &breaker{key: "apparmor-toggle", desc: "the bundle sets no AppArmor profile (or RuntimeDefault where it set none)", model: func(m *model) {
	if m.AppArmor == "" {
		m.AppArmor = "RuntimeDefault"
	} else {
		m.AppArmor, m.AppArmorName = "", ""
	}
}}

func (d *deriver) appArmorChecks() {
	if d.appArmorNodeOnly() {
		return
	}
	m := d.m
	want := m.AppArmor
	// The concurrent starts are secrun's race to load its own default
	// profile (appArmorNodeReason): each must come out confined by it.
	defaultName := ""
	if want == spec.AppArmorRuntimeDefault && d.c.starts > 0 {
		defaultName = spec.DefaultAppArmorProfile
	}
	expected := map[bool]string{true: "confined, enforce mode", false: "unconfined"}[want != ""]
	if defaultName != "" {
		expected = defaultName + " (enforce)"
	}
	d.add(&check{
		Name:        report.OpAppArmorLabel,
		Setting:     SettingAppArmor,
		Description: "the process is confined by the AppArmor profile the Pod names (" + map[bool]string{true: strings.TrimSpace(m.AppArmor + " " + m.AppArmorName), false: "unconfined"}[want != ""] + ")" + d.startsNote(),
		Expected:    expected,
		eval: func(o *observation) verdict {
			rep, v := o.started()
			if v != nil {
				return *v
			}
			got := rep.AppArmor
			confined := got != "" && got != "unconfined"
			switch {
			case want == "" && !confined:
				return pass(got)
			case want == "":
				return failf(got, "the process is confined")
			case !confined || !strings.HasSuffix(got, "(enforce)"):
				return failf(got, "expected an enforcing profile")
			case want == "Localhost" && !strings.HasPrefix(got, m.AppArmorName+" "):
				return failf(got, "expected profile %s", m.AppArmorName)
			case defaultName != "" && !strings.HasPrefix(got, defaultName+" "):
				return failf(got, "expected the default profile %s", defaultName)
			}
			return pass(got)
		},
		brk: appArmorToggle,
	})
	if want == "Localhost" && m.AppArmorName == appArmorProfileName {
		errnos := []string{"EACCES"}
		d.add(&check{
			Name:        report.OpAppArmorDenied,
			Setting:     SettingAppArmor,
			Description: "the Localhost profile's deny rule stops a write to " + appArmorDenyPath + " that file permissions allow",
			Expected:    expectText(false, errnos),
			eval:        expectOp(report.OpAppArmorDenied, false, errnos),
			brk:         appArmorToggle,
		})
	}
}

func (d *deriver) selinuxChecks() {
	m := d.m
	want := m.SELinuxLabel
	d.add(&check{
		Name:        "selinux.label",
		Setting:     SettingSELinux,
		Description: "the process runs with the SELinux type seLinuxOptions gives",
		Expected:    want,
		eval: func(o *observation) verdict {
			rep, v := o.started()
			if v != nil {
				return *v
			}
			wantType := typeOf(want)
			if typeOf(rep.SELinux) != wantType {
				return failf(rep.SELinux, "expected type %s", wantType)
			}
			return pass(rep.SELinux)
		},
		brk: &breaker{key: "selinux-off", desc: "the bundle sets no SELinux label", model: func(m *model) { m.SELinuxLabel = "" }},
	})
}

func typeOf(label string) string {
	parts := strings.SplitN(label, ":", 4)
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
