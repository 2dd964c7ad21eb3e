package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

// Annotations a Pod uses to ask for more restriction than the node policy.
// containerd copies them into config.json when the runtime handler's
// pod_annotations (or container_annotations) allowlist matches
// "secrun.dev/*".
const (
	// IntentAnnotation holds a Kubernetes securityContext (JSON) for every
	// container of the Pod.
	IntentAnnotation = "secrun.dev/security-context"
	// IntentAnnotationPrefix + "<container name>" holds one container's;
	// its fields override the Pod-wide ones.
	IntentAnnotationPrefix = IntentAnnotation + "."
	// maxIntentSize bounds an annotation value; a securityContext is a few
	// hundred bytes.
	maxIntentSize = 16 << 10
)

// Annotations that containerd and CRI-O set to say what a bundle is.
var (
	containerNameAnnotations = []string{"io.kubernetes.cri.container-name", "io.kubernetes.container.name"}
	containerTypeAnnotations = []string{"io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType"}
)

// Pod annotations: containerd's CRI plugin first, then CRI-O's.
var (
	podNameAnnotations      = []string{"io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"}
	podNamespaceAnnotations = []string{"io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace"}
)

// PodRef names the Pod a bundle belongs to, so an admin reading the audit
// log need not map container ids back to Pods.
func PodRef(s *specs.Spec) (namespace, name string) {
	return firstAnnotation(s, podNamespaceAnnotations), firstAnnotation(s, podNameAnnotations)
}

// ClaimsSandbox reports whether the bundle's annotations say it is a Pod's
// sandbox (pause) container. Annotations are whatever the bundle's writer
// put there; Policy.IsSandbox decides whether secrun believes it.
func ClaimsSandbox(s *specs.Spec) bool {
	for _, k := range containerTypeAnnotations {
		if s.Annotations[k] == "sandbox" {
			return true
		}
	}
	return false
}

// defaultSandboxCommand is the pause image's entrypoint
// (kubernetes build/pause/Dockerfile), which containerd and CRI-O run as
// the sandbox's process.
var defaultSandboxCommand = []string{"/pause"}

// IsSandbox reports whether secrun treats the bundle as a Pod sandbox:
// it says so, and its process is the pause command. The sandbox is
// hardened rather than refused for what a rewrite fixes, and the Pod's
// intent is about its own containers, not the pause process; a bundle
// that merely calls itself a sandbox gets neither.
func (p *Policy) IsSandbox(s *specs.Spec) bool {
	if !ClaimsSandbox(s) || s.Process == nil {
		return false
	}
	want := p.SandboxCommand
	if len(want) == 0 {
		want = defaultSandboxCommand
	}
	return slices.Equal(s.Process.Args, want)
}

// ContainerName is the Kubernetes container name the CRI runtime recorded.
func ContainerName(s *specs.Spec) string { return firstAnnotation(s, containerNameAnnotations) }

// IntentFromAnnotations parses the Pod's securityContext annotations for
// this bundle, Pod-wide overlaid with the container's own. nil means the
// Pod asked for nothing.
func IntentFromAnnotations(s *specs.Spec) (*spec.SecurityContext, error) {
	var out *spec.SecurityContext
	for _, key := range []string{IntentAnnotation, IntentAnnotationPrefix + ContainerName(s)} {
		v, ok := s.Annotations[key]
		if !ok || key == IntentAnnotationPrefix {
			continue
		}
		sc, err := ParseIntent(v)
		if err != nil {
			return nil, &IntentError{Annotation: key, Err: err}
		}
		if out == nil {
			out = &spec.SecurityContext{}
		}
		*out = out.Overlay(sc)
	}
	return out, nil
}

// IntentError is a refusal of what the Pod's annotations ask: a value
// that does not parse, or a request that would loosen the bundle.
type IntentError struct {
	// Annotation is the key at fault, when one alone is.
	Annotation string
	Err        error
}

func (e *IntentError) Error() string {
	if e.Annotation == "" {
		return e.Err.Error()
	}
	return "annotation " + e.Annotation + ": " + e.Err.Error()
}

func (e *IntentError) Unwrap() error { return e.Err }

var securityContextFields = sync.OnceValue(func() []string { return jsonFieldNames(reflect.TypeFor[spec.SecurityContext]()) })

// ParseIntent parses one annotation value strictly: a misspelt field would
// otherwise be a restriction the Pod believes it has and does not.
func ParseIntent(v string) (*spec.SecurityContext, error) {
	if len(v) > maxIntentSize {
		return nil, fmt.Errorf("value is %d bytes, more than the %d a securityContext needs", len(v), maxIntentSize)
	}
	if !strings.HasPrefix(strings.TrimSpace(v), "{") {
		return nil, fmt.Errorf("value must be a JSON object holding a securityContext, e.g. {\"allowPrivilegeEscalation\":false}")
	}
	sc := &spec.SecurityContext{}
	if err := strictJSON([]byte(v), sc, securityContextFields()); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(v)))
	var rest json.RawMessage
	_ = dec.Decode(&rest)
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the JSON object")
	}
	return sc, nil
}

