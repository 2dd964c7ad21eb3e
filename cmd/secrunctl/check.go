package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/secrun/secrun/manifest"
	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/runccheck"
	"github.com/secrun/secrun/spec"
	"github.com/urfave/cli/v2"
	corev1 "k8s.io/api/core/v1"
)

var checkCommand = &cli.Command{
	Name:  "check",
	Usage: "report, per manifest field, what a node policy would refuse or change",
	Description: `check translates every container of the manifest as translate does, then
runs the policy on each bundle as the secrun wrapper would at create, and
prints each refusal and change against the Kubernetes field to edit,
like Pod Security admission but for this node's policy. Nothing is
written and no AppArmor profile is loaded.

Translation problems (an unknown field, a sysctl the kubelet refuses)
count as refusals: the Pod would not start either. The sysctl policy and
seccomp profile root default to the policy's and the configuration's.

Exit status: 0 when every container would start, 3 when any would be
refused, 1 on usage or configuration errors.`,
	ArgsUsage: " ",
	Flags: append(manifestFlags(),
		&cli.StringFlag{Name: "policy", Aliases: []string{"p"}, Usage: "policy name (default: the configuration's defaultPolicy)"},
		&cli.StringFlag{Name: "mode", Usage: "override the policy's mode: enforce, harden or audit"},
		&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
	),
	Action: runCheck,
}

// checkItem is one line of the report.
type checkItem struct {
	// Field is the Kubernetes field path to edit.
	Field string `json:"field"`
	// OCIField is the config.json field the policy looked at, if any.
	OCIField string `json:"ociField,omitempty"`
	Rule     string `json:"rule,omitempty"`
	Message  string `json:"message"`
	Fix      string `json:"fix,omitempty"`
}

// checkResult is the report for one container.
type checkResult struct {
	Workload  string          `json:"workload"`
	Container string          `json:"container,omitempty"`
	Path      string          `json:"path,omitempty"`
	Decision  policy.Decision `json:"decision"`
	Refusals  []checkItem     `json:"refusals,omitempty"`
	Changes   []checkItem     `json:"changes,omitempty"`
	Warnings  []string        `json:"warnings,omitempty"`
}

func runCheck(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("check takes no arguments (got %q); name the manifest with -f", c.Args().Slice())
	}
	cfg, pol, err := selectedPolicy(c)
	if err != nil {
		return err
	}
	workloads, err := readManifest(c)
	var invalid *invalidManifestError
	if errors.As(err, &invalid) {
		// The API server would refuse the manifest: that is a refusal
		// too, reported as one.
		fmt.Fprintf(c.App.Writer, "%s: refused: the manifest is invalid\n", c.String("filename"))
		for _, e := range splitErrors(invalid.err) {
			fmt.Fprintf(c.App.Writer, "  refuse  %s\n", strings.ReplaceAll(e.Error(), "\n", "\n  "))
		}
		return cli.Exit("", 3)
	}
	if err != nil {
		return err
	}
	opts, err := translateOptions(c, cfg.SeccompProfileRoot)
	if err != nil {
		return err
	}
	// The node's answer: what the policy lets through is what its kubelet
	// is meant to be configured with, unless the flags say otherwise.
	if !c.IsSet("kubernetes-version") {
		opts.KubernetesVersion = pol.KubernetesVersion
	}
	if !c.IsSet("allowed-unsafe-sysctls") {
		opts.AllowedUnsafeSysctls = pol.AllowedUnsafeSysctls
	}
	opts.AppArmor = dryRunAppArmor{spec.HostAppArmor{}}

	var results []checkResult
	for _, w := range workloads {
		results = append(results, checkWorkload(w, opts, pol, cfg)...)
	}
	refused := 0
	for _, r := range results {
		if r.Decision == policy.Refused {
			refused++
		}
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"policy": pol.Name, "mode": pol.Mode, "results": results}); err != nil {
			return err
		}
	} else {
		printCheck(c, pol, results)
	}
	if refused > 0 {
		return cli.Exit("", 3)
	}
	return nil
}

