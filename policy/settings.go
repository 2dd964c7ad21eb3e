package policy

import (
	"fmt"
	"strings"

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
	RuleAmbient                Rule = "ambientCapabilities"
	RuleNoNewPrivileges        Rule = "noNewPrivileges"
	RuleUser                   Rule = "user"
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
// break it and through which exec flags, how the Kubernetes translation
// orders it, which conformance row proves it, and its policy check, fix
// and Pod-intent step. The policy, the intent, exec-flag checks, the
// tools' field mapping, the translation (package kubespec, which holds
// the step that applies each Translated setting) and the conformance
// suite all read this table instead of naming settings in several places.
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
	// Translated settings are one step of the Kubernetes translation,
	// applied in ApplyOrder.
	Translated bool
	// ApplyAfter lists the settings whose options must have applied
	// before this one's, in the translation and in the Pod intent.
	ApplyAfter []Rule
	// Conformance is the row of the conformance suite's summary that
	// proves the setting in the kernel; empty for settings the suite
	// proves only through refusals (see conformance/checks_refusal.go).
	Conformance string
	// check returns the policy's findings; nil for settings the policy
	// does not judge on their own (user and ambient capabilities are
	// judged through runAsNonRoot and capabilities).
	check func(p *Policy, env *Env, s *specs.Spec) []Finding
	// fix returns the option that brings s into line; nil means the
	// finding cannot be fixed by rewriting.
	fix func(p *Policy, env *Env, s *specs.Spec) spec.Option
	// intent applies what a Pod's annotation asks of the setting, or
	// refuses it when it would loosen the bundle (see ApplyIntent).
	intent func(in *intentRun) error
}

// settings are checked and hardened in this order: what no rewrite can
// fix first (so that, say, a privileged bundle is judged before the
// capability fix could hide it), then the fixable settings; seccomp comes
// last, since the default profile is generated from the final
// capabilities. The translation's order is a different one, computed from
// ApplyAfter (see ApplyOrder).
var settings = []Setting{
	{Rule: RulePrivileged, OCI: []string{"process.capabilities", "linux.maskedPaths"}, Kubernetes: []string{"securityContext.privileged"},
		Translated: true, Conformance: "privileged", check: checkPrivileged, intent: intentPrivileged,
		// privileged overrides both, as containerd's WithPrivileged runs
		// after its masked paths and WithCapabilities
		// (internal/cri/server/container_create_linux.go).
		ApplyAfter: []Rule{RuleCapabilities, RuleProcMount}},
	{Rule: RuleHostNamespaces, OCI: []string{"linux.namespaces"}, Kubernetes: []string{"pod.hostNetwork", "pod.hostPID", "pod.hostIPC"}, Conformance: "privileged", check: checkHostNamespaces},
	{Rule: RuleUserNamespace, OCI: []string{"linux.namespaces", "linux.uidMappings", "linux.gidMappings"}, Kubernetes: []string{"pod.hostUsers"}, check: checkUserNamespace},
	{Rule: RuleHooks, OCI: []string{"hooks"}, check: checkHooks},
	{Rule: RuleHostPaths, OCI: []string{"mounts"}, Kubernetes: []string{"pod.volumes"}, check: checkHostPaths},
	{Rule: RuleMounts, OCI: []string{"mounts", "root.path"}, Kubernetes: []string{"volumeMounts"}, check: checkMounts, fix: fixMounts},
	{Rule: RuleProcessPaths, OCI: []string{"process.cwd", "process.args"}, Kubernetes: []string{"workingDir", "command"}, Process: true, ExecFlags: []ExecFlag{ExecCwd, ExecCommand}, check: checkProcessPaths},
	{Rule: RuleDevices, OCI: []string{"linux.devices", "linux.resources.devices"}, Kubernetes: []string{"securityContext.privileged"}, Conformance: "privileged", check: checkDevices},
	{Rule: RuleOOMScoreAdj, OCI: []string{"process.oomScoreAdj"}, Process: true, check: checkOOMScoreAdj},
	{Rule: RulePersonality, OCI: []string{"linux.personality"}, check: checkPersonality},
	{Rule: RuleCapabilities, OCI: []string{"process.capabilities"}, Kubernetes: []string{"securityContext.capabilities"}, Process: true, ExecFlags: []ExecFlag{ExecCap},
		Translated: true, Conformance: "capabilities", check: checkCapabilities, fix: fixCapabilities, intent: intentCapabilities},
	// Ambient capabilities are the kubelet's opt-in (and the policy's
	// ambientCapabilities), judged with the capabilities.
	{Rule: RuleAmbient, OCI: []string{"process.capabilities.ambient"}, Kubernetes: []string{"securityContext.capabilities.add"}, Process: true,
		Translated: true, Conformance: "capabilities",
		// the final capability sets and uid decide what can be raised.
		ApplyAfter: []Rule{RuleCapabilities, RulePrivileged, RuleUser}},
	{Rule: RuleNoNewPrivileges, OCI: []string{"process.noNewPrivileges"}, Kubernetes: []string{"securityContext.allowPrivilegeEscalation"}, Process: true, ExecFlags: []ExecFlag{ExecNoNewPrivs},
		Translated: true, Conformance: "no_new_privs", check: checkNoNewPrivileges, fix: fixNoNewPrivileges, intent: intentNoNewPrivileges},
	// The user is judged through runAsNonRoot.
	{Rule: RuleUser, OCI: []string{"process.user"}, Kubernetes: []string{"securityContext.runAsUser", "securityContext.runAsGroup", "pod.securityContext.supplementalGroups", "pod.securityContext.fsGroup"}, Process: true, ExecFlags: []ExecFlag{ExecUser},
		Translated: true, Conformance: "user", intent: intentUser},
	{Rule: RuleRunAsNonRoot, OCI: []string{"process.user.uid"}, Kubernetes: []string{"securityContext.runAsUser", "securityContext.runAsNonRoot"}, Process: true, ExecFlags: []ExecFlag{ExecUser},
		Conformance: "user", check: checkRunAsNonRoot, fix: fixRunAsNonRoot},
	{Rule: RuleReadOnlyRootFilesystem, OCI: []string{"root.readonly"}, Kubernetes: []string{"securityContext.readOnlyRootFilesystem"},
		Translated: true, Conformance: "readOnlyRootFilesystem", check: checkReadOnlyRoot, fix: fixReadOnlyRoot, intent: intentReadOnlyRoot},
	{Rule: RuleProcMount, OCI: []string{"linux.maskedPaths", "linux.readonlyPaths"}, Kubernetes: []string{"securityContext.procMount"},
		Translated: true, Conformance: "procMount", check: checkProcMount, fix: fixProcMount, intent: intentProcMount},
	{Rule: RuleSysctls, OCI: []string{"linux.sysctl"}, Kubernetes: []string{"pod.securityContext.sysctls"},
		Translated: true, Conformance: "sysctls", check: checkSysctls},
	{Rule: RuleSELinux, OCI: []string{"process.selinuxLabel"}, Kubernetes: []string{"securityContext.seLinuxOptions"}, Process: true, ExecFlags: []ExecFlag{ExecProcessLabel},
		Translated: true, Conformance: "selinux", check: checkSELinux, intent: intentSELinux},
	{Rule: RuleAppArmor, OCI: []string{"process.apparmorProfile"}, Kubernetes: []string{"securityContext.appArmorProfile"}, Process: true, ExecFlags: []ExecFlag{ExecAppArmor},
		Translated: true, Conformance: "apparmor", check: checkAppArmor, fix: fixAppArmor, intent: intentAppArmor},
	{Rule: RuleSeccomp, OCI: []string{"linux.seccomp"}, Kubernetes: []string{"securityContext.seccompProfile"},
		Translated: true, Conformance: "seccomp", check: func(p *Policy, env *Env, s *specs.Spec) []Finding {
			return append(checkSeccomp(p, env, s), checkSeccompFloor(p, env, s)...)
		}, fix: fixSeccomp, intent: intentSeccomp,
		// RuntimeDefault and a Docker-format profile's includes/excludes.caps
		// are decided by the final bounding set.
		ApplyAfter: []Rule{RuleCapabilities, RulePrivileged, RuleAmbient}},
}

