// Package shim is the runtime wrapper: it reads runc's command line, and
// for create, run and exec applies the node's policy to the bundle before
// it execs the real runtime with the arguments it was given. It stays
// thin: parse argv, load policy, call policy and spec, write, exec.
package shim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/bundle"
	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/spec"
)

// BinaryPrefix is how a binary name selects a policy: secrun-<policy>.
// containerd's runc shim cannot pass arguments to its runtime, so one
// symlink per runtime handler is how a RuntimeClass picks a policy.
const BinaryPrefix = "secrun-"

// PolicyName is the policy a binary called argv0 applies.
func PolicyName(argv0 string, c *policy.Config) string {
	base := filepath.Base(argv0)
	if name, ok := strings.CutPrefix(base, BinaryPrefix); ok && name != "" {
		return name
	}
	return c.DefaultPolicy
}

// Main runs secrun with the process's own argv and returns the exit status
// when it did not exec the delegate.
func Main(argv []string, stderr io.Writer) int {
	inv, err := ParseArgs(argv[1:])
	if err != nil {
		fmt.Fprintln(stderr, Prefix+err.Error())
		return 2
	}
	if inv.StartsNothing() {
		return lifecycle(inv, argv[0], stderr)
	}
	cfg, err := policy.LoadWrapperConfig()
	if err != nil {
		// Fail closed: with no readable policy, nothing starts (lifecycle
		// commands, which start nothing, never get here).
		return fail(inv, stderr, err)
	}
	pol, err := cfg.Policy(PolicyName(argv[0], cfg))
	if err != nil {
		return fail(inv, stderr, err)
	}
	var runtime string
	if inv.Command == "exec" && inv.ContainerID != "" {
		// exec enters a container that exists: its own runtime, even after
		// runtime: changed (another runtime does not know the container).
		runtime, _ = recordedRuntime(inv)
	}
	if runtime == "" {
		if runtime, err = ResolveRuntime(cfg.RuntimeFor(pol)); err != nil {
			return fail(inv, stderr, err)
		}
	}
	if inv.NeedsPolicy() {
		if err := apply(inv, cfg, pol, stderr); err != nil {
			return fail(inv, stderr, err)
		}
	}
	remember(inv, runtime, pol.Name, stderr)
	return fail(inv, stderr, execDelegate(runtime, inv.Args))
}

// fail reports err on stderr and in the runtime log, and returns runc's
// exit status for a failed command.
func fail(inv *Invocation, stderr io.Writer, err error) int {
	// One line, whatever the error wraps: containerd shows the runtime
	// log's last error line, and an admin greps for it.
	msg := Prefix + strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(err.Error())
	fmt.Fprintln(stderr, msg)
	if inv != nil {
		if lerr := writeRuntimeLog(inv.Log, inv.LogFormat, "error", msg); lerr != nil {
			fmt.Fprintf(stderr, "%scould not write the runtime log %s: %v\n", Prefix, inv.Log, lerr)
		}
	}
	return 1
}

// apply brings the bundle (create, run) or the exec process in line with
// the policy, and writes the audit record.
func apply(inv *Invocation, cfg *policy.Config, pol *policy.Policy, stderr io.Writer) error {
	env := &policy.Env{
		AppArmor:           spec.HostAppArmor{},
		SeccompProfileRoot: cfg.SeccompProfileRoot,
		ContainerID:        inv.ContainerID,
	}
	rec := &AuditRecord{Command: inv.Command, Container: inv.ContainerID, Policy: pol.Name, Mode: pol.Mode}
	var err error
	if inv.Command == "exec" {
		err = applyExec(inv, pol, env, rec)
	} else {
		err = applyBundle(inv, pol, env, rec)
	}
	if err != nil {
		rec.Decision = policy.Refused
		rec.Error = err.Error()
	}
	// Warnings go to the audit record and runc's log, not to stderr:
	// stderr is where a refusal's one line must stand alone.
	for _, w := range rec.Warnings {
		if inv.Debug {
			fmt.Fprintf(stderr, "%swarning: %s\n", Prefix, w)
		}
		_ = writeRuntimeLog(inv.Log, inv.LogFormat, "warning", Prefix+w)
	}
	if aerr := writeAudit(cfg.AuditLog, rec, stderr); aerr != nil {
		// The audit log is a record, not the enforcement: losing a line
		// must not stop containers, but the admin must hear of it.
		fmt.Fprintf(stderr, "%swarning: audit log %s: %v\n", Prefix, cfg.AuditLog, aerr)
	}
	return err
}

func bundleDir(inv *Invocation) (string, error) {
	if inv.Bundle != "" {
		return filepath.Abs(inv.Bundle)
	}
	return os.Getwd()
}

