// Package runstate is secrun's own record of each container: which
// delegate runtime created it. Lifecycle commands (state, kill, delete, ...)
// reach that runtime through the record, so a container can always be
// stopped, even after the configuration broke or its runtime: changed.
//
// Records live in $SECRUN_STATE_DIR (default /run/secrun, on tmpfs like
// runc's own /run/runc), one directory per runc --root, one file per
// container id. secrun runs as root and so does everything that may write
// there: directories are created 0700 and refused unless they are real
// directories owned by secrun's user that nobody else can write, files are
// created with O_EXCL and renamed into place, and read without following
// links.
package runstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/secrun/secrun/internal/safefile"
)

// DirEnv overrides DefaultDir, for tests and for nodes that keep /run
// elsewhere.
const DirEnv = "SECRUN_STATE_DIR"

// DefaultDir is where records live.
const DefaultDir = "/run/secrun"

// maxRecordSize bounds a record; a real one is about 200 bytes.
const maxRecordSize = 4096

// Record is what secrun keeps about a container.
type Record struct {
	// Runtime is the absolute path of the delegate that created it.
	Runtime string `json:"runtime"`
	// Policy is the policy that was applied, for admins reading the file.
	Policy  string `json:"policy,omitempty"`
	Root    string `json:"root"`
	ID      string `json:"id"`
	Created string `json:"created"`
}

// validID is runc's rule for container ids (libcontainer's idRegex,
// ^[\w+-\.]+$, where +-\. is the range from '+' to '.', so ',' too),
// without a regexp compiled at every start; an id outside it is one runc
// refuses, so there is nothing to record.
func validID(id string) bool {
	if id == "" || id == "." || id == ".." {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c >= '+' && c <= '.':
		default:
			return false
		}
	}
	return true
}

func dir() string {
	if d := os.Getenv(DirEnv); d != "" {
		return d
	}
	return DefaultDir
}

// rootKey names the directory of one runc --root: containerd's k8s.io and
// moby namespaces use different roots, and ids are unique only within one.
func rootKey(root string) (string, error) {
	if root == "" {
		root = "default"
	} else {
		abs, err := filepath.Abs(root)
		if err != nil {
			return "", err
		}
		root = abs
	}
	// FNV, not SHA-256: crypto/sha256 would add a dozen packages' init to
	// every start. Two roots that hash alike only share a directory: Load
	// checks the root a record names.
	h := fnv.New64a()
	h.Write([]byte(root))
	return strconv.FormatUint(h.Sum64(), 16), nil
}

func path(root, id string) (string, string, error) {
	if !validID(id) {
		return "", "", fmt.Errorf("container id %q is not one runc accepts", id)
	}
	key, err := rootKey(root)
	if err != nil {
		return "", "", err
	}
	d := filepath.Join(dir(), key)
	return d, filepath.Join(d, id+".json"), nil
}

// Save records rec for the container id under root, replacing any record
// of an earlier container with the same id.
func Save(root, id string, rec Record) error {
	d, p, err := path(root, id)
	if err != nil {
		return err
	}
	for _, x := range []string{dir(), d} {
		if err := ensureDir(x); err != nil {
			return err
		}
	}
	rec.Root, rec.ID = root, id
	rec.Created = time.Now().UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp := filepath.Join(d, "."+id+".tmp-"+strconv.Itoa(os.Getpid()))
	os.Remove(tmp) // our own pid's leftover, if any
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("record %s: %w", p, err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("record %s: %w", p, err)
	}
	return nil
}

// Load returns the record of container id under root, or nil and no error
// when there is none.
func Load(root, id string) (*Record, error) {
	d, p, err := path(root, id)
	if err != nil {
		return nil, err
	}
	for _, x := range []string{dir(), d} {
		if err := checkDir(x); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil
			}
			return nil, err
		}
	}
	f, err := safefile.Open(p, os.O_RDONLY, 0, safefile.NoFollow)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := ownedByUs(f, p); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	var rec Record
	if len(b) > maxRecordSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, maxRecordSize)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if rec.Root != root || rec.ID != id {
		return nil, nil // another root's container whose root hashes alike
	}
	if !filepath.IsAbs(rec.Runtime) {
		return nil, fmt.Errorf("%s: runtime %q is not an absolute path", p, rec.Runtime)
	}
	return &rec, nil
}

// Remove deletes the record of container id under root, if any.
func Remove(root, id string) error {
	_, p, err := path(root, id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func ensureDir(d string) error {
	if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("secrun state directory: %w", err)
	}
	return checkDir(d)
}

// checkDir refuses a directory that is a link, or that someone other than
// secrun's user owns or may write: records there steer which binary runs
// as root on kill and delete.
func checkDir(d string) error {
	st, err := os.Lstat(d)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	switch {
	case !st.IsDir():
		return fmt.Errorf("secrun state directory %s is not a directory (a symlink?); remove it, secrun recreates it", d)
	case !ok || int(sys.Uid) != os.Geteuid() || st.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("secrun state directory %s must be owned by uid %d and writable by nobody else; remove it, secrun recreates it", d, os.Geteuid())
	}
	return nil
}

func ownedByUs(f *os.File, p string) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || int(sys.Uid) != os.Geteuid() || st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s must be owned by uid %d and writable by nobody else", p, os.Geteuid())
	}
	return nil
}
