package profiles

import (
	"bytes"
	"io/fs"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestJSONIsTheYAML: every preset's generated JSON is its YAML as secrun
// used to read it (sigs.k8s.io/yaml), so the wrapper's fast path applies
// exactly the policy an admin reads. Regenerate with go generate
// ./profiles.
func TestJSONIsTheYAML(t *testing.T) {
	yamls, err := fs.Glob(Policies, "policies/*.yaml")
	if err != nil || len(yamls) < 3 {
		t.Fatalf("presets: %v %v", yamls, err)
	}
	for _, y := range yamls {
		src, _ := Policies.ReadFile(y)
		want, err := yaml.YAMLToJSON(src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Policies.ReadFile(strings.TrimSuffix(y, ".yaml") + ".json")
		if err != nil {
			t.Fatalf("%s has no generated JSON (go generate ./profiles): %v", y, err)
		}
		if !bytes.Equal(bytes.TrimSuffix(got, []byte("\n")), want) {
			t.Errorf("%s.json is stale: regenerate with go generate ./profiles", strings.TrimSuffix(y, ".yaml"))
		}
	}
}