func applyBundle(inv *Invocation, pol *policy.Policy, env *policy.Env, rec *AuditRecord) error {
	dir, err := bundleDir(inv)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	rec.Bundle = dir
	env.BundleDir = dir
	doc, err := bundle.Load[specs.Spec](filepath.Join(dir, "config.json"))
	if err != nil {
		return fmt.Errorf("cannot apply policy %s: %w", pol.Name, err)
	}
	rec.Sandbox = pol.IsSandbox(doc.Value)
	rec.Namespace, rec.Pod = policy.PodRef(doc.Value)
	rec.ContainerName = policy.ContainerName(doc.Value)
	return conclude(inv, pol, rec, pol.Decide(env, doc.Value), "config.json", doc.Save)
}

func applyExec(inv *Invocation, pol *policy.Policy, env *policy.Env, rec *AuditRecord) error {
	if err := checkExecFlags(inv, pol, env); err != nil {
		return &refusal{policy: pol.Name, mode: pol.Mode, id: inv.ContainerID, err: err}
	}
	if inv.ProcessFile == "" {
		// The process comes from the container's own config, which create
		// already brought in line.
		rec.Decision = policy.Allowed
		return nil
	}
	doc, err := bundle.Load[specs.Process](inv.ProcessFile)
	if err != nil {
		return fmt.Errorf("cannot apply policy %s to exec: %w", pol.Name, err)
	}
	return conclude(inv, pol, rec, pol.DecideProcess(env, doc.Value), "exec process", doc.Save)
}

// conclude records an outcome, refuses or writes the document back. Audit
// mode never writes.
func conclude(inv *Invocation, pol *policy.Policy, rec *AuditRecord, out *policy.Outcome, what string, save func() (bool, error)) error {
	record(rec, out)
	if out.Refused() {
		return &refusal{policy: pol.Name, mode: pol.Mode, id: inv.ContainerID, findings: out.Findings, err: out.Err}
	}
	if pol.Mode == policy.Audit {
		return nil
	}
	if _, err := save(); err != nil {
		return fmt.Errorf("write the hardened %s: %w", what, err)
	}
	return nil
}

func record(rec *AuditRecord, out *policy.Outcome) {
	rec.Decision = out.Decision
	rec.Changes = out.Changes
	rec.Findings = out.Findings
	rec.Warnings = out.Warnings
	if out.Err != nil {
		rec.Error = out.Err.Error()
	}
}

// checkExecFlags refuses exec flags that would give the process more than
// the policy allows. They cannot be rewritten: the delegate gets the
// original argv, so harden mode refuses them too. Only the rules a given
// flag touches are checked: whatever no flag sets, the exec takes from the
// container's config, which create already brought in line.
func checkExecFlags(inv *Invocation, pol *policy.Policy, env *policy.Env) error {
	if pol.Mode == policy.Audit {
		return nil
	}
	proc := &specs.Process{Capabilities: &specs.LinuxCapabilities{}}
	var flags []policy.ExecFlag
	for _, c := range inv.ExecCaps {
		n, err := spec.NormalizeCapability(c)
		if err != nil {
			return fmt.Errorf("exec --cap: %w", err)
		}
		proc.Capabilities.Bounding = append(proc.Capabilities.Bounding, n)
		flags = append(flags, policy.ExecCap)
	}
	uid, hasUser, err := execUID(inv.ExecUser)
	if err != nil {
		return err
	}
	if hasUser {
		proc.User.UID = uid
		flags = append(flags, policy.ExecUser)
	}
	if inv.ExecNoNewPrivs != nil {
		proc.NoNewPrivileges = *inv.ExecNoNewPrivs
		flags = append(flags, policy.ExecNoNewPrivs)
	}
	if inv.ExecAppArmor != "" {
		proc.ApparmorProfile = inv.ExecAppArmor
		flags = append(flags, policy.ExecAppArmor)
	}
	if inv.ExecProcessLabel != "" {
		proc.SelinuxLabel = inv.ExecProcessLabel
		flags = append(flags, policy.ExecProcessLabel)
	}
	if inv.ExecCwd != "" {
		proc.Cwd = inv.ExecCwd
		flags = append(flags, policy.ExecCwd)
	}
	if len(inv.ExecArgs) > 0 {
		proc.Args = inv.ExecArgs
		flags = append(flags, policy.ExecCommand)
	}
	touched := policy.TouchedBy(flags...)
	for _, f := range policy.Refusing(pol.CheckProcess(env, proc)) {
		if touched[f.Rule] {
			return errors.New(f.String())
		}
	}
	return nil
}

// execUID parses exec --user "uid[:gid]"; runc takes only numbers there.
func execUID(u string) (uint32, bool, error) {
	if u == "" {
		return 0, false, nil
	}
	head, _, _ := strings.Cut(u, ":")
	var uid uint32
	if _, err := fmt.Sscanf(head, "%d", &uid); err != nil || fmt.Sprint(uid) != head {
		return 0, false, fmt.Errorf("exec --user %q: expected uid[:gid] with numbers", u)
	}
	return uid, true, nil
}
