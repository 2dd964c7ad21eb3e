package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrun/secrun/fidelity"
	"github.com/urfave/cli/v2"
)

// TestFidelityCommand: translate's bundle, laid out as a capture, is
// compared clean; one edited field makes the command report it and exit 1,
// in text and in JSON.
func TestFidelityCommand(t *testing.T) {
	pod := `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: app:1
    securityContext:
      allowPrivilegeEscalation: false
`
	manifestPath := writeManifest(t, pod)
	out := filepath.Join(t.TempDir(), "bundles")
	// No AppArmor, no SELinux, cgroup v1: the flags fidelity is given
	// below, so both sides describe the same node.
	if _, _, _, err := runCLI(t, "translate", "-f", manifestPath, "-o", out); err != nil {
		t.Fatal(err)
	}
	cfg := loadConfig(t, filepath.Join(out, "web-app", "config.json"))
	// translate's own bundle has namespaces of its own; the capture joins
	// the sandbox's, as containerd's would.
	for i := range cfg.Linux.Namespaces {
		switch n := &cfg.Linux.Namespaces[i]; n.Type {
		case "network", "ipc", "uts":
			n.Path = "/proc/7/ns/" + string(n.Type)
		}
	}
	cfg.Process.ApparmorProfile = ""
	captured := t.TempDir()
	podDir := filepath.Join(captured, "default", "web")
	if err := os.MkdirAll(podDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(podDir, "pod.yaml"), []byte(pod), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func() {
		b, _ := json.Marshal(cfg)
		if err := os.WriteFile(filepath.Join(podDir, "app.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write()
	node := []string{"fidelity", "--captured", captured, "--apparmor=false", "--selinux=false", "--cgroup-v2=false"}
	stdout, _, code, err := runFidelityCLI(t, node...)
	if err != nil || code != 0 || !strings.Contains(stdout, "fidelity: 1 containers compared, 0 explained differences, 0 unexplained") {
		t.Fatalf("clean capture: code %d err %v\n%s", code, err, stdout)
	}

	cfg.Process.NoNewPrivileges = false
	write()
	stdout, _, code, _ = runFidelityCLI(t, node...)
	if code != 1 || !strings.Contains(stdout, "UNEXPLAINED process.noNewPrivileges: containerd false; translate true") ||
		!strings.Contains(stdout, "0 explained differences, 1 unexplained") {
		t.Fatalf("edited capture: code %d\n%s", code, stdout)
	}
	stdout, _, code, _ = runFidelityCLI(t, append(node, "--json")...)
	var rep fidelity.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 1 {
		t.Fatalf("--json: code %d, %v\n%s", code, err, stdout)
	}
	if rep.Unexplained != 1 || rep.Containers[0].Differences[0].Field != "process.noNewPrivileges" {
		t.Fatalf("--json report: %+v", rep)
	}

	if _, _, _, err := runFidelityCLI(t, "fidelity", "--captured", filepath.Join(captured, "nope")); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("missing directory: %v", err)
	}
}

func runFidelityCLI(t *testing.T, args ...string) (string, string, int, error) {
	t.Helper()
	app := []*cli.Command{fidelityCommand}
	return runCommands(t, app, args...)
}
