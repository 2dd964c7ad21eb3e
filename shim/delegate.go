package shim

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ResolveRuntime finds the delegate runtime binary. A name without a slash
// is looked up on PATH. It refuses to resolve to secrun itself: installed
// as "runc" ahead of the real one on PATH, secrun would exec itself forever.
func ResolveRuntime(name string) (string, error) {
	if name == "" {
		name = "runc"
	}
	path := name
	if !strings.Contains(name, "/") {
		p, err := exec.LookPath(name)
		if err != nil {
			return "", fmt.Errorf("delegate runtime %q not found on PATH; install it or set runtime: /path/to/runc in the secrun config", name)
		}
		path = p
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("delegate runtime %s: %w; set runtime in the secrun config to an installed runc-compatible binary", path, err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("delegate runtime %s is not an executable file", path)
	}
	if self, err := os.Executable(); err == nil {
		if sst, err := os.Stat(self); err == nil && os.SameFile(st, sst) {
			return "", fmt.Errorf("delegate runtime %s is secrun itself; point runtime in the secrun config at the real runc (e.g. /usr/sbin/runc)", path)
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	return abs, nil
}

// execDelegate replaces this process with the delegate, passing the
// original arguments and environment. execve keeps the pid, inherited file
// descriptors (--preserve-fds, the console socket's peer), signals and the
// exit status the caller expects from runc; a fork would break all four.
func execDelegate(path string, args []string) error {
	argv := append([]string{path}, args...)
	err := unix.Exec(path, argv, os.Environ())
	return fmt.Errorf("exec delegate runtime %s: %w", path, err)
}
