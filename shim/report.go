package shim

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/secrun/secrun/internal/safefile"
	"github.com/secrun/secrun/policy"
)

// Prefix starts every line secrun writes for a person, on stderr and in
// the runtime log. It is added where a line is written (fail, warn, the
// argv error), never by the errors themselves.
const Prefix = "secrun: "

// refusal is a create or exec that secrun will not let through.
type refusal struct {
	policy   string
	mode     policy.Mode
	id       string
	findings []policy.Finding
	err      error
}

// Error is the one line an admin reads in kubectl describe: the policy,
// the container, the first rule with its field and fix, and how many more.
func (r *refusal) Error() string {
	who := fmt.Sprintf("policy %s (%s) refused container %s", r.policy, r.mode, r.id)
	if r.id == "" {
		who = fmt.Sprintf("policy %s (%s) refused the container", r.policy, r.mode)
	}
	if r.err != nil {
		return fmt.Sprintf("%s: %v", who, r.err)
	}
	msg := fmt.Sprintf("%s: %s", who, r.findings[0])
	if n := len(r.findings) - 1; n > 0 {
		// Each rule once, with a count where it found more than one thing:
		// a privileged bundle has a device finding per host device.
		var order []policy.Rule
		count := map[policy.Rule]int{}
		for _, f := range r.findings[1:] {
			if count[f.Rule]++; count[f.Rule] == 1 {
				order = append(order, f.Rule)
			}
		}
		rules := make([]string, len(order))
		for i, rule := range order {
			rules[i] = string(rule)
			if c := count[rule]; c > 1 {
				rules[i] = fmt.Sprintf("%s ×%d", rule, c)
			}
		}
		msg += fmt.Sprintf(" (and %d more: %s; `secrunctl explain` lists them)", n, strings.Join(rules, ", "))
	}
	return msg
}

// writeRuntimeLog appends msg to runc's --log file in runc's own format,
// so containerd and CRI-O show secrun's reason to the user instead of
// "unable to retrieve OCI runtime error".
func writeRuntimeLog(path, format, level, msg string) error {
	if path == "" {
		return nil
	}
	// containerd passes <bundle>/log.json, in the directory an attacker
	// may write: no link is followed, no FIFO blocks.
	f, err := safefile.Open(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644, safefile.NoFollow)
	if err != nil {
		return err
	}
	defer f.Close()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var line []byte
	if format == "json" {
		line, err = json.Marshal(map[string]string{"level": level, "msg": msg, "time": now})
		if err != nil {
			return err
		}
	} else {
		line = fmt.Appendf(nil, "time=%q level=%s msg=%q", now, level, msg)
	}
	_, err = f.Write(append(line, '\n'))
	return err
}

// AuditRecord is the line every create and exec leaves in the audit log.
type AuditRecord struct {
	Time      string `json:"time"`
	Command   string `json:"command"`
	Container string `json:"container"`
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	// ContainerName is the Kubernetes container name, where the CRI
	// runtime recorded it.
	ContainerName string           `json:"containerName,omitempty"`
	Bundle        string           `json:"bundle,omitempty"`
	Policy        string           `json:"policy"`
	Mode          policy.Mode      `json:"mode"`
	Sandbox       bool             `json:"sandbox,omitempty"`
	Decision      policy.Decision  `json:"decision"`
	Changes       []policy.Change  `json:"changes,omitempty"`
	Findings      []policy.Finding `json:"findings,omitempty"`
	Warnings      []string         `json:"warnings,omitempty"`
	Error         string           `json:"error,omitempty"`
}

// writeAudit appends rec as one JSON line. O_APPEND keeps lines from
// concurrent creates whole.
func writeAudit(target string, rec *AuditRecord, stderr io.Writer) error {
	if target == "off" {
		return nil
	}
	rec.Time = time.Now().UTC().Format(time.RFC3339Nano)
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if target == "-" {
		_, err = stderr.Write(line)
		return err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return err
	}
	// A link planted at the audit log's path would have secrun, as root,
	// append to any file; a FIFO would hang every create.
	f, err := safefile.Open(target, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640, safefile.NoFollow)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(line)
	return err
}
