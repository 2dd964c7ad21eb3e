// Package syscalls is libseccomp's syscall-name table for the
// architecture secrun is built for, as Go data: which names runc's
// libseccomp resolves (seccomp_syscall_resolve_name, what runc calls for
// every name of a profile in libcontainer/seccomp/seccomp_linux.go) and
// the number each resolves to. It is generated from libseccomp and tested
// against it (go generate; syscalls_test.go), so the wrapper can tell a
// misspelt name from a real one without linking libseccomp through cgo.
//
// The table is static data: nothing is computed at init, and a lookup is
// a binary search.
package syscalls

import "sort"

//go:generate go run ./gensyscalls -o .

// Syscall is one name libseccomp knows for the architecture. Nr is the
// architecture's syscall number, or a negative pseudo number for a name
// libseccomp knows from other architectures only (such as socketcall on
// amd64): runc accepts the name and its rule then matches nothing here.
type Syscall struct {
	Name string
	Nr   int
}

// Real reports whether the syscall exists on the architecture (a pseudo
// number stands for one that does not).
func (s Syscall) Real() bool { return s.Nr >= 0 }

// Lookup returns what libseccomp resolves name to for the architecture.
func Lookup(name string) (Syscall, bool) {
	i := sort.Search(len(table), func(i int) bool { return table[i].Name >= name })
	if i < len(table) && table[i].Name == name {
		return table[i], true
	}
	return Syscall{}, false
}

// Known reports whether libseccomp resolves name for the architecture,
// which is whether runc puts a profile's rule for it into the filter
// rather than skipping it.
func Known(name string) bool {
	_, ok := Lookup(name)
	return ok
}

// All is every name libseccomp knows for the architecture, sorted by
// name. The slice is shared: callers must not modify it.
func All() []Syscall { return table[:] }

// Names lists the names that are real syscalls of the architecture, in
// name order: a name libseccomp knows only from other architectures (a
// negative number) would be a rule that matches nothing here.
func Names() []string {
	out := make([]string, 0, len(table))
	for _, sc := range table {
		if sc.Real() {
			out = append(out, sc.Name)
		}
	}
	return out
}
