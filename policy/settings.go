package policy

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

// Rule names one security setting. Findings, audit records and refusal
// lines carry it, and every table that maps settings to something else
// (exec flags, Kubernetes fields) is keyed by it.
type Rule string

// The settings, in the order they apply (see settings).
const (
	RulePrivileged             Rule = "privileged"
	RuleHostNamespaces         Rule = "hostNamespaces"
	RuleUserNamespace          Rule = "userNamespace"
	RuleHooks                  Rule = "hooks"
	RuleHostPaths              Rule = "hostPaths"
	RuleMounts                 Rule = "mounts"
	RuleProcessPaths           Rule = "processPaths"
	RuleDevices                Rule = "devices"
	RuleOOMScoreAdj            Rule = "oomScoreAdj"
	RulePersonality            Rule = "personality"
	RuleCapabilities           Rule = "capabilities"
	RuleNoNewPrivileges        Rule = "noNewPrivileges"
	RuleRunAsNonRoot           Rule = "runAsNonRoot"
	RuleReadOnlyRootFilesystem Rule = "readOnlyRootFilesystem"
	RuleProcMount              Rule = "procMount"
	RuleSysctls                Rule = "sysctls"
	RuleSELinux                Rule = "seLinux"
	RuleAppArmor               Rule = "appArmor"
	RuleSeccomp                Rule = "seccomp"
)

// ExecFlag is a `runc exec` argument that sets part of the process
// directly. The delegate gets the original argv, so what such a flag
// asks cannot be rewritten, only refused.
type ExecFlag string

const (
	ExecCap          ExecFlag = "--cap"
	ExecUser         ExecFlag = "--user"
	ExecNoNewPrivs   ExecFlag = "--no-new-privs"
	ExecAppArmor     ExecFlag = "--apparmor"
	ExecProcessLabel ExecFlag = "--process-label"
	ExecCwd          ExecFlag = "--cwd"
	// ExecCommand is the command after the container id.
	ExecCommand ExecFlag = "COMMAND"
)

// Setting is one security setting, declared once: where it lives in
// config.json, which Kubernetes fields set it, whether an exec process can
// break it and through which exec flags, and its check and fix. The
// policy, exec-flag checks and the tools' field mapping all read this
// table instead of naming settings in several places.
type Setting struct {
	Rule Rule
	// OCI names the config.json fields the setting reads.
	OCI []string
	// Kubernetes names the Pod spec fields that decide it, relative to the
	// container (a leading "pod." means the Pod's spec).
	Kubernetes []string
	// Process settings also apply to `runc exec --process` documents.
	Process bool
	// ExecFlags set the setting from the exec command line.
	ExecFlags []ExecFlag
	check     func(p *Policy, env *Env, s *specs.Spec) []Finding
	// fix returns the option that brings s into line; nil means the
	// finding cannot be fixed by rewriting.
	fix func(p *Policy, env *Env, s *specs.Spec) spec.Option
}

