package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// One view of the document. Go's encoding/json, which runc decodes
// config.json with, matches an object key to a struct field ignoring case,
// with Unicode simple folding (so "ſ", U+017F, reads as "s" and the Kelvin
// sign U+212A as "k"), and for a key given twice the last one wins (a
// struct value given twice is even merged). crun's decoder matches keys
// exactly. A document with "process" and "Process", or "Process" alone, is
// therefore read differently by the two runtimes, and differently by runc
// than by the generic tree secrun merges its rewrite into. decodeChecked
// refuses every such document while it builds that tree, so that what the
// policy checks is what every runtime reads.

// checkKeys walks raw and refuses, naming the JSON path:
//   - a key given twice in one object;
//   - two keys of one object that fold to the same name, except in a JSON
//     object that the typed target decodes into a Go map: a map's keys are
//     data that every decoder matches exactly (annotation keys, sysctl
//     names), so "a" and "A" there are two entries to everyone;
//   - a key that folds to a field name of t at that point of the document
//     without being spelled exactly like it: runc reads it, crun ignores it.
//
// Keys that match no field (fields of a newer runtime-spec) pass, and
// their objects are checked as if they were structs, since a newer
// runtime may decode them into one. The walk builds nothing: it runs on
// every container start, and the rewrite merges into the raw bytes.
func checkKeys(raw []byte, t reflect.Type) error {
	// encoding/json's validator first: it allocates nothing, and the walk
	// below, which needs a valid document, is much cheaper than
	// json.Decoder.Token.
	if !json.Valid(raw) {
		if _, err := decodeTree(raw); err != nil {
			if err == errTrailing {
				return err
			}
			return fmt.Errorf("invalid JSON: %w", err)
		}
		return errors.New("invalid JSON")
	}
	w := &keyWalker{raw: raw}
	if w.next() != '{' {
		return errors.New("the document must be a JSON object")
	}
	return w.object(t)
}

// keyError is a document that decoders would read differently.
type keyError struct{ msg string }

func (e *keyError) Error() string { return e.msg }

func keyErrorf(format string, a ...any) error { return &keyError{fmt.Sprintf(format, a...)} }

// keyWalker reads a document that json.Valid accepted.
type keyWalker struct {
	raw []byte
	i   int
	// at is the path to the value being read; its string is only built
	// for an error, since this runs on every container start.
	at []pathElem
	// keys holds the keys of the objects being read, innermost last, and
	// folds their folded spellings: stacks, so that a few allocations
	// serve the whole walk.
	keys  []walkedKey
	folds []byte
}

// walkedKey is one key of an object: as decoded, and where its folded
// spelling (encoding/json's field-name match) lies in keyWalker.folds.
type walkedKey struct {
	key        []byte
	foldStart  int
	foldLength int
}

// manyKeys is where an object's duplicate test moves from a scan of its
// keys to a map, so that a hostile object of 100,000 keys costs linear
// time.
const manyKeys = 32

type pathElem struct {
	key   []byte
	index int // for an array element; key is nil then
}

func (w *keyWalker) path() string {
	p := "$"
	for _, e := range w.at {
		if e.key == nil {
			p = fmt.Sprintf("%s[%d]", p, e.index)
		} else {
			p = childPath(p, string(e.key))
		}
	}
	return p
}

func (w *keyWalker) space() {
	for w.i < len(w.raw) {
		switch w.raw[w.i] {
		case ' ', '\t', '\n', '\r':
			w.i++
		default:
			return
		}
	}
}

// next skips white space and returns the byte there, consuming it.
func (w *keyWalker) next() byte {
	w.space()
	c := w.raw[w.i]
	w.i++
	return c
}

func (w *keyWalker) value(t reflect.Type) error {
	switch c := w.next(); c {
	case '{':
		return w.object(t)
	case '[':
		return w.array(t)
	case '"':
		w.skipString()
		return nil
	case 't', 'n':
		w.i += 3
		return nil
	case 'f':
		w.i += 4
		return nil
	}
	for w.i < len(w.raw) && strings.IndexByte("+-.eE0123456789", w.raw[w.i]) >= 0 {
		w.i++
	}
	return nil
}

// skipString moves past a string whose opening quote was consumed and
// reports whether it holds an escape. It jumps from quote to quote
// (bytes.IndexByte is vectorised): a hardened config.json carries a
// seccomp profile of some 20 KB, mostly strings, that the merge skips.
func (w *keyWalker) skipString() (escaped bool) {
	for {
		j := bytes.IndexByte(w.raw[w.i:], '"')
		seg := w.raw[w.i : w.i+j]
		k := bytes.IndexByte(seg, '\\')
		if k < 0 {
			w.i += j + 1
			return escaped
		}
		// Past the escaped byte: an escaped quote does not end the string.
		escaped = true
		w.i += k + 2
	}
}

// key reads an object key whose opening quote was consumed. A key with
// an escape goes through encoding/json, so that escapes (and lone
// surrogates, which become U+FFFD) read exactly as runc reads them; any
// other is the document's own bytes.
func (w *keyWalker) key() ([]byte, error) {
	start := w.i - 1
	if !w.skipString() {
		return w.raw[start+1 : w.i-1], nil
	}
	var s string
	err := json.Unmarshal(w.raw[start:w.i], &s)
	return []byte(s), err
}

func (w *keyWalker) fold(k walkedKey) []byte { return w.folds[k.foldStart : k.foldStart+k.foldLength] }

