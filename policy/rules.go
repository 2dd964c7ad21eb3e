package policy

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

// Finding is one way a bundle breaks a policy, in the words an admin needs
// to fix it: the rule, the config.json field, what is wrong, the fix.
type Finding struct {
	Rule    Rule   `json:"rule"`
	Field   string `json:"field"`
	Problem string `json:"problem"`
	Fix     string `json:"fix"`
	// Kubernetes is the Pod spec field that decides it, relative to the
	// container ("securityContext.capabilities") or, with a leading
	// "pod.", to the Pod spec; the tools resolve it against a manifest.
	Kubernetes string `json:"kubernetes,omitempty"`
	// Subjects are what the finding is about, where a field holds many:
	// capability names without CAP_, sysctl names, namespace types.
	Subjects []string `json:"subjects,omitempty"`
	// Fixable says whether harden mode can rewrite it away.
	Fixable bool `json:"fixable"`
	// Default marks a finding that is the policy's default rather than a
	// requirement (a seccomp or AppArmor profile for a container that has
	// none): harden applies it, enforce does not refuse for it.
	Default bool `json:"default,omitempty"`
}

// Refusing returns the findings enforce mode refuses for.
func Refusing(fs []Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		if !f.Default {
			out = append(out, f)
		}
	}
	return out
}

func (f Finding) String() string {
	return fmt.Sprintf("%s: %s: %s; fix: %s", f.Rule, f.Field, f.Problem, f.Fix)
}

// Env is what rules need from the node.
type Env struct {
	AppArmor           spec.AppArmorHost
	SeccompProfileRoot string
	// BundleDir is the bundle being checked, which relative root paths
	// and the rootfs containment are read against; empty for an exec
	// process or a lone config.json.
	BundleDir string
	// ContainerID is the id the runtime was called with.
	ContainerID string
	// Warn receives what secrun skipped and why (AppArmor on a kernel
	// without it); nil drops warnings.
	Warn func(string)
	// SeccompAgentReachable tells whether the seccomp agent answers on a
	// socket; nil connects to it (AgentReachable).
	SeccompAgentReachable func(socket string) error

	// originalCaps is the bounding set before hardening, for rules whose
	// fix depends on what the bundle came with.
	originalCaps []string
	// sandbox marks a verified Pod sandbox, whose pause process runs as
	// any user.
	sandbox bool
}

func (e *Env) warn(msg string) {
	if e != nil && e.Warn != nil {
		e.Warn(msg)
	}
}

// compile normalises what the admin wrote, so checks compare like with like.
func (p *Policy) compile() error {
	var err error
	if p.AllowedCapabilities != nil {
		if p.allowedCaps, err = spec.NormalizeCapabilities(p.AllowedCapabilities); err != nil {
			return fmt.Errorf("policy %s: allowedCapabilities: %w", p.Name, err)
		}
		if p.allowedCaps == nil {
			p.allowedCaps = []string{}
		}
	}
	if p.requiredDrop, err = spec.NormalizeCapabilities(p.RequiredDropCapabilities); err != nil {
		return fmt.Errorf("policy %s: requiredDropCapabilities: %w", p.Name, err)
	}
	for _, f := range []struct{ field, v string }{{"seccomp", p.Seccomp}, {"appArmor", p.AppArmor}} {
		kind, arg, _ := strings.Cut(f.v, "/")
		switch {
		case f.v == "" || f.v == "RuntimeDefault" || f.v == "Unconfined":
		case kind == "Localhost" && arg != "":
		default:
			return fmt.Errorf("policy %s: %s %q is not valid; use RuntimeDefault, Unconfined or Localhost/<name>", p.Name, f.field, f.v)
		}
	}
	switch p.ProcMount {
	case "", spec.ProcMountDefault, spec.ProcMountUnmasked:
	default:
		return fmt.Errorf("policy %s: procMount %q is not valid; use Default or Unmasked", p.Name, p.ProcMount)
	}
	if p.RestrictSysctls {
		if _, err := spec.SafeSysctls(p.KubernetesVersion); err != nil {
			return fmt.Errorf("policy %s: kubernetesVersion: %w", p.Name, err)
		}
	}
	if err := p.compileHooks(); err != nil {
		return err
	}
	if err := p.compileDevices(); err != nil {
		return err
	}
	switch p.SeccompFloor {
	case "", spec.SeccompRuntimeDefault:
	default:
		return fmt.Errorf("policy %s: seccompFloor %q is not valid; use RuntimeDefault or leave it out", p.Name, p.SeccompFloor)
	}
	for _, a := range p.AllowedHostPaths {
		if !filepath.IsAbs(a.PathPrefix) {
			return fmt.Errorf("policy %s: allowedHostPaths: pathPrefix %q must be an absolute path", p.Name, a.PathPrefix)
		}
	}
	for _, r := range p.AllowedRootPaths {
		if !filepath.IsAbs(r) || filepath.Clean(r) == "/" {
			return fmt.Errorf("policy %s: allowedRootPaths: %q must be an absolute directory other than /", p.Name, r)
		}
	}
	if p.RunAsUser != nil && *p.RunAsUser <= 0 && p.RunAsNonRoot {
		return fmt.Errorf("policy %s: runAsUser must be a non-zero uid when runAsNonRoot is set", p.Name)
	}
	return nil
}

