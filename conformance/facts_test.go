package conformance

import (
	"fmt"
	"slices"
	"testing"

	"github.com/secrun/secrun/spec"
)

// TestOracleFactsMatchTheProduct: the suite keeps its own copies of the
// upstream facts its expectations rest on, so that a change to secrun
// cannot move an expectation with it. Each copy is deliberate, and this
// test says when one drifts from the product's, so that the drift is
// looked at (and one of the two fixed against the upstream file cited at
// the copy) instead of passing silently.
func TestOracleFactsMatchTheProduct(t *testing.T) {
	if !slices.Equal(sortedCopy(defaultCapabilities), sortedCopy(spec.DefaultCapabilities)) {
		t.Errorf("containerd's default capabilities: suite %v, spec %v", defaultCapabilities, spec.DefaultCapabilities)
	}
	if !slices.Equal(kubeletMaskedPaths, spec.DefaultMaskedPaths) {
		t.Errorf("the kubelet's masked paths: suite %v, spec %v", kubeletMaskedPaths, spec.DefaultMaskedPaths)
	}
	if !slices.Equal(kubeletReadonlyPaths, spec.DefaultReadonlyPaths) {
		t.Errorf("the kubelet's readonly paths: suite %v, spec %v", kubeletReadonlyPaths, spec.DefaultReadonlyPaths)
	}
	newest := safeSysctls[len(safeSysctls)-1].since
	for minor := 0; minor <= newest+1; minor++ {
		version := fmt.Sprintf("1.%d", minor)
		product, err := spec.SafeSysctls(version)
		if err != nil {
			t.Fatalf("spec.SafeSysctls(%s): %v", version, err)
		}
		var suite []string
		for _, s := range safeSysctls {
			if s.since <= minor {
				suite = append(suite, s.name)
			}
		}
		if !slices.Equal(sortedCopy(suite), sortedCopy(product)) {
			t.Errorf("safe sysctls of Kubernetes %s: suite %v, spec %v", version, suite, product)
		}
	}
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
