package install

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/secrun/secrun/bundle"
)

// BackupSuffix starts the name of the copy kept before each change:
// config.toml.secrun-backup-20260102T150405Z.
const BackupSuffix = ".secrun-backup-"

// Result is what Edit did.
type Result struct {
	Plan *Plan
	// Path is the file edited, symlinks resolved.
	Path string
	// Backup is the copy of the previous content, "" when none was made
	// (dry run, no change, or no previous file).
	Backup string
	// Written is true when the file changed on disk.
	Written bool
}

// Edit reads the file at path, lets plan work out the change, and unless
// dryRun writes it: a backup of the old content first, then the new
// content atomically, with the old file's mode and owner.
func Edit(path string, dryRun bool, now time.Time, plan func(before []byte, exists bool) (*Plan, error)) (*Result, error) {
	// A config.toml that is a link (to a shared or generated file) is
	// edited where it points: renaming over the link would replace it.
	real, err := filepath.EvalSymlinks(path)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		real = path
	default:
		return nil, fmt.Errorf("resolve %s: %w", path, err)
	}
	before, err := os.ReadFile(real)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", real, err)
	}
	p, err := plan(before, exists)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", real, err)
	}
	res := &Result{Plan: p, Path: real}
	if dryRun || !p.Changed() {
		return res, nil
	}
	var info fs.FileInfo
	if exists {
		if info, err = os.Stat(real); err != nil {
			return nil, err
		}
		if !p.Own {
			if res.Backup, err = backup(real, before, info, now); err != nil {
				return nil, err
			}
		}
	} else if err := os.MkdirAll(filepath.Dir(real), 0o755); err != nil {
		// A drop-in directory (conf.d) may not exist yet.
		return nil, err
	}
	if p.Remove {
		if err := os.Remove(real); err != nil {
			return nil, fmt.Errorf("remove %s: %w", real, err)
		}
		if p.RemoveDir {
			// Only an empty directory goes: anything the admin put there
			// since keeps it.
			if err := os.Remove(filepath.Dir(real)); err != nil && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
				return nil, fmt.Errorf("remove %s: %w", filepath.Dir(real), err)
			}
		}
	} else if err := writeAtomic(real, p.After, info); err != nil {
		return nil, err
	}
	res.Written = true
	return res, nil
}

// backup keeps the previous content beside the file, never overwriting an
// earlier backup: each one may be the only copy of some admin's edit.
func backup(path string, content []byte, info fs.FileInfo, now time.Time) (string, error) {
	base := path + BackupSuffix + now.UTC().Format("20060102T150405Z")
	name := base
	for i := 2; ; i++ {
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
		if errors.Is(err, fs.ErrExist) && i < 100 {
			name = fmt.Sprintf("%s-%d", base, i)
			continue
		}
		if err != nil {
			return "", fmt.Errorf("back up %s before editing it: %w; free the directory or fix its permissions", path, err)
		}
		_, err = f.Write(content)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(name)
			return "", fmt.Errorf("back up %s to %s: %w", path, name, err)
		}
		return name, nil
	}
}

// writeAtomic replaces path with content through a temporary file in the
// same directory and a rename, so containerd never reads half a file. The
// new file gets the old one's mode and owner (0644 root for a new file).
func writeAtomic(path string, content []byte, old fs.FileInfo) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	mode, uid, gid := fs.FileMode(0o644), -1, -1
	if old != nil {
		mode = old.Mode().Perm()
		if st, ok := old.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	return bundle.WriteAtomic(path, content, mode, uid, gid)
}
