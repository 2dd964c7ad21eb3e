// Package bundle reads and rewrites the JSON documents of an OCI bundle
// (config.json, and the process.json of `runc exec --process`) without
// losing anything: fields our runtime-spec version does not know survive,
// numbers keep their spelling, and a write is atomic, so the file is always
// either the old document or the new one, whole.
package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/secrun/secrun/internal/safefile"
)

// MaxDocumentSize bounds what we read. containerd's largest configs are a
// few hundred KiB; anything near this is hostile or broken.
const MaxDocumentSize = 16 << 20

// Document is one JSON file decoded into T, which options edit. The
// file's bytes are kept: a rewrite merges Value's changes into them, so
// what T does not know survives.
type Document[T any] struct {
	Path  string
	Value *T

	raw  []byte
	base []byte // Value as first decoded, encoded
	mode os.FileMode
	uid  int
	gid  int
}

// Load reads path. A symlink, a FIFO or anything else that is not a
// regular file, an oversized file, invalid UTF-8, a JSON value other than
// an object, or keys that decoders could read differently (see
// decodeChecked) are refused: secrun must never follow a link planted in
// a bundle, never hang on one, nor rewrite what it cannot read back
// exactly.
func Load[T any](path string) (*Document[T], error) {
	f, err := safefile.Open(path, os.O_RDONLY, 0, safefile.NoFollow)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	raw, err := io.ReadAll(io.LimitReader(f, MaxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(raw) > MaxDocumentSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxDocumentSize)
	}
	d, err := Parse[T](raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	d.Path = path
	d.mode = st.Mode().Perm()
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		d.uid, d.gid = int(sys.Uid), int(sys.Gid)
	} else {
		d.uid, d.gid = -1, -1
	}
	return d, nil
}

// Parse decodes a document from memory; Marshal then works, Save needs Load.
func Parse[T any](raw []byte) (*Document[T], error) {
	if !utf8.Valid(raw) {
		return nil, errors.New("not valid UTF-8 JSON")
	}
	if err := checkKeys(raw, reflect.TypeFor[T]()); err != nil {
		return nil, err
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("does not match the OCI schema: %w", err)
	}
	base, err := encodeJSON(&v)
	if err != nil {
		return nil, err
	}
	return &Document[T]{Value: &v, raw: raw, base: base, uid: -1, gid: -1}, nil
}

// Raw is the document's bytes as read.
func (d *Document[T]) Raw() []byte { return d.raw }

// Changed reports whether Value differs from what was read.
func (d *Document[T]) Changed() (bool, error) {
	cur, err := encodeJSON(d.Value)
	if err != nil {
		return false, err
	}
	return !bytes.Equal(cur, d.base), nil
}

// Marshal returns the document with Value's changes merged into the
// original bytes. A key that Value did not change keeps the original's
// exact value, including fields T has no place for; a key Value removed
// goes.
func (d *Document[T]) Marshal() ([]byte, error) {
	cur, err := encodeJSON(d.Value)
	if err != nil {
		return nil, err
	}
	return d.merged(cur)
}

func (d *Document[T]) merged(cur []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(d.raw) + len(cur) - len(d.base) + 64)
	if err := merge(&buf, d.raw, d.base, cur); err != nil {
		return nil, err
	}
	out := buf.Bytes()
	if err := readsAs[T](out, cur); err != nil {
		return nil, err
	}
	return out, nil
}

// encodeJSON is v as encoding/json writes it, with '<', '>' and '&' verbatim
// as runc and containerd write paths.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// readsAs decodes out as runc will, with encoding/json into T, and
// requires the result to be the value the policy checked (whose encoding
// is cur). The merge keeps what T does not know and only that, so this
// holds by construction; it is checked anyway on every write, because the
// day it does not hold, runc would start a container nobody checked.
// Equal values of T encode to equal bytes (encoding/json sorts map keys),
// so this costs one decode and one encode.
func readsAs[T any](out, cur []byte) error {
	var v T
	if err := json.Unmarshal(out, &v); err != nil {
		return fmt.Errorf("the rewritten document does not decode: %w; refusing to write it", err)
	}
	got, err := encodeJSON(&v)
	if err != nil {
		return err
	}
	if bytes.Equal(got, cur) {
		return nil
	}
	gotTree, err := decodeTree(got)
	if err != nil {
		return err
	}
	curTree, err := decodeTree(cur)
	if err != nil {
		return err
	}
	p := firstDiff(gotTree, curTree, "$")
	if p == "" {
		p = "$"
	}
	return fmt.Errorf("the rewritten document would read differently from what the policy checked, at %s; refusing to write it", p)
}