// checkWorkload translates w container by container, so that one
// container's translation error does not hide the others' findings.
func checkWorkload(w *manifest.Workload, opts manifest.Options, pol *policy.Policy, cfg *policy.Config) []checkResult {
	names := opts.Containers
	if len(names) == 0 {
		for _, c := range w.PodSpec.InitContainers {
			names = append(names, c.Name)
		}
		for _, c := range w.PodSpec.Containers {
			names = append(names, c.Name)
		}
		for _, c := range w.PodSpec.EphemeralContainers {
			names = append(names, c.Name)
		}
	}
	var out []checkResult
	for _, name := range names {
		o := opts
		o.Containers = []string{name}
		bundles, err := manifest.Translate(w, o)
		if err != nil {
			r := checkResult{Workload: w.String(), Container: name, Decision: policy.Refused}
			for _, e := range splitErrors(err) {
				r.Refusals = append(r.Refusals, translationItem(w, e))
			}
			out = append(out, r)
			continue
		}
		for _, b := range bundles {
			out = append(out, checkBundle(w, b, pol, cfg))
		}
	}
	return out
}

func checkBundle(w *manifest.Workload, b manifest.ContainerBundle, pol *policy.Policy, cfg *policy.Config) checkResult {
	r := checkResult{Workload: w.String(), Container: b.Name, Path: b.Path, Warnings: b.Warnings}
	env := &policy.Env{AppArmor: dryRunAppArmor{spec.HostAppArmor{}}, SeccompProfileRoot: cfg.SeccompProfileRoot}
	o := pol.Decide(env, b.Spec)
	r.Decision = o.Decision
	if r.Decision == "" {
		r.Decision = policy.Allowed
	}
	r.Warnings = append(r.Warnings, o.Warnings...)
	refusing := o.Refused() || o.Decision == policy.Audited
	if o.Err != nil {
		field := b.Path
		var ie *policy.IntentError
		if errors.As(o.Err, &ie) {
			field = w.MetaPath + ".annotations"
			if ie.Annotation != "" {
				field += "[" + strconv.Quote(ie.Annotation) + "]"
			}
		}
		r.Refusals = append(r.Refusals, checkItem{Field: field, Message: o.Err.Error()})
	}
	if refusing {
		for _, f := range o.Findings {
			if o.Decision == policy.Audited && f.Default {
				continue
			}
			r.Refusals = append(r.Refusals, checkItem{
				Field: k8sField(w, b, f), OCIField: f.Field, Rule: string(f.Rule),
				Message: f.Problem, Fix: f.Fix,
			})
		}
	}
	// What the policy lets through must still be something runc starts.
	if !o.Refused() {
		if _, err := runccheck.Check("", b.Spec); err != nil {
			var p *runccheck.Problem
			item := checkItem{Field: b.Path, Rule: "runc", Message: err.Error()}
			if errors.As(err, &p) {
				item.OCIField = p.Field
			}
			r.Decision = "refused"
			r.Refusals = append(r.Refusals, item)
		}
	}
	for _, ch := range o.Changes {
		var field string
		switch ch.Rule {
		case policy.RuleIntent:
			field = w.MetaPath + ".annotations"
		default:
			field = k8sField(w, b, policy.SettingFinding(ch.Rule))
		}
		r.Changes = append(r.Changes, checkItem{Field: field, Rule: string(ch.Rule), Message: ch.Message})
	}
	return r
}

