package safefile

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Every case must return, so each runs under a deadline that turns a hang
// into a failure.
func open(t *testing.T, path string, flag int, follow Follow) (*os.File, error) {
	t.Helper()
	type res struct {
		f   *os.File
		err error
	}
	done := make(chan res, 1)
	go func() {
		f, err := Open(path, flag, 0o600, follow)
		done <- res{f, err}
	}()
	select {
	case r := <-done:
		return r.f, r.err
	case <-time.After(30 * time.Second):
		t.Fatalf("Open(%s) hung", path)
	}
	return nil, nil
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "file")
	os.WriteFile(reg, []byte("x"), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(reg, link)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	appendFlags := os.O_WRONLY | os.O_APPEND | os.O_CREATE
	for _, tc := range []struct {
		name   string
		path   string
		flag   int
		follow Follow
		want   string // "" = opens
	}{
		{"regular read", reg, os.O_RDONLY, NoFollow, ""},
		{"regular append", reg, appendFlags, NoFollow, ""},
		{"new file", filepath.Join(dir, "new"), appendFlags, NoFollow, ""},
		{"symlink refused", link, appendFlags, NoFollow, "is a symlink"},
		{"symlink followed", link, os.O_RDONLY, FollowLinks, ""},
		{"FIFO read", fifo, os.O_RDONLY, NoFollow, "is a FIFO, not a regular file"},
		{"FIFO write without a reader", fifo, appendFlags, NoFollow, "FIFO or socket"},
		{"directory read", dir, os.O_RDONLY, FollowLinks, "is a directory"},
		{"directory write", dir, appendFlags, FollowLinks, "is a directory"},
		{"device", "/dev/null", os.O_RDONLY, FollowLinks, "character device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := open(t, tc.path, tc.flag, tc.follow)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
				if err != nil || fl&unix.O_NONBLOCK != 0 {
					t.Errorf("flags %#x, %v: O_NONBLOCK still set", fl, err)
				}
				return
			}
			if err == nil {
				f.Close()
				t.Fatalf("opened; want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("err = %v, want the path and %q", err, tc.want)
			}
		})
	}
	// A FIFO with a reader opens for writing; fstat must still refuse it.
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if f, err := open(t, fifo, appendFlags, NoFollow); err == nil || !strings.Contains(err.Error(), "is a FIFO") {
		if f != nil {
			f.Close()
		}
		t.Errorf("FIFO with a reader: err = %v", err)
	}
	if b, _ := os.ReadFile(reg); string(b) != "x" {
		t.Errorf("the symlink's target changed: %q", b)
	}
}

func TestCopyNew(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "copy")
	if err := CopyNew(dst, strings.NewReader("x"), 0o755|fs.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&fs.ModeSetuid == 0 || st.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, want setuid 0755", st.Mode())
	}
	if b, _ := os.ReadFile(dst); string(b) != "x" {
		t.Errorf("content %q", b)
	}
	// An existing file is never overwritten.
	if err := CopyNew(dst, strings.NewReader("y"), 0o644); err == nil {
		t.Error("overwrote an existing file")
	}
	if b, _ := os.ReadFile(dst); string(b) != "x" {
		t.Errorf("content changed to %q", b)
	}
}
