package spec

// These types mirror the Kubernetes securityContext API (core/v1) field for
// field in JSON, so that a Pod's own words reach secrun through annotations
// without linking k8s.io/api into the runtime wrapper: that package costs
// milliseconds of init on every container start. The tooling binary
// translates the real API types into these.

// Capabilities mirrors core/v1 Capabilities.
type Capabilities struct {
	Add  []string `json:"add,omitempty"`
	Drop []string `json:"drop,omitempty"`
}

// Profile mirrors core/v1 SeccompProfile and AppArmorProfile.
type Profile struct {
	Type             string  `json:"type"`
	LocalhostProfile *string `json:"localhostProfile,omitempty"`
}

// SecurityContext mirrors the container-level core/v1 SecurityContext.
type SecurityContext struct {
	Capabilities             *Capabilities   `json:"capabilities,omitempty"`
	Privileged               *bool           `json:"privileged,omitempty"`
	SELinuxOptions           *SELinuxOptions `json:"seLinuxOptions,omitempty"`
	WindowsOptions           *WindowsOptions `json:"windowsOptions,omitempty"`
	RunAsUser                *int64          `json:"runAsUser,omitempty"`
	RunAsGroup               *int64          `json:"runAsGroup,omitempty"`
	RunAsNonRoot             *bool           `json:"runAsNonRoot,omitempty"`
	ReadOnlyRootFilesystem   *bool           `json:"readOnlyRootFilesystem,omitempty"`
	AllowPrivilegeEscalation *bool           `json:"allowPrivilegeEscalation,omitempty"`
	ProcMount                *string         `json:"procMount,omitempty"`
	SeccompProfile           *Profile        `json:"seccompProfile,omitempty"`
	AppArmorProfile          *Profile        `json:"appArmorProfile,omitempty"`
}

// WindowsOptions mirrors core/v1 WindowsSecurityContextOptions. On Linux
// it has no effect; it exists so that a manifest carrying it still parses.
type WindowsOptions struct {
	GMSACredentialSpecName *string `json:"gmsaCredentialSpecName,omitempty"`
	GMSACredentialSpec     *string `json:"gmsaCredentialSpec,omitempty"`
	RunAsUserName          *string `json:"runAsUserName,omitempty"`
	HostProcess            *bool   `json:"hostProcess,omitempty"`
}

// Overlay returns sc with every field that over sets replaced, which is how
// a container's securityContext overrides its Pod's.
func (sc SecurityContext) Overlay(over *SecurityContext) SecurityContext {
	if over == nil {
		return sc
	}
	out := sc
	if over.Capabilities != nil {
		out.Capabilities = over.Capabilities
	}
	if over.Privileged != nil {
		out.Privileged = over.Privileged
	}
	if over.SELinuxOptions != nil {
		out.SELinuxOptions = over.SELinuxOptions
	}
	if over.WindowsOptions != nil {
		out.WindowsOptions = over.WindowsOptions
	}
	if over.RunAsUser != nil {
		out.RunAsUser = over.RunAsUser
	}
	if over.RunAsGroup != nil {
		out.RunAsGroup = over.RunAsGroup
	}
	if over.RunAsNonRoot != nil {
		out.RunAsNonRoot = over.RunAsNonRoot
	}
	if over.ReadOnlyRootFilesystem != nil {
		out.ReadOnlyRootFilesystem = over.ReadOnlyRootFilesystem
	}
	if over.AllowPrivilegeEscalation != nil {
		out.AllowPrivilegeEscalation = over.AllowPrivilegeEscalation
	}
	if over.ProcMount != nil {
		out.ProcMount = over.ProcMount
	}
	if over.SeccompProfile != nil {
		out.SeccompProfile = over.SeccompProfile
	}
	if over.AppArmorProfile != nil {
		out.AppArmorProfile = over.AppArmorProfile
	}
	return out
}
