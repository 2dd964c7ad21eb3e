package policy

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

// checkSeccompFloor holds a filter the bundle brings to RuntimeDefault for
// the container's capabilities: restricted asks for RuntimeDefault or
// Localhost (pod-security-admission policy/check_seccompProfile_restricted.go),
// and at the OCI level a profile that allows unshare, mount or bpf is a
// filter in name only. A Localhost profile the admin placed below the
// profile root passes whatever it allows: the admin wrote it.
func checkSeccompFloor(p *Policy, env *Env, s *specs.Spec) []Finding {
	if p.SeccompFloor != spec.SeccompRuntimeDefault || !spec.Confined(s) || (p.AllowPrivileged && spec.LooksPrivileged(s)) {
		return nil
	}
	why, err := spec.SeccompWithinRuntimeDefaultFor(s.Linux.Seccomp, s)
	if err != nil {
		return []Finding{{Field: "linux.seccomp", Problem: "RuntimeDefault cannot be generated to compare with: " + err.Error(), Fix: "report this as a secrun bug"}}
	}
	if len(why) == 0 {
		return nil
	}
	if spec.LocalhostProfileOf(profileRoot(env), s.Linux.Seccomp, s) != "" {
		return nil
	}
	return []Finding{{Field: "linux.seccomp", Fixable: env.originalWithinFloor(s),
		Problem: fmt.Sprintf("the seccomp filter is weaker than RuntimeDefault for the container's capabilities: %s", strings.Join(why, "; ")),
		Fix:     "use seccompProfile.type: RuntimeDefault, or a Localhost profile the admin placed below " + profileRoot(env)}}
}

func profileRoot(env *Env) string {
	if env != nil && env.SeccompProfileRoot != "" {
		return env.SeccompProfileRoot
	}
	return spec.DefaultSeccompProfileRoot
}

// originalWithinFloor reports whether the bundle's filter was within
// RuntimeDefault for the capabilities the bundle came with: then it is
// the runtime's RuntimeDefault for more capabilities than hardening left,
// and regenerating it for the final ones is the fix. A filter that was
// weaker from the start is the Pod's choice, refused.
func (e *Env) originalWithinFloor(s *specs.Spec) bool {
	if e == nil || e.originalCaps == nil || s.Linux == nil {
		return false
	}
	orig := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: e.originalCaps}}}
	why, err := spec.SeccompWithinRuntimeDefaultFor(s.Linux.Seccomp, orig)
	return err == nil && len(why) == 0
}

// checkOOMScoreAdj: the kubelet gives containers oom_score_adj from -997
// (Guaranteed) to 1000 and the sandbox -998 (pkg/kubelet/qos/policy.go);
// anything lower makes a container outlive the node's own daemons under
// memory pressure.
func checkOOMScoreAdj(p *Policy, _ *Env, s *specs.Spec) []Finding {
	if p.MinOOMScoreAdj == nil || s.Process == nil || s.Process.OOMScoreAdj == nil || *s.Process.OOMScoreAdj >= *p.MinOOMScoreAdj {
		return nil
	}
	return []Finding{{Field: "process.oomScoreAdj",
		Problem: fmt.Sprintf("oomScoreAdj %d is below %d, so the OOM killer would take node daemons first", *s.Process.OOMScoreAdj, *p.MinOOMScoreAdj),
		Fix:     "leave oomScoreAdj to the kubelet (it sets it from the Pod's QoS class)"}}
}

// checkPersonality: runc applies linux.personality with personality(2)
// before the process starts; LINUX32 is a legitimate 32-bit userland, but
// flags such as ADDR_NO_RANDOMIZE or READ_IMPLIES_EXEC switch off ASLR and
// NX for everything the container runs.
func checkPersonality(p *Policy, _ *Env, s *specs.Spec) []Finding {
	if !p.RestrictPersonality || s.Linux == nil || s.Linux.Personality == nil {
		return nil
	}
	per := s.Linux.Personality
	var out []Finding
	if per.Domain != specs.PerLinux && per.Domain != specs.PerLinux32 {
		out = append(out, Finding{Field: "linux.personality.domain",
			Problem: fmt.Sprintf("personality domain %q is not LINUX or LINUX32", per.Domain), Fix: "use LINUX or LINUX32"})
	}
	if len(per.Flags) > 0 {
		out = append(out, Finding{Field: "linux.personality.flags",
			Problem: fmt.Sprintf("personality flags %v weaken the process's memory protections", per.Flags), Fix: "remove linux.personality.flags"})
	}
	return out
}
