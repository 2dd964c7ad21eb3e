package spec

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// allowingActions are the actions under which a syscall runs: LOG and
// TRACE let it through (TRACE to whatever tracer is attached), NOTIFY
// hands the decision to a user-space agent.
var denyingActions = []specs.LinuxSeccompAction{specs.ActErrno, specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap}

func denies(a specs.LinuxSeccompAction) bool { return slices.Contains(denyingActions, a) }

// conjunction is one set of argument conditions that must all hold, in a
// canonical order so that sets compare.
type conjunction []specs.LinuxSeccompArg

func (c conjunction) subsetOf(o conjunction) bool {
	for _, a := range c {
		if !slices.Contains(o, a) {
			return false
		}
	}
	return true
}

// conjunctions is how runc compiles one rule's args
// (libcontainer/seccomp/seccomp_linux.go matchCall): conditions on an
// argument index that appears once are ANDed into one libseccomp rule,
// and each condition on an index that appears more than once becomes a
// rule of its own. The rule allows a call when any conjunction holds.
func conjunctions(args []specs.LinuxSeccompArg) []conjunction {
	repeated := func(i uint) bool {
		n := 0
		for _, a := range args {
			if a.Index == i {
				n++
			}
		}
		return n > 1
	}
	var out []conjunction
	var and conjunction
	for _, a := range args {
		if repeated(a.Index) {
			out = append(out, conjunction{a})
		} else {
			and = append(and, a)
		}
	}
	if len(and) > 0 || len(args) == 0 {
		out = append(out, and)
	}
	return out
}

// SeccompWithin reports how profile allows more than floor does; an empty
// answer means every call profile lets run, floor lets run too.
//
// The test is sufficient, not exact: profile passes when its default
// action denies, it asks for no weaker flag, and every conjunction of
// every allowing rule is implied by (has at least the conditions of) a
// conjunction floor allows unconditionally for that syscall. Where floor
// itself mixes allowing and denying rules for a syscall, only the same
// rules pass, since libseccomp's precedence between them is floor's.
func SeccompWithin(profile, floor *specs.LinuxSeccomp) []string {
	return seccompWithin(profile, floor, nil)
}

// runtimeDefaultVariants are syscalls a CRI runtime's own RuntimeDefault
// allows without a condition where moby's profile, which secrun
// generates, narrows or omits them. A bundle whose filter is the node
// runtime's RuntimeDefault is no weaker than RuntimeDefault, so these pass
// the floor (measured against containerd's contrib/seccomp DefaultProfile
// of v1.6.20 and v2.4.2).
var runtimeDefaultVariants = map[string]string{
	"socket":            "containerd allows socket(2) for every address family; moby denies AF_VSOCK",
	"io_uring_setup":    "containerd 1.6 still allows io_uring (moby and containerd 2.0 dropped it)",
	"io_uring_enter":    "containerd 1.6 still allows io_uring",
	"io_uring_register": "containerd 1.6 still allows io_uring",
	"lsm_get_self_attr": "containerd 2.x allows the LSM attribute syscalls of Linux 6.8",
	"lsm_set_self_attr": "containerd 2.x allows the LSM attribute syscalls of Linux 6.8",
	"lsm_list_modules":  "containerd 2.x allows the LSM attribute syscalls of Linux 6.8",
}

// SeccompWithinRuntimeDefault is SeccompWithin against floor, with the
// syscalls that the CRI runtimes' own RuntimeDefault profiles allow
// beyond moby's counted as allowed.
func SeccompWithinRuntimeDefault(profile, floor *specs.LinuxSeccomp) []string {
	return seccompWithin(profile, floor, runtimeDefaultVariants)
}

func seccompWithin(profile, floor *specs.LinuxSeccomp, variants map[string]string) []string {
	return indexFloor(floor).within(profile, variants)
}

// floorIndex is a floor profile's rules by syscall name, built once per
// floor: the floor check runs on every create, and RuntimeDefault has
// some 350 names.
type floorIndex map[string]*floorRules

type floorRules struct {
	allow []conjunction
	mixed []specs.LinuxSyscall
	// hasDeny: the floor also has a non-allowing rule for the name.
	hasDeny bool
	// unconditional: some allowing rule has no condition, so any
	// conjunction is implied.
	unconditional bool
}

func indexFloor(floor *specs.LinuxSeccomp) floorIndex {
	byName := make(floorIndex, 400)
	for _, r := range floor.Syscalls {
		cs := conjunctions(r.Args)
		for _, n := range r.Names {
			fr := byName[n]
			if fr == nil {
				fr = &floorRules{}
				byName[n] = fr
			}
			fr.mixed = append(fr.mixed, specs.LinuxSyscall{Names: []string{n}, Action: r.Action, ErrnoRet: r.ErrnoRet, Args: r.Args})
			if r.Action == specs.ActAllow {
				fr.allow = append(fr.allow, cs...)
				fr.unconditional = fr.unconditional || len(r.Args) == 0
			} else {
				fr.hasDeny = true
			}
		}
	}
	return byName
}

