package conformance

import (
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/secrun/secrun/conformance/probe/report"
)

// The privileged checks of the suite (checks.go has the types they share).

func (d *deriver) privilegedChecks() {
	m := d.m
	h := d.s.host
	var devBrk *breaker
	if m.HostDevices {
		devBrk = &breaker{key: "devices-off", desc: "the bundle passes no host devices and denies all devices", spec: func(s *specs.Spec) error {
			s.Linux.Devices = nil
			if s.Linux.Resources == nil {
				s.Linux.Resources = &specs.LinuxResources{}
			}
			s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
			return nil
		}}
	} else if h.BlockDevice != "" {
		devBrk = &breaker{key: "devices-on", desc: "the bundle passes the host block device " + h.BlockDevice, spec: addHostDevice(h.BlockDevice)}
	}
	if devBrk == nil {
		d.notApplicable("%s: no host block device to leak into a twin", report.OpPrivDevices)
	} else {
		d.add(&check{
			Name:        report.OpPrivDevices,
			Setting:     SettingPrivileged,
			Description: fmt.Sprintf("host devices are %s", map[bool]string{true: "visible and openable (privileged)", false: "not reachable"}[m.HostDevices]),
			Expected:    map[bool]string{true: "a sensitive device opens", false: "no sensitive device opens"}[m.HostDevices],
			eval: func(o *observation) verdict {
				op, v := o.opOf(report.OpPrivDevices)
				if v != nil {
					return *v
				}
				if op.OK != m.HostDevices {
					return failf(op.Detail, "expected host devices %s", map[bool]string{true: "reachable", false: "unreachable"}[m.HostDevices])
				}
				return pass(op.Detail)
			},
			brk: devBrk,
		})
	}
	d.add(&check{
		Name:        report.OpPrivSysRW,
		Setting:     SettingPrivileged,
		Description: fmt.Sprintf("/sys is mounted %s", map[bool]string{true: "read-write (privileged)", false: "read-only"}[m.SysRW]),
		Expected:    map[bool]string{true: "rw", false: "ro"}[m.SysRW],
		eval: func(o *observation) verdict {
			op, v := o.opOf(report.OpPrivSysRW)
			if v != nil {
				return *v
			}
			if op.OK != m.SysRW {
				return failf(op.Detail, "expected /sys %s", map[bool]string{true: "read-write", false: "read-only"}[m.SysRW])
			}
			return pass(op.Detail)
		},
		brk: &breaker{key: "sys-toggle", desc: fmt.Sprintf("the bundle mounts /sys %s", map[bool]string{true: "read-only", false: "read-write"}[m.SysRW]),
			model: func(m *model) { m.SysRW = !m.SysRW }},
	})
}

func addHostDevice(path string) func(s *specs.Spec) error {
	return func(s *specs.Spec) error {
		var st fileStat
		if err := statDevice(path, &st); err != nil {
			return err
		}
		mode := os.FileMode(0o660)
		zero := uint32(0)
		s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{Path: path, Type: "b", Major: st.major, Minor: st.minor, FileMode: &mode, UID: &zero, GID: &zero})
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: &st.major, Minor: &st.minor, Access: "r"})
		return nil
	}
}
