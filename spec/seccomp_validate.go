package spec

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
)

// ValidateSeccomp checks every syscall name of a profile with libseccomp,
// the library runc compiles the filter with. runc skips names it cannot
// resolve, so a misspelt "mkdirat" in a deny rule would silently leave the
// syscall allowed; we refuse the profile instead.
func ValidateSeccomp(p *specs.LinuxSeccomp) error {
	if p == nil {
		return nil
	}
	var unknown []string
	for i, sc := range p.Syscalls {
		if len(sc.Names) == 0 {
			return fmt.Errorf("syscalls[%d] names no syscall", i)
		}
		for _, name := range sc.Names {
			if _, err := libseccomp.GetSyscallFromName(name); err != nil {
				unknown = append(unknown, name)
			}
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("unknown syscall name(s) %s: libseccomp does not know them for this architecture; fix the spelling or remove them", strings.Join(unknown, ", "))
	}
	return nil
}