func (byName floorIndex) within(profile *specs.LinuxSeccomp, variants map[string]string) []string {
	if profile == nil {
		return []string{"there is no seccomp filter"}
	}
	var why []string
	if !denies(profile.DefaultAction) {
		why = append(why, fmt.Sprintf("defaultAction %s lets every syscall no rule names run", profile.DefaultAction))
	}
	for _, f := range profile.Flags {
		if f == specs.LinuxSeccompFlagSpecAllow {
			why = append(why, "flag SECCOMP_FILTER_FLAG_SPEC_ALLOW turns off the speculative-execution mitigation")
		}
	}
	var extra []string
	for _, r := range profile.Syscalls {
		if denies(r.Action) {
			continue
		}
		// The profile rule's conjunctions, computed once for all its
		// names and only when some name needs them.
		var cs []conjunction
		for _, n := range r.Names {
			if _, ok := variants[n]; ok {
				continue
			}
			fr := byName[n]
			if fr == nil {
				extra = append(extra, n)
				continue
			}
			if fr.hasDeny {
				if !sameRules(profile, n, fr.mixed) {
					extra = append(extra, n)
				}
				continue
			}
			if fr.unconditional {
				// An empty floor conjunction is a subset of every one.
				continue
			}
			if cs == nil {
				cs = conjunctions(r.Args)
			}
			for _, c := range cs {
				if !slices.ContainsFunc(fr.allow, func(g conjunction) bool { return g.subsetOf(c) }) {
					extra = append(extra, n)
					break
				}
			}
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		extra = slices.Compact(extra)
		why = append(why, fmt.Sprintf("it allows %s beyond RuntimeDefault", strings.Join(extra, ", ")))
	}
	return why
}

// sameRules reports whether profile's rules for syscall n are exactly
// want (as per-name rules).
func sameRules(profile *specs.LinuxSeccomp, n string, want []specs.LinuxSyscall) bool {
	var got []specs.LinuxSyscall
	for _, r := range profile.Syscalls {
		if slices.Contains(r.Names, n) {
			got = append(got, specs.LinuxSyscall{Names: []string{n}, Action: r.Action, ErrnoRet: r.ErrnoRet, Args: r.Args})
		}
	}
	return reflect.DeepEqual(got, want)
}

// RuntimeDefaultFor is the RuntimeDefault profile of a container with
// s's capabilities: the floor restricted holds every filter to. The
// caller owns the result.
func RuntimeDefaultFor(s *specs.Spec) (*specs.LinuxSeccomp, error) {
	f, err := runtimeDefault(s)
	if err != nil {
		return nil, err
	}
	return cloneSeccomp(f.profile), nil
}

// SeccompWithinRuntimeDefaultFor is SeccompWithinRuntimeDefault against
// the RuntimeDefault of s's capabilities.
func SeccompWithinRuntimeDefaultFor(profile *specs.LinuxSeccomp, s *specs.Spec) ([]string, error) {
	f, err := runtimeDefault(s)
	if err != nil {
		return nil, err
	}
	if profile != nil && denies(profile.DefaultAction) && !slices.Contains(profile.Flags, specs.LinuxSeccompFlagSpecAllow) && sameSeccomp(profile, f.profile) {
		// The floor itself, as harden installs it: every rule is implied
		// by itself, so the answer is known without the index (a quarter
		// of a create's work in a fresh process).
		return nil, nil
	}
	f.once.Do(func() { f.index = indexFloor(f.profile) })
	return f.index.within(profile, runtimeDefaultVariants), nil
}

// IsRuntimeDefaultFor reports whether profile is the RuntimeDefault of
// s's capabilities, as harden installs it.
func IsRuntimeDefaultFor(profile *specs.LinuxSeccomp, s *specs.Spec) bool {
	f, err := runtimeDefault(s)
	return err == nil && profile != nil && sameSeccomp(profile, f.profile)
}

// sameSeccomp reports whether two profiles are equal field for field
// (an empty list and none alike, which no verdict tells apart).
func sameSeccomp(a, b *specs.LinuxSeccomp) bool {
	if a.DefaultAction != b.DefaultAction || !equalPtr(a.DefaultErrnoRet, b.DefaultErrnoRet) || a.ListenerPath != b.ListenerPath || a.ListenerMetadata != b.ListenerMetadata ||
		!slices.Equal(a.Architectures, b.Architectures) || !slices.Equal(a.Flags, b.Flags) || len(a.Syscalls) != len(b.Syscalls) {
		return false
	}
	for i := range a.Syscalls {
		x, y := a.Syscalls[i], b.Syscalls[i]
		if x.Action != y.Action || !equalPtr(x.ErrnoRet, y.ErrnoRet) || !slices.Equal(x.Names, y.Names) || !slices.Equal(x.Args, y.Args) {
			return false
		}
	}
	return true
}

func equalPtr[T comparable](a, b *T) bool { return a == b || a != nil && b != nil && *a == *b }

// runtimeDefaults are the RuntimeDefault profiles this process generated,
// by bounding set. moby's generator allocates its whole Docker-form
// profile on every call, and one create asks for the final capabilities'
// profile up to three times (the fix, the floor check after it, the
// floor of the capabilities the bundle came with). The profile depends
// only on the bounding set and on this host (architecture, kernel
// version), which do not change within a process.
var runtimeDefaults struct {
	sync.Mutex
	byCaps map[string]*runtimeDefaultProfile
}

type runtimeDefaultProfile struct {
	profile *specs.LinuxSeccomp // shared: never handed out, never changed
	once    sync.Once
	index   floorIndex
}

func runtimeDefault(s *specs.Spec) (*runtimeDefaultProfile, error) {
	var bounding []string
	if s.Process != nil && s.Process.Capabilities != nil {
		bounding = s.Process.Capabilities.Bounding
	}
	// moby reads only the bounding set, as a set.
	key := strings.Join(bounding, ",")
	runtimeDefaults.Lock()
	defer runtimeDefaults.Unlock()
	if f, ok := runtimeDefaults.byCaps[key]; ok {
		return f, nil
	}
	p, err := mobyseccomp.GetDefaultProfile(withBounding(s))
	if err != nil {
		return nil, err
	}
	if runtimeDefaults.byCaps == nil {
		runtimeDefaults.byCaps = map[string]*runtimeDefaultProfile{}
	}
	f := &runtimeDefaultProfile{profile: p}
	runtimeDefaults.byCaps[key] = f
	return f, nil
}

// cloneSeccomp deep-copies a profile in a few allocations: every rule's
// names and arguments share one backing array each, cut with full
// capacity so that an append to one rule's list cannot reach the next.
func cloneSeccomp(p *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	c := *p
	c.Architectures = slices.Clone(p.Architectures)
	c.Flags = slices.Clone(p.Flags)
	if p.DefaultErrnoRet != nil {
		v := *p.DefaultErrnoRet
		c.DefaultErrnoRet = &v
	}
	var nNames, nArgs, nErrno int
	for _, r := range p.Syscalls {
		nNames += len(r.Names)
		nArgs += len(r.Args)
		if r.ErrnoRet != nil {
			nErrno++
		}
	}
	names := make([]string, 0, nNames)
	args := make([]specs.LinuxSeccompArg, 0, nArgs)
	errnos := make([]uint, 0, nErrno)
	c.Syscalls = make([]specs.LinuxSyscall, len(p.Syscalls))
	for i, r := range p.Syscalls {
		r2 := r
		if r.Names != nil {
			start := len(names)
			names = append(names, r.Names...)
			r2.Names = names[start:len(names):len(names)]
		}
		if r.Args != nil {
			start := len(args)
			args = append(args, r.Args...)
			r2.Args = args[start:len(args):len(args)]
		}
		if r.ErrnoRet != nil {
			errnos = append(errnos, *r.ErrnoRet)
			r2.ErrnoRet = &errnos[len(errnos)-1]
		}
		c.Syscalls[i] = r2
	}
	return &c
}

// Limits on the search of the profile root: the kubelet's root holds a
// handful of files; a huge tree is not worth a slow create.
const (
	maxProfileFiles = 256
)

// LocalhostProfileOf returns the file below root whose profile is exactly
// p, read as containerd reads a Localhost profile (OCI JSON decoded into
// LinuxSeccomp) or as secrun's own Localhost option writes it (Docker form
// for s's capabilities). It answers "" when none is. Links are not
// followed: a profile the admin placed is a regular file below root.
func LocalhostProfileOf(root string, p *specs.LinuxSeccomp, s *specs.Spec) string {
	if p == nil || root == "" {
		return ""
	}
	want, err := json.Marshal(p)
	if err != nil {
		return ""
	}
	found, seen := "", 0
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || found != "" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if seen++; seen > maxProfileFiles {
			return fs.SkipAll
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return nil
		}
		body, err := ReadLocalhostProfile(root, rel)
		if err != nil {
			return nil
		}
		var oci specs.LinuxSeccomp
		if json.Unmarshal(body, &oci) == nil && sameProfile(&oci, want) {
			found = rel
			return fs.SkipAll
		}
		if checkProfileShape(body) == nil {
			if m, err := mobyseccomp.LoadProfile(string(body), withBounding(s)); err == nil && m != nil && sameProfile(m, want) {
				found = rel
				return fs.SkipAll
			}
		}
		return nil
	})
	return found
}

func sameProfile(p *specs.LinuxSeccomp, want []byte) bool {
	b, err := json.Marshal(p)
	return err == nil && string(b) == string(want)
}
