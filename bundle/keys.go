package bundle

import (
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

// decodeChecked decodes raw into a generic tree (numbers as json.Number)
// and refuses, naming the JSON path:
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
// runtime may decode them into one.
func decodeChecked(raw []byte, t reflect.Type) (any, error) {
	// encoding/json's validator first: it allocates nothing, and the walk
	// below, which needs a valid document, is much cheaper than
	// json.Decoder.Token.
	if !json.Valid(raw) {
		if _, err := decodeTree(raw); err != nil {
			if err == errTrailing {
				return nil, err
			}
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		return nil, errors.New("invalid JSON")
	}
	w := &keyWalker{raw: raw}
	return w.value(t)
}

// keyError is a document that decoders would read differently.
type keyError struct{ msg string }

func (e *keyError) Error() string { return e.msg }

func keyErrorf(format string, a ...any) error { return &keyError{fmt.Sprintf(format, a...)} }

// keyWalker reads a document that json.Valid accepted, building the same
// tree as a json.Decoder with UseNumber.
type keyWalker struct {
	raw []byte
	i   int
	// trusted skips the key checks: the document is encoding/json's own
	// output (see toTree).
	trusted bool
	// at is the path to the value being read; its string is only built
	// for an error, since this runs on every container start.
	at []pathElem
}

type pathElem struct {
	key   string
	index int // for an array element; key is "" then
}

func (w *keyWalker) path() string {
	p := "$"
	for _, e := range w.at {
		if e.key == "" {
			p = fmt.Sprintf("%s[%d]", p, e.index)
		} else {
			p = childPath(p, e.key)
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

func (w *keyWalker) value(t reflect.Type) (any, error) {
	switch c := w.next(); c {
	case '{':
		return w.object(t)
	case '[':
		return w.array(t)
	case '"':
		return w.str()
	case 't':
		w.i += 3
		return true, nil
	case 'f':
		w.i += 4
		return false, nil
	case 'n':
		w.i += 3
		return nil, nil
	}
	start := w.i - 1
	for w.i < len(w.raw) && strings.IndexByte("+-.eE0123456789", w.raw[w.i]) >= 0 {
		w.i++
	}
	return json.Number(w.raw[start:w.i]), nil
}

// str reads a string whose opening quote was consumed. A string with an
// escape goes through encoding/json, so that escapes (and lone
// surrogates, which become U+FFFD) read exactly as runc reads them.
func (w *keyWalker) str() (string, error) {
	start, escaped := w.i-1, false
	for w.raw[w.i] != '"' {
		if w.raw[w.i] == '\\' {
			escaped = true
			w.i++
		}
		w.i++
	}
	w.i++
	if !escaped {
		return string(w.raw[start+1 : w.i-1]), nil
	}
	var s string
	err := json.Unmarshal(w.raw[start:w.i], &s)
	return s, err
}

func (w *keyWalker) object(t reflect.Type) (any, error) {
	t = indirect(t)
	var fields *typeFields
	isMap := t != nil && t.Kind() == reflect.Map
	if t != nil && t.Kind() == reflect.Struct {
		fields = fieldsOf(t)
	}
	out := map[string]any{}
	folded := map[string]string{}
	w.space()
	if w.raw[w.i] == '}' {
		w.i++
		return out, nil
	}
	for {
		w.next() // '"'
		key, err := w.str()
		if err != nil {
			return nil, err
		}
		w.next() // ':'
		if _, dup := out[key]; dup {
			return nil, keyErrorf("key %q at %s appears twice (Go's decoder takes the last, others the first); remove one", key, w.path())
		}
		var elem reflect.Type // nil: a value no field describes
		if w.trusted {
			// no checks
		} else if isMap {
			elem = t.Elem()
		} else {
			f := foldKey(key)
			if other, ok := folded[f]; ok {
				return nil, keyErrorf("key %q at %s collides with %q under case folding; remove one", key, w.path(), other)
			}
			folded[f] = key
			if fields != nil {
				if ft, exact := fields.types[key]; exact {
					elem = ft
				} else if name, ok := fields.byFold[f]; ok {
					return nil, keyErrorf("key %q at %s is not spelled like the field %q (runc would read it, crun would not); write %q", key, w.path(), name, name)
				}
			}
		}
		w.at = append(w.at, pathElem{key: key})
		v, err := w.value(elem)
		if err != nil {
			return nil, err
		}
		w.at = w.at[:len(w.at)-1]
		out[key] = v
		if w.next() == '}' {
			return out, nil
		}
	}
}

func (w *keyWalker) array(t reflect.Type) (any, error) {
	t = indirect(t)
	var elem reflect.Type
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		elem = t.Elem()
	}
	out := []any{}
	w.space()
	if w.raw[w.i] == ']' {
		w.i++
		return out, nil
	}
	for i := 0; ; i++ {
		w.at = append(w.at, pathElem{index: i})
		v, err := w.value(elem)
		if err != nil {
			return nil, err
		}
		w.at = w.at[:len(w.at)-1]
		out = append(out, v)
		if w.next() == ']' {
			return out, nil
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
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
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
		b.WriteRune(r)
	}
	return b.String()
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
	tf := &typeFields{byFold: map[string]string{}, types: map[string]reflect.Type{}}
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
		if _, taken := tf.byFold[foldKey(name)]; !taken {
			tf.byFold[foldKey(name)] = name
		}
	}
	for _, et := range embedded {
		collectFields(et, tf, depth+1)
	}
}
