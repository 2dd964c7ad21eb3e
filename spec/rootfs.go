package spec

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// WithReadonlyRootfs makes the container's root filesystem read-only, so a
// write to it fails with EROFS whatever the process's privileges.
func WithReadonlyRootfs(on bool) Option {
	return func(s *specs.Spec) error {
		if s.Root == nil {
			if !on {
				return nil
			}
			return fmt.Errorf("readOnlyRootFilesystem: the bundle has no root; add root.path to config.json")
		}
		s.Root.Readonly = on
		return nil
	}
}
