package manifest

import (
	"github.com/secrun/secrun/kubespec"
	"github.com/secrun/secrun/spec"
	corev1 "k8s.io/api/core/v1"
)

// PodSecurityContext converts the API type into the spec package's
// mirror, which the runtime can use without linking k8s.io/api. nil stays
// nil.
func PodSecurityContext(p *corev1.PodSecurityContext) *kubespec.PodSecurityContext {
	if p == nil {
		return nil
	}
	out := &kubespec.PodSecurityContext{
		SELinuxOptions:     seLinuxOptions(p.SELinuxOptions),
		WindowsOptions:     windowsOptions(p.WindowsOptions),
		RunAsUser:          p.RunAsUser,
		RunAsGroup:         p.RunAsGroup,
		RunAsNonRoot:       p.RunAsNonRoot,
		SupplementalGroups: p.SupplementalGroups,
		FSGroup:            p.FSGroup,
		SeccompProfile:     seccompProfile(p.SeccompProfile),
		AppArmorProfile:    appArmorProfile(p.AppArmorProfile),
	}
	out.SupplementalGroupsPolicy = stringPtr(p.SupplementalGroupsPolicy)
	out.FSGroupChangePolicy = stringPtr(p.FSGroupChangePolicy)
	out.SELinuxChangePolicy = stringPtr(p.SELinuxChangePolicy)
	for _, s := range p.Sysctls {
		out.Sysctls = append(out.Sysctls, kubespec.Sysctl{Name: s.Name, Value: s.Value})
	}
	return out
}

// SecurityContext converts a container's securityContext; nil stays nil.
func SecurityContext(c *corev1.SecurityContext) *spec.SecurityContext {
	if c == nil {
		return nil
	}
	out := &spec.SecurityContext{
		Privileged:               c.Privileged,
		SELinuxOptions:           seLinuxOptions(c.SELinuxOptions),
		WindowsOptions:           windowsOptions(c.WindowsOptions),
		RunAsUser:                c.RunAsUser,
		RunAsGroup:               c.RunAsGroup,
		RunAsNonRoot:             c.RunAsNonRoot,
		ReadOnlyRootFilesystem:   c.ReadOnlyRootFilesystem,
		AllowPrivilegeEscalation: c.AllowPrivilegeEscalation,
		ProcMount:                stringPtr(c.ProcMount),
		SeccompProfile:           seccompProfile(c.SeccompProfile),
		AppArmorProfile:          appArmorProfile(c.AppArmorProfile),
	}
	if c.Capabilities != nil {
		caps := &spec.Capabilities{}
		for _, a := range c.Capabilities.Add {
			caps.Add = append(caps.Add, string(a))
		}
		for _, d := range c.Capabilities.Drop {
			caps.Drop = append(caps.Drop, string(d))
		}
		out.Capabilities = caps
	}
	return out
}

func stringPtr[T ~string](p *T) *string {
	if p == nil {
		return nil
	}
	s := string(*p)
	return &s
}

func seLinuxOptions(o *corev1.SELinuxOptions) *spec.SELinuxOptions {
	if o == nil {
		return nil
	}
	return &spec.SELinuxOptions{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
}

func windowsOptions(o *corev1.WindowsSecurityContextOptions) *spec.WindowsOptions {
	if o == nil {
		return nil
	}
	return &spec.WindowsOptions{
		GMSACredentialSpecName: o.GMSACredentialSpecName,
		GMSACredentialSpec:     o.GMSACredentialSpec,
		RunAsUserName:          o.RunAsUserName,
		HostProcess:            o.HostProcess,
	}
}

func seccompProfile(p *corev1.SeccompProfile) *spec.Profile {
	if p == nil {
		return nil
	}
	return &spec.Profile{Type: string(p.Type), LocalhostProfile: p.LocalhostProfile}
}

func appArmorProfile(p *corev1.AppArmorProfile) *spec.Profile {
	if p == nil {
		return nil
	}
	return &spec.Profile{Type: string(p.Type), LocalhostProfile: p.LocalhostProfile}
}
