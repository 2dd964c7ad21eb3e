// Package seccompadvise turns the seccomp agent's records into what an
// admin acts on: a Localhost profile that lets the workload run under
// enforcement, and an explanation of what was blocked and what would
// allow it.
package seccompadvise

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"sigs.k8s.io/yaml"

	"github.com/secrun/secrun/seccompagent"
	"github.com/secrun/secrun/spec"
)

// Addition is one syscall a generated profile allows beyond its base.
type Addition struct {
	Name string
	// Args holds the exact values of the deciding argument that were
	// used; empty means the whole syscall.
	Args []specs.LinuxSeccompArg
	Why  string
}

// Profile is RuntimeDefault for the record's capabilities (or base, when
// given) plus exactly what the record says the workload used and the
// profile denied: for clone, unshare, socket and personality only the
// argument values seen (one rule per value on the deciding argument),
// for every other syscall the name. A record whose values overflowed
// allows the whole syscall and says so.
func Profile(rec *seccompagent.Record, base *specs.LinuxSeccomp) (*specs.LinuxSeccomp, []Addition, error) {
	if base == nil {
		var err error
		if base, err = runtimeDefault(rec.Capabilities); err != nil {
			return nil, nil, err
		}
	}
	out := cloneProfile(base)
	var adds []Addition
	for _, sc := range rec.Syscalls {
		if strings.HasPrefix(sc.Name, "syscall#") {
			return nil, nil, fmt.Errorf("the record holds %s, a syscall libseccomp could not name; a profile cannot allow it by name", sc.Name)
		}
		a := Addition{Name: sc.Name}
		switch {
		case sc.KeyArg != nil && len(sc.Values) > 0 && !sc.ValuesOverflow:
			// Only the values the base denies: a record-all record also
			// holds the calls it allows.
			for _, v := range sc.Values {
				args := make([]uint64, *sc.KeyArg+1)
				args[*sc.KeyArg] = v
				if d, _ := spec.SeccompAnswer(out, sc.Name, args); d.Denies() {
					a.Args = append(a.Args, specs.LinuxSeccompArg{Index: *sc.KeyArg, Value: v, Op: specs.OpEqualTo})
				}
			}
			if len(a.Args) == 0 {
				continue
			}
			a.Why = fmt.Sprintf("argument %d as used: %s", *sc.KeyArg, strings.Join(sc.Args, "; "))
		case !sc.Profile.Denies():
			continue
		case sc.ValuesOverflow:
			a.Why = fmt.Sprintf("more than %d distinct values of argument %d were used, so the whole syscall", len(sc.Values), *sc.KeyArg)
		default:
			a.Why = "used"
		}
		adds = append(adds, a)
		allow(out, a)
	}
	return out, adds, nil
}

// allow adds a's rules to p. A denying rule for the name without
// arguments would decide the syscall whatever the new rules say
// (libseccomp lets an unconditional rule win), so the name leaves it.
func allow(p *specs.LinuxSeccomp, a Addition) {
	var kept []specs.LinuxSyscall
	for _, r := range p.Syscalls {
		if len(r.Args) == 0 && r.Action != specs.ActAllow && slices.Contains(r.Names, a.Name) {
			r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return n == a.Name })
			if len(r.Names) == 0 {
				continue
			}
		}
		kept = append(kept, r)
	}
	p.Syscalls = kept
	if len(a.Args) == 0 {
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{a.Name}, Action: specs.ActAllow})
		return
	}
	// One rule per value: runc ORs conditions on one argument only
	// across rules (spec.conjunctions).
	for _, arg := range a.Args {
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{a.Name}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{arg}})
	}
}

func runtimeDefault(caps []string) (*specs.LinuxSeccomp, error) {
	return spec.RuntimeDefaultFor(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: slices.Clone(caps)}}})
}

func cloneProfile(p *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	b, _ := json.Marshal(p)
	var out specs.LinuxSeccomp
	_ = json.Unmarshal(b, &out)
	return &out
}

