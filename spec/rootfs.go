package spec

import (
	"fmt"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"

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

// ResolveInRoot says where path (inside the container) lands in the
// rootfs at root once the image's symlinks are followed the way runc
// follows them: inside the root, with filepath-securejoin, the library
// runc resolves mount destinations and the working directory with. A tail
// that does not exist yet (runc creates mount points) stays as written.
// The answer is a clean absolute path as the container sees it.
//
// The image decides these links, so a mount destination "/data" that is
// a link to "/proc" puts a bind mount over the container's /proc
// (CVE-2019-19921), and a working directory that is a link into
// /proc/self/fd reaches the runtime's leaked descriptors (CVE-2024-21626).
func ResolveInRoot(root, path string) (string, error) {
	full, err := securejoin.SecureJoin(root, path)
	if err != nil {
		return "", fmt.Errorf("resolve %s in %s: %w", path, root, err)
	}
	rel, err := filepath.Rel(filepath.Clean(root), full)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%s resolves to %s, outside the rootfs %s", path, full, root)
	}
	return filepath.Join("/", rel), nil
}
