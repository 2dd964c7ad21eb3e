package seccompadvise

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/shim"
)

// AuditEntry is what secrun's audit log says it did to one create's or
// exec's seccomp filter: the changes and findings of the seccomp and
// seccompAgent rules, and a refusal's error.
type AuditEntry struct {
	Record   shim.AuditRecord
	Changes  []policy.Change
	Findings []policy.Finding
}

// maxAuditLine bounds one audit line; secrun's are a few kilobytes.
const maxAuditLine = 1 << 20

// AuditFor reads secrun's audit log (one JSON object a line, shim's
// AuditRecord) and returns, oldest first, every entry about the container
// that concerns its seccomp filter: what is named by its id, or by
// NAMESPACE/POD[/CONTAINER]. A line that does not parse is skipped: the
// log is appended to by concurrent creates and may end mid-line.
func AuditFor(r io.Reader, container string) ([]AuditEntry, error) {
	ns, pod, name, byPod := ParsePodRef(container)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxAuditLine)
	var out []AuditEntry
	for sc.Scan() {
		var rec shim.AuditRecord
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		if byPod {
			if rec.Namespace != ns || rec.Pod != pod || (name != "" && rec.ContainerName != name) {
				continue
			}
		} else if rec.Container != container {
			continue
		}
		e := AuditEntry{Record: rec}
		for _, c := range rec.Changes {
			if seccompRule(c.Rule) {
				e.Changes = append(e.Changes, c)
			}
		}
		for _, f := range rec.Findings {
			if seccompRule(f.Rule) {
				e.Findings = append(e.Findings, f)
			}
		}
		if len(e.Changes)+len(e.Findings) > 0 || rec.Error != "" && strings.Contains(rec.Error, "seccomp") {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("reading the audit log: %w", err)
	}
	return out, nil
}

// AuditFileFor is AuditFor on a file; a log that does not exist holds
// nothing (audit may be off, or go to stderr).
func AuditFileFor(path, container string) ([]AuditEntry, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	return AuditFor(f, container)
}

func seccompRule(r policy.Rule) bool { return r == policy.RuleSeccomp || r == policy.RuleSeccompAgent }

// ParsePodRef reads NAMESPACE/POD[/CONTAINER]; ok is false for anything
// else (a container id).
func ParsePodRef(s string) (ns, pod, name string, ok bool) {
	parts := strings.Split(s, "/")
	switch len(parts) {
	case 2:
		return parts[0], parts[1], "", true
	case 3:
		return parts[0], parts[1], parts[2], true
	}
	return "", "", "", false
}

// WriteAudit prints what secrun did to the filter, newest last.
func WriteAudit(w io.Writer, entries []AuditEntry) {
	if len(entries) == 0 {
		return
	}
	fmt.Fprintf(w, "\nsecrun's audit log: %d entries about this container's seccomp filter\n", len(entries))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tCOMMAND\tPOLICY\tDECISION\tRULE\tWHAT")
	for _, e := range entries {
		r := e.Record
		head := fmt.Sprintf("%s\t%s\t%s (%s)\t%s", r.Time, r.Command, r.Policy, r.Mode, r.Decision)
		for _, c := range e.Changes {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", head, c.Rule, c.Message)
		}
		for _, f := range e.Findings {
			fmt.Fprintf(tw, "%s\t%s\t%s: %s; fix: %s\n", head, f.Rule, f.Field, f.Problem, f.Fix)
		}
		if len(e.Changes)+len(e.Findings) == 0 {
			fmt.Fprintf(tw, "%s\t-\t%s\n", head, r.Error)
		}
	}
	tw.Flush()
}