// Check returns every finding for s, in rule order.
func (p *Policy) Check(env *Env, s *specs.Spec) []Finding {
	var out []Finding
	for _, r := range settings {
		out = append(out, r.findings(p, env, s)...)
	}
	return out
}

// CheckProcess checks a `runc exec --process` document: only the rules
// that a process can break.
func (p *Policy) CheckProcess(env *Env, proc *specs.Process) []Finding {
	s := &specs.Spec{Process: proc}
	var out []Finding
	for _, r := range settings {
		if r.Process {
			out = append(out, r.findings(p, env, s)...)
		}
	}
	return out
}

// Harden rewrites s until it complies wherever a rewrite can, and returns
// what is left: findings no rewrite fixes. changes lists each rule whose
// fix ran.
func (p *Policy) Harden(env *Env, s *specs.Spec) (left []Finding, changes []Change, err error) {
	return p.harden(env, s, false)
}

// HardenProcess is Harden for an exec process document.
func (p *Policy) HardenProcess(env *Env, proc *specs.Process) (left []Finding, changes []Change, err error) {
	s := &specs.Spec{Process: proc}
	return p.harden(env, s, true)
}

func (p *Policy) harden(env *Env, s *specs.Spec, processOnly bool) ([]Finding, []Change, error) {
	e := Env{}
	if env != nil {
		e = *env
	}
	e.originalCaps = []string{}
	if s.Process != nil && s.Process.Capabilities != nil {
		e.originalCaps = slices.Clone(s.Process.Capabilities.Bounding)
	}
	env = &e
	var left []Finding
	var changes []Change
	for _, r := range settings {
		if processOnly && !r.Process {
			continue
		}
		found := r.findings(p, env, s)
		if len(found) == 0 {
			continue
		}
		if r.fix == nil {
			left = append(left, found...)
			continue
		}
		opt := r.fix(p, env, s)
		if opt == nil {
			left = append(left, found...)
			continue
		}
		if err := opt(s); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", r.Rule, err)
		}
		for _, f := range found {
			changes = append(changes, Change{Rule: r.Rule, Message: "fixed: " + f.Problem})
		}
		// A fix that did not satisfy its own rule is a bug or an
		// unfixable case; either way the container must not start.
		left = append(left, r.findings(p, env, s)...)
	}
	return left, changes, nil
}

