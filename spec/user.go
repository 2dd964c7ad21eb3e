package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// UserIntent is the identity part of a Kubernetes securityContext (Pod and
// container levels already merged), plus the image's USER.
type UserIntent struct {
	RunAsUser          *int64
	RunAsGroup         *int64
	RunAsNonRoot       *bool
	SupplementalGroups []int64
	FSGroup            *int64
	// SupplementalGroupsPolicy is "Merge" (also ""): the groups the image's
	// /etc/group gives the user are added; or "Strict": only the primary
	// group and the listed ones.
	SupplementalGroupsPolicy string
	// ImageUser is the image config's USER ("name", "uid", "name:group",
	// "uid:gid"), used when RunAsUser is nil. "" keeps process.user as the
	// bundle has it.
	ImageUser string
}

// Errors WithUser wraps, for callers that sort refusals by kind.
var (
	ErrRunAsRoot    = errors.New("runAsNonRoot")
	ErrUserNotFound = errors.New("user not found")
	ErrInvalidID    = errors.New("invalid user or group id")
)

// maxID is the largest uid or gid runc accepts (it parses into an int32),
// which is also the upper bound Kubernetes validation puts on runAsUser.
const maxID = math.MaxInt32

// maxUserFileSize bounds how much of the image's /etc/passwd or /etc/group
// is read: the image is untrusted, and this runs on every container start.
const maxUserFileSize = 4 << 20

// WithUser sets process.user the way kubelet and containerd together do.
//
// The uid is runAsUser, else the image's USER, else the bundle's. Only the
// user part of the image's USER counts: the kubelet passes the image user
// on to the runtime as runAsUser/runAsUsername and drops its group
// (kubernetes#61967, #93666), so "1000:1000" runs with the group below, not
// 1000. The gid is runAsGroup if set, else the primary group /etc/passwd
// gives the uid, else 0. A runAsGroup without any user is not an error: the
// kubelet always fills in the image's user (root if the image has none),
// and here the bundle's uid plays that part.
//
// additionalGids, sorted and without repeats, hold the primary gid, the
// groups /etc/group lists the user in (policy Merge only; not the group
// named like the user, which containerd skips; for a bundle's own user its
// existing additionalGids too), supplementalGroups and fsGroup.
//
// runAsNonRoot is checked against the uid that will actually run. The
// kubelet refuses any image user given by name, because it cannot see the
// image's /etc/passwd; here the name is resolved, so only a name that does
// not resolve is refused.
//
// rootfs must be absolute; "" means the spec's root.path. /etc/passwd and
// /etc/group are read without following any link out of rootfs. A missing
// file counts as empty, as in containerd.
func WithUser(rootfs string, u UserIntent) Option {
	return func(s *specs.Spec) error {
		strict, err := u.validate()
		if err != nil {
			return err
		}
		root := rootfs
		if root == "" && s.Root != nil {
			root = s.Root.Path
		}
		if !filepath.IsAbs(root) {
			return fmt.Errorf("resolving the container user needs the absolute path of the rootfs, got %q", root)
		}
		db := &userDB{rootfs: root, dir: -1}
		defer db.close()
		var cur specs.User // the bundle's, left alone until nothing can fail
		if s.Process != nil {
			cur = s.Process.User
		}

		var (
			uid, gid  uint32
			name      string // for /etc/group membership; "" if the uid has no passwd entry
			fromImage string // the image user, when it decided the uid
			bundleOwn bool
		)
		switch {
		case u.RunAsUser != nil:
			uid = uint32(*u.RunAsUser)
			if name, gid, err = db.byUID(uid); err != nil {
				return err
			}
		case u.ImageUser != "":
			fromImage = u.ImageUser
			userPart, err := parseImageUser(u.ImageUser)
			if err != nil {
				return err
			}
			if n, numeric, err := parseID(userPart); numeric {
				if err != nil {
					return fmt.Errorf("image USER %q: %w", u.ImageUser, err)
				}
				uid = n
				if name, gid, err = db.byUID(uid); err != nil {
					return err
				}
			} else {
				ent, found, err := db.byName(userPart)
				if err != nil {
					return err
				}
				if !found {
					if u.RunAsNonRoot != nil && *u.RunAsNonRoot {
						return fmt.Errorf("%w: image has non-numeric user %q, which is not in %s, so it cannot be verified to be non-root; set runAsUser to a non-zero uid: %w",
							ErrRunAsRoot, userPart, db.path("etc/passwd"), ErrUserNotFound)
					}
					return fmt.Errorf("image USER %q: %w: no entry named %q in %s", u.ImageUser, ErrUserNotFound, userPart, db.path("etc/passwd"))
				}
				uid, gid, name = uint32(ent.Uid), uint32(ent.Gid), ent.Name
			}
		default:
			bundleOwn = true
			uid, gid = cur.UID, cur.GID
			if name, _, err = db.byUID(uid); err != nil {
				return err
			}
		}
		if u.RunAsGroup != nil {
			gid = uint32(*u.RunAsGroup)
		}

		gids := []uint32{gid}
		if !strict {
			if name != "" {
				member, err := db.memberships(name)
				if err != nil {
					return err
				}
				gids = append(gids, member...)
			}
			if bundleOwn {
				gids = append(gids, cur.AdditionalGids...)
			}
		}
		return setResolvedUser(s, u, uid, gid, gids, fromImage)
	}
}