// findings runs the check and fills in what the setting declares: its
// rule (a check finds only its own setting's problems) and, where the
// finding leaves it out, the Kubernetes field.
func (st Setting) findings(p *Policy, env *Env, s *specs.Spec) []Finding {
	if st.check == nil {
		return nil
	}
	out := st.check(p, env, s)
	for i := range out {
		out[i].Rule = st.Rule
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
	if st, ok := Lookup(rule); ok && len(st.Kubernetes) > 0 {
		f.Kubernetes = st.Kubernetes[0]
	}
	return f
}

// Settings returns the settings in the order the policy checks them.
func Settings() []Setting { return append([]Setting(nil), settings...) }

// Lookup returns the setting declared for rule.
func Lookup(rule Rule) (Setting, bool) {
	for _, st := range settings {
		if st.Rule == rule {
			return st, true
		}
	}
	return Setting{}, false
}

// ApplyOrder returns the Translated settings in the order their options
// compose: every ApplyAfter constraint holds, and otherwise the settings
// keep their declared order. It fails on a constraint that names an
// undeclared setting, or on a cycle, which TestApplyOrder catches before
// anything ships.
func ApplyOrder() ([]Rule, error) {
	return applyOrder(settings, func(st Setting) bool { return st.Translated })
}

// applyOrder is a stable topological sort of the chosen settings by
// ApplyAfter. Constraints on settings that are not chosen are ignored, so
// the Pod intent can order its own subset the same way.
func applyOrder(all []Setting, chosen func(Setting) bool) ([]Rule, error) {
	index := map[Rule]int{}
	for i, st := range all {
		index[st.Rule] = i
	}
	pending := map[Rule][]Rule{}
	var todo []Setting
	for _, st := range all {
		if !chosen(st) {
			continue
		}
		todo = append(todo, st)
		for _, a := range st.ApplyAfter {
			j, ok := index[a]
			if !ok {
				return nil, fmt.Errorf("setting %s: applies after %s, which is not declared", st.Rule, a)
			}
			if chosen(all[j]) {
				pending[st.Rule] = append(pending[st.Rule], a)
			}
		}
	}
	done := map[Rule]bool{}
	out := make([]Rule, 0, len(todo))
	for len(out) < len(todo) {
		progressed := false
		for _, st := range todo {
			if done[st.Rule] || !allDone(pending[st.Rule], done) {
				continue
			}
			done[st.Rule] = true
			out = append(out, st.Rule)
			progressed = true
			break
		}
		if !progressed {
			var stuck []string
			for _, st := range todo {
				if !done[st.Rule] {
					stuck = append(stuck, string(st.Rule))
				}
			}
			return nil, fmt.Errorf("settings %s: their ApplyAfter constraints form a cycle", strings.Join(stuck, ", "))
		}
	}
	return out, nil
}

func allDone(rules []Rule, done map[Rule]bool) bool {
	for _, r := range rules {
		if !done[r] {
			return false
		}
	}
	return true
}

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
