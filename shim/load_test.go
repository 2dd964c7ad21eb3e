package shim_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/secrun/secrun/internal/testenv"
)

// TestLoadConcurrentCreates starts 100 containers through secrun at once,
// as a node does after a reboot: every create must succeed with its policy
// applied, and the audit log must hold one whole line per create. Where
// the kernel has AppArmor, the default profile loads race here too.
func TestLoadConcurrentCreates(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: starts 100 containers")
	}
	testenv.RequireContainers(t)
	bin := testenv.Build(t)
	base := testenv.NewBundle(t, "/bin/sleep", "60")
	// The shared rootfs is outside each bundle, as CRI-O's image roots
	// are: the admin names where such roots live.
	env, audit := testenv.WriteConfig(t, fmt.Sprintf("policies:\n  restricted:\n    mode: harden\n    runAsUser: 1000\n    allowedRootPaths: [%s]\n", base.Dir))
	root := testenv.StateRoot(t)
	const n = 100
	raw, _ := os.ReadFile(base.Path())
	rootfs := filepath.Join(base.Dir, "rootfs")

	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 20)
	for i := 0; i < n; i++ {
		dir := filepath.Join(t.TempDir(), "b")
		os.MkdirAll(dir, 0o755)
		// Each bundle shares the rootfs read-only through an absolute
		// root.path, so 100 copies of busybox are not needed.
		cfg := strings.Replace(string(raw), `"path": "rootfs"`, fmt.Sprintf("%q: %q", "path", rootfs), 1)
		os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644)
		wg.Add(1)
		go func(i int, dir string) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			id := fmt.Sprintf("%s-%d", testenv.ContainerID(t), i)
			r := testenv.Run(t, env, filepath.Join(bin, "secrun-restricted"), "--root", root, "create", "--bundle", dir, id)
			if r.Code != 0 {
				errs <- fmt.Errorf("create %d: %s", i, r.Stderr)
				return
			}
			var s struct {
				Process struct {
					User            struct{ UID int }
					NoNewPrivileges bool
					Capabilities    struct{ Bounding []string }
				}
				Linux struct {
					Seccomp *struct{ DefaultAction string }
				}
			}
			b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
			if err := json.Unmarshal(b, &s); err != nil {
				errs <- fmt.Errorf("config %d: %v", i, err)
				return
			}
			if s.Process.User.UID != 1000 || !s.Process.NoNewPrivileges || len(s.Process.Capabilities.Bounding) != 1 || s.Linux.Seccomp == nil {
				errs <- fmt.Errorf("container %d not hardened: %+v", i, s.Process)
			}
		}(i, dir)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	raw, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != n {
		t.Errorf("audit log has %d lines, want %d", len(lines), n)
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["decision"] != "hardened" {
			t.Errorf("audit line %q: %v", l, err)
		}
	}
}
