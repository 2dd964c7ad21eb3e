package shim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/secrun/secrun/internal/runstate"
	"github.com/secrun/secrun/policy"
)

// Fail closed means "nothing new starts", never "nothing can be stopped":
// containerd's shim calls `secrun-<policy> state`, `kill` and `delete` for
// every running Pod, and a typo in config.yaml must not strand them. So
// only the commands that start a process from a bundle or a process
// document (create, run, exec, restore) need the configuration and the
// policy; the rest reach the delegate that created the container, from
// the record create left (internal/runstate).
//
// The commands that start nothing, and why each needs no policy:
//   - state, ps, events, list: read the container's state;
//   - kill, delete, pause, resume: stop, remove or freeze what runs;
//   - start: runs the process create prepared from the config.json the
//     policy already checked and rewrote;
//   - update: changes the cgroup limits the kubelet sets, through
//     containerd, which secrun trusts as the caller of every command;
//   - checkpoint: dumps a running container (restore, which starts one
//     from a bundle, is checked);
//   - features, spec, help, --version, --help: print or write a template.
//
// A subcommand secrun does not know (a newer runc's) may start a process:
// it keeps needing a readable configuration.
var lifecycleCommands = map[string]bool{
	"state": true, "ps": true, "events": true, "list": true,
	"kill": true, "delete": true, "pause": true, "resume": true,
	"start": true, "update": true, "checkpoint": true,
	"features": true, "spec": true, "help": true, "": true,
}

// parsedOutput are the commands whose callers parse what they print:
// go-runc reads `state` and `ps` with stderr merged into stdout, and
// containerd parses `features`. A warning for them goes to the runtime
// log only.
var parsedOutput = map[string]bool{"state": true, "ps": true, "list": true, "events": true, "features": true}

// StartsNothing reports whether inv runs no process from a bundle or a
// process document, so that it must work without the policy.
func (inv *Invocation) StartsNothing() bool {
	return inv.globalHelp || inv.version || inv.commandHelp || lifecycleCommands[inv.Command]
}

// createsContainer: the commands after which a container exists whose
// later lifecycle commands must find its delegate. A foreground run or
// restore is left out: its container lives as long as the command (which
// is the delegate itself after execve) and runc removes it at the end, so
// a record would only be left behind.
func (inv *Invocation) createsContainer() bool {
	if inv.ContainerID == "" || inv.globalHelp || inv.version || inv.commandHelp {
		return false
	}
	switch inv.Command {
	case "create":
		return true
	case "run", "restore":
		return inv.Detach
	}
	return false
}

// lifecycle runs a command that starts nothing with the delegate that
// created the container, falling back to the configuration's runtime and
// then to runc on PATH, with a warning.
func lifecycle(inv *Invocation, argv0 string, stderr io.Writer) int {
	runtime, warning := lifecycleRuntime(inv, argv0)
	if runtime == "" {
		return fail(inv, stderr, errors.New(warning))
	}
	if warning != "" {
		warn(inv, stderr, warning)
	}
	if inv.Command == "delete" && inv.ContainerID != "" {
		return deleteAndForget(inv, runtime, stderr)
	}
	return fail(inv, stderr, execDelegate(runtime, inv.Args))
}

// lifecycleRuntime picks the delegate: the recorded one, else the
// configuration's, else runc on PATH. warning says why it is not the
// recorded one, where that matters.
func lifecycleRuntime(inv *Invocation, argv0 string) (runtime, warning string) {
	why := ""
	if inv.ContainerID != "" {
		if runtime, why = recordedRuntime(inv); runtime != "" {
			return runtime, ""
		}
	}
	cfg, err := policy.LoadWrapperConfig()
	if err == nil {
		name := cfg.Runtime
		if pol, err := cfg.Policy(PolicyName(argv0, cfg)); err == nil {
			name = cfg.RuntimeFor(pol)
		}
		p, rerr := ResolveRuntime(name)
		if rerr == nil {
			if why != "" {
				why += "; using " + p + " from " + cfg.Source
			}
			return p, why
		}
		err = rerr
	}
	if why != "" {
		why += "; "
	}
	p, rerr := ResolveRuntime("runc")
	if rerr != nil {
		return "", why + fmt.Sprintf("no runtime to run %q with: %v, and %v", inv.Command, err, rerr)
	}
	return p, why + fmt.Sprintf("%v; using %s", err, p)
}

// recordedRuntime is the delegate that created inv's container, or ""
// and why not.
func recordedRuntime(inv *Invocation) (runtime, why string) {
	rec, err := runstate.Load(inv.Root, inv.ContainerID)
	switch {
	case err != nil:
		return "", fmt.Sprintf("cannot read the record of container %s: %v", inv.ContainerID, err)
	case rec == nil:
		return "", fmt.Sprintf("no record of the runtime that created container %s (created by an older secrun or another runtime)", inv.ContainerID)
	}
	p, err := ResolveRuntime(rec.Runtime)
	if err != nil {
		return "", fmt.Sprintf("the runtime that created container %s is gone: %v", inv.ContainerID, err)
	}
	return p, ""
}

// warn tells the admin without breaking a caller that parses the output.
func warn(inv *Invocation, stderr io.Writer, msg string) {
	msg = Prefix + "warning: " + msg
	if inv.Log != "" {
		if err := writeRuntimeLog(inv.Log, inv.LogFormat, "warning", msg); err == nil {
			return
		}
	}
	if !parsedOutput[inv.Command] {
		fmt.Fprintln(stderr, msg)
	}
}

// deleteAndForget runs delete as a child instead of exec'ing it, so that
// the record goes once the container has: nothing else would remove it.
// delete passes no file descriptors and no console; its exit status is
// the delegate's.
func deleteAndForget(inv *Invocation, runtime string, stderr io.Writer) int {
	cmd := exec.Command(runtime, inv.Args...)
	cmd.Args[0] = runtime
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode()
	case err != nil:
		return fail(inv, stderr, fmt.Errorf("run delegate runtime %s: %w", runtime, err))
	}
	if err := runstate.Remove(inv.Root, inv.ContainerID); err != nil {
		warn(inv, stderr, fmt.Sprintf("remove the record of container %s: %v", inv.ContainerID, err))
	}
	return 0
}

// remember records the delegate of a container about to be created. A
// record that cannot be written costs only the fallback later, so it
// warns instead of stopping the create.
func remember(inv *Invocation, runtime, policyName string, stderr io.Writer) {
	if !inv.createsContainer() {
		return
	}
	if err := runstate.Save(inv.Root, inv.ContainerID, runstate.Record{Runtime: runtime, Policy: policyName}); err != nil {
		warn(inv, stderr, fmt.Sprintf("cannot record the runtime of container %s: %v; kill and delete will fall back to the configured runtime", inv.ContainerID, err))
	}
}
