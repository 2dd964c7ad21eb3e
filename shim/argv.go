package shim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

// Invocation is what secrun learned from a runc command line. Args is never modified.
type Invocation struct {
	Args          []string // argv[1:] as given, passed to the delegate untouched
	Command       string   // subcommand ("create", "run", "exec", "state", ...); "" when none (e.g. `--version`, `--help`, no args)
	CommandIndex  int      // index of Command in Args; -1 when none
	Root          string   // global --root
	Log           string   // global --log
	LogFormat     string   // global --log-format; "text" when the flag is absent
	Debug         bool     // global --debug
	SystemdCgroup bool
	Rootless      string // global --rootless value as given ("", "true", "false", "auto")
	Bundle        string // create/run (also restore, spec): --bundle/-b value as given; "" means the cwd, as for runc
	BundleSet     bool
	ContainerID   string   // first positional argument after the subcommand's flags ("" if none)
	ProcessFile   string   // exec: --process/-p value, "" when absent
	ExecArgs      []string // exec: positional args after the container id (the command), if any; a copy
	Detach        bool     // run/exec/restore: -d/--detach

	// exec's flags that shape the new process. runc ignores all of them
	// when --process is given, and uses them on top of config.json's
	// process otherwise, so they are where an exec can gain privilege.
	ExecCaps           []string // --cap/-c, in order
	ExecUser           string   // --user/-u "uid[:gid]"
	ExecAdditionalGids []string // --additional-gids/-g, in order
	ExecAppArmor       string   // --apparmor
	ExecProcessLabel   string   // --process-label
	ExecNoNewPrivs     *bool    // --no-new-privs; nil when absent (runc then keeps config.json's value)
	ExecCwd            string   // --cwd

	// UnknownFlags are flags secrun has no table entry for, as written.
	// Global ones are only accepted in --x=v form; a subcommand's --x is
	// taken as a boolean and --x=v as self-contained, which is the only
	// reading that cannot swallow the container id.
	UnknownFlags []string

	globalHelp  bool // --help/-h before the subcommand: runc prints help and stops
	version     bool // --version/-v: runc prints its version and stops
	commandHelp bool // the subcommand's --help/-h, or `<cmd> help`: runc prints help and stops
	config      string
}

// ParseArgs parses runc's argv (without argv[0]).
//
// runc has parsed its argv with two libraries: urfave/cli v1 (the 1.x
// releases, such as the 1.1 the tests run against: flags after the
// container id are moved forward, except for exec and ps) and urfave/cli
// v3 (runc's main branch since 2026: flags anywhere, global flags also
// after the subcommand, "<cmd> help" shows help). secrun cannot know which
// one the delegate uses, so it reads the subcommand's arguments both ways
// and refuses a command line the two read differently: otherwise a crafted
// argv could show secrun one bundle while runc creates another. Every
// command line containerd, CRI-O, conmon and podman send reads the same
// both ways. The words before the subcommand read the same in both.
func ParseArgs(args []string) (*Invocation, error) {
	inv := &Invocation{Args: args, CommandIndex: -1, LogFormat: "text"}
	rest, err := parseGlobalArgs(inv)
	if err != nil {
		return nil, err
	}
	c := lookupCommand(inv.Command)
	if c == nil {
		// Unknown subcommands fail in runc itself; "help" needs no policy.
		return inv, nil
	}
	v1, v3 := inv.clone(), inv.clone()
	pos, err := parseCommandV1(v1, c, rest)
	if err != nil {
		return nil, err
	}
	v1.setPositionals(pos)
	pos, err = parseCommandV3(v3, c, rest)
	if err != nil {
		// v1 took a word for a value that v3 leaves as the id, or similar.
		return nil, ambiguous(inv.Command, "newer runc rejects it ("+err.Error()+")")
	}
	v3.setPositionals(pos)
	if len(pos) > 0 && (pos[0] == "help" || pos[0] == "h") {
		// urfave/cli v3 gives every command a "help" subcommand.
		v3.commandHelp, v3.ContainerID, v3.ExecArgs = true, "", nil
	}
	if what := disagreement(v1, v3); what != "" {
		return nil, ambiguous(inv.Command, "runc versions read "+what+" differently")
	}
	if v1.config != "" {
		// The policy hardens <bundle>/config.json; newer runc would read
		// this file instead, unchecked.
		return nil, fmt.Errorf("flag --config is not supported: the policy applies to the bundle's config.json")
	}
	return v1, nil
}

