package spec

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/internal/syscalls"
)

// ValidateSeccomp checks every syscall name of a profile against
// libseccomp's table for this architecture (package syscalls, generated
// from the library runc compiles the filter with and tested against it).
// runc skips names libseccomp cannot resolve, so a misspelt "mkdirat" in a
// deny rule would silently leave the syscall allowed; we refuse the
// profile instead.
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
			if !syscalls.Known(name) {
				unknown = append(unknown, name)
			}
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("unknown syscall name(s) %s: libseccomp %s does not know them for %s; fix the spelling or remove them", strings.Join(unknown, ", "), syscalls.LibseccompVersion, syscalls.Arch)
	}
	return nil
}
