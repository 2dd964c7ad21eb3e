package spec

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	mobyapparmor "github.com/moby/profiles/apparmor"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultAppArmorProfile is the name secrun loads moby's template under.
const DefaultAppArmorProfile = "secrun-default"

// AppArmor kinds, as in the Kubernetes API.
const (
	AppArmorRuntimeDefault = "RuntimeDefault"
	AppArmorUnconfined     = "Unconfined"
	AppArmorLocalhost      = "Localhost"
)

// AppArmorHost is the node's AppArmor: whether the kernel enforces it and
// how profiles get loaded. Tests swap it for a fake.
type AppArmorHost interface {
	Enabled() bool
	IsLoaded(name string) (bool, error)
	LoadDefault(name string) error
}

// HostAppArmor is the real node.
type HostAppArmor struct {
	// LockDir holds the lock file that serialises profile loads between
	// concurrent creates; default /run/secrun.
	LockDir string
}

// Enabled is true when the kernel has AppArmor on and apparmor_parser is
// installed; containerd applies the same three tests.
func (HostAppArmor) Enabled() bool {
	if _, err := os.Stat("/sys/kernel/security/apparmor"); err != nil {
		return false
	}
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	if err != nil || !strings.HasPrefix(string(b), "Y") {
		return false
	}
	_, err = exec.LookPath("apparmor_parser")
	return err == nil
}

// IsLoaded reports whether the kernel has a profile of that name.
func (HostAppArmor) IsLoaded(name string) (bool, error) { return mobyapparmor.IsLoaded(name) }

// LoadDefault loads moby's template under name unless the kernel already
// has it. Concurrent creates take a file lock and look again under it, so
// a burst of container starts runs apparmor_parser once.
func (h HostAppArmor) LoadDefault(name string) error {
	if ok, err := mobyapparmor.IsLoaded(name); err == nil && ok {
		return nil
	}
	dir := h.LockDir
	if dir == "" {
		dir = "/run/secrun"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("apparmor lock dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "apparmor.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("apparmor lock: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("apparmor lock: %w", err)
	}
	if ok, err := mobyapparmor.IsLoaded(name); err == nil && ok {
		return nil
	}
	if err := mobyapparmor.InstallDefault(name); err != nil {
		return fmt.Errorf("load AppArmor profile %s: %w", name, err)
	}
	return nil
}

// WithAppArmorRuntimeDefault confines the process with secrun's default
// profile, loading it first if needed. Where the kernel has no AppArmor
// there is nothing to enforce it, so it is skipped and warn says so.
func WithAppArmorRuntimeDefault(h AppArmorHost, warn func(string)) Option {
	return func(s *specs.Spec) error {
		if !h.Enabled() {
			if warn != nil {
				warn("appArmorProfile RuntimeDefault skipped: AppArmor is not enabled in this kernel")
			}
			return nil
		}
		if err := h.LoadDefault(DefaultAppArmorProfile); err != nil {
			return fmt.Errorf("appArmorProfile RuntimeDefault: %w", err)
		}
		ensureProcess(s).ApparmorProfile = DefaultAppArmorProfile
		return nil
	}
}

// WithAppArmorLocalhost confines the process with a profile the admin has
// already loaded. A missing profile or a kernel without AppArmor is an
// error: the Pod asked for a confinement the node cannot give.
func WithAppArmorLocalhost(h AppArmorHost, name string) Option {
	return func(s *specs.Spec) error {
		if name == "" || strings.ContainsAny(name, "\n\x00") {
			return fmt.Errorf("appArmorProfile Localhost: localhostProfile %q is not a valid profile name", name)
		}
		if !h.Enabled() {
			return fmt.Errorf("appArmorProfile Localhost %q: AppArmor is not enabled in this kernel; schedule the Pod on a node with AppArmor or drop the profile", name)
		}
		ok, err := h.IsLoaded(name)
		if err != nil {
			return fmt.Errorf("appArmorProfile Localhost %q: %w", name, err)
		}
		if !ok {
			return fmt.Errorf("appArmorProfile Localhost %q: no profile of that name is loaded on this node; load it with apparmor_parser first", name)
		}
		ensureProcess(s).ApparmorProfile = name
		return nil
	}
}

// WithAppArmorUnconfined removes any AppArmor profile.
func WithAppArmorUnconfined() Option {
	return func(s *specs.Spec) error {
		if s.Process != nil {
			s.Process.ApparmorProfile = ""
		}
		return nil
	}
}