// k8sField resolves a finding's Kubernetes field (declared per setting in
// policy/settings.go, refined by the finding) against the manifest: the
// container or the Pod, and the level (container or Pod securityContext)
// where the manifest sets it.
func k8sField(w *manifest.Workload, b manifest.ContainerBundle, f policy.Finding) string {
	ctr := containerAt(w, b)
	csc := ctr.SecurityContext
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	psc := w.PodSpec.SecurityContext
	switch f.Rule {
	case policy.RulePrivileged, policy.RuleDevices, policy.RuleCapabilities, policy.RuleProcMount:
		if csc.Privileged != nil && *csc.Privileged || f.Rule == policy.RulePrivileged {
			// Privileged mode is what holds every capability, every
			// device and an unmasked /proc; editing the others would
			// change nothing.
			return b.Path + ".securityContext.privileged"
		}
	case policy.RuleRunAsNonRoot:
		f.Kubernetes = "securityContext.runAsUser"
	case policy.RuleSELinux:
		f.Kubernetes = "securityContext.seLinuxOptions.type"
	case policy.RuleHostPaths:
		return w.PodPath + ".volumes"
	}
	field, isPod := strings.CutPrefix(f.Kubernetes, "pod.")
	switch {
	case f.Kubernetes == "":
		return b.Path
	case f.Kubernetes == "pod":
		return w.PodPath
	case f.Rule == policy.RuleSysctls && psc != nil:
		for i, s := range psc.Sysctls {
			if slices.Contains(f.Subjects, spec.NormalizeSysctlName(s.Name)) {
				return fmt.Sprintf("%s.securityContext.sysctls[%d]", w.PodPath, i)
			}
		}
	case f.Rule == policy.RuleCapabilities:
		if csc.Capabilities != nil {
			for _, a := range csc.Capabilities.Add {
				if n := strings.TrimPrefix(strings.ToUpper(string(a)), "CAP_"); slices.Contains(f.Subjects, n) || n == "ALL" {
					return b.Path + ".securityContext.capabilities.add"
				}
			}
		}
		return b.Path + ".securityContext.capabilities.drop"
	}
	if isPod {
		return w.PodPath + "." + field
	}
	// A securityContext field the Pod sets and the container does not is
	// the Pod's to change.
	if rest, ok := strings.CutPrefix(field, "securityContext."); ok {
		top, _, _ := strings.Cut(rest, ".")
		if !jsonHasField(csc, top) && psc != nil && jsonHasField(psc, top) {
			return w.PodPath + "." + field
		}
	}
	return b.Path + "." + field
}

// jsonHasField reports whether v, encoded, sets field.
func jsonHasField(v any, field string) bool {
	raw, err := json.Marshal(v)
	if err != nil {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	_, ok := m[field]
	return ok
}

// containerAt finds the container a bundle was made from.
func containerAt(w *manifest.Workload, b manifest.ContainerBundle) *corev1.Container {
	list := w.PodSpec.Containers
	switch {
	case b.Init:
		list = w.PodSpec.InitContainers
	case b.Ephemeral:
		if b.Index >= 0 && b.Index < len(w.PodSpec.EphemeralContainers) {
			c := corev1.Container(w.PodSpec.EphemeralContainers[b.Index].EphemeralContainerCommon)
			return &c
		}
		return &corev1.Container{}
	}
	if b.Index >= 0 && b.Index < len(list) {
		return &list[b.Index]
	}
	return &corev1.Container{}
}

// translationItem turns a translation error into a report line; the
// error starts with the workload, then the field path.
func translationItem(w *manifest.Workload, err error) checkItem {
	msg := strings.TrimPrefix(err.Error(), w.String()+": ")
	field, rest, ok := strings.Cut(msg, ": ")
	if !ok || strings.ContainsAny(field, " ") && !strings.Contains(field, "annotations[") {
		return checkItem{Field: w.PodPath, Message: msg}
	}
	return checkItem{Field: field, Message: rest}
}

// splitErrors undoes errors.Join, one level at a time, so each problem is
// a line of its own.
func splitErrors(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, splitErrors(e)...)
	}
	return out
}

func printCheck(c *cli.Context, pol *policy.Policy, results []checkResult) {
	out := c.App.Writer
	for _, r := range results {
		where := r.Workload
		if r.Container != "" {
			where += " container " + r.Container
		}
		if r.Path != "" {
			where += " (" + r.Path + ")"
		}
		fmt.Fprintf(out, "%s: policy %s (%s): %s\n", where, pol.Name, pol.Mode, r.Decision)
		verb := "refuse "
		if r.Decision == policy.Audited {
			verb = "audit  "
		}
		for _, it := range r.Refusals {
			line := fmt.Sprintf("  %s %s: %s", verb, it.Field, it.Message)
			if it.OCIField != "" {
				line += " [" + it.OCIField + "]"
			}
			if it.Fix != "" {
				line += "; fix: " + it.Fix
			}
			fmt.Fprintln(out, line)
		}
		for _, it := range r.Changes {
			fmt.Fprintf(out, "  change  %s: %s\n", it.Field, it.Message)
		}
		for _, w := range slices.Compact(slices.Clone(r.Warnings)) {
			fmt.Fprintf(out, "  warning %s\n", w)
		}
	}
}

// dryRunAppArmor answers from the real kernel but never loads a profile:
// check reports, it does not change the node.
type dryRunAppArmor struct{ spec.AppArmorHost }

func (dryRunAppArmor) LoadDefault(string) error { return nil }