// allowedCaps and requiredDrop are the normalised capability lists.
func (p *Policy) forbiddenCaps(proc *specs.Process) []string {
	var out []string
	if p.allowedCaps != nil {
		out = spec.CapabilitiesOutside(proc, p.allowedCaps)
	}
	if len(p.requiredDrop) > 0 {
		all := spec.CapabilitiesOutside(proc, nil)
		for _, c := range all {
			if (slices.Contains(p.requiredDrop, c) || slices.Contains(p.requiredDrop, "ALL")) && !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
		slices.Sort(out)
	}
	return out
}

func checkPrivileged(p *Policy, _ *Env, s *specs.Spec) []Finding {
	if p.AllowPrivileged || !spec.LooksPrivileged(s) {
		return nil
	}
	return []Finding{{Field: "process.capabilities, linux.maskedPaths",
		Problem: "the container is privileged (every capability, /proc unmasked)",
		Fix:     "remove securityContext.privileged: true, or run the Pod with a RuntimeClass whose policy allows privileged containers"}}
}

func checkCapabilities(p *Policy, _ *Env, s *specs.Spec) []Finding {
	bad := p.forbiddenCaps(s.Process)
	if len(bad) == 0 {
		return nil
	}
	allowed := "none"
	if len(p.allowedCaps) > 0 {
		allowed = strings.Join(trimCap(p.allowedCaps), ", ")
	}
	return []Finding{{Field: "process.capabilities", Fixable: true, Subjects: trimCap(bad),
		Problem: fmt.Sprintf("holds %s, which policy %s does not allow (allowed: %s)", strings.Join(trimCap(bad), ", "), p.Name, allowed),
		Fix:     fmt.Sprintf("add capabilities.drop: [ALL] and add back only what is allowed, or drop %s", strings.Join(trimCap(bad), ", "))}}
}

func fixCapabilities(p *Policy, _ *Env, s *specs.Spec) spec.Option {
	return spec.DropCapabilities(p.forbiddenCaps(s.Process))
}

func checkNoNewPrivileges(p *Policy, _ *Env, s *specs.Spec) []Finding {
	if !p.NoNewPrivileges || (s.Process != nil && s.Process.NoNewPrivileges) {
		return nil
	}
	return []Finding{{Field: "process.noNewPrivileges", Fixable: true,
		Problem: "no_new_privs is off, so setuid binaries can raise privileges",
		Fix:     "set securityContext.allowPrivilegeEscalation: false"}}
}

func fixNoNewPrivileges(*Policy, *Env, *specs.Spec) spec.Option {
	return spec.WithNoNewPrivileges(true)
}

func checkRunAsNonRoot(p *Policy, env *Env, s *specs.Spec) []Finding {
	if !p.RunAsNonRoot || s.Process == nil || s.Process.User.UID != 0 {
		return nil
	}
	return []Finding{{Field: "process.user.uid", Fixable: p.RunAsUser != nil || (env != nil && env.sandbox),
		Problem: "the container would run as uid 0 (root), and runAsNonRoot needs a non-zero uid",
		Fix:     "set securityContext.runAsUser to a non-zero uid (or USER in the image), or give the policy a runAsUser for harden mode"}}
}

// pauseUser is the user the pause image declares (kubernetes
// build/pause/Dockerfile: USER 65535:65535); containerd runs the sandbox as
// root unless the Pod sets runAsUser, but pause needs no privilege.
const pauseUser = 65535

func fixRunAsNonRoot(p *Policy, env *Env, _ *specs.Spec) spec.Option {
	uid, gid := p.RunAsUser, p.RunAsGroup
	if uid == nil && env != nil && env.sandbox {
		u := int64(pauseUser)
		uid, gid = &u, &u
	}
	if uid == nil {
		return nil
	}
	return func(s *specs.Spec) error {
		s.Process.User.UID = uint32(*uid)
		if gid != nil {
			s.Process.User.GID = uint32(*gid)
		}
		return nil
	}
}

func checkReadOnlyRoot(p *Policy, _ *Env, s *specs.Spec) []Finding {
	if !p.ReadOnlyRootFilesystem || (s.Root != nil && s.Root.Readonly) {
		return nil
	}
	return []Finding{{Field: "root.readonly", Fixable: s.Root != nil,
		Problem: "the root filesystem is writable",
		Fix:     "set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the app writes"}}
}

func fixReadOnlyRoot(*Policy, *Env, *specs.Spec) spec.Option { return spec.WithReadonlyRootfs(true) }

func checkProcMount(p *Policy, _ *Env, s *specs.Spec) []Finding {
	if p.ProcMount != spec.ProcMountDefault || p.AllowPrivileged && spec.LooksPrivileged(s) {
		return nil
	}
	masked, readonly := spec.MissingProcMasks(s)
	if len(masked)+len(readonly) == 0 {
		return nil
	}
	return []Finding{{Field: "linux.maskedPaths, linux.readonlyPaths", Fixable: true,
		Problem: fmt.Sprintf("/proc is less masked than procMount Default (missing %s)", strings.Join(append(masked, readonly...), ", ")),
		Fix:     "remove procMount: Unmasked (or use it only with hostUsers: false)"}}
}

func fixProcMount(*Policy, *Env, *specs.Spec) spec.Option {
	return spec.WithProcMount(spec.ProcMountDefault)
}

func checkSysctls(p *Policy, _ *Env, s *specs.Spec) []Finding {
	if !p.RestrictSysctls {
		return nil
	}
	var out []Finding
	for _, err := range spec.CheckSpecSysctls(p.sysctlPolicy(), s) {
		name, _, _ := strings.Cut(err.Error(), ": ")
		out = append(out, Finding{Field: "linux.sysctl", Problem: err.Error(), Subjects: []string{name},
			Fix: "remove the sysctl from securityContext.sysctls, or have the admin add it to allowedUnsafeSysctls"})
	}
	return out
}

func (p *Policy) sysctlPolicy() spec.SysctlPolicy {
	return spec.SysctlPolicy{KubernetesVersion: p.KubernetesVersion, AllowedUnsafe: p.AllowedUnsafeSysctls}
}

func checkSELinux(p *Policy, _ *Env, s *specs.Spec) []Finding {
	if len(p.AllowedSELinuxTypes) == 0 || s.Process == nil {
		return nil
	}
	t := spec.SELinuxType(s.Process.SelinuxLabel)
	if slices.Contains(p.AllowedSELinuxTypes, t) {
		return nil
	}
	return []Finding{{Field: "process.selinuxLabel",
		Problem: fmt.Sprintf("SELinux type %q is not allowed", t),
		Fix:     fmt.Sprintf("use seLinuxOptions.type from: %s", strings.Join(p.AllowedSELinuxTypes, ", "))}}
}

func checkAppArmor(p *Policy, env *Env, s *specs.Spec) []Finding {
	if p.AppArmor == "" || p.AppArmor == "Unconfined" || (p.AllowPrivileged && spec.LooksPrivileged(s)) {
		return nil
	}
	if s.Process != nil && s.Process.ApparmorProfile != "" && s.Process.ApparmorProfile != "unconfined" {
		return nil
	}
	if env == nil || env.AppArmor == nil || !env.AppArmor.Enabled() {
		// Nothing on this node could enforce a profile; requiring one
		// would refuse every container for a protection the kernel lacks.
		env.warn("appArmor: skipped, AppArmor is not enabled in this kernel")
		return nil
	}
	return []Finding{{Field: "process.apparmorProfile", Fixable: true, Default: !p.RequireAppArmor,
		Problem: "the process runs unconfined by AppArmor",
		Fix:     "set securityContext.appArmorProfile.type: RuntimeDefault (or Localhost)"}}
}

func fixAppArmor(p *Policy, env *Env, _ *specs.Spec) spec.Option {
	kind, name, _ := strings.Cut(p.AppArmor, "/")
	if kind == "Localhost" {
		return spec.WithAppArmorLocalhost(env.AppArmor, name)
	}
	return spec.WithAppArmorRuntimeDefault(env.AppArmor, env.warn)
}

func checkSeccomp(p *Policy, _ *Env, s *specs.Spec) []Finding {
	if spec.Confined(s) || (p.AllowPrivileged && spec.LooksPrivileged(s)) {
		return nil
	}
	hasDefault := p.Seccomp != "" && p.Seccomp != "Unconfined"
	if !p.RequireSeccomp && !hasDefault {
		return nil
	}
	return []Finding{{Field: "linux.seccomp", Fixable: hasDefault, Default: !p.RequireSeccomp,
		Problem: "no seccomp filter confines the process",
		Fix:     "set securityContext.seccompProfile.type: RuntimeDefault (or Localhost)"}}
}

func fixSeccomp(p *Policy, env *Env, s *specs.Spec) spec.Option {
	if spec.Confined(s) {
		// The filter is there but weaker than the floor: only the
		// runtime's RuntimeDefault for more capabilities is rewritten.
		if env.originalWithinFloor(s) {
			return spec.WithRuntimeDefaultSeccomp()
		}
		return nil
	}
	kind, file, _ := strings.Cut(p.Seccomp, "/")
	switch kind {
	case "Localhost":
		root := spec.DefaultSeccompProfileRoot
		if env != nil && env.SeccompProfileRoot != "" {
			root = env.SeccompProfileRoot
		}
		return spec.WithLocalhostSeccomp(root, file)
	case "RuntimeDefault":
		return spec.WithRuntimeDefaultSeccomp()
	}
	return nil
}

func trimCap(caps []string) []string {
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = strings.TrimPrefix(c, "CAP_")
	}
	return out
}
