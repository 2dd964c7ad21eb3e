// Package safefile opens the files secrun reads and appends to (bundle
// documents, its configuration, the runtime log, the audit log) so that no
// path can make it hang or write through a planted link: a FIFO at any of
// them would block open(2) or read(2) forever, and a symlink in a bundle or
// a log directory would send secrun's writes to a file of the attacker's
// choice.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Follow says whether a symlink in the last component is followed. Only
// paths an admin owns follow links (a Kubernetes ConfigMap mounts its
// files as links); a path in a bundle or a log directory never does.
type Follow bool

const (
	NoFollow     Follow = false
	FollowLinks  Follow = true
	openNonblock        = unix.O_NONBLOCK | unix.O_CLOEXEC
)

// Open opens path with flag (os.O_RDONLY, or os.O_WRONLY|os.O_APPEND with
// or without os.O_CREATE) and refuses anything but a regular file. It
// never blocks: O_NONBLOCK makes open(2) of a FIFO return at once (ENXIO
// for a writer without a reader), and is cleared again once fstat has
// shown a regular file, for which it means nothing anyway.
func Open(path string, flag int, perm os.FileMode, follow Follow) (*os.File, error) {
	f := flag | openNonblock
	if follow == NoFollow {
		f |= unix.O_NOFOLLOW
	}
	fd, err := unix.Open(path, f, uint32(perm.Perm()))
	if err != nil {
		switch {
		case errors.Is(err, unix.ELOOP) && follow == NoFollow:
			return nil, fmt.Errorf("%s is a symlink; secrun does not follow links there, put the file itself there", path)
		case errors.Is(err, unix.ENXIO):
			return nil, fmt.Errorf("%s is a FIFO or socket, not a regular file; put a regular file there", path)
		case errors.Is(err, unix.EISDIR):
			return nil, fmt.Errorf("%s is a directory, not a regular file; put a regular file there", path)
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is %s, not a regular file; put a regular file there", path, kind(st.Mode))
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
	}
	if err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFLNK:
		return "a symlink"
	}
	return "not a file"
}

// CopyNew writes src to dst, which must not exist, with mode's permission
// and setuid, setgid and sticky bits. The bits are set again after the
// copy: OpenFile's mode passes through the umask and never carries
// setuid, and the tools copy images whose setuid binaries the
// no_new_privs checks depend on.
func CopyNew(dst string, src io.Reader, mode fs.FileMode) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return fmt.Errorf("copying to %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode.Perm()|mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
}
