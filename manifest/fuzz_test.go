package manifest

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseManifest: Parse never panics, and whatever it accepts
// translates without panicking (errors are fine).
func FuzzParseManifest(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "seed", "*.yaml"))
	seeds = append(seeds, filepath.Join("testdata", "restricted-deployment.yaml"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(podYAML + "---\n" + "apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: List, items: []}]\n"))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","annotations":{"seccomp.security.alpha.kubernetes.io/pod":"localhost/../x"}},"spec":{"hostUsers":false,"containers":[{"name":"c","securityContext":{"procMount":"Unmasked","capabilities":{"add":["ALL"]}}}]}}`))
	f.Add([]byte("apiVersion: v1\nkind: Pod\nspec:\n  securityContext:\n    sysctls: [{name: net/ipv4/../x, value: \"1\"}]\n  containers: [{name: c, command: [\"$(\"]}]\n"))
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		ws, err := Parse(data)
		if err != nil {
			return
		}
		for _, w := range ws {
			// No host devices: walking /dev per input would make the
			// fuzzer slow without reaching new code.
			_, _ = Translate(w, Options{SeccompProfileRoot: root, PrivilegedWithoutHostDevices: true, AmbientCapabilities: true})
		}
	})
}