// NeedsPolicy reports whether this invocation must have the policy applied:
// create, run, and exec (exec with --process, or exec with flags like --cap/--user/--no-new-privs/--apparmor/--process-label that change privileges, or plain exec with a command).
// A request for help or the version needs none: runc prints and exits.
// restore starts a container from a bundle's config.json too, so it gets
// the bundle policy like create (CRIU then restores the process's own
// credentials from the checkpoint image, which no config.json check can
// reach: checkpoint images must come from a trusted source).
func (inv *Invocation) NeedsPolicy() bool {
	if inv == nil || inv.globalHelp || inv.version || inv.commandHelp {
		return false
	}
	switch inv.Command {
	case "create", "run", "restore":
		return true
	case "exec":
		// An unknown flag may be a newer runc's privilege knob: fail closed.
		return inv.ProcessFile != "" || len(inv.ExecArgs) > 0 ||
			len(inv.ExecCaps) > 0 || inv.ExecUser != "" || len(inv.ExecAdditionalGids) > 0 ||
			inv.ExecAppArmor != "" || inv.ExecProcessLabel != "" || inv.ExecNoNewPrivs != nil ||
			inv.ExecCwd != "" || len(inv.UnknownFlags) > 0
	}
	return false
}

func (inv *Invocation) clone() *Invocation {
	c := *inv
	c.UnknownFlags = slices.Clone(inv.UnknownFlags)
	return &c
}

func (inv *Invocation) setPositionals(pos []string) {
	if len(pos) > 0 {
		inv.ContainerID = pos[0]
	}
	if inv.Command == "exec" && len(pos) > 1 {
		// A copy: appending to a sub-slice of Args could write into it.
		inv.ExecArgs = slices.Clone(pos[1:])
	}
}

// parseGlobalArgs reads the flags before the subcommand the way Go's flag
// package does for runc (both urfave/cli versions agree here): a flag's
// value is never the subcommand, and the first non-flag or "--" ends it.
func parseGlobalArgs(inv *Invocation) ([]string, error) {
	args := inv.Args
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' {
			break
		}
		if a == "--" {
			i++
			break
		}
		name, value, hasValue, err := splitFlagArg(a)
		if err != nil {
			return nil, err
		}
		def, ok := runcGlobalFlags()[name]
		if !ok {
			if !hasValue {
				// runc rejects unknown flags. A newer runc's valued global
				// would make the next word look like the subcommand, and a
				// wrong subcommand means a skipped policy, so refuse.
				return nil, fmt.Errorf("unknown global flag %s: cannot tell whether it takes a value, so the subcommand is unclear (write it as %s=VALUE if it takes one)", a, a)
			}
			inv.UnknownFlags = append(inv.UnknownFlags, a)
			continue
		}
		if def.valued && !hasValue {
			if i+1 >= len(args) {
				return nil, needsValue(a)
			}
			i++
			value, hasValue = args[i], true
		}
		if err := inv.set(def, a, value, hasValue); err != nil {
			return nil, err
		}
	}
	if i >= len(args) || args[i] == "" {
		return nil, nil
	}
	cmd := args[i]
	if trimmed := strings.TrimSpace(cmd); trimmed != cmd && isRuncCommand(trimmed) {
		return nil, fmt.Errorf("refusing subcommand %q: it has white space around it, which some runc versions strip", cmd)
	}
	inv.Command, inv.CommandIndex = cmd, i
	return args[i+1:], nil
}

