package spec

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"os"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// SELinuxOptions mirrors the Kubernetes seLinuxOptions block.
type SELinuxOptions struct {
	User  string `json:"user,omitempty"`
	Role  string `json:"role,omitempty"`
	Type  string `json:"type,omitempty"`
	Level string `json:"level,omitempty"`
}

// Validate refuses parts that cannot stand in a label.
func (o *SELinuxOptions) Validate() error {
	for _, f := range []struct{ field, v string }{{"user", o.User}, {"role", o.Role}, {"type", o.Type}, {"level", o.Level}} {
		if strings.ContainsAny(f.v, " \t\n") || (f.field != "level" && strings.Contains(f.v, ":")) {
			return fmt.Errorf("seLinuxOptions.%s: %q is not a valid SELinux %s", f.field, f.v, f.field)
		}
	}
	return nil
}

// defaultSELinux fills the parts a Pod leaves out, as container-selinux
// labels containers: system_u:system_r:container_t:s0.
var defaultSELinux = SELinuxOptions{User: "system_u", Role: "system_r", Type: "container_t", Level: "s0"}

// WithSELinuxOptions sets the process label and the mount label from a
// Kubernetes seLinuxOptions block; the mount label uses object_r and
// container_file_t, so files created in volumes carry the same level.
func WithSELinuxOptions(o *SELinuxOptions) Option {
	return func(s *specs.Spec) error {
		if o == nil || *o == (SELinuxOptions{}) {
			return nil
		}
		if err := o.Validate(); err != nil {
			return err
		}
		pick := func(v, d string) string {
			if v == "" {
				return d
			}
			return v
		}
		user, level := pick(o.User, defaultSELinux.User), pick(o.Level, defaultSELinux.Level)
		ensureProcess(s).SelinuxLabel = strings.Join([]string{user, pick(o.Role, defaultSELinux.Role), pick(o.Type, defaultSELinux.Type), level}, ":")
		ensureLinux(s).MountLabel = strings.Join([]string{user, "object_r", "container_file_t", level}, ":")
		return nil
	}
}

// SELinuxType returns the type field of a label "user:role:type:level".
func SELinuxType(label string) string {
	parts := strings.SplitN(label, ":", 4)
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

// SELinuxEnabled reports whether this node's kernel has SELinux on, as
// shown by a mounted selinuxfs. Without it runc refuses a labelled
// process, and containerd leaves the labels out.
var SELinuxEnabled = sync.OnceValue(func() bool {
	_, err := os.Stat("/sys/fs/selinux/enforce")
	return err == nil
})

// mcsCategories is how many categories go-selinux draws a Pod's pair
// from (uniqMcs(1024) in its ContainerLabels).
const mcsCategories = 1024

// NewMCSLevel draws a random MCS level of two distinct categories, lower
// first, "s0:c12,c345", as go-selinux gives each Pod sandbox (and each
// container with seLinuxOptions but no level). containerd reserves the
// pair on its node so that no other Pod gets it; a translation cannot
// see the node, so two translations may, rarely, draw the same one.
func NewMCSLevel() string {
	pick := func() int64 {
		n, err := rand.Int(rand.Reader, big.NewInt(mcsCategories))
		if err != nil {
			// crypto/rand does not fail on Linux; a fixed pair would
			// still be a valid label.
			return 0
		}
		return n.Int64()
	}
	c1 := pick()
	c2 := pick()
	for c2 == c1 {
		c2 = pick()
	}
	if c1 > c2 {
		c1, c2 = c2, c1
	}
	return fmt.Sprintf("s0:c%d,c%d", c1, c2)
}