// firstDiff is the JSON path of the first difference of two generic trees,
// or "" when they are equal.
func firstDiff(a, b any, path string) string {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			return path
		}
		keys := make([]string, 0, len(av)+len(bv))
		for k := range av {
			keys = append(keys, k)
		}
		for k := range bv {
			if _, ok := av[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			x, okA := av[k]
			y, okB := bv[k]
			if okA != okB {
				return childPath(path, k)
			}
			if p := firstDiff(x, y, childPath(path, k)); p != "" {
				return p
			}
		}
		return ""
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			return path
		}
		for i := range av {
			if p := firstDiff(av[i], bv[i], fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
		return ""
	}
	if !reflect.DeepEqual(a, b) {
		return path
	}
	return ""
}

// Save writes the merged document back atomically (temporary file in the
// same directory, fsync, rename, fsync of the directory) with the original
// mode and owner. Nothing is written when Value is unchanged.
//
// Temporary files of earlier writers that died before their rename (a
// create killed mid-rewrite) are removed first; see RemoveStaleTemps.
func (d *Document[T]) Save() (bool, error) {
	RemoveStaleTemps(d.Path)
	// One encoding of Value serves both the change test and the merge:
	// this runs on every container start.
	cur, err := encodeJSON(d.Value)
	if err != nil {
		return false, err
	}
	if bytes.Equal(cur, d.base) {
		return false, nil
	}
	out, err := d.merged(cur)
	if err != nil {
		return false, err
	}
	if err := WriteAtomic(d.Path, out, d.mode, d.uid, d.gid); err != nil {
		return false, err
	}
	return true, nil
}

// WriteAtomic replaces path with data so that a reader, or a crash, sees
// the old file or the new one and never a part. uid or gid of -1 leaves
// the owner as created.
func WriteAtomic(path string, data []byte, mode os.FileMode, uid, gid int) (err error) {
	dir := filepath.Dir(path)
	// The writer's pid in the name tells a later create whether the file is
	// a live writer's or a leftover (RemoveStaleTemps). CreateTemp opens
	// with O_EXCL and a random suffix, so a name planted in advance fails
	// the open instead of being written through.
	tmp, err := os.CreateTemp(dir, tempPrefix(path)+strconv.Itoa(os.Getpid())+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if uid >= 0 || gid >= 0 {
		if err = tmp.Chown(uid, gid); err != nil {
			return fmt.Errorf("write %s: keep owner: %w", path, err)
		}
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if df, derr := os.Open(dir); derr == nil {
		// The rename is durable only once the directory is; a failure here
		// is not worth failing a create that has already succeeded.
		_ = df.Sync()
		df.Close()
	}
	return nil
}

var errTrailing = errors.New("trailing data after the JSON object")

func decodeTree(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errTrailing
	}
	return v, nil
}

// tempPrefix is how every temporary file of path's writers begins.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".secrun-" }

// RemoveStaleTemps removes the temporary files that writers of path left
// when they were killed between creating and renaming them. A file is
// stale when the pid in its name is no process's; one whose pid is alive
// may be another create's write in progress and is kept (a recycled pid
// keeps a leftover for one more round, which is the safe side). Names
// from before the pid was part of them end in CreateTemp's random
// number, which is read as a pid too: above pid_max it is no process's.
// Failures are ignored: cleaning up is not worth failing a create.
func RemoveStaleTemps(path string) {
	dir := filepath.Dir(path)
	prefix := tempPrefix(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || e.IsDir() {
			continue
		}
		digits, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(digits)
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		// unlink(2) removes a link, never what it points to.
		_ = syscall.Unlink(filepath.Join(dir, e.Name()))
	}
}

// processAlive reports whether pid names a process. EPERM means it exists
// but is not ours to signal.
func processAlive(pid int) bool {
	if pid > 1<<22 { // PID_MAX_LIMIT: no such process can exist
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