// parseCommandV1 reads a subcommand's arguments as urfave/cli v1 does:
// known flags (and the word after each, if it is not a known flag) move
// before the rest, then Go's flag package parses up to the first non-flag.
// exec and ps skip the move, so the process's own flags stay its own.
func parseCommandV1(inv *Invocation, c *runcCommand, args []string) ([]string, error) {
	if !c.processFollowsID {
		args = reorderV1(c.v1, args)
	}
	for len(args) > 0 {
		a := args[0]
		if len(a) < 2 || a[0] != '-' {
			return args, nil
		}
		if a == "--" {
			return args[1:], nil
		}
		name, value, hasValue, err := splitFlagArg(a)
		if err != nil {
			return nil, err
		}
		args = args[1:]
		def, ok := c.v1[name]
		if !ok {
			inv.UnknownFlags = append(inv.UnknownFlags, a)
			continue
		}
		if def.valued && !hasValue {
			if len(args) == 0 {
				return nil, needsValue(a)
			}
			value, hasValue, args = args[0], true, args[1:]
		}
		if err := inv.set(def, a, value, hasValue); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// reorderV1 is urfave/cli v1.22's argument reordering, quirks included:
// after any known flag, boolean or not, the next word that is not a known
// flag is kept with it, and words before a "--" end up after it.
func reorderV1(t runcFlags, args []string) []string {
	var front, rest []string
	mayBeValue := false
	for i, a := range args {
		known := t.reorderable(a)
		switch {
		case mayBeValue && !known:
			mayBeValue = false
			front = append(front, a)
		case a == "--":
			rest = append(append([]string{"--"}, rest...), args[i+1:]...)
			return append(front, rest...)
		case known:
			front = append(front, a)
			mayBeValue = !strings.Contains(a, "=")
		default:
			rest = append(rest, a)
		}
	}
	return append(front, rest...)
}

// parseCommandV3 reads a subcommand's arguments as urfave/cli v3 does:
// flags anywhere until "--" (exec and ps: until the container id), words
// trimmed of white space, "-" or "-<non-letter>" ending the flags, and the
// global flags accepted after the subcommand too.
func parseCommandV3(inv *Invocation, c *runcCommand, args []string) ([]string, error) {
	var pos []string
	for r := args; len(r) > 0; r = r[1:] {
		first := strings.TrimSpace(r[0])
		switch {
		case first == "":
			pos = append(pos, r[0])
			continue
		case first == "--":
			return append(pos, r[1:]...), nil
		case c.processFollowsID && len(pos) == 1:
			return append(pos, r...), nil
		case first[0] != '-':
			if first == "help" || first == "h" {
				return append(pos, r...), nil
			}
			pos = append(pos, first)
			continue
		case len(first) == 1:
			// v3 drops everything after a lone "-".
			return append(pos, first), nil
		}
		n := 1
		if first[1] == '-' {
			n = 2
		} else if !unicode.IsLetter(rune(first[1])) {
			return append(pos, r...), nil
		}
		name, value, hasValue := first[n:], "", false
		if eq := strings.IndexByte(name, '='); eq >= 0 {
			name, value, hasValue = name[:eq], name[eq+1:], true
		}
		def, ok := c.v3[name]
		if !ok {
			inv.UnknownFlags = append(inv.UnknownFlags, r[0])
			continue
		}
		switch {
		case !def.valued && value == "":
			value, hasValue = "true", true
		case def.valued && !hasValue:
			if len(r) == 1 {
				return nil, needsValue(first)
			}
			value, hasValue, r = r[1], true, r[1:]
		}
		if err := inv.set(def, first, value, hasValue); err != nil {
			return nil, err
		}
	}
	return pos, nil
}

// splitFlagArg splits "-name", "--name" or "--name=value" as Go's flag
// package does, with its errors for what runc would reject as bad syntax.
func splitFlagArg(a string) (name, value string, hasValue bool, err error) {
	name = a[1:]
	if a[1] == '-' {
		name = a[2:]
	}
	if name == "" || name[0] == '-' || name[0] == '=' {
		return "", "", false, fmt.Errorf("bad flag syntax: %s", a)
	}
	name, value, hasValue = strings.Cut(name, "=")
	return name, value, hasValue, nil
}

func ambiguous(cmd, why string) error {
	return fmt.Errorf("refusing an ambiguous %q command line: %s; put the subcommand's flags before the container id", cmd, why)
}

func needsValue(written string) error {
	return fmt.Errorf("flag %s needs a value", written)
}

// set records one flag. written is the argument as given, for messages.
func (inv *Invocation) set(def runcFlag, written, value string, hasValue bool) error {
	on := true
	if !def.valued && hasValue {
		b, err := strconv.ParseBool(value)
		if err != nil {
			name, _, _ := strings.Cut(written, "=")
			return fmt.Errorf("flag %s: invalid boolean value %q", name, value)
		}
		on = b
	}
	switch def.id {
	case idRoot:
		inv.Root = value
	case idLog:
		inv.Log = value
	case idLogFormat:
		inv.LogFormat = value
	case idDebug:
		inv.Debug = on
	case idSystemdCgroup:
		inv.SystemdCgroup = on
	case idRootless:
		inv.Rootless = value
	case idGlobalHelp:
		inv.globalHelp = on
	case idVersion:
		inv.version = on
	case idCommandHelp:
		inv.commandHelp = on
	case idBundle:
		inv.Bundle, inv.BundleSet = value, true
	case idConfig:
		inv.config = value
	case idProcess:
		inv.ProcessFile = value
	case idDetach:
		inv.Detach = on
	case idCap:
		inv.ExecCaps = append(inv.ExecCaps, value)
	case idUser:
		inv.ExecUser = value
	case idAdditionalGids:
		inv.ExecAdditionalGids = append(inv.ExecAdditionalGids, value)
	case idAppArmor:
		inv.ExecAppArmor = value
	case idProcessLabel:
		inv.ExecProcessLabel = value
	case idNoNewPrivs:
		inv.ExecNoNewPrivs = &on
	case idCwd:
		inv.ExecCwd = value
	}
	return nil
}

// disagreement names what the two readings of a command line differ in,
// or returns "" when they agree on everything secrun acts on.
func disagreement(a, b *Invocation) string {
	switch {
	case a.ContainerID != b.ContainerID:
		return fmt.Sprintf("the container id (%q or %q)", a.ContainerID, b.ContainerID)
	case a.Bundle != b.Bundle || a.BundleSet != b.BundleSet:
		return fmt.Sprintf("the bundle (%q or %q)", a.Bundle, b.Bundle)
	case a.config != b.config:
		return fmt.Sprintf("--config (%q or %q)", a.config, b.config)
	case a.ProcessFile != b.ProcessFile:
		return fmt.Sprintf("--process (%q or %q)", a.ProcessFile, b.ProcessFile)
	case (len(a.ExecArgs) > 0) != (len(b.ExecArgs) > 0):
		return "whether a command follows the container id"
	case a.commandHelp != b.commandHelp:
		return "whether runc only prints help"
	case a.Root != b.Root:
		return fmt.Sprintf("--root (%q or %q)", a.Root, b.Root)
	case a.Log != b.Log || a.LogFormat != b.LogFormat || a.Debug != b.Debug ||
		a.SystemdCgroup != b.SystemdCgroup || a.Rootless != b.Rootless:
		return "the global flags"
	case a.Detach != b.Detach:
		return "--detach"
	case !slices.Equal(a.ExecCaps, b.ExecCaps) || a.ExecUser != b.ExecUser ||
		!slices.Equal(a.ExecAdditionalGids, b.ExecAdditionalGids) ||
		a.ExecAppArmor != b.ExecAppArmor || a.ExecProcessLabel != b.ExecProcessLabel ||
		a.ExecCwd != b.ExecCwd || !sameBoolPtr(a.ExecNoNewPrivs, b.ExecNoNewPrivs):
		return "the exec process flags"
	}
	return ""
}

func sameBoolPtr(a, b *bool) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// runcFlag is one flag of runc's, under every name it answers to.
type runcFlag struct {
	id     flagID
	valued bool
}

// runcFlags maps a flag name without dashes to its flag.
type runcFlags map[string]runcFlag

// reorderable is urfave/cli v1's argIsFlag: a word counts as a flag when,
// after dropping "--", then "-", then "=...", it names one.
func (t runcFlags) reorderable(a string) bool {
	if a == "-" || a == "--" || !strings.HasPrefix(a, "-") {
		return false
	}
	name := strings.TrimPrefix(a, "--")
	name = strings.TrimPrefix(name, "-")
	name, _, _ = strings.Cut(name, "=")
	_, ok := t[name]
	return ok
}

type flagID uint8

// Flags secrun reads; every other known flag only matters for its arity.
const (
	idOther flagID = iota
	idRoot
	idLog
	idLogFormat
	idDebug
	idSystemdCgroup
	idRootless
	idGlobalHelp
	idVersion
	idCommandHelp
	idBundle
	idConfig
	idProcess
	idDetach
	idCap
	idUser
	idAdditionalGids
	idAppArmor
	idProcessLabel
	idNoNewPrivs
	idCwd
)

// runcCommand is a subcommand's grammar under both urfave/cli versions.
type runcCommand struct {
	v1 runcFlags // its own flags and --help/-h
	v3 runcFlags // plus the global flags, which v3 inherits unless shadowed
	// processFollowsID: exec and ps stop reading flags at the container
	// id; what follows is the process's command or ps's options.
	processFollowsID bool
}

// The flag tables are the union of runc 1.1 through main. A name ending
// in "=" takes a value; "a,b" lists a flag's long name and its alias.
// They are built on first use, and a command's only for that command:
// secrun parses one command line per process, and maps built at init
// would cost every container start.

// runcGlobalFlags are runc's global flags.
var runcGlobalFlags = sync.OnceValue(func() runcFlags {
	return newRuncFlags(map[string]flagID{
		"root": idRoot, "log": idLog, "log-format": idLogFormat, "debug": idDebug,
		"systemd-cgroup": idSystemdCgroup, "rootless": idRootless,
		"help": idGlobalHelp, "version": idVersion,
	},
		"debug", "log=", "log-format=", "root=", "criu=", "systemd-cgroup", "rootless=",
		"help,h", "version,v",
	)
})

// runcCommandFlags are a runc subcommand's own flags; ok is false for a
// name that is no runc subcommand.
func runcCommandFlags(name string) (flags []string, ok bool) {
	switch name {
	case "checkpoint":
		return []string{"image-path=", "work-path=", "parent-path=", "leave-running", "tcp-established", "tcp-skip-in-flight", "link-remap", "ext-unix-sk", "shell-job", "lazy-pages", "status-fd=", "page-server=", "file-locks", "pre-dump", "manage-cgroups-mode=", "empty-ns=", "auto-dedup"}, true
	case "create":
		return []string{"bundle,b=", "config=", "console-socket=", "pidfd-socket=", "pid-file=", "no-pivot", "no-new-keyring", "preserve-fds="}, true
	case "delete":
		return []string{"force,f"}, true
	case "events":
		return []string{"interval=", "stats"}, true
	case "exec":
		return []string{"console-socket=", "pidfd-socket=", "cwd=", "env,e=", "tty,t", "user,u=", "additional-gids,g=", "process,p=", "detach,d", "pid-file=", "process-label=", "apparmor=", "no-new-privs", "cap,c=", "preserve-fds=", "cgroup=", "ignore-paused"}, true
	case "features":
		return []string{}, true
	case "kill":
		return []string{"all,a"}, true
	case "list":
		return []string{"format,f=", "quiet,q"}, true
	case "pause":
		return []string{}, true
	case "ps":
		return []string{"format,f="}, true
	case "restore":
		return []string{"console-socket=", "image-path=", "work-path=", "tcp-established", "ext-unix-sk", "shell-job", "file-locks", "manage-cgroups-mode=", "bundle,b=", "detach,d", "pid-file=", "no-subreaper", "no-pivot", "empty-ns=", "auto-dedup", "lazy-pages", "lsm-profile=", "lsm-mount-context="}, true
	case "resume":
		return []string{}, true
	case "run":
		return []string{"bundle,b=", "config=", "console-socket=", "pidfd-socket=", "detach,d", "keep", "pid-file=", "no-subreaper", "no-pivot", "no-new-keyring", "preserve-fds="}, true
	case "spec":
		return []string{"bundle,b=", "rootless"}, true
	case "start":
		return []string{}, true
	case "state":
		return []string{}, true
	case "update":
		return []string{"resources,r=", "blkio-weight=", "cpu-period=", "cpu-quota=", "cpu-burst=", "cpu-share=", "cpu-rt-period=", "cpu-rt-runtime=", "cpuset-cpus=", "cpuset-mems=", "kernel-memory=", "kernel-memory-tcp=", "memory=", "cpu-idle=", "memory-reservation=", "memory-swap=", "pids-limit=", "l3-cache-schema=", "mem-bw-schema="}, true
	}
	return nil, false
}

// commandFlagIDs only names flags whose meaning secrun needs; a command's
// own "rootless" (spec's) is not the global one.
func commandFlagID(name string) flagID {
	switch name {
	case "bundle":
		return idBundle
	case "config":
		return idConfig
	case "process":
		return idProcess
	case "detach":
		return idDetach
	case "cap":
		return idCap
	case "user":
		return idUser
	case "additional-gids":
		return idAdditionalGids
	case "apparmor":
		return idAppArmor
	case "process-label":
		return idProcessLabel
	case "no-new-privs":
		return idNoNewPrivs
	case "cwd":
		return idCwd
	case "help":
		return idCommandHelp
	}
	return 0
}

func newRuncFlags(ids map[string]flagID, specs ...string) runcFlags {
	return newRuncFlagsBy(func(n string) flagID { return ids[n] }, specs...)
}

func newRuncFlagsBy(id func(string) flagID, specs ...string) runcFlags {
	t := runcFlags{}
	for _, s := range specs {
		s, valued := strings.CutSuffix(s, "=")
		names := strings.Split(s, ",")
		f := runcFlag{id: id(names[0]), valued: valued}
		for _, n := range names {
			t[n] = f
		}
	}
	return t
}

// lookupCommand builds the flag tables of one runc subcommand, or nil
// for a name that is none. exec and ps stop reading flags at the
// container id.
func lookupCommand(name string) *runcCommand {
	flags, ok := runcCommandFlags(name)
	if !ok {
		return nil
	}
	local := newRuncFlagsBy(commandFlagID, append(flags, "help,h")...)
	c := &runcCommand{v1: local, v3: runcFlags{}, processFollowsID: name == "exec" || name == "ps"}
	for n, f := range runcGlobalFlags() {
		if f.id == idGlobalHelp || f.id == idVersion {
			continue // local to the root command in v3
		}
		if _, shadowed := local[n]; shadowed {
			// v3 skips a persistent flag if any of its names is local;
			// every global flag has a single name, so this is that.
			continue
		}
		c.v3[n] = f
	}
	for n, f := range local {
		c.v3[n] = f
	}
	return c
}

func isRuncCommand(name string) bool {
	_, ok := runcCommandFlags(name)
	return ok
}