func (w *keyWalker) object(t reflect.Type) error {
	t = indirect(t)
	var fields *typeFields
	isMap := t != nil && t.Kind() == reflect.Map
	if t != nil && t.Kind() == reflect.Struct {
		fields = fieldsOf(t)
	}
	w.space()
	if w.raw[w.i] == '}' {
		w.i++
		return nil
	}
	first, firstFold := len(w.keys), len(w.folds)
	defer func() { w.keys, w.folds = w.keys[:first], w.folds[:firstFold] }()
	var seen map[string]bool // the object's keys, once there are many
	var folded map[string]string
	for {
		w.next() // '"'
		key, err := w.key()
		if err != nil {
			return err
		}
		w.next() // ':'
		k := walkedKey{key: key, foldStart: len(w.folds)}
		if !isMap {
			w.folds = appendFold(w.folds, key)
			k.foldLength = len(w.folds) - k.foldStart
		}
		f := w.fold(k)
		own := w.keys[first:]
		if seen == nil && len(own) >= manyKeys {
			// A Go map's keys are never case-folded (annotations are
			// the large objects), so only a struct's keep the folds.
			seen = make(map[string]bool, 2*len(own))
			if !isMap {
				folded = make(map[string]string, 2*len(own))
			}
			for _, o := range own {
				seen[string(o.key)] = true
				if !isMap {
					folded[string(w.fold(o))] = string(o.key)
				}
			}
		}
		dup, other, collides := false, "", false
		if seen != nil {
			dup = seen[string(key)]
			if !isMap {
				other, collides = folded[string(f)]
			}
		} else {
			for _, o := range own {
				dup = dup || bytes.Equal(o.key, key)
				if !collides && !isMap && bytes.Equal(w.fold(o), f) {
					other, collides = string(o.key), true
				}
			}
		}
		if dup {
			return keyErrorf("key %q at %s appears twice (Go's decoder takes the last, others the first); remove one", key, w.path())
		}
		var elem reflect.Type // nil: a value no field describes
		if isMap {
			elem = t.Elem()
		} else {
			if collides {
				return keyErrorf("key %q at %s collides with %q under case folding; remove one", key, w.path(), other)
			}
			if fields != nil {
				if ft, exact := fields.types[string(key)]; exact {
					elem = ft
				} else if name, ok := fields.byFold[string(f)]; ok {
					return keyErrorf("key %q at %s is not spelled like the field %q (runc would read it, crun would not); write %q", key, w.path(), name, name)
				}
			}
		}
		if seen != nil {
			seen[string(key)] = true
			if !isMap {
				folded[string(f)] = string(key)
			}
		}
		w.keys = append(w.keys, k)
		w.at = append(w.at, pathElem{key: key})
		if err := w.value(elem); err != nil {
			return err
		}
		w.at = w.at[:len(w.at)-1]
		if w.next() == '}' {
			return nil
		}
	}
}

func (w *keyWalker) array(t reflect.Type) error {
	t = indirect(t)
	var elem reflect.Type
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		elem = t.Elem()
	}
	w.space()
	if w.raw[w.i] == ']' {
		w.i++
		return nil
	}
	for i := 0; ; i++ {
		w.at = append(w.at, pathElem{index: i})
		if err := w.value(elem); err != nil {
			return err
		}
		w.at = w.at[:len(w.at)-1]
		if w.next() == ']' {
			return nil
		}
	}
}

func indirect(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && t.Kind() == reflect.Interface {
		return nil
	}
	return t
}

func childPath(path, key string) string {
	if isIdent(key) {
		return path + "." + key
	}
	return fmt.Sprintf("%s[%q]", path, key)
}

// isIdent: a key a path can name with a dot.
func isIdent(s string) bool {
	for i, c := range []byte(s) {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return s != ""
}

// foldKey folds a key the way encoding/json does when it matches a key to
// a field (src/encoding/json/fold.go, appendFoldedName): ASCII letters to
// upper case, any other rune to the smallest rune of its simple folding
// orbit. Two keys fold alike exactly when bytes.EqualFold says so, which is
// also what the Go 1.19 decoder of runc 1.1 used for field names.
func foldKey(s string) string { return string(appendFold(nil, []byte(s))) }

func appendFold(dst, key []byte) []byte {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return appendFoldRunes(dst, key)
		}
	}
	for _, c := range key {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func appendFoldRunes(dst, key []byte) []byte {
	for _, r := range string(key) {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			dst = append(dst, byte(r))
			continue
		}
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		dst = utf8.AppendRune(dst, r)
	}
	return dst
}

type typeFields struct {
	byFold map[string]string       // folded JSON name -> JSON name
	types  map[string]reflect.Type // JSON name -> field type
}

var fieldCache sync.Map // reflect.Type -> *typeFields

func fieldsOf(t reflect.Type) *typeFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*typeFields)
	}
	n := t.NumField()
	tf := &typeFields{byFold: make(map[string]string, n), types: make(map[string]reflect.Type, n)}
	collectFields(t, tf, 0)
	fieldCache.Store(t, tf)
	return tf
}

// collectFields lists the JSON names encoding/json decodes into a struct,
// promoted fields of untagged embedded structs included; a shallower field
// wins over a promoted one of the same name, as in encoding/json's
// typeFields.
func collectFields(t reflect.Type, tf *typeFields, depth int) {
	if depth > 8 {
		return
	}
	var embedded []reflect.Type
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if sf.Anonymous && name == "" {
			if et := indirect(sf.Type); et != nil && et.Kind() == reflect.Struct {
				embedded = append(embedded, et)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		if _, taken := tf.types[name]; taken {
			continue
		}
		tf.types[name] = sf.Type
		if f := foldKey(name); tf.byFold[f] == "" {
			tf.byFold[f] = name
		}
	}
	for _, et := range embedded {
		collectFields(et, tf, depth+1)
	}
}
