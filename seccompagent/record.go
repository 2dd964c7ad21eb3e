package seccompagent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/secrun/secrun/bundle"

	"github.com/secrun/secrun/spec"
)

// Record is what the agent learnt about one container: every syscall its
// profile denied, how often, and what the agent answered. It is written
// as DIR/<container id>.json.
type Record struct {
	Container     string `json:"container"`
	Namespace     string `json:"namespace,omitempty"`
	Pod           string `json:"pod,omitempty"`
	ContainerName string `json:"containerName,omitempty"`
	Bundle        string `json:"bundle,omitempty"`
	// Mode, Policy, Profile and Arch come from the listenerMetadata secrun
	// wrote; Mode "unknown" marks a listener that was not secrun's.
	Mode    string `json:"mode"`
	Policy  string `json:"policy,omitempty"`
	Profile string `json:"profile,omitempty"`
	Arch    string `json:"arch,omitempty"`
	// Capabilities is the container's bounding set.
	Capabilities []string `json:"capabilities,omitempty"`
	// Listeners counts the notify fds runc handed over: one per create
	// and one per exec.
	Listeners int       `json:"listeners"`
	Started   time.Time `json:"started"`
	Updated   time.Time `json:"updated"`
	// Ended is when the last of the container's processes under the
	// filter exited.
	Ended    *time.Time `json:"ended,omitempty"`
	Syscalls []*Syscall `json:"syscalls"`
}

// Syscall is one notified syscall of a container.
type Syscall struct {
	Name  string    `json:"name"`
	Count uint64    `json:"count"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// Profile is what the profile would have done to the call.
	Profile spec.Denial `json:"profile"`
	// Answer is what the agent answered: "continued" (record) or the
	// errno's name (explain).
	Answer string `json:"answer"`
	// Args are the distinct argument summaries seen (clone flags, socket
	// family, personality persona), at most maxSummaries.
	Args []string `json:"args,omitempty"`
	// KeyArg and Values hold the distinct values of the argument that
	// decides the syscall (see keyArgs), for a profile that allows
	// exactly what was used; ValuesOverflow says there were more than
	// maxValues.
	KeyArg         *uint    `json:"keyArg,omitempty"`
	Values         []uint64 `json:"values,omitempty"`
	ValuesOverflow bool     `json:"valuesOverflow,omitempty"`
	// Comm names the programs that made the call (/proc/<pid>/comm).
	Comm []string `json:"comm,omitempty"`
}

const (
	maxSummaries = 8
	maxValues    = 16
	maxComms     = 4
)

// Load reads a record the agent wrote.
func Load(path string) (*Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s is not a seccomp agent record: %w", path, err)
	}
	if r.Container == "" {
		return nil, fmt.Errorf("%s is not a seccomp agent record: no container", path)
	}
	return &r, nil
}

// RecordPath is where the agent keeps the record of container id under
// dir. runc container ids are [A-Za-z0-9_+.-]; anything else (which runc
// would not have created) cannot become a file name here.
func RecordPath(dir, id string) (string, error) {
	if !idRE.MatchString(id) || len(id) > 200 {
		return "", fmt.Errorf("container id %q cannot name a record file", id)
	}
	return filepath.Join(dir, id+".json"), nil
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_+.-]*$`)

// entry is a container's record while the agent serves it.
type entry struct {
	// wmu orders writes: a flush that marshalled an older state must
	// not rename its file over a newer one's.
	wmu   sync.Mutex
	mu    sync.Mutex
	rec   Record
	path  string
	dirty bool
	open  int // listeners still served
}

// note counts one notified call.
func (e *entry) note(now time.Time, name string, d spec.Denial, answer string, summary string, key *uint, value uint64, comm string) (first bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := sort.Search(len(e.rec.Syscalls), func(i int) bool { return e.rec.Syscalls[i].Name >= name })
	if i == len(e.rec.Syscalls) || e.rec.Syscalls[i].Name != name {
		e.rec.Syscalls = slices.Insert(e.rec.Syscalls, i, &Syscall{Name: name, First: now})
		first = true
	}
	sc := e.rec.Syscalls[i]
	sc.Count++
	sc.Last = now
	sc.Profile = d
	sc.Answer = answer
	if summary != "" && !slices.Contains(sc.Args, summary) && len(sc.Args) < maxSummaries {
		sc.Args = append(sc.Args, summary)
		first = true
	}
	if key != nil {
		sc.KeyArg = key
		if !slices.Contains(sc.Values, value) {
			if len(sc.Values) < maxValues {
				sc.Values = append(sc.Values, value)
				slices.Sort(sc.Values)
				first = true
			} else {
				sc.ValuesOverflow = true
			}
		}
	}
	if comm != "" && !slices.Contains(sc.Comm, comm) && len(sc.Comm) < maxComms {
		sc.Comm = append(sc.Comm, comm)
	}
	e.rec.Updated = now
	e.dirty = true
	return first
}

// flush writes the record if it changed, atomically: a reader (or a kill
// of the agent) sees the old record or the new one, never half of one.
func (e *entry) flush() error {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	if !e.dirty {
		e.mu.Unlock()
		return nil
	}
	b, err := json.MarshalIndent(&e.rec, "", "  ")
	e.dirty = false
	e.mu.Unlock()
	if err != nil {
		return err
	}
	if err := bundle.WriteAtomic(e.path, append(b, '\n'), 0o640, -1, -1); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}
