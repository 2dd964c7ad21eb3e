package policy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/bundle"
)

// BenchmarkDecideRestricted is the policy work of one create: a runc-spec
// bundle hardened under restricted (caps dropped, uid set, seccomp
// generated).
func BenchmarkDecideRestricted(b *testing.B) {
	p := builtin(b, "restricted", Harden)
	uid := int64(65534)
	p.RunAsUser = &uid
	raw, _ := json.Marshal(runcSpec(b))
	env := noAppArmor()
	b.ReportAllocs()
	for b.Loop() {
		s := &specs.Spec{}
		if err := json.Unmarshal(raw, s); err != nil {
			b.Fatal(err)
		}
		if out := p.Decide(env, s); out.Refused() {
			b.Fatal(out.Error())
		}
	}
}

// BenchmarkCreateRewrite is the whole config.json round trip of a create:
// parse, decide, merge, encode (without the disk).
func BenchmarkCreateRewrite(b *testing.B) {
	p := builtin(b, "restricted", Harden)
	uid := int64(65534)
	p.RunAsUser = &uid
	raw, _ := json.Marshal(runcSpec(b))
	env := noAppArmor()
	b.ReportAllocs()
	for b.Loop() {
		d, err := bundle.Parse[specs.Spec](raw)
		if err != nil {
			b.Fatal(err)
		}
		if out := p.Decide(env, d.Value); out.Refused() {
			b.Fatal(out.Error())
		}
		if _, err := d.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadConfig is one process's configuration load.
func BenchmarkLoadConfig(b *testing.B) {
	benchConfigFile(b)
	for b.Loop() {
		if _, err := LoadConfig(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadWrapperConfig is the wrapper's load for one create: the
// file, then the one policy the binary's name picks.
func BenchmarkLoadWrapperConfig(b *testing.B) {
	benchConfigFile(b)
	for b.Loop() {
		c, err := LoadWrapperConfig()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Policy("restricted"); err != nil {
			b.Fatal(err)
		}
	}
}

func benchConfigFile(b *testing.B) {
	p := filepath.Join(b.TempDir(), "config.yaml")
	os.WriteFile(p, []byte("policies:\n  restricted:\n    mode: harden\n    runAsUser: 65534\n"), 0o600)
	b.Setenv(ConfigEnv, p)
	b.ReportAllocs()
}
