// Package policy holds the node admin's security policies: what they are
// (config.go), which rules they check and how a bundle is brought into line
// (rules.go), and what a Pod may ask on top through annotations (intent.go).
package policy

import (
	"fmt"
)

// Mode says what secrun does with a bundle that breaks the policy.
type Mode string

const (
	// Enforce refuses a bundle that breaks a rule. It never rewrites
	// config.json for the policy's sake.
	Enforce Mode = "enforce"
	// Harden rewrites the bundle until it complies, and refuses only what
	// no rewrite can fix (privileged mode, host namespaces, forbidden
	// sysctls, root without a configured uid).
	Harden Mode = "harden"
	// Audit logs what enforce or harden would do and changes nothing.
	Audit Mode = "audit"
)

// Policy is one named policy, as an admin writes it in config.yaml.
// Every check is off in the zero Policy; presets turn them on.
type Policy struct {
	Name string `json:"-"`
	// Preset names the built-in policy this one starts from.
	Preset string `json:"preset,omitempty"`
	Mode   Mode   `json:"mode,omitempty"`
	// Runtime is the delegate for this policy (a name on PATH or a path);
	// empty means the config's runtime.
	Runtime string `json:"runtime,omitempty"`

	AllowPrivileged     bool `json:"allowPrivileged"`
	AllowHostNamespaces bool `json:"allowHostNamespaces"`
	// AllowedCapabilities is the most a container may hold; nil allows
	// any, an empty list none. Names with or without CAP_, any case.
	AllowedCapabilities []string `json:"allowedCapabilities,omitempty"`
	// RequiredDropCapabilities may never be held, whatever else allows.
	RequiredDropCapabilities []string `json:"requiredDropCapabilities,omitempty"`
	// AmbientCapabilities, an opt-in beyond containerd: a non-root process
	// also gets its capabilities in the ambient set, so that they work
	// after exec (kubernetes#56374).
	AmbientCapabilities bool `json:"ambientCapabilities,omitempty"`
	NoNewPrivileges     bool `json:"noNewPrivileges"`
	RunAsNonRoot        bool `json:"runAsNonRoot"`
	// RunAsUser and RunAsGroup are what harden sets when a container would
	// run as root under runAsNonRoot; without RunAsUser such a container is
	// refused, since secrun cannot know which uid the image works with.
	RunAsUser              *int64 `json:"runAsUser,omitempty"`
	RunAsGroup             *int64 `json:"runAsGroup,omitempty"`
	ReadOnlyRootFilesystem bool   `json:"readOnlyRootFilesystem"`
	// RestrictSysctls allows only namespaced sysctls from the Kubernetes
	// safe set (for KubernetesVersion) and AllowedUnsafeSysctls.
	RestrictSysctls      bool     `json:"restrictSysctls"`
	AllowedUnsafeSysctls []string `json:"allowedUnsafeSysctls,omitempty"`
	KubernetesVersion    string   `json:"kubernetesVersion,omitempty"`
	// Seccomp is the profile harden gives a container that has none:
	// RuntimeDefault, Localhost/<file below seccompProfileRoot>, or empty.
	Seccomp string `json:"seccomp,omitempty"`
	// RequireSeccomp refuses (enforce) a container without a filter.
	RequireSeccomp bool `json:"requireSeccomp"`
	// AppArmor is the profile harden gives a container that has none:
	// RuntimeDefault, Localhost/<loaded profile>, or empty. It is required
	// in enforce mode wherever the kernel has AppArmor.
	AppArmor string `json:"appArmor,omitempty"`
	// RequireAppArmor refuses (enforce) a container without a profile on
	// a node whose kernel has AppArmor.
	RequireAppArmor bool `json:"requireAppArmor"`
	// ProcMount Default requires the kubelet's masked and readonly paths.
	ProcMount string `json:"procMount,omitempty"`
	// AllowedSELinuxTypes limits the type of process.selinuxLabel; "" in
	// the list allows no label. Empty allows any.
	AllowedSELinuxTypes []string `json:"allowedSELinuxTypes,omitempty"`

	// The rest of the OCI config grants power too: hooks run on the host
	// as root, a bind mount or a joined namespace is the host's, a device
	// rule opens host hardware. Each Restrict* field turns one of those
	// checks on; the zero value checks nothing, as for the fields above.

	// RestrictHooks refuses OCI hooks whose path is not in AllowedHookPaths.
	RestrictHooks    bool     `json:"restrictHooks"`
	AllowedHookPaths []string `json:"allowedHookPaths,omitempty"`
	// RestrictHostPaths refuses bind mounts from the host other than the
	// Pod's own volumes (kubelet's pod directory, the CRI runtime's
	// sandbox files) and AllowedHostPaths, as the Pod Security Standards'
	// hostPath control does (pod-security-admission policy/check_hostPathVolumes.go).
	RestrictHostPaths bool              `json:"restrictHostPaths"`
	AllowedHostPaths  []AllowedHostPath `json:"allowedHostPaths,omitempty"`
	// AllowRuntimeVolumes lets the Pod's own volumes through: the files
	// and directories the kubelet and the CRI runtime make for this Pod.
	AllowRuntimeVolumes bool `json:"allowRuntimeVolumes"`
	// RestrictMounts refuses filesystems other than the container's own
	// pseudo-filesystems, a second /proc, a writable /sys or cgroupfs,
	// mounts that land in /proc or /sys through the image's symlinks, and
	// a root outside the bundle and AllowedRootPaths.
	RestrictMounts   bool     `json:"restrictMounts"`
	AllowedRootPaths []string `json:"allowedRootPaths,omitempty"`
	// RestrictDevices limits device nodes and device cgroup allow rules to
	// runc's default set plus AllowedDevices; a wildcard counts as "all".
	RestrictDevices bool            `json:"restrictDevices"`
	AllowedDevices  []AllowedDevice `json:"allowedDevices,omitempty"`
	// RestrictUserNamespaces refuses uid and gid mappings that reach host
	// root, overlap each other, or that secrun cannot read.
	RestrictUserNamespaces bool `json:"restrictUserNamespaces"`
	// SeccompFloor, when RuntimeDefault, requires a filter that allows no
	// more than RuntimeDefault does for the container's capabilities, or
	// one of the Localhost profiles below seccompProfileRoot.
	SeccompFloor string `json:"seccompFloor,omitempty"`
	// MinOOMScoreAdj is the lowest process.oomScoreAdj allowed: below the
	// kubelet's own values a container can make itself the last thing the
	// OOM killer takes on the node.
	MinOOMScoreAdj *int `json:"minOOMScoreAdj,omitempty"`
	// RestrictPersonality refuses personality flags (ADDR_NO_RANDOMIZE and
	// the like weaken ASLR) and domains other than LINUX and LINUX32.
	RestrictPersonality bool `json:"restrictPersonality"`
	// SeccompAgent hands what the seccomp profile denies to the seccomp
	// agent, to record or explain it (seccomp_agent.go).
	SeccompAgent *SeccompAgent `json:"seccompAgent,omitempty"`
	// SandboxCommand is the process a Pod sandbox runs (the pause image's
	// entrypoint); a bundle that calls itself a sandbox but runs anything
	// else is checked like any container. Default ["/pause"].
	SandboxCommand []string `json:"sandboxCommand,omitempty"`

	allowedCaps  []string // nil: any
	requiredDrop []string
	devices      []deviceRule
	hookPaths    map[string]bool
}

// AllowedHostPath is a host directory (and everything below it) that bind
// mounts may come from, as PodSecurityPolicy's allowedHostPaths had it.
type AllowedHostPath struct {
	PathPrefix string `json:"pathPrefix"`
	// ReadOnly requires the mount to be read-only.
	ReadOnly bool `json:"readOnly,omitempty"`
}

// AllowedDevice is a device a container may be given or open. Major or
// minor -1 ("*") matches any number.
type AllowedDevice struct {
	Type   string `json:"type"`
	Major  int64  `json:"major"`
	Minor  int64  `json:"minor"`
	Access string `json:"access,omitempty"`
}

// Validate checks a policy's own fields, so a typo in config.yaml fails
// when the policy loads, not when a container happens to need the rule.
func (p *Policy) Validate() error {
	switch p.Mode {
	case Enforce, Harden, Audit:
	case "":
		return fmt.Errorf("policy %s: mode is missing; set mode: enforce, harden or audit", p.Name)
	default:
		return fmt.Errorf("policy %s: mode %q is unknown; use enforce, harden or audit", p.Name, p.Mode)
	}
	if err := p.SeccompAgent.validate(p.Name); err != nil {
		return err
	}
	return p.compile()
}
