package bundle

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The attacks of issue 10: each would let runc read a copy of a field
// that secrun never checked, or that crun never reads.
var foldAttacks = map[string]struct {
	doc  string
	want string
}{
	"process twice by case": {
		`{"ociVersion":"1.0.2","process":{"user":{"uid":1000,"gid":1000},"cwd":"/"},"Process":{"user":{"uid":0,"gid":0},"cwd":"/"}}`,
		`key "Process" at $ collides with "process" under case folding; remove one`},
	"Process alone": {
		`{"ociVersion":"1.0.2","Process":{"user":{"uid":0,"gid":0},"cwd":"/"}}`,
		`key "Process" at $ is not spelled like the field "process"`},
	"long s folds to s": {
		"{\"process\":{\"cwd\":\"/\",\"user\":{\"uid\":1000,\"gid\":1000}},\"proce\u017fs\":{\"cwd\":\"/\",\"user\":{\"uid\":0,\"gid\":0}}}",
		"key \"proce\u017fs\" at $ collides with \"process\""},
	"Kelvin sign folds to k": {
		`{"linux":{"maskedPaths":["/proc/kcore"],"masKedPaths":[]}}`,
		`key "masKedPaths" at $.linux collides with "maskedPaths"`},
	"Kelvin sign alone": {
		"{\"linux\":{\"mas\u212aedPaths\":[]}}",
		"key \"mas\u212aedPaths\" at $.linux is not spelled like the field \"maskedPaths\""},
	"nested noNewPrivileges": {
		`{"process":{"cwd":"/","noNewPrivileges":true,"NoNewPrivileges":false}}`,
		`key "NoNewPrivileges" at $.process collides with "noNewPrivileges"`},
	"capability set in an array element": {
		`{"linux":{"namespaces":[{"type":"pid"},{"type":"network","Type":"mount"}]}}`,
		`key "Type" at $.linux.namespaces[1] collides with "type"`},
	"exact duplicate": {
		`{"process":{"cwd":"/","user":{"uid":1000,"gid":1000}},"process":{"cwd":"/","user":{"uid":0,"gid":0}}}`,
		`key "process" at $ appears twice`},
	"exact duplicate in a map": {
		`{"annotations":{"secrun.dev/security-context":"{}","secrun.dev/security-context":"{\"privileged\":true}"}}`,
		`key "secrun.dev/security-context" at $.annotations appears twice`},
	"promoted field of an embedded struct": {
		`{"linux":{"resources":{"blockIO":{"weightDevice":[{"Major":8,"minor":0}]}}}}`,
		`key "Major" at $.linux.resources.blockIO.weightDevice[0] is not spelled like the field "major"`},
	"escaped spelling": {
		`{"\u0050rocess":{"cwd":"/"}}`,
		`key "Process" at $ is not spelled like the field "process"`},
	"folding inside an unknown field": {
		`{"futureThing":{"knob":1,"KNOB":2}}`,
		`key "KNOB" at $.futureThing collides with "knob"`},
}

func TestFoldAttacksRefused(t *testing.T) {
	for name, tc := range foldAttacks {
		t.Run(name, func(t *testing.T) {
			_, err := Parse[specs.Spec]([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// The same through exec --process, whose document is a specs.Process.
func TestFoldAttacksRefusedInProcess(t *testing.T) {
	for doc, want := range map[string]string{
		`{"cwd":"/","user":{"uid":1000,"gid":1000},"User":{"uid":0,"gid":0}}`:        `key "User" at $ collides with "user"`,
		`{"cwd":"/","capabilities":{"bounding":[],"Bounding":["CAP_SYS_ADMIN"]}}`:    `key "Bounding" at $.capabilities collides with "bounding"`,
		"{\"cwd\":\"/\",\"noNewPrivilege\u017f\":false}":                             "is not spelled like the field \"noNewPrivileges\"",
		`{"cwd":"/","args":["sh"],"args":["sh","-c","id"],"user":{"uid":0,"gid":0}}`: `key "args" at $ appears twice`,
	} {
		if _, err := Parse[specs.Process]([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", doc, err, want)
		}
	}
}

// What a document may hold: unknown fields with any spelling of their
// own, and map keys that differ in case, which every decoder keeps apart.
func TestFoldAccepted(t *testing.T) {
	for _, doc := range []string{
		`{"process":{"cwd":"/","futureKnob":1},"org.example/x":{"A":1,"b":2}}`,
		`{"annotations":{"App":"1","app":"2"},"linux":{"sysctl":{"net.core.somaxconn":"1"}}}`,
		`{"linux":{"resources":{"unified":{"memory.max":"1","Memory.max":"2"}}}}`,
		`{"windows":{"credentialSpec":{"x":1}}}`,
	} {
		d, err := Parse[specs.Spec]([]byte(doc))
		if err != nil {
			t.Errorf("%s: %v", doc, err)
			continue
		}
		if d.Value.Annotations != nil && d.Value.Annotations["App"] != "1" {
			t.Errorf("annotations %v", d.Value.Annotations)
		}
	}
}

func TestFoldKeyMatchesEncodingJSON(t *testing.T) {
	// encoding/json is the oracle: a key it decodes into the field
	// "process" folds like "process", one it ignores does not.
	for _, key := range []string{"process", "PROCESS", "Process", "proce\u017fs", "pro\u212aess", "procesş", "process ", "pröcess", "\u212a", "k"} {
		var v struct {
			Process int `json:"process"`
		}
		json.Unmarshal([]byte(`{`+string(mustJSON(key))+`:1}`), &v)
		if got, want := foldKey(key) == foldKey("process"), v.Process == 1; got != want {
			t.Errorf("%q: foldKey says %v, encoding/json %v", key, got, want)
		}
	}
	if foldKey("\u212a") != foldKey("k") || foldKey("\u017f") != foldKey("S") {
		t.Error("Kelvin sign or long s do not fold like encoding/json")
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// The fields reflection finds are the ones encoding/json fills.
func TestFieldsOfSpec(t *testing.T) {
	f := fieldsOf(reflect.TypeFor[specs.LinuxWeightDevice]())
	for _, n := range []string{"major", "minor", "weight", "leafWeight"} {
		if _, ok := f.types[n]; !ok {
			t.Errorf("LinuxWeightDevice lacks %s: %v", n, f.types)
		}
	}
	if len(fieldsOf(reflect.TypeFor[specs.Spec]()).types) < 10 {
		t.Error("too few Spec fields")
	}
}

// The check after every rewrite holds by construction of the merge; this
// breaks the construction to show the check is there: a tree that holds a
// second spelling of "process" must not be written.
func TestRewriteThatReadsDifferentlyIsRefused(t *testing.T) {
	d, err := Parse[specs.Spec]([]byte(`{"process":{"cwd":"/","user":{"uid":0,"gid":0}}}`))
	if err != nil {
		t.Fatal(err)
	}
	// A merge that let "Process" through (checkKeys refuses it in a file):
	// encoding/json decodes both keys into one struct, so what "process"
	// does not set, "Process" does.
	d.raw = []byte(`{"Process":{"apparmorProfile":"unconfined"},"process":{"cwd":"/","user":{"uid":0,"gid":0}}}`)
	d.Value.Process.User.UID = 1000
	_, err = d.Marshal()
	if err == nil || !strings.Contains(err.Error(), "would read differently from what the policy checked, at $.process.apparmorProfile") {
		t.Fatalf("err = %v", err)
	}
}
