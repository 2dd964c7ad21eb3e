package policy

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

// deviceRule is an allowed device in the form rules compare: a wildcard
// number is -1 and the type "a" matches every type.
type deviceRule struct {
	typ          string
	major, minor int64
	access       string
}

func (r deviceRule) String() string {
	n := func(v int64) string {
		if v < 0 {
			return "*"
		}
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%s %s:%s %s", r.typ, n(r.major), n(r.minor), r.access)
}

// covers reports whether r allows everything o asks for. A wildcard in o
// is covered only by a wildcard in r: "-1", a missing number and type "a"
// all mean "every device", whichever way a bundle spells it.
func (r deviceRule) covers(o deviceRule) bool {
	if r.typ != "a" && r.typ != o.typ {
		return false
	}
	if r.major >= 0 && r.major != o.major || r.minor >= 0 && r.minor != o.minor {
		return false
	}
	for _, c := range o.access {
		if !strings.ContainsRune(r.access, c) {
			return false
		}
	}
	return true
}

// cgroupRule normalises a linux.resources.devices entry the way runc reads
// it (libcontainer/specconv): no type or "a" is every type, a missing or
// negative number every number, no access "rwm".
func cgroupRule(d specs.LinuxDeviceCgroup) deviceRule {
	r := deviceRule{typ: d.Type, major: -1, minor: -1, access: d.Access}
	if r.typ == "" {
		r.typ = "a"
	}
	if d.Major != nil && *d.Major >= 0 {
		r.major = *d.Major
	}
	if d.Minor != nil && *d.Minor >= 0 {
		r.minor = *d.Minor
	}
	if r.access == "" {
		r.access = "rwm"
	}
	if r.typ == "a" {
		r.major, r.minor = -1, -1
	}
	return r
}

func (p *Policy) compileDevices() error {
	p.devices = p.devices[:0]
	for i, d := range p.AllowedDevices {
		switch d.Type {
		case "a", "b", "c":
		default:
			return fmt.Errorf("policy %s: allowedDevices[%d].type %q: use c, b or a", p.Name, i, d.Type)
		}
		acc := d.Access
		if acc == "" {
			acc = "rwm"
		}
		if strings.Trim(acc, "rwm") != "" {
			return fmt.Errorf("policy %s: allowedDevices[%d].access %q: use letters from rwm", p.Name, i, d.Access)
		}
		r := deviceRule{typ: d.Type, major: d.Major, minor: d.Minor, access: acc}
		if r.major < 0 {
			r.major = -1
		}
		if r.minor < 0 {
			r.minor = -1
		}
		p.devices = append(p.devices, r)
	}
	return nil
}

// defaultDevices are what runc allows every container
// (libcontainer/specconv AllowedDevices) and containerd lists in its
// default spec (oci WithDefaultUnixDevices): mknod of any node, and null,
// zero, full, random, urandom, tty, console, ptmx, the pseudo-terminals
// and tun. They are always allowed; allowedDevices adds to them.
var defaultDevices = []deviceRule{
	{"c", -1, -1, "m"}, {"b", -1, -1, "m"},
	{"c", 1, 3, "rwm"}, {"c", 1, 5, "rwm"}, {"c", 1, 7, "rwm"}, {"c", 1, 8, "rwm"}, {"c", 1, 9, "rwm"},
	{"c", 5, 0, "rwm"}, {"c", 5, 1, "rwm"}, {"c", 5, 2, "rwm"}, {"c", 136, -1, "rwm"}, {"c", 10, 200, "rwm"},
}

func (p *Policy) deviceAllowed(want deviceRule) bool {
	for _, r := range defaultDevices {
		if r.covers(want) {
			return true
		}
	}
	for _, r := range p.devices {
		if r.covers(want) {
			return true
		}
	}
	return false
}

// checkDevices covers both halves of device access: the nodes runc
// creates (linux.devices) and the device cgroup rules that let the
// container open them. Privileged containers get every host device; a
// policy that allows privileged mode allows that too.
func checkDevices(p *Policy, _ *Env, s *specs.Spec) []Finding {
	if spec.LooksPrivileged(s) || !p.RestrictDevices {
		// Privileged mode brings every host device; where the policy
		// refuses it, one finding says so next to the privileged one,
		// instead of one per device node.
		if spec.AllowsAllDevices(s) && !p.AllowPrivileged {
			return []Finding{{Field: "linux.resources.devices",
				Problem: "the device cgroup allows every device",
				Fix:     "remove the allow-all device rule (it comes with privileged: true)"}}
		}
		return nil
	}
	var out []Finding
	if s.Linux == nil {
		return nil
	}
	if r := s.Linux.Resources; r != nil {
		for i, d := range r.Devices {
			if !d.Allow {
				continue
			}
			want := cgroupRule(d)
			if p.deviceAllowed(want) {
				continue
			}
			problem := fmt.Sprintf("the device cgroup allows %q, outside the default devices and allowedDevices", want)
			if want.major < 0 || want.minor < 0 {
				problem = fmt.Sprintf("the device cgroup allows %q: a wildcard opens every such device on the host", want)
			}
			out = append(out, Finding{Field: fmt.Sprintf("linux.resources.devices[%d]", i),
				Problem: problem,
				Fix:     fmt.Sprintf("request only the devices the Pod needs, or have the admin add them to allowedDevices of policy %s", p.Name)})
		}
	}
	for i, d := range s.Linux.Devices {
		if d.Type == "p" {
			continue // a FIFO is no hardware
		}
		typ := d.Type
		if typ == "u" {
			typ = "c" // unbuffered character device, as runc treats it
		}
		want := deviceRule{typ: typ, major: d.Major, minor: d.Minor, access: "rw"}
		if d.Major >= 0 && d.Minor >= 0 && p.deviceAllowed(want) {
			continue
		}
		out = append(out, Finding{Field: fmt.Sprintf("linux.devices[%d]", i),
			Problem: fmt.Sprintf("device node %s (%s %d:%d) is not among the default devices and allowedDevices", d.Path, d.Type, d.Major, d.Minor),
			Fix:     fmt.Sprintf("remove the device from the Pod, or have the admin add it to allowedDevices of policy %s", p.Name)})
	}
	return out
}
