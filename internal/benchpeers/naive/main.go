// Command naive is the least a Go runtime wrapper does on create: read
// the bundle's config.json, decode it as runtime-spec, set no_new_privs,
// write it back and execve the delegate ($BENCH_DELEGATE) with the same
// arguments. See package benchpeers.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func main() {
	if err := run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "naive:", err)
		os.Exit(1)
	}
}

func run(argv []string) error {
	bundle := "."
	for i, a := range argv {
		if (a == "--bundle" || a == "-b") && i+1 < len(argv) {
			bundle = argv[i+1]
		}
	}
	path := filepath.Join(bundle, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var s specs.Spec
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	if s.Process != nil {
		s.Process.NoNewPrivileges = true
	}
	out, err := json.Marshal(&s)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return err
	}
	return syscall.Exec(os.Getenv("BENCH_DELEGATE"), argv, os.Environ())
}