// ApplyIntent applies what the Pod asked for, provided every part of it
// tightens the bundle: a Pod may drop capabilities, forbid escalation,
// make its root read-only, leave root, or add confinement; it may not, by
// annotation, undo anything the bundle or the node already has. changes
// says what was done; a loosening request is an error naming the field.
//
// Each setting's part is its registry entry's intent step, run in the
// registry's apply order, so that the default seccomp profile sees the
// final capabilities.
func ApplyIntent(env *Env, s *specs.Spec, sc *spec.SecurityContext) (changes []Change, err error) {
	if sc == nil {
		return nil, nil
	}
	if s.Process == nil {
		s.Process = &specs.Process{}
	}
	order, err := applyOrder(settings, func(st Setting) bool { return st.intent != nil })
	if err != nil {
		return nil, err
	}
	in := &intentRun{env: env, s: s, p: s.Process, sc: sc}
	for _, r := range order {
		st, _ := Lookup(r)
		if err := st.intent(in); err != nil {
			return nil, err
		}
	}
	if err := spec.Apply(s, in.opts...); err != nil {
		return nil, err
	}
	if sc.RunAsNonRoot != nil && *sc.RunAsNonRoot && s.Process.User.UID == 0 {
		return nil, fmt.Errorf("runAsNonRoot: the container would run as uid 0; set runAsUser to a non-zero uid")
	}
	return in.changes, nil
}

// intentRun is one ApplyIntent: the bundle as read, what the Pod asked,
// and the options gathered so far, applied together at the end.
type intentRun struct {
	env     *Env
	s       *specs.Spec
	p       *specs.Process
	sc      *spec.SecurityContext
	opts    []spec.Option
	changes []Change
}

func (in *intentRun) refuse(field, why string) error {
	return fmt.Errorf("%s: %s; a Pod annotation may only tighten its container, ask the admin for a RuntimeClass whose policy allows it", field, why)
}

func (in *intentRun) note(o spec.Option, what string) {
	in.opts = append(in.opts, o)
	in.changes = append(in.changes, Change{Rule: RuleIntent, Message: what})
}

func intentPrivileged(in *intentRun) error {
	if v := in.sc.Privileged; v != nil && *v && !spec.LooksPrivileged(in.s) {
		return in.refuse("privileged", "true would make the container privileged")
	}
	return nil
}

func intentCapabilities(in *intentRun) error {
	c := in.sc.Capabilities
	if c == nil {
		return nil
	}
	add, err := spec.NormalizeCapabilities(c.Add)
	if err != nil {
		return fmt.Errorf("capabilities.add: %w", err)
	}
	drop, err := spec.NormalizeCapabilities(c.Drop)
	if err != nil {
		return fmt.Errorf("capabilities.drop: %w", err)
	}
	held := spec.CapabilitiesOutside(in.p, nil)
	// An add only keeps a capability the container already holds
	// (meaningful next to drop: [ALL]); it can never grant one.
	for _, a := range add {
		if a == "ALL" || !slices.Contains(held, a) {
			return in.refuse("capabilities.add", fmt.Sprintf("%s is not held by the container", strings.TrimPrefix(a, "CAP_")))
		}
	}
	if len(drop) == 0 {
		return nil
	}
	var gone []string
	if slices.Contains(drop, "ALL") {
		for _, h := range held {
			if !slices.Contains(add, h) {
				gone = append(gone, h)
			}
		}
	} else {
		for _, d := range drop {
			if slices.Contains(held, d) {
				gone = append(gone, d)
			}
		}
	}
	if len(gone) > 0 {
		in.note(spec.DropCapabilities(gone), "dropped "+strings.Join(trimCap(gone), ", "))
	}
	return nil
}

func intentNoNewPrivileges(in *intentRun) error {
	v := in.sc.AllowPrivilegeEscalation
	switch {
	case v == nil:
	case !*v && !in.p.NoNewPrivileges:
		in.note(spec.WithNoNewPrivileges(true), "set noNewPrivileges")
	case *v && in.p.NoNewPrivileges:
		return in.refuse("allowPrivilegeEscalation", "true would turn no_new_privs off")
	}
	return nil
}

func intentUser(in *intentRun) error {
	if v := in.sc.RunAsUser; v != nil {
		switch {
		case *v < 0 || *v > 1<<32-2:
			return fmt.Errorf("runAsUser: %d is not a valid uid", *v)
		case *v == 0 && in.p.User.UID != 0:
			return in.refuse("runAsUser", "0 would make the container root")
		case uint32(*v) != in.p.User.UID:
			uid := uint32(*v)
			in.note(func(s *specs.Spec) error { s.Process.User.UID = uid; return nil }, fmt.Sprintf("set uid %d", uid))
		}
	}
	if v := in.sc.RunAsGroup; v != nil {
		switch {
		case *v < 0 || *v > 1<<32-2:
			return fmt.Errorf("runAsGroup: %d is not a valid gid", *v)
		case *v == 0 && in.p.User.GID != 0:
			return in.refuse("runAsGroup", "0 would give the container the root group")
		case uint32(*v) != in.p.User.GID:
			gid := uint32(*v)
			in.note(func(s *specs.Spec) error { s.Process.User.GID = gid; return nil }, fmt.Sprintf("set gid %d", gid))
		}
	}
	return nil
}

