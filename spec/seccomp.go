package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Seccomp profile kinds, as in the Kubernetes API.
const (
	SeccompRuntimeDefault = "RuntimeDefault"
	SeccompUnconfined     = "Unconfined"
	SeccompLocalhost      = "Localhost"
)

// DefaultSeccompProfileRoot is where the kubelet keeps Localhost profiles.
const DefaultSeccompProfileRoot = "/var/lib/kubelet/seccomp"

// maxSeccompProfileSize bounds what a Localhost profile may make us read;
// moby's default profile is about 20 KiB.
const maxSeccompProfileSize = 4 << 20

// WithRuntimeDefaultSeccomp installs moby's default profile, generated for
// the spec's current bounding set: the profile allows extra syscalls for
// capabilities such as SYS_ADMIN or SYS_PTRACE, so this option must run
// after every option that changes capabilities.
func WithRuntimeDefaultSeccomp() Option {
	return func(s *specs.Spec) error {
		p, err := RuntimeDefaultFor(s)
		if err != nil {
			return fmt.Errorf("seccompProfile RuntimeDefault: %w", err)
		}
		ensureLinux(s).Seccomp = p
		return nil
	}
}

// WithUnconfinedSeccomp removes any seccomp filter.
func WithUnconfinedSeccomp() Option {
	return func(s *specs.Spec) error {
		if s.Linux != nil {
			s.Linux.Seccomp = nil
		}
		return nil
	}
}

// WithLocalhostSeccomp loads a profile from a file below root, in OCI or
// Docker form. Docker's archMap and includes/excludes are honoured (against
// the spec's final capabilities, so this too belongs after capabilities);
// containerd ignores them silently, which loosens a profile written for
// Docker. Every syscall name is checked, so a typo fails the create instead
// of leaving a hole.
func WithLocalhostSeccomp(root, localhostProfile string) Option {
	return func(s *specs.Spec) error {
		body, err := ReadLocalhostProfile(root, localhostProfile)
		if err != nil {
			return fmt.Errorf("seccompProfile Localhost %q: %w", localhostProfile, err)
		}
		p, err := LoadSeccompProfile(body, s)
		if err != nil {
			return fmt.Errorf("seccompProfile Localhost %q: %w", localhostProfile, err)
		}
		ensureLinux(s).Seccomp = p
		return nil
	}
}

// LoadSeccompProfile reads a profile in OCI or Docker form as it would
// apply to s: Docker's archMap and includes/excludes are decided by s's
// capabilities, and every syscall name is checked. A profile with
// neither defaultAction nor syscalls is refused rather than read as "no
// seccomp", which is what moby's loader makes of it.
func LoadSeccompProfile(body []byte, s *specs.Spec) (*specs.LinuxSeccomp, error) {
	if err := checkProfileShape(body); err != nil {
		return nil, err
	}
	p, err := mobyseccomp.LoadProfile(string(body), withBounding(s))
	if err != nil {
		return nil, err
	}
	if p == nil {
		// From a Pod that asked for a profile, that is a file that lost
		// its content, not a wish to run unconfined.
		return nil, fmt.Errorf("the profile has no defaultAction and no syscalls, so it would confine nothing; fix the file, or use type Unconfined if that is meant")
	}
	if err := ValidateSeccomp(p); err != nil {
		return nil, err
	}
	return p, nil
}

// withBounding returns s, or a copy of it with an empty capability set
// when it has none: moby's generator reads the bounding set unguarded for
// every rule with includes.caps or excludes.caps.
func withBounding(s *specs.Spec) *specs.Spec {
	if s.Process != nil && s.Process.Capabilities != nil {
		return s
	}
	c := *s
	p := specs.Process{}
	if s.Process != nil {
		p = *s.Process
	}
	p.Capabilities = &specs.LinuxCapabilities{}
	c.Process = &p
	return &c
}

// checkProfileShape refuses what moby's loader would crash on: it
// dereferences each syscalls entry, so a null entry (or a non-object one)
// must not reach it.
func checkProfileShape(body []byte) error {
	var shape struct {
		Syscalls []json.RawMessage `json:"syscalls"`
	}
	if err := json.Unmarshal(body, &shape); err != nil {
		return fmt.Errorf("not a seccomp profile (JSON object with defaultAction and syscalls): %w", err)
	}
	for i, raw := range shape.Syscalls {
		if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
			if len(t) > 40 {
				t = append(t[:40:40], "..."...)
			}
			return fmt.Errorf("syscalls[%d] must be an object with names and action, got %s", i, t)
		}
	}
	return nil
}

// ReadLocalhostProfile reads root/rel without ever leaving root: ".." and
// absolute paths are refused outright, and the open resolves every symlink
// inside root (RESOLVE_IN_ROOT), so a link cannot point a Pod at a file
// elsewhere on the node.
func ReadLocalhostProfile(root, rel string) ([]byte, error) {
	if rel == "" {
		return nil, errors.New("localhostProfile is empty; name a file below the profile root")
	}
	if filepath.IsAbs(rel) {
		return nil, fmt.Errorf("localhostProfile must be relative to %s, not an absolute path", root)
	}
	for _, part := range strings.Split(rel, "/") {
		if part == ".." {
			return nil, fmt.Errorf("localhostProfile may not contain \"..\"; it must stay below %s", root)
		}
	}
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open profile root %s: %w", root, err)
	}
	defer unix.Close(dir)
	// The same in-root, regular-files-only open as the image's
	// /etc/passwd: a FIFO or device node below the root must not block or
	// act on the node.
	return ReadRootfsFile(dir, root, rel, maxSeccompProfileSize)
}

// Confined reports whether the spec has a seccomp filter that refuses
// something by default: a filter whose default action allows everything is
// Unconfined in all but name.
func Confined(s *specs.Spec) bool {
	if s.Linux == nil || s.Linux.Seccomp == nil {
		return false
	}
	switch s.Linux.Seccomp.DefaultAction {
	case specs.ActAllow, specs.ActLog, "":
		return false
	}
	return true
}
