package policy

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const lazyDoc = `
defaultPolicy: web
policies:
  web:
    preset: restricted
    runAsUser: 1000
  restricted:
    mode: harden
  broken:
    mode: enforce
    seccomp: Sometimes
`

// TestWrapperConfigIsTheConfig: the wrapper's lazy load gives every
// policy exactly as the full parse does, and a broken policy refuses only
// those who ask for it.
func TestWrapperConfigIsTheConfig(t *testing.T) {
	good := strings.Replace(lazyDoc, "    seccomp: Sometimes\n", "", 1)
	full, err := ParseConfig([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	lazy := loadLazy(t, good)
	if got, want := lazy.PolicyNames(), full.PolicyNames(); !reflect.DeepEqual(got, want) {
		t.Errorf("names %v, full parse %v", got, want)
	}
	for _, name := range full.PolicyNames() {
		want, _ := full.Policy(name)
		got, err := lazy.Policy(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: lazy %+v\nfull %+v", name, got, want)
		}
	}
	if _, err := ParseConfig([]byte(lazyDoc)); err == nil {
		t.Fatal("the full parse accepts a broken policy")
	}
	lazy = loadLazy(t, lazyDoc)
	if _, err := lazy.Policy("web"); err != nil {
		t.Errorf("web fails for broken's sake: %v", err)
	}
	if _, err := lazy.Policy("broken"); err == nil || !strings.Contains(err.Error(), `seccomp "Sometimes"`) {
		t.Errorf("broken policy: err = %v", err)
	}
	if _, err := lazy.Policy("nope"); err == nil || !strings.Contains(err.Error(), "not defined") {
		t.Errorf("undefined policy: err = %v", err)
	}
	for _, doc := range []string{"defaultPolicy: nope\n", "policies:\n  Bad_Name: {}\n", "polices: {}\n"} {
		p := filepath.Join(t.TempDir(), "config.yaml")
		os.WriteFile(p, []byte(doc), 0o600)
		t.Setenv(ConfigEnv, p)
		if _, err := LoadWrapperConfig(); err == nil {
			t.Errorf("LoadWrapperConfig accepts %q", doc)
		}
	}
}

func loadLazy(t *testing.T, doc string) *Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(ConfigEnv, p)
	c, err := LoadWrapperConfig()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