func intentReadOnlyRoot(in *intentRun) error {
	v := in.sc.ReadOnlyRootFilesystem
	if v == nil {
		return nil
	}
	ro := in.s.Root != nil && in.s.Root.Readonly
	switch {
	case *v && !ro:
		in.note(spec.WithReadonlyRootfs(true), "made the root filesystem read-only")
	case !*v && ro:
		return in.refuse("readOnlyRootFilesystem", "false would make a read-only root writable")
	}
	return nil
}

func intentProcMount(in *intentRun) error {
	v := in.sc.ProcMount
	if v == nil {
		return nil
	}
	switch *v {
	case spec.ProcMountDefault:
		if masked, ro := spec.MissingProcMasks(in.s); len(masked)+len(ro) > 0 {
			in.note(spec.WithProcMount(spec.ProcMountDefault), "masked /proc (procMount Default)")
		}
	case spec.ProcMountUnmasked:
		if l := in.s.Linux; l != nil && len(l.MaskedPaths)+len(l.ReadonlyPaths) > 0 {
			return in.refuse("procMount", "Unmasked would unmask /proc")
		}
	default:
		return fmt.Errorf("procMount: unknown value %q; use Default or Unmasked", *v)
	}
	return nil
}

func intentSELinux(in *intentRun) error {
	o := in.sc.SELinuxOptions
	switch {
	case o == nil || *o == (spec.SELinuxOptions{}):
	case !spec.SELinuxEnabled():
		in.env.warn("seLinuxOptions: ignored, SELinux is not enabled on this node")
	case in.p.SelinuxLabel != "":
		return in.refuse("seLinuxOptions", "the container already has an SELinux label, and a Pod annotation may not change it")
	default:
		in.note(spec.WithSELinuxOptions(o), "set the SELinux label")
	}
	return nil
}

func intentAppArmor(in *intentRun) error {
	pr := in.sc.AppArmorProfile
	if pr == nil {
		return nil
	}
	current := in.p.ApparmorProfile
	confined := current != "" && current != "unconfined"
	switch pr.Type {
	case spec.AppArmorUnconfined:
		if confined {
			return in.refuse("appArmorProfile", "Unconfined would remove the container's AppArmor profile")
		}
	case spec.AppArmorRuntimeDefault:
		if !confined {
			in.note(spec.WithAppArmorRuntimeDefault(in.env.AppArmor, in.env.warn), "AppArmor RuntimeDefault")
		}
	case spec.AppArmorLocalhost:
		if pr.LocalhostProfile == nil {
			return fmt.Errorf("appArmorProfile: type Localhost needs localhostProfile")
		}
		if confined && current != *pr.LocalhostProfile {
			return in.refuse("appArmorProfile", "the container already has AppArmor profile "+current)
		}
		in.note(spec.WithAppArmorLocalhost(in.env.AppArmor, *pr.LocalhostProfile), "AppArmor Localhost "+*pr.LocalhostProfile)
	default:
		return fmt.Errorf("appArmorProfile.type: unknown value %q; use RuntimeDefault, Localhost or Unconfined", pr.Type)
	}
	return nil
}

func intentSeccomp(in *intentRun) error {
	pr := in.sc.SeccompProfile
	if pr == nil {
		return nil
	}
	confined := spec.Confined(in.s)
	switch pr.Type {
	case spec.SeccompUnconfined:
		if confined {
			return in.refuse("seccompProfile", "Unconfined would remove the container's seccomp filter")
		}
	case spec.SeccompRuntimeDefault:
		if !confined {
			in.note(spec.WithRuntimeDefaultSeccomp(), "seccomp RuntimeDefault")
		}
	case spec.SeccompLocalhost:
		if pr.LocalhostProfile == nil {
			return fmt.Errorf("seccompProfile: type Localhost needs localhostProfile")
		}
		if confined {
			return in.refuse("seccompProfile", "the container already has a seccomp filter, and a Pod annotation may not replace it")
		}
		root := in.env.SeccompProfileRoot
		if root == "" {
			root = spec.DefaultSeccompProfileRoot
		}
		in.note(spec.WithLocalhostSeccomp(root, *pr.LocalhostProfile), "seccomp Localhost "+*pr.LocalhostProfile)
	default:
		return fmt.Errorf("seccompProfile.type: unknown value %q; use RuntimeDefault, Localhost or Unconfined", pr.Type)
	}
	return nil
}
