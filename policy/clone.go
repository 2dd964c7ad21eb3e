package policy

import (
	"encoding/json"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cloneSpec deep-copies a spec. JSON is the one deep copy that cannot miss
// a pointer field the runtime-spec adds later.
func cloneSpec(s *specs.Spec) *specs.Spec {
	b, err := json.Marshal(s)
	if err != nil {
		panic("policy: a decoded spec failed to encode: " + err.Error())
	}
	out := &specs.Spec{}
	if err := json.Unmarshal(b, out); err != nil {
		panic("policy: a spec failed to decode its own encoding: " + err.Error())
	}
	return out
}
