package policy

import (
	"fmt"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// OCI hooks run outside the container's confinement: prestart,
// createRuntime and poststart/poststop in the runtime's namespaces (on the
// host, as root, with every capability), createContainer and
// startContainer inside the container's namespaces but before its
// capabilities, seccomp and AppArmor apply. A hook is therefore whatever
// the bundle wants to run as host root; only hooks the admin installed
// (nvidia-container-runtime-hook, CDI's ldcache update) may run.
func hookLists(h *specs.Hooks) []struct {
	name  string
	hooks []specs.Hook
} {
	return []struct {
		name  string
		hooks []specs.Hook
	}{
		{"prestart", h.Prestart}, //nolint:staticcheck // deprecated, but runc still runs it
		{"createRuntime", h.CreateRuntime},
		{"createContainer", h.CreateContainer},
		{"startContainer", h.StartContainer},
		{"poststart", h.Poststart},
		{"poststop", h.Poststop},
	}
}

func checkHooks(p *Policy, _ *Env, s *specs.Spec) []Finding {
	if !p.RestrictHooks || s.Hooks == nil {
		return nil
	}
	var out []Finding
	for _, l := range hookLists(s.Hooks) {
		for i, h := range l.hooks {
			if p.hookPaths[filepath.Clean(h.Path)] && filepath.IsAbs(h.Path) {
				continue
			}
			out = append(out, Finding{Field: fmt.Sprintf("hooks.%s[%d].path", l.name, i),
				Problem: fmt.Sprintf("hook %s would run %q outside the container's confinement (on the host, as root)", l.name, h.Path),
				Fix:     fmt.Sprintf("remove the hook, or have the admin add %q to allowedHookPaths of policy %s", h.Path, p.Name)})
		}
	}
	return out
}

func (p *Policy) compileHooks() error {
	p.hookPaths = map[string]bool{}
	for _, h := range p.AllowedHookPaths {
		if !filepath.IsAbs(h) || strings.ContainsAny(h, "*?[") {
			return fmt.Errorf("policy %s: allowedHookPaths: %q must be an absolute path without wildcards", p.Name, h)
		}
		p.hookPaths[filepath.Clean(h)] = true
	}
	return nil
}
