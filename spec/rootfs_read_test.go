package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOpenInRootfsFallback: the os.Root fallback (kernels without
// openat2) refuses a link that leaves the rootfs, absolute or relative,
// and anything but a regular file.
func TestOpenInRootfsFallback(t *testing.T) {
	base := t.TempDir()
	if err := os.WriteFile(filepath.Join(base, "outside"), []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{filepath.Join(base, "outside"), "../../outside"} {
		rootfs := filepath.Join(t.TempDir(), "rootfs")
		os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755)
		if err := os.Symlink(target, filepath.Join(rootfs, "etc", "passwd")); err != nil {
			t.Fatal(err)
		}
		if f, err := openInRootfsFallback(rootfs, "etc/passwd"); err == nil {
			f.Close()
			t.Errorf("link %s: fallback opened a link leaving the rootfs", target)
		}
	}
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "etc", "passwd"), []byte("root:x:0:0::/:/bin/sh\n"), 0o644)
	f, err := openInRootfsFallback(rootfs, "etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()

	dir := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err == nil {
		if _, err := openInRootfsFallback(dir, "fifo"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("fifo: %v", err)
		}
	}
}