// setResolvedUser finishes a user resolution, with or without the image's
// files: supplementalGroups and fsGroup join the groups, runAsNonRoot is
// checked against the resolved uid, and the process gets the result.
func setResolvedUser(s *specs.Spec, u UserIntent, uid, gid uint32, gids []uint32, fromImage string) error {
	for _, g := range u.SupplementalGroups {
		gids = append(gids, uint32(g))
	}
	if u.FSGroup != nil {
		gids = append(gids, uint32(*u.FSGroup))
	}
	slices.Sort(gids)
	gids = slices.Compact(gids)
	if u.RunAsNonRoot != nil && *u.RunAsNonRoot && uid == 0 {
		switch {
		case u.RunAsUser != nil:
			return fmt.Errorf("%w: runAsUser is 0 (root); set runAsUser to a non-zero uid, or drop runAsNonRoot", ErrRunAsRoot)
		case fromImage != "":
			return fmt.Errorf("%w: the image's USER %q is uid 0 (root); set runAsUser to a non-zero uid, or use an image with a non-root USER", ErrRunAsRoot, fromImage)
		default:
			return nonRootError()
		}
	}
	p := ensureProcess(s)
	p.User.UID, p.User.GID, p.User.AdditionalGids = uid, gid, gids
	return nil
}

// CheckRunAsNonRoot refuses a spec whose process would run as uid 0. Only
// the uid counts, as in the kubelet: gid 0 is allowed. The CRI has no
// field for runAsNonRoot, so a runtime that wants it enforced must check
// the final spec itself.
func CheckRunAsNonRoot(s *specs.Spec) error {
	if s == nil || s.Process == nil || s.Process.User.UID == 0 {
		return nonRootError()
	}
	return nil
}

func nonRootError() error {
	return fmt.Errorf("%w: container would run as uid 0 (root); set runAsUser to a non-zero uid, or use an image whose USER is a non-root uid", ErrRunAsRoot)
}

// validate checks ids and the policy before anything is read, and returns
// whether the policy is Strict.
func (u UserIntent) validate() (strict bool, err error) {
	check := func(field string, v int64) error {
		switch {
		case v < 0:
			return fmt.Errorf("%s %d: %w: ids must not be negative", field, v, ErrInvalidID)
		case v > maxID:
			return fmt.Errorf("%s %d: %w: larger than %d, the largest id runc accepts", field, v, ErrInvalidID, maxID)
		}
		return nil
	}
	if u.RunAsUser != nil {
		if err := check("runAsUser", *u.RunAsUser); err != nil {
			return false, err
		}
	}
	if u.RunAsGroup != nil {
		if err := check("runAsGroup", *u.RunAsGroup); err != nil {
			return false, err
		}
	}
	if u.FSGroup != nil {
		if err := check("fsGroup", *u.FSGroup); err != nil {
			return false, err
		}
	}
	for _, g := range u.SupplementalGroups {
		if err := check("supplementalGroups entry", g); err != nil {
			return false, err
		}
	}
	switch u.SupplementalGroupsPolicy {
	case "", "Merge":
		return false, nil
	case "Strict":
		return true, nil
	}
	msg := fmt.Sprintf("supplementalGroupsPolicy %q: must be Merge or Strict", u.SupplementalGroupsPolicy)
	if sug := Suggest(u.SupplementalGroupsPolicy, []string{"Merge", "Strict"}); sug != "" {
		msg += "; did you mean " + sug + "?"
	}
	return false, errors.New(msg)
}

// parseImageUser returns the user part of an image USER. The group part is
// checked for shape only: the kubelet never passes it on (see WithUser).
func parseImageUser(s string) (string, error) {
	userPart, groupPart, hasGroup := strings.Cut(s, ":")
	switch {
	case userPart == "":
		return "", fmt.Errorf("image USER %q: the user part is empty", s)
	case hasGroup && groupPart == "":
		return "", fmt.Errorf("image USER %q: the group after ':' is empty", s)
	case strings.Contains(groupPart, ":"):
		return "", fmt.Errorf("image USER %q: want user, uid, user:group or uid:gid", s)
	}
	return userPart, nil
}

