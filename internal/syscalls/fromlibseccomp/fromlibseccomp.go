// Package fromlibseccomp reads libseccomp's syscall-name tables through
// cgo. Only the generator of package syscalls and its test link it; the
// wrapper links the generated tables.
package fromlibseccomp

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	libseccomp "github.com/seccomp/libseccomp-golang"
)

// Header is where libseccomp-dev installs its syscall header.
const Header = "/usr/include/seccomp-syscalls.h"

// GoArches maps Go's GOARCH values to libseccomp's architectures. Go's
// mips64 builds are the n64 ABI; x32 has no GOARCH.
var GoArches = []struct {
	GOARCH string
	Arch   libseccomp.ScmpArch
}{
	{"386", libseccomp.ArchX86},
	{"amd64", libseccomp.ArchAMD64},
	{"arm", libseccomp.ArchARM},
	{"arm64", libseccomp.ArchARM64},
	{"loong64", libseccomp.ArchLOONGARCH64},
	{"mips", libseccomp.ArchMIPS},
	{"mipsle", libseccomp.ArchMIPSEL},
	{"mips64", libseccomp.ArchMIPS64},
	{"mips64le", libseccomp.ArchMIPSEL64},
	{"ppc64", libseccomp.ArchPPC64},
	{"ppc64le", libseccomp.ArchPPC64LE},
	{"riscv64", libseccomp.ArchRISCV64},
	{"s390x", libseccomp.ArchS390X},
}

// allArches are every architecture whose numbers are walked for names.
var allArches = []libseccomp.ScmpArch{
	libseccomp.ArchX86, libseccomp.ArchAMD64, libseccomp.ArchX32, libseccomp.ArchARM, libseccomp.ArchARM64,
	libseccomp.ArchMIPS, libseccomp.ArchMIPS64, libseccomp.ArchMIPS64N32, libseccomp.ArchMIPSEL,
	libseccomp.ArchMIPSEL64, libseccomp.ArchMIPSEL64N32, libseccomp.ArchPPC, libseccomp.ArchPPC64,
	libseccomp.ArchPPC64LE, libseccomp.ArchS390, libseccomp.ArchS390X, libseccomp.ArchPARISC,
	libseccomp.ArchPARISC64, libseccomp.ArchRISCV64, libseccomp.ArchLOONGARCH64, libseccomp.ArchM68K,
	libseccomp.ArchSH, libseccomp.ArchSHEB,
}

var snr = regexp.MustCompile(`^#define __SNR_([a-z0-9_]+)\s`)

// Candidates are the names libseccomp may know: its header's, and every
// number of every architecture it resolves back to a name.
func Candidates(header string) ([]string, error) {
	seen := map[string]bool{}
	f, err := os.ReadFile(header)
	if err != nil {
		return nil, fmt.Errorf("libseccomp header (apt-get install libseccomp-dev): %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(f))
	for sc.Scan() {
		if m := snr.FindStringSubmatch(sc.Text()); m != nil {
			seen[m[1]] = true
		}
	}
	for _, a := range allArches {
		for _, r := range numberRanges {
			for n := r[0]; n < r[1]; n++ {
				if name, err := libseccomp.ScmpSyscall(n).GetNameByArch(a); err == nil && name != "" {
					seen[name] = true
				}
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// numberRanges cover every architecture's syscall numbers (MIPS's ABIs
// start at 4000, 5000 and 6000; x32 sets bit 30) and libseccomp's pseudo
// numbers (-101 to about -10250).
var numberRanges = [][2]int{{-11000, 0}, {0, 7000}, {0x40000000, 0x40000000 + 1100}}

// Entry is one name as libseccomp resolves it for an architecture.
type Entry struct {
	Name string
	Nr   int
}

// Table is every candidate name libseccomp resolves for arch, sorted by
// name.
func Table(arch libseccomp.ScmpArch, names []string) []Entry {
	var out []Entry
	for _, n := range names {
		if nr, err := libseccomp.GetSyscallFromNameByArch(n, arch); err == nil {
			out = append(out, Entry{n, int(nr)})
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Version is the linked libseccomp's version.
func Version() string {
	maj, min, mic := libseccomp.GetLibraryVersion()
	return fmt.Sprintf("%d.%d.%d", maj, min, mic)
}
