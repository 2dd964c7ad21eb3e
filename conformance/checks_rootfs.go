package conformance

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/secrun/secrun/conformance/probe/report"
)

// The readOnlyRootFilesystem checks of the suite (checks.go has the types they share).

func (d *deriver) readOnlyChecks() {
	m := d.m
	if m.UID != 0 {
		// A non-root user is refused by DAC first (EACCES), which says
		// nothing about the mount.
		d.notApplicable("fs.rootfs_write: a non-root process is refused by file permissions before the read-only mount")
	} else {
		errnos := []string{"EROFS"}
		d.add(&check{
			Name:        report.OpFSRootfsWrite,
			Setting:     SettingReadOnlyRoot,
			Description: fmt.Sprintf("creating a file in / %s", map[bool]string{true: "fails with EROFS", false: "works"}[m.ReadOnlyRoot]),
			Expected:    expectText(!m.ReadOnlyRoot, errnos),
			eval:        expectOp(report.OpFSRootfsWrite, !m.ReadOnlyRoot, errnos),
			brk: &breaker{key: "rootfs-rw-toggle", desc: fmt.Sprintf("the bundle sets root.readonly %v", !m.ReadOnlyRoot),
				model: func(m *model) { m.ReadOnlyRoot = !m.ReadOnlyRoot }},
		})
	}
	if m.ReadOnlyRoot {
		d.add(&check{
			Name:        report.OpFSScratchWrite,
			Setting:     SettingReadOnlyRoot,
			Description: "a writable volume (tmpfs /tmp) stays writable under a read-only root",
			Expected:    "allowed",
			eval:        expectOp(report.OpFSScratchWrite, true, nil),
			brk:         &breaker{key: "tmp-ro", desc: "the bundle mounts /tmp read-only", spec: readOnlyTmp},
		})
	}
}

func readOnlyTmp(s *specs.Spec) error {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == "/tmp" {
			s.Mounts[i].Options = append(s.Mounts[i].Options, "ro")
			return nil
		}
	}
	return fmt.Errorf("no /tmp mount to make read-only")
}
