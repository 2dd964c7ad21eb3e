package bundle

import (
	"bytes"
	"encoding/json"
	"strings"
)

// merge writes orig with the changes from base to cur, where orig is the
// file, base is what the typed decode saw of it (encoded) and cur is the
// typed value now (encoded). It is a three-way merge on the JSON itself:
// wherever base and cur agree, orig's bytes win (compacted), which is what
// keeps unknown fields and original spellings; only the objects and arrays
// on the way to a change are taken apart, so an unchanged subtree costs a
// byte comparison. orig is a document checkKeys accepted (valid, no
// duplicate keys); base and cur are encoding/json's output.
func merge(buf *bytes.Buffer, orig, base, cur []byte) error {
	if bytes.Equal(base, cur) {
		return json.Compact(buf, orig)
	}
	switch kind(cur) {
	case '{':
		if kind(orig) != '{' || kind(base) != '{' {
			break
		}
		return mergeObject(buf, members(orig), members(base), members(cur))
	case '[':
		if kind(orig) != '[' || kind(base) != '[' {
			break
		}
		o, b, c := elements(orig), elements(base), elements(cur)
		// Element-wise only when nothing was added or removed; otherwise
		// positions no longer correspond and the new list wins.
		if len(o) != len(b) || len(b) != len(c) {
			break
		}
		buf.WriteByte('[')
		for i := range c {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := merge(buf, o[i], b[i], c[i]); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	}
	buf.Write(cur)
	return nil
}

// mergeObject keeps orig's keys in orig's order (a key base had and cur
// dropped goes), merging those that base and cur both have, then adds
// cur's keys that orig lacks.
func mergeObject(buf *bytes.Buffer, orig, base, cur []member) error {
	oi, bi, ci := indexMembers(orig), indexMembers(base), indexMembers(cur)
	buf.WriteByte('{')
	n := 0
	put := func(m member) {
		if n > 0 {
			buf.WriteByte(',')
		}
		n++
		buf.Write(m.rawKey)
		buf.WriteByte(':')
	}
	for _, o := range orig {
		b, inBase := bi.find(base, o.key)
		c, inCur := ci.find(cur, o.key)
		switch {
		case inBase && !inCur:
			continue
		case inBase && inCur:
			put(o)
			if err := merge(buf, o.value, b.value, c.value); err != nil {
				return err
			}
		case inCur:
			// A key T knows whose value the typed decode did not keep
			// (a zero value it omits): cur's value is the one checked.
			put(o)
			buf.Write(c.value)
		default:
			put(o)
			if err := json.Compact(buf, o.value); err != nil {
				return err
			}
		}
	}
	for _, c := range cur {
		if _, inOrig := oi.find(orig, c.key); !inOrig {
			put(c)
			buf.Write(c.value)
		}
	}
	buf.WriteByte('}')
	return nil
}

// member is one key of an object: decoded, as written, and its value.
type member struct {
	key, rawKey, value []byte
}

// memberIndex finds a member by key: a scan for the objects of a
// config.json, a map for a large one.
type memberIndex map[string]int

func indexMembers(ms []member) memberIndex {
	if len(ms) < manyKeys {
		return nil
	}
	m := make(memberIndex, len(ms))
	for i, x := range ms {
		m[string(x.key)] = i
	}
	return m
}

func (ix memberIndex) find(ms []member, key []byte) (member, bool) {
	if ix != nil {
		i, ok := ix[string(key)]
		if !ok {
			return member{}, false
		}
		return ms[i], true
	}
	for _, m := range ms {
		if bytes.Equal(m.key, key) {
			return m, true
		}
	}
	return member{}, false
}

// kind is the first byte of a JSON value.
func kind(v []byte) byte {
	w := keyWalker{raw: v}
	w.space()
	if w.i == len(v) {
		return 0
	}
	return v[w.i]
}

// members splits a valid JSON object into its members.
func members(obj []byte) []member {
	w := &keyWalker{raw: obj}
	w.next() // '{'
	var out []member
	w.space()
	if w.raw[w.i] == '}' {
		return out
	}
	for {
		w.next() // '"'
		start := w.i - 1
		key, _ := w.key()
		m := member{key: key, rawKey: obj[start:w.i]}
		w.next() // ':'
		m.value = w.skipValue()
		out = append(out, m)
		if w.next() == '}' {
			return out
		}
	}
}

// elements splits a valid JSON array into its elements.
func elements(arr []byte) [][]byte {
	w := &keyWalker{raw: arr}
	w.next() // '['
	var out [][]byte
	w.space()
	if w.raw[w.i] == ']' {
		return out
	}
	for {
		out = append(out, w.skipValue())
		if w.next() == ']' {
			return out
		}
	}
}

// skipValue moves past one value and returns its bytes. Objects and
// arrays are matched bracket by bracket in one tight loop, strings jumped
// quote to quote: the merge skips the whole seccomp profile a hardening
// adds, once per level above it.
func (w *keyWalker) skipValue() []byte {
	w.space()
	start := w.i
	switch w.raw[w.i] {
	case '"':
		w.i++
		w.skipString()
		return w.raw[start:w.i]
	case '{', '[':
	default: // a number, true, false or null
		for w.i < len(w.raw) && strings.IndexByte(",:}] \t\r\n", w.raw[w.i]) < 0 {
			w.i++
		}
		return w.raw[start:w.i]
	}
	depth := 0
	for {
		c := w.raw[w.i]
		w.i++
		switch c {
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				return w.raw[start:w.i]
			}
		case '"':
			w.skipString()
		}
	}
}
