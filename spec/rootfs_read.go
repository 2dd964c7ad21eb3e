package spec

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// ReadRootfsFile reads rel below rootfs (dir is an O_PATH handle on it),
// resolving every symlink as if rootfs were "/": the rootfs belongs to the
// image, and a link such as etc/passwd -> /etc/shadow must not make the
// runtime read the host's files. A missing file gives an error matching
// fs.ErrNotExist.
func ReadRootfsFile(dir int, rootfs, rel string, max int64) ([]byte, error) {
	f, err := openInRootfs(dir, rootfs, rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", f.Name(), st.Mode().Type())
	}
	body, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", f.Name(), max)
	}
	return body, nil
}

// rootfsOpenFlags: O_NONBLOCK so that nothing can make the open wait.
const rootfsOpenFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK

// openInRootfs opens rel with openat2(RESOLVE_IN_ROOT), in two steps: an
// O_PATH handle first, checked to be a regular file, then a real open of
// that same inode through /proc/self/fd. The image chooses what etc/passwd
// is, and merely opening a device node can act on the host's device (a
// watchdog arms on open), so nothing but a regular file is ever opened.
//
// Kernels before 5.6, or a seccomp filter that hides openat2, fall back to
// os.Root, which refuses a link that leaves rootfs, absolute links
// included, instead of resolving it inside: stricter, and rare.
func openInRootfs(dir int, rootfs, rel string) (*os.File, error) {
	full := filepath.Join(rootfs, rel)
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	var (
		pfd int
		err error
	)
	for attempt := 0; ; attempt++ {
		pfd, err = unix.Openat2(dir, rel, how)
		if err == nil {
			break
		}
		switch {
		case (errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN)) && attempt < 8:
			// EAGAIN: a rename raced the in-root resolution; try again.
			continue
		case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
			return openInRootfsFallback(rootfs, rel)
		}
		return nil, &fs.PathError{Op: "open", Path: full, Err: err}
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: full, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s is not a regular file (mode %#o)", full, st.Mode&unix.S_IFMT)
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), rootfsOpenFlags, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "reopen", Path: full, Err: err}
	}
	return os.NewFile(uintptr(fd), full), nil
}

// openInRootfsFallback checks the type before opening too; the gap between
// the two is harmless here because nothing runs in the container yet.
func openInRootfsFallback(rootfs, rel string) (*os.File, error) {
	full := filepath.Join(rootfs, rel)
	r, err := os.OpenRoot(rootfs)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	st, err := r.Stat(rel)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", full, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", full, st.Mode().Type())
	}
	f, err := r.OpenFile(rel, rootfsOpenFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", full, err)
	}
	return f, nil
}
