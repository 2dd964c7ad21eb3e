// Package seccompnames is the list of syscall names, per architecture,
// that libseccomp resolves: what a seccomp profile can name at all. The
// seccomp agent's rewrite needs it to turn a profile's default action into
// explicit rules, and the wrapper that does the rewrite links no cgo, so
// the list is generated (gen.go) rather than asked of libseccomp at run
// time. The table is a stand-in with a small interface (Names) so that a
// project-wide generated syscall table can replace it.
package seccompnames

//go:generate go run gen.go

import (
	"fmt"
	"slices"
)

// Names returns every syscall name of the OCI architecture arch
// ("SCMP_ARCH_X86_64"), sorted. The slice is the caller's.
func Names(arch string) ([]string, error) {
	n, ok := table[arch]
	if !ok {
		return nil, fmt.Errorf("no syscall name table for %s", arch)
	}
	return slices.Clone(n), nil
}

// Arches lists the architectures the table covers.
func Arches() []string {
	var out []string
	for a := range table {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// goArches maps GOARCH to the OCI architecture the table is keyed by.
var goArches = map[string]string{
	"amd64":   "SCMP_ARCH_X86_64",
	"arm64":   "SCMP_ARCH_AARCH64",
	"ppc64le": "SCMP_ARCH_PPC64LE",
	"s390x":   "SCMP_ARCH_S390X",
	"riscv64": "SCMP_ARCH_RISCV64",
}

// Native is the OCI architecture of a GOARCH, "" when the table has none.
func Native(goarch string) string { return goArches[goarch] }
