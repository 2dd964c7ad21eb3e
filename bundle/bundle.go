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
	"syscall"
	"unicode/utf8"
)

// MaxDocumentSize bounds what we read. containerd's largest configs are a
// few hundred KiB; anything near this is hostile or broken.
const MaxDocumentSize = 16 << 20

// Document is one JSON file decoded twice: into T, which options edit, and
// into a generic tree, which keeps what T does not know.
type Document[T any] struct {
	Path  string
	Value *T

	raw  []byte
	tree any // the file as generic JSON, numbers as json.Number
	base any // Value as first decoded, re-encoded generically
	mode os.FileMode
	uid  int
	gid  int
}

// Load reads path. A symlink, a non-regular file, an oversized file,
// invalid UTF-8 or a JSON value other than an object are refused: secrun
// must never follow a link planted in a bundle, nor rewrite what it cannot
// read back exactly.
func Load[T any](path string) (*Document[T], error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s is a symlink; secrun refuses to follow links in a bundle, put the file itself there", path)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
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
	tree, err := decodeTree(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, ok := tree.(map[string]any); !ok {
		return nil, errors.New("the document must be a JSON object")
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("does not match the OCI schema: %w", err)
	}
	base, err := toTree(&v)
	if err != nil {
		return nil, err
	}
	return &Document[T]{Value: &v, raw: raw, tree: tree, base: base, uid: -1, gid: -1}, nil
}

// Raw is the document's bytes as read.
func (d *Document[T]) Raw() []byte { return d.raw }

// Changed reports whether Value differs from what was read.
func (d *Document[T]) Changed() (bool, error) {
	cur, err := toTree(d.Value)
	if err != nil {
		return false, err
	}
	return !reflect.DeepEqual(cur, d.base), nil
}

// Marshal returns the document with Value's changes merged into the
// original tree. A key that Value did not change keeps the original's exact
// value, including fields T has no place for; a key Value removed goes.
func (d *Document[T]) Marshal() ([]byte, error) {
	cur, err := toTree(d.Value)
	if err != nil {
		return nil, err
	}
	return d.marshalTree(cur)
}

func (d *Document[T]) marshalTree(cur any) ([]byte, error) {
	merged := merge(d.tree, d.base, cur)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// runc and containerd write paths with '<' or '&' verbatim; so do we.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(merged); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// Save writes the merged document back atomically (temporary file in the
// same directory, fsync, rename, fsync of the directory) with the original
// mode and owner. Nothing is written when Value is unchanged.
func (d *Document[T]) Save() (bool, error) {
	// One encoding of Value serves both the change test and the merge:
	// this runs on every container start.
	cur, err := toTree(d.Value)
	if err != nil {
		return false, err
	}
	if reflect.DeepEqual(cur, d.base) {
		return false, nil
	}
	out, err := d.marshalTree(cur)
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
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".secrun-*")
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

func decodeTree(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	return v, nil
}

func toTree(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return decodeTree(b)
}

// merge is a three-way merge: orig is the file, base is what the typed
// decode saw of it, cur is the typed value now. Wherever base and cur agree
// orig wins, which is what keeps unknown fields and original spellings.
func merge(orig, base, cur any) any {
	if reflect.DeepEqual(base, cur) {
		return orig
	}
	switch c := cur.(type) {
	case map[string]any:
		o, ok1 := orig.(map[string]any)
		b, ok2 := base.(map[string]any)
		if !ok1 || !ok2 {
			return cur
		}
		out := make(map[string]any, len(o)+len(c))
		for k, v := range o {
			out[k] = v
		}
		for k, cv := range c {
			ov, inOrig := o[k]
			bv, inBase := b[k]
			if inOrig && inBase {
				out[k] = merge(ov, bv, cv)
			} else {
				out[k] = cv
			}
		}
		for k := range b {
			if _, still := c[k]; !still {
				delete(out, k)
			}
		}
		return out
	case []any:
		o, ok1 := orig.([]any)
		b, ok2 := base.([]any)
		// Element-wise only when nothing was added or removed; otherwise
		// positions no longer correspond and the new list wins.
		if !ok1 || !ok2 || len(o) != len(b) || len(b) != len(c) {
			return cur
		}
		out := make([]any, len(c))
		for i := range c {
			out[i] = merge(o[i], b[i], c[i])
		}
		return out
	default:
		return cur
	}
}
