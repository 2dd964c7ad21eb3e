// Command genjson writes each preset policies/<name>.yaml as
// policies/<name>.json, the form secrun reads on every container start:
// decoding YAML costs more than the rest of a create's policy load, and
// the presets only change with secrun. The YAML stays the source an admin
// reads; profiles_test.go holds the two equal.
//
// Usage, from profiles/: go generate
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

func main() {
	if err := run("policies"); err != nil {
		fmt.Fprintln(os.Stderr, "genjson:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		j, err := yaml.YAMLToJSON(b)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if err := os.WriteFile(strings.TrimSuffix(f, ".yaml")+".json", append(j, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}
