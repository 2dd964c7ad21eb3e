package bundle

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A config as a newer containerd might write it: fields this runtime-spec
// version does not know, at the top level and nested, and numbers spelt
// in ways a round trip through float64 would change.
const futureConfig = `{
  "ociVersion": "1.9.0",
  "process": {
    "user": {"uid": 0, "gid": 0, "umask": 18},
    "args": ["/bin/sh"],
    "cwd": "/",
    "capabilities": {"bounding": ["CAP_KILL", "CAP_SYS_ADMIN"], "effective": ["CAP_KILL", "CAP_SYS_ADMIN"]},
    "futureProcessField": {"x": [1, 2, 3]},
    "ioPriority": {"class": "IOPRIO_CLASS_RT", "priority": 1}
  },
  "root": {"path": "rootfs"},
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "network", "futureNsField": true}],
    "futureLinuxField": 12345678901234567890,
    "resources": {"memory": {"limit": 9007199254740993}}
  },
  "annotations": {"a": "<&>"},
  "futureTopLevel": {"nested": {"deep": "kept"}}
}`

func writeFile(t *testing.T, dir, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnknownFieldsSurviveRewrite(t *testing.T) {
	p := writeFile(t, t.TempDir(), futureConfig, 0o640)
	d, err := Load[specs.Spec](p)
	if err != nil {
		t.Fatal(err)
	}
	d.Value.Process.Capabilities.Bounding = []string{"CAP_KILL"}
	d.Value.Process.NoNewPrivileges = true
	d.Value.Root.Readonly = true
	changed, err := d.Save()
	if err != nil || !changed {
		t.Fatalf("Save = %v, %v", changed, err)
	}
	out, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"futureTopLevel":{"nested":{"deep":"kept"}}`,
		`"futureProcessField":{"x":[1,2,3]}`,
		`"futureLinuxField":12345678901234567890`,
		`"limit":9007199254740993`,
		`"futureNsField":true`,
		`"a":"<&>"`,
		`"ociVersion":"1.9.0"`,
		`"noNewPrivileges":true`,
		`"readonly":true`,
		`"bounding":["CAP_KILL"]`,
		`"effective":["CAP_KILL","CAP_SYS_ADMIN"]`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rewritten config lacks %s:\n%s", want, out)
		}
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", st.Mode().Perm())
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".config.json.secrun-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestRemovedFieldGoes(t *testing.T) {
	p := writeFile(t, t.TempDir(), `{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},"apparmorProfile":"x","extra":1},"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ERRNO","x":1}}}`, 0o600)
	d, err := Load[specs.Spec](p)
	if err != nil {
		t.Fatal(err)
	}
	d.Value.Process.ApparmorProfile = ""
	d.Value.Linux.Seccomp = nil
	out, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	proc := m["process"].(map[string]any)
	if _, ok := proc["apparmorProfile"]; ok {
		t.Errorf("apparmorProfile kept: %s", out)
	}
	if proc["extra"] != float64(1) {
		t.Errorf("unknown process.extra lost: %s", out)
	}
	if _, ok := m["linux"].(map[string]any)["seccomp"]; ok {
		t.Errorf("seccomp kept: %s", out)
	}
}

func TestUnchangedIsNotWritten(t *testing.T) {
	p := writeFile(t, t.TempDir(), futureConfig, 0o600)
	before, _ := os.Stat(p)
	d, err := Load[specs.Spec](p)
	if err != nil {
		t.Fatal(err)
	}
	changed, err := d.Save()
	if err != nil || changed {
		t.Fatalf("Save of an unchanged document = %v, %v", changed, err)
	}
	after, _ := os.Stat(p)
	raw, _ := os.ReadFile(p)
	if !os.SameFile(before, after) || !bytes.Equal(raw, []byte(futureConfig)) {
		t.Error("an unchanged document was rewritten")
	}
}

func TestLoadRefusesBadInput(t *testing.T) {
	cases := map[string]struct {
		body string
		want string
	}{
		"truncated":   {`{"ociVersion": "1.0.2", "process": {`, "invalid JSON"},
		"array":       {`[1,2,3]`, "must be a JSON object"},
		"string":      {`"config"`, "must be a JSON object"},
		"non-utf8":    {"{\"a\":\"\xff\xfe\"}", "UTF-8"},
		"trailing":    {`{"a":1} {"b":2}`, "trailing data"},
		"wrong types": {`{"process": {"user": {"uid": "root"}}}`, "OCI schema"},
		"empty":       {``, "invalid JSON"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), tc.body, 0o600)
			_, err := Load[specs.Spec](p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadRefusesSymlinkAndHuge(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere.json")
	os.WriteFile(target, []byte(`{}`), 0o600)
	link := filepath.Join(dir, "config.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Load[specs.Spec](link); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("symlink: err = %v", err)
	}
	dir2 := t.TempDir()
	huge := `{"a":"` + strings.Repeat("x", MaxDocumentSize) + `"}`
	p := writeFile(t, dir2, huge, 0o600)
	if _, err := Load[specs.Spec](p); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge: err = %v", err)
	}
	if _, err := Load[specs.Spec](filepath.Join(t.TempDir(), "config.json")); err == nil {
		t.Error("missing file loaded")
	}
}

func TestWriteAtomicFailureLeavesOriginal(t *testing.T) {
	if os.Geteuid() == 0 {
		// root writes into read-only directories; use a missing directory.
		err := WriteAtomic(filepath.Join(t.TempDir(), "missing", "config.json"), []byte("{}"), 0o600, -1, -1)
		if err == nil {
			t.Fatal("write into a missing directory succeeded")
		}
		return
	}
	dir := t.TempDir()
	p := writeFile(t, dir, `{"a":1}`, 0o600)
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	if err := WriteAtomic(p, []byte(`{"a":2}`), 0o600, -1, -1); err == nil {
		t.Fatal("write into a read-only directory succeeded")
	}
	if b, _ := os.ReadFile(p); string(b) != `{"a":1}` {
		t.Errorf("original changed: %s", b)
	}
}

// FuzzRewrite asserts the property secrun rests on: what the policy
// checked is what runc's decoder (encoding/json into specs.Spec) reads from
// the file secrun writes, and what a case-sensitive decoder such as crun's
// reads too. Seeds: the case-folding attacks, and real configs.
func FuzzRewrite(f *testing.F) {
	f.Add([]byte(futureConfig))
	f.Add([]byte(`{"process":{"capabilities":{"bounding":["CAP_KILL"]}}}`))
	f.Add([]byte(`{}`))
	for _, tc := range foldAttacks {
		f.Add([]byte(tc.doc))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkRewrite(t, raw, func(s *specs.Spec) {
			if s.Process == nil {
				s.Process = &specs.Process{}
			}
			harden(s.Process)
			s.Hooks = nil
			if s.Linux != nil {
				s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, "/proc/kcore")
			}
		})
	})
}

// FuzzRewriteProcess is FuzzRewrite for the process.json of exec --process.
func FuzzRewriteProcess(f *testing.F) {
	f.Add([]byte(`{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0},"capabilities":{"bounding":["CAP_SYS_ADMIN"]}}`))
	f.Add([]byte(`{"cwd":"/","user":{"uid":1000,"gid":1000},"User":{"uid":0,"gid":0}}`))
	f.Add([]byte("{\"cwd\":\"/\",\"noNewPrivilege\u017f\":false,\"futureKnob\":[1,2]}"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkRewrite(t, raw, harden)
	})
}

func harden(p *specs.Process) {
	p.NoNewPrivileges = !p.NoNewPrivileges
	p.User.UID = 1000
	if p.Capabilities == nil {
		p.Capabilities = &specs.LinuxCapabilities{}
	}
	p.Capabilities.Bounding = []string{"CAP_NET_BIND_SERVICE"}
}

func checkRewrite[T any](t *testing.T, raw []byte, change func(*T)) {
	d, err := Parse[T](raw)
	if err != nil {
		return
	}
	// Accepted input reads alike to runc and to a case-sensitive decoder.
	if got, want := exactlyDecoded[T](t, raw), encode(t, d.Value); got != want {
		t.Fatalf("accepted a document that decoders read differently:\ncase-sensitive %s\nencoding/json  %s", got, want)
	}
	// An untouched document merges back to itself.
	out, err := d.Marshal()
	if err != nil {
		t.Fatalf("Marshal of an unchanged document: %v", err)
	}
	if want, err := decodeTree(raw); err != nil {
		t.Fatalf("json.Decoder refuses what Parse accepted: %v", err)
	} else if got, err := decodeTree(out); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("an unchanged document merged to something else:\n%s\nwant %#v", out, want)
	}
	if d2, err := Parse[T](out); err != nil {
		t.Fatalf("our own output does not parse: %v\n%s", err, out)
	} else if changed, _ := d2.Changed(); changed {
		t.Fatal("re-parse reports a change")
	}
	change(d.Value)
	checked := encode(t, d.Value)
	out, err = d.Marshal()
	if err != nil {
		t.Fatalf("Marshal after a change: %v", err)
	}
	var runc T
	if err := json.Unmarshal(out, &runc); err != nil {
		t.Fatalf("runc could not decode what secrun wrote: %v\n%s", err, out)
	}
	if got := encode(t, &runc); got != checked {
		t.Fatalf("runc reads what secrun did not check:\nchecked %s\nreads   %s", checked, got)
	}
	if got := exactlyDecoded[T](t, out); got != checked {
		t.Fatalf("a case-sensitive decoder reads what secrun did not check:\nchecked %s\nreads   %s", checked, got)
	}
	if _, err := Parse[T](out); err != nil {
		t.Fatalf("secrun refuses its own output: %v\n%s", err, out)
	}
	var before, after map[string]json.RawMessage
	json.Unmarshal(raw, &before)
	json.Unmarshal(out, &after)
	for k := range before {
		if _, ok := after[k]; !ok {
			if _, known := fieldsOf(reflect.TypeFor[T]()).types[k]; !known {
				t.Fatalf("unknown top-level key %q lost", k)
			}
		}
	}
}

func encode(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// exactlyDecoded is what a decoder that matches keys exactly (crun's)
// reads into T: the generic tree with every key that names no field
// exactly dropped, decoded again.
func exactlyDecoded[T any](t *testing.T, raw []byte) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(exactView(tree, reflect.TypeFor[T]()))
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("exact view does not decode: %v", err)
	}
	return encode(t, &v)
}

func exactView(v any, t reflect.Type) any {
	t = indirect(t)
	if t == nil {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		switch t.Kind() {
		case reflect.Map:
			for k, e := range x {
				out[k] = exactView(e, t.Elem())
			}
		case reflect.Struct:
			types := fieldsOf(t).types
			for k, e := range x {
				if ft, ok := types[k]; ok {
					out[k] = exactView(e, ft)
				}
			}
		default:
			return v
		}
		return out
	case []any:
		if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
			return v
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = exactView(e, t.Elem())
		}
		return out
	}
	return v
}

// BenchmarkParse is the read of a create: runc spec's config.json decoded
// and checked for keys decoders would read differently.
func BenchmarkParse(b *testing.B) {
	raw, err := os.ReadFile("../policy/testdata/runc-spec.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse[specs.Spec](raw); err != nil {
			b.Fatal(err)
		}
	}
}