// parseID reads s as a numeric id the way containerd does (strconv.Atoi).
// numeric is false for names; err is set for numbers out of range.
func parseID(s string) (id uint32, numeric bool, err error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, true, fmt.Errorf("%w: %s is out of range", ErrInvalidID, s)
		}
		return 0, false, nil
	}
	if n < 0 || n > maxID {
		return 0, true, fmt.Errorf("%w: %d is outside 0-%d", ErrInvalidID, n, maxID)
	}
	return uint32(n), true, nil
}

// userDB reads the image's passwd and group files at most once each.
type userDB struct {
	rootfs     string
	dir        int // O_PATH handle on rootfs once opened, else -1
	users      []user.User
	groups     []user.Group
	haveUsers  bool
	haveGroups bool
}

func (db *userDB) path(rel string) string { return filepath.Join(db.rootfs, rel) }

func (db *userDB) close() {
	if db.dir >= 0 {
		unix.Close(db.dir)
		db.dir = -1
	}
}

// read returns the body of rel, or nil for a missing file. A missing or
// unreadable rootfs is an error, not an empty one.
func (db *userDB) read(rel string) ([]byte, error) {
	if db.dir < 0 {
		dir, err := unix.Open(db.rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("container rootfs: %w", &fs.PathError{Op: "open", Path: db.rootfs, Err: err})
		}
		db.dir = dir
	}
	body, err := readRootfsFile(db.dir, db.rootfs, rel, maxUserFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return body, err
}

func (db *userDB) loadUsers() error {
	if db.haveUsers {
		return nil
	}
	body, err := db.read("etc/passwd")
	if err != nil {
		return err
	}
	db.users, err = user.ParsePasswd(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("parse %s: %w", db.path("etc/passwd"), err)
	}
	db.haveUsers = true
	return nil
}

// byUID returns the name and primary gid of the first passwd entry with
// uid, or "" and 0 when there is none (containerd's fallback).
func (db *userDB) byUID(uid uint32) (string, uint32, error) {
	if err := db.loadUsers(); err != nil {
		return "", 0, err
	}
	for _, u := range db.users {
		if u.Uid == int(uid) {
			if u.Gid < 0 || u.Gid > maxID {
				return "", 0, fmt.Errorf("%s: user %q has gid %d: %w", db.path("etc/passwd"), u.Name, u.Gid, ErrInvalidID)
			}
			return u.Name, uint32(u.Gid), nil
		}
	}
	return "", 0, nil
}

func (db *userDB) byName(name string) (user.User, bool, error) {
	if err := db.loadUsers(); err != nil {
		return user.User{}, false, err
	}
	for _, u := range db.users {
		if u.Name == name {
			if u.Uid < 0 || u.Uid > maxID || u.Gid < 0 || u.Gid > maxID {
				return user.User{}, false, fmt.Errorf("%s: user %q has uid %d gid %d: %w", db.path("etc/passwd"), name, u.Uid, u.Gid, ErrInvalidID)
			}
			return u, true, nil
		}
	}
	return user.User{}, false, nil
}

// memberships returns the gids of the groups that list name as a member,
// except a group named name itself: containerd's WithAdditionalGIDs wants
// supplementary groups only and skips it even when it lists the user
// (pkg/oci/spec_opts.go; oci/spec_opts.go before 2.0).
func (db *userDB) memberships(name string) ([]uint32, error) {
	if !db.haveGroups {
		body, err := db.read("etc/group")
		if err != nil {
			return nil, err
		}
		if db.groups, err = user.ParseGroup(bytes.NewReader(body)); err != nil {
			return nil, fmt.Errorf("parse %s: %w", db.path("etc/group"), err)
		}
		db.haveGroups = true
	}
	var out []uint32
	for _, g := range db.groups {
		if g.Gid >= 0 && g.Gid <= maxID && g.Name != name && slices.Contains(g.List, name) {
			out = append(out, uint32(g.Gid))
		}
	}
	return out, nil
}

// readRootfsFile reads rel below rootfs (dir is an O_PATH handle on it),
// resolving every symlink as if rootfs were "/": the rootfs belongs to the
// image, and a link such as etc/passwd -> /etc/shadow must not make the
// runtime read the host's files. A missing file gives an error matching
// fs.ErrNotExist.
func readRootfsFile(dir int, rootfs, rel string, max int64) ([]byte, error) {
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
