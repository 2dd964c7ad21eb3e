package bundle

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
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

func FuzzRewrite(f *testing.F) {
	f.Add([]byte(futureConfig))
	f.Add([]byte(`{"process":{"capabilities":{"bounding":["CAP_KILL"]}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := Parse[specs.Spec](raw)
		if err != nil {
			return
		}
		// An untouched document must merge back to itself.
		out, err := d.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		d2, err := Parse[specs.Spec](out)
		if err != nil {
			t.Fatalf("our own output does not parse: %v\n%s", err, out)
		}
		if changed, _ := d2.Changed(); changed {
			t.Fatal("re-parse reports a change")
		}
		// A change must survive and leave unknown top-level keys alone.
		if d.Value.Process == nil {
			d.Value.Process = &specs.Process{}
		}
		d.Value.Process.NoNewPrivileges = !d.Value.Process.NoNewPrivileges
		out, err = d.Marshal()
		if err != nil {
			t.Fatalf("Marshal after change: %v", err)
		}
		d3, err := Parse[specs.Spec](out)
		if err != nil {
			t.Fatalf("changed output does not parse: %v", err)
		}
		if d3.Value.Process.NoNewPrivileges != d.Value.Process.NoNewPrivileges {
			t.Fatal("change lost")
		}
		var before, after map[string]json.RawMessage
		json.Unmarshal(raw, &before)
		json.Unmarshal(out, &after)
		for k := range before {
			if _, ok := after[k]; !ok && k != "process" {
				t.Fatalf("top-level key %q lost", k)
			}
		}
	})
}
