package shim

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fuzzArgs turns one fuzz input into argv: NUL-separated when it holds a
// NUL (so empty words and words with spaces get tried), else split on
// white space like a shell line.
func fuzzArgs(s string) []string {
	if strings.Contains(s, "\x00") {
		return strings.Split(s, "\x00")
	}
	return strings.Fields(s)
}

func FuzzParseArgs(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(strings.Join(tc.args, "\x00"))
		f.Add(strings.Join(tc.args, " "))
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := fuzzArgs(line)
		orig := slices.Clone(args)
		inv, err := ParseArgs(args)
		if !slices.Equal(args, orig) {
			t.Fatalf("ParseArgs modified its argument: %q -> %q", orig, args)
		}
		if err != nil {
			if inv != nil {
				t.Fatalf("ParseArgs(%q) returned an invocation with error %v", orig, err)
			}
			// The prefix is Main's to add, once.
			if strings.HasPrefix(err.Error(), Prefix) || err.Error() == "" {
				t.Fatalf("ParseArgs(%q) error %q is empty or carries the prefix itself", orig, err)
			}
			return
		}
		if !slices.Equal(inv.Args, orig) {
			t.Fatalf("Args = %q, want %q", inv.Args, orig)
		}
		if (inv.Command == "") != (inv.CommandIndex == -1) {
			t.Fatalf("Command %q with CommandIndex %d", inv.Command, inv.CommandIndex)
		}
		if inv.Command != "" {
			if inv.CommandIndex < 0 || inv.CommandIndex >= len(args) || args[inv.CommandIndex] != inv.Command {
				t.Fatalf("Command %q is not Args[%d] of %q", inv.Command, inv.CommandIndex, args)
			}
			// Everything before the subcommand is global flags and their
			// values, so the subcommand is never a flag's value: a fresh
			// parse of the words before it must find no subcommand.
			head, err := ParseArgs(args[:inv.CommandIndex])
			if err != nil {
				t.Fatalf("the words before the subcommand of %q do not parse: %v", args, err)
			}
			if head.Command != "" {
				t.Fatalf("the words before the subcommand of %q hold subcommand %q", args, head.Command)
			}
		}
		rest := args[max(inv.CommandIndex+1, 0):]
		if inv.ContainerID != "" && !slices.Contains(rest, inv.ContainerID) {
			t.Fatalf("ContainerID %q is not a word after the subcommand in %q", inv.ContainerID, args)
		}
		if inv.BundleSet && !isFlagValue(rest, inv.Bundle) {
			t.Fatalf("Bundle %q is not a flag value in %q", inv.Bundle, args)
		}
		if inv.ProcessFile != "" && (inv.Command != "exec" || !isFlagValue(rest, inv.ProcessFile)) {
			t.Fatalf("ProcessFile %q is not an exec flag value in %q", inv.ProcessFile, args)
		}
		if len(inv.ExecArgs) > 0 {
			if inv.Command != "exec" || !slices.Equal(inv.ExecArgs, args[len(args)-len(inv.ExecArgs):]) {
				t.Fatalf("ExecArgs %q is not the tail of exec's %q", inv.ExecArgs, args)
			}
			inv.ExecArgs[0] += "\x01"
			if !slices.Equal(args, orig) {
				t.Fatalf("ExecArgs shares memory with Args")
			}
			inv.ExecArgs[0] = strings.TrimSuffix(inv.ExecArgs[0], "\x01")
		}
		policy := inv.NeedsPolicy()
		if (inv.Command == "create" || inv.Command == "run" || inv.Command == "restore") && !policy &&
			!inv.globalHelp && !inv.version && !inv.commandHelp {
			t.Fatalf("%s without help or version must need the policy: %q", inv.Command, args)
		}
		if policy && inv.Command != "create" && inv.Command != "run" && inv.Command != "restore" && inv.Command != "exec" {
			t.Fatalf("NeedsPolicy for %q", inv.Command)
		}
		again, err := ParseArgs(orig)
		if err != nil || !reflect.DeepEqual(again, inv) {
			t.Fatalf("ParseArgs(%q) is not deterministic", orig)
		}
	})
}

// isFlagValue reports whether v is a word of args or the value of a
// --flag=v word in it.
func isFlagValue(args []string, v string) bool {
	return slices.ContainsFunc(args, func(a string) bool {
		return a == v || strings.HasPrefix(a, "-") && strings.HasSuffix(a, "="+v)
	})
}
