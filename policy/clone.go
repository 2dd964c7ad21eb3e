package policy

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

// cloneSpec is spec.Clone for a spec that was decoded from JSON, which
// always encodes again.
func cloneSpec(s *specs.Spec) *specs.Spec {
	out, err := spec.Clone(s)
	if err != nil {
		panic("policy: a decoded spec failed to copy: " + err.Error())
	}
	return out
}