// settings run in this order, in checks and in hardening alike: what no
// rewrite can fix first, then the fixable settings; seccomp comes last,
// since the default profile is generated from the final capabilities.
var settings = []Setting{
	{Rule: RulePrivileged, OCI: []string{"process.capabilities", "linux.maskedPaths"}, Kubernetes: []string{"securityContext.privileged"}, check: checkPrivileged},
	{Rule: RuleHostNamespaces, OCI: []string{"linux.namespaces"}, Kubernetes: []string{"pod.hostNetwork", "pod.hostPID", "pod.hostIPC"}, check: checkHostNamespaces},
	{Rule: RuleUserNamespace, OCI: []string{"linux.namespaces", "linux.uidMappings", "linux.gidMappings"}, Kubernetes: []string{"pod.hostUsers"}, check: checkUserNamespace},
	{Rule: RuleHooks, OCI: []string{"hooks"}, check: checkHooks},
	{Rule: RuleHostPaths, OCI: []string{"mounts"}, Kubernetes: []string{"pod.volumes"}, check: checkHostPaths},
	{Rule: RuleMounts, OCI: []string{"mounts", "root.path"}, Kubernetes: []string{"volumeMounts"}, check: checkMounts, fix: fixMounts},
	{Rule: RuleProcessPaths, OCI: []string{"process.cwd", "process.args"}, Kubernetes: []string{"workingDir", "command"}, Process: true, ExecFlags: []ExecFlag{ExecCwd, ExecCommand}, check: checkProcessPaths},
	{Rule: RuleDevices, OCI: []string{"linux.devices", "linux.resources.devices"}, Kubernetes: []string{"securityContext.privileged"}, check: checkDevices},
	{Rule: RuleOOMScoreAdj, OCI: []string{"process.oomScoreAdj"}, Process: true, check: checkOOMScoreAdj},
	{Rule: RulePersonality, OCI: []string{"linux.personality"}, check: checkPersonality},
	{Rule: RuleCapabilities, OCI: []string{"process.capabilities"}, Kubernetes: []string{"securityContext.capabilities"}, Process: true, ExecFlags: []ExecFlag{ExecCap}, check: checkCapabilities, fix: fixCapabilities},
	{Rule: RuleNoNewPrivileges, OCI: []string{"process.noNewPrivileges"}, Kubernetes: []string{"securityContext.allowPrivilegeEscalation"}, Process: true, ExecFlags: []ExecFlag{ExecNoNewPrivs}, check: checkNoNewPrivileges, fix: fixNoNewPrivileges},
	{Rule: RuleRunAsNonRoot, OCI: []string{"process.user.uid"}, Kubernetes: []string{"securityContext.runAsUser", "securityContext.runAsNonRoot"}, Process: true, ExecFlags: []ExecFlag{ExecUser}, check: checkRunAsNonRoot, fix: fixRunAsNonRoot},
	{Rule: RuleReadOnlyRootFilesystem, OCI: []string{"root.readonly"}, Kubernetes: []string{"securityContext.readOnlyRootFilesystem"}, check: checkReadOnlyRoot, fix: fixReadOnlyRoot},
	{Rule: RuleProcMount, OCI: []string{"linux.maskedPaths", "linux.readonlyPaths"}, Kubernetes: []string{"securityContext.procMount"}, check: checkProcMount, fix: fixProcMount},
	{Rule: RuleSysctls, OCI: []string{"linux.sysctl"}, Kubernetes: []string{"pod.securityContext.sysctls"}, check: checkSysctls},
	{Rule: RuleSELinux, OCI: []string{"process.selinuxLabel"}, Kubernetes: []string{"securityContext.seLinuxOptions"}, Process: true, ExecFlags: []ExecFlag{ExecProcessLabel}, check: checkSELinux},
	{Rule: RuleAppArmor, OCI: []string{"process.apparmorProfile"}, Kubernetes: []string{"securityContext.appArmorProfile"}, Process: true, ExecFlags: []ExecFlag{ExecAppArmor}, check: checkAppArmor, fix: fixAppArmor},
	{Rule: RuleSeccomp, OCI: []string{"linux.seccomp"}, Kubernetes: []string{"securityContext.seccompProfile"}, check: func(p *Policy, env *Env, s *specs.Spec) []Finding {
		return append(checkSeccomp(p, env, s), checkSeccompFloor(p, env, s)...)
	}, fix: fixSeccomp},
}

// findings runs the check and fills in what the setting declares and a
// finding leaves out: the Kubernetes field.
func (st Setting) findings(p *Policy, env *Env, s *specs.Spec) []Finding {
	out := st.check(p, env, s)
	for i := range out {
		if out[i].Kubernetes == "" && len(st.Kubernetes) > 0 {
			out[i].Kubernetes = st.Kubernetes[0]
		}
	}
	return out
}

// SettingFinding is a finding that carries only what rule declares, for
// mapping a change (which names its rule) to its fields.
func SettingFinding(rule Rule) Finding {
	f := Finding{Rule: rule}
	for _, st := range settings {
		if st.Rule == rule && len(st.Kubernetes) > 0 {
			f.Kubernetes = st.Kubernetes[0]
		}
	}
	return f
}

// Settings returns the settings in the order they apply.
func Settings() []Setting { return append([]Setting(nil), settings...) }

// RuleNames lists the rules in the order they apply.
func RuleNames() []Rule {
	out := make([]Rule, len(settings))
	for i, r := range settings {
		out[i] = r.Rule
	}
	return out
}

// TouchedBy returns the rules that the given exec flags set.
func TouchedBy(flags ...ExecFlag) map[Rule]bool {
	out := map[Rule]bool{}
	for _, s := range settings {
		for _, f := range s.ExecFlags {
			for _, g := range flags {
				if f == g {
					out[s.Rule] = true
				}
			}
		}
	}
	return out
}
