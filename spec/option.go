// Package spec holds composable changes to an OCI runtime spec, one per
// security setting, in the style of containerd's spec options. Each Option
// is small enough to test on its own; callers decide the order, and the
// order matters (policy.ApplyOrder computes it for a Pod): seccomp
// must come last because the default profile depends on the final
// capability set. The Kubernetes translation itself lives in kubespec,
// which the wrapper does not link.
//
// This package is on the hot path of every container start: it must not
// import heavy packages (no k8s.io/*) nor do work at init.
package spec

import (
	"encoding/json"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Option changes a spec in place. An Option that fails must leave the spec
// as it was wherever it can; callers that need all-or-nothing work on a copy.
type Option func(*specs.Spec) error

// Apply runs opts in order and stops at the first error.
func Apply(s *specs.Spec, opts ...Option) error {
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(s); err != nil {
			return err
		}
	}
	return nil
}

// Named wraps o so that its errors carry the setting it applies, which is
// what an admin reading a refused create needs first.
func Named(name string, o Option) Option {
	return func(s *specs.Spec) error {
		if err := o(s); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
}

// ensureProcess and ensureLinux create the sections an option writes to, so
// options can be applied to the minimal specs admins hand-write.
func ensureProcess(s *specs.Spec) *specs.Process {
	if s.Process == nil {
		s.Process = &specs.Process{}
	}
	return s.Process
}

func ensureLinux(s *specs.Spec) *specs.Linux {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	return s.Linux
}

func ensureCapabilities(s *specs.Spec) *specs.LinuxCapabilities {
	p := ensureProcess(s)
	if p.Capabilities == nil {
		p.Capabilities = &specs.LinuxCapabilities{}
	}
	return p.Capabilities
}

// Clone deep-copies a spec. JSON is the one deep copy that cannot miss a
// pointer field the runtime-spec adds later.
func Clone(s *specs.Spec) (*specs.Spec, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("copy spec: %w", err)
	}
	out := &specs.Spec{}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("copy spec: %w", err)
	}
	return out, nil
}
