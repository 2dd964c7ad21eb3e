// Command recorder is the recording delegate of secrun's Kubernetes tests:
// installed as a handler's secrun-<policy>, it copies the bundle's
// config.json, byte for byte, as containerd wrote it and before secrun
// changes it, then execs the real secrun-<policy>. The copies are what
// `secrunctl fidelity` compares with `secrunctl translate` of the same Pod.
//
// Layout (CRI annotations of the spec, set by containerd's CRI plugin,
// internal/cri/annotations):
//
//	$SECRUN_CAPTURE_DIR/<pod-namespace>/<pod-name>/<container-name>.json
//	$SECRUN_CAPTURE_DIR/<pod-namespace>/<pod-name>/_sandbox.json
//
// A capture that fails is written to $SECRUN_CAPTURE_DIR/errors.log and
// never stops the container: the test checks that file.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/secrun/secrun/integration/kubernetes/cluster"
)

func main() {
	name := filepath.Base(os.Args[0])
	target := filepath.Join(os.Getenv(cluster.CaptureTargetEnv), name)
	if dir := os.Getenv(cluster.CaptureDirEnv); dir != "" {
		if err := capture(dir, os.Args[1:]); err != nil {
			if f, ferr := os.OpenFile(filepath.Join(dir, "errors.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); ferr == nil {
				fmt.Fprintf(f, "%s %s %s: %v\n", time.Now().UTC().Format(time.RFC3339), name, strings.Join(os.Args[1:], " "), err)
				f.Close()
			}
		}
	}
	err := syscall.Exec(target, append([]string{target}, os.Args[1:]...), os.Environ())
	fmt.Fprintf(os.Stderr, "recorder: exec %s: %v\n", target, err)
	os.Exit(127)
}

// runc's global flags that take a value (runc main.go), so their values
// are not taken for the subcommand.
var globalValued = map[string]bool{"root": true, "log": true, "log-format": true, "criu": true, "rootless": true}

// bundleOf finds the subcommand and, for create and run, the bundle
// directory (--bundle/-b, default the working directory).
func bundleOf(args []string) (string, string) {
	i := 0
	for i < len(args) {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			break
		}
		flag := strings.TrimLeft(a, "-")
		if !strings.Contains(flag, "=") && globalValued[flag] {
			i++
		}
		i++
	}
	if i >= len(args) {
		return "", ""
	}
	sub := args[i]
	if sub != "create" && sub != "run" {
		return sub, ""
	}
	bundle := "."
	for j := i + 1; j < len(args); j++ {
		a := args[j]
		flag, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || (flag != "bundle" && flag != "b") {
			continue
		}
		if hasVal {
			bundle = val
		} else if j+1 < len(args) {
			bundle = args[j+1]
		}
	}
	return sub, bundle
}

func capture(dir string, args []string) error {
	sub, bundle := bundleOf(args)
	if bundle == "" {
		return nil
	}
	if sub != "create" && sub != "run" {
		return nil
	}
	raw, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return err
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("config.json: %w", err)
	}
	a := spec.Annotations
	ns, pod, typ := a["io.kubernetes.cri.sandbox-namespace"], a["io.kubernetes.cri.sandbox-name"], a["io.kubernetes.cri.container-type"]
	file := a["io.kubernetes.cri.container-name"] + ".json"
	if typ == "sandbox" {
		file = "_sandbox.json"
	}
	for _, part := range []string{ns, pod, file} {
		if part == "" || part == ".json" || strings.ContainsAny(part, "/\x00") || part == ".." {
			return fmt.Errorf("config.json lacks usable CRI annotations (namespace %q, pod %q, file %q)", ns, pod, file)
		}
	}
	out := filepath.Join(dir, ns, pod)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(out, "."+file+".tmp")
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(out, file))
}
