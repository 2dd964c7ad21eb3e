package seccompadvise

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/secrun/secrun/seccompagent"
	"github.com/secrun/secrun/spec"
)

// Blocked is one syscall the container's profile denied, and what would
// have allowed it.
type Blocked struct {
	*seccompagent.Syscall
	// Capabilities are those whose RuntimeDefault (generated with the
	// container's capabilities plus that one, as moby's profile grants
	// syscalls to capabilities) allows every call of the record.
	Capabilities []string
	// Rule says what else would allow it.
	Rule string
}

// Why lists what rec's profile blocked, most frequent first.
func Why(rec *seccompagent.Record) ([]Blocked, error) {
	var out []Blocked
	byCap := map[string]*specs.LinuxSeccomp{}
	for _, c := range spec.AllCapabilities() {
		if slices.Contains(rec.Capabilities, c) {
			continue
		}
		p, err := runtimeDefault(append(slices.Clone(rec.Capabilities), c))
		if err != nil {
			return nil, err
		}
		byCap[c] = p
	}
	for _, sc := range rec.Syscalls {
		if !sc.Profile.Denies() {
			continue
		}
		b := Blocked{Syscall: sc}
		for _, c := range spec.AllCapabilities() {
			if p := byCap[c]; p != nil && allowsAll(p, sc) {
				b.Capabilities = append(b.Capabilities, strings.TrimPrefix(c, "CAP_"))
			}
		}
		switch {
		case strings.HasPrefix(rec.Profile, spec.SeccompLocalhost+"/"):
			b.Rule = fmt.Sprintf("a rule in %s allowing it; secrunctl seccomp profile --from-record writes one", rec.Profile)
		default:
			b.Rule = "a Localhost profile allowing it: secrunctl seccomp profile --from-record"
		}
		out = append(out, b)
	}
	slices.SortStableFunc(out, func(a, b Blocked) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// allowsAll reports whether p allows every recorded call of sc: each
// value of its deciding argument, or the bare name when none was kept.
func allowsAll(p *specs.LinuxSeccomp, sc *seccompagent.Syscall) bool {
	if sc.KeyArg == nil || len(sc.Values) == 0 {
		d, _ := spec.SeccompAnswer(p, sc.Name, nil)
		return !d.Denies()
	}
	for _, v := range sc.Values {
		args := make([]uint64, *sc.KeyArg+1)
		args[*sc.KeyArg] = v
		if d, _ := spec.SeccompAnswer(p, sc.Name, args); d.Denies() {
			return false
		}
	}
	return true
}

// WriteWhy prints the explanation for an admin.
func WriteWhy(w io.Writer, rec *seccompagent.Record, blocked []Blocked) {
	who := rec.Container
	if rec.Pod != "" {
		who = fmt.Sprintf("%s (Pod %s/%s, container %s)", rec.Container, rec.Namespace, rec.Pod, rec.ContainerName)
	}
	fmt.Fprintf(w, "container %s\nprofile %s, agent mode %s, policy %s, recorded %s to %s\n", who, rec.Profile, rec.Mode, rec.Policy,
		rec.Started.Format(time.RFC3339), rec.Updated.Format(time.RFC3339))
	if len(blocked) == 0 {
		fmt.Fprintln(w, "the profile blocked nothing the container called")
		return
	}
	what := "were blocked"
	if rec.Mode != spec.AgentExplain {
		what = "would have been blocked (the agent let them run)"
	}
	fmt.Fprintf(w, "%d syscalls %s:\n\n", len(blocked), what)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SYSCALL\tCALLS\tFIRST\tPROFILE\tARGUMENTS\tBY\tALLOWED WITH")
	for _, b := range blocked {
		args := strings.Join(b.Args, "; ")
		if args == "" {
			args = "-"
		}
		allowed := b.Rule
		if len(b.Capabilities) > 0 {
			allowed = "capability " + strings.Join(b.Capabilities, " or ") + " (RuntimeDefault grants it), or " + b.Rule
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", b.Name, b.Count, b.First.Format(time.TimeOnly), b.Profile, args, strings.Join(b.Comm, ","), allowed)
	}
	tw.Flush()
}