// Minimal is a profile that allows only what a record-all record saw:
// every syscall the workload made (and runc's init after the filter was
// loaded), write (which runc never notifies), and nothing else, with
// RuntimeDefault's default action.
func Minimal(rec *seccompagent.Record) (*specs.LinuxSeccomp, error) {
	if rec.Mode != spec.AgentRecordAll {
		return nil, fmt.Errorf("--minimal needs a record made in mode %s, which sees every syscall; container %s was recorded in mode %s, which sees only what the profile denies", spec.AgentRecordAll, rec.Container, rec.Mode)
	}
	rd, err := runtimeDefault(rec.Capabilities)
	if err != nil {
		return nil, err
	}
	out := &specs.LinuxSeccomp{DefaultAction: rd.DefaultAction, DefaultErrnoRet: rd.DefaultErrnoRet, Architectures: rd.Architectures, Flags: rd.Flags}
	names := []string{"write"}
	for _, sc := range rec.Syscalls {
		if strings.HasPrefix(sc.Name, "syscall#") {
			return nil, fmt.Errorf("the record holds %s, a syscall libseccomp could not name; a profile cannot allow it by name", sc.Name)
		}
		if sc.KeyArg != nil && len(sc.Values) > 0 && !sc.ValuesOverflow {
			allow(out, Addition{Name: sc.Name, Args: valueArgs(*sc.KeyArg, sc.Values)})
			continue
		}
		names = append(names, sc.Name)
	}
	sort.Strings(names)
	out.Syscalls = append([]specs.LinuxSyscall{{Names: slices.Compact(names), Action: specs.ActAllow}}, out.Syscalls...)
	return out, nil
}

func valueArgs(index uint, values []uint64) []specs.LinuxSeccompArg {
	var out []specs.LinuxSeccompArg
	for _, v := range values {
		out = append(out, specs.LinuxSeccompArg{Index: index, Value: v, Op: specs.OpEqualTo})
	}
	return out
}

// OCIJSON is the profile as kubelet's seccomp root holds it: OCI
// LinuxSeccomp JSON, which containerd and CRI-O load as written.
func OCIJSON(p *specs.LinuxSeccomp) ([]byte, error) {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// SPOYAML is the profile as a security-profiles-operator SeccompProfile
// (security-profiles-operator.x-k8s.io/v1beta1), whose spec carries the
// same defaultAction, architectures and syscalls as the OCI form.
func SPOYAML(p *specs.LinuxSeccomp, name, namespace string) ([]byte, error) {
	type arg struct {
		Index    uint   `json:"index"`
		Value    uint64 `json:"value,omitempty"`
		ValueTwo uint64 `json:"valueTwo,omitempty"`
		Op       string `json:"op"`
	}
	type syscall struct {
		Names    []string `json:"names"`
		Action   string   `json:"action"`
		ErrnoRet *uint    `json:"errnoRet,omitempty"`
		Args     []arg    `json:"args,omitempty"`
	}
	var scs []syscall
	for _, r := range p.Syscalls {
		s := syscall{Names: r.Names, Action: string(r.Action), ErrnoRet: r.ErrnoRet}
		for _, a := range r.Args {
			s.Args = append(s.Args, arg{Index: a.Index, Value: a.Value, ValueTwo: a.ValueTwo, Op: string(a.Op)})
		}
		scs = append(scs, s)
	}
	var arches []string
	for _, a := range p.Architectures {
		arches = append(arches, string(a))
	}
	doc := map[string]any{
		"apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
		"kind":       "SeccompProfile",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"spec": map[string]any{
			"defaultAction": string(p.DefaultAction),
			"architectures": arches,
			"syscalls":      scs,
		},
	}
	if p.DefaultErrnoRet != nil {
		doc["spec"].(map[string]any)["defaultErrnoRet"] = *p.DefaultErrnoRet
	}
	return yaml.Marshal(doc)
}

// PruneUnknown removes from p the names known reports unknown, and
// returns them. RuntimeDefault names syscalls newer than some nodes'
// libseccomp; runc skips those silently, but secrun refuses a Localhost
// profile that names one (spec.ValidateSeccomp), since a misspelt denial
// would be a hole.
func PruneUnknown(p *specs.LinuxSeccomp, known func(string) bool) []string {
	var dropped []string
	var kept []specs.LinuxSyscall
	for _, r := range p.Syscalls {
		r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool {
			if known(n) {
				return false
			}
			dropped = append(dropped, n)
			return true
		})
		if len(r.Names) > 0 {
			kept = append(kept, r)
		}
	}
	p.Syscalls = kept
	sort.Strings(dropped)
	return slices.Compact(dropped)
}
