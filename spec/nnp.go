package spec

import specs "github.com/opencontainers/runtime-spec/specs-go"

// WithNoNewPrivileges sets no_new_privs, which stops setuid binaries and
// file capabilities from raising privileges after exec. Kubernetes sets it
// only when allowPrivilegeEscalation is explicitly false.
func WithNoNewPrivileges(on bool) Option {
	return func(s *specs.Spec) error {
		ensureProcess(s).NoNewPrivileges = on
		return nil
	}
}
