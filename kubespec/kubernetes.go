package kubespec

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/spec"
)

// PodSecurityContext mirrors core/v1 PodSecurityContext field for field
// in JSON, for the same reason SecurityContext does: the runtime must not
// link k8s.io/api.
type PodSecurityContext struct {
	SELinuxOptions           *spec.SELinuxOptions `json:"seLinuxOptions,omitempty"`
	WindowsOptions           *spec.WindowsOptions `json:"windowsOptions,omitempty"`
	RunAsUser                *int64               `json:"runAsUser,omitempty"`
	RunAsGroup               *int64               `json:"runAsGroup,omitempty"`
	RunAsNonRoot             *bool                `json:"runAsNonRoot,omitempty"`
	SupplementalGroups       []int64              `json:"supplementalGroups,omitempty"`
	SupplementalGroupsPolicy *string              `json:"supplementalGroupsPolicy,omitempty"`
	FSGroup                  *int64               `json:"fsGroup,omitempty"`
	Sysctls                  []Sysctl             `json:"sysctls,omitempty"`
	FSGroupChangePolicy      *string              `json:"fsGroupChangePolicy,omitempty"`
	SeccompProfile           *spec.Profile        `json:"seccompProfile,omitempty"`
	AppArmorProfile          *spec.Profile        `json:"appArmorProfile,omitempty"`
	SELinuxChangePolicy      *string              `json:"seLinuxChangePolicy,omitempty"`
}

// Sysctl mirrors core/v1 Sysctl.
type Sysctl struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Legacy annotations, from before seccomp and AppArmor had fields. The
// AppArmor one is still synced with its field (field first); the seccomp
// ones decide only up to Kubernetes 1.26 (see resolveSeccomp), though
// the text this project started from teaches them.
const (
	SeccompPodAnnotation              = "seccomp.security.alpha.kubernetes.io/pod"
	SeccompContainerAnnotationPrefix  = "container.seccomp.security.alpha.kubernetes.io/"
	AppArmorContainerAnnotationPrefix = "container.apparmor.security.beta.kubernetes.io/"
)

// KubernetesInputs is what the translation needs besides the two
// securityContexts: facts about the image, the node and the Pod.
type KubernetesInputs struct {
	// ContainerName selects the container's legacy annotations.
	ContainerName string
	// ContainerPath and PodPath prefix every error and warning, so that it
	// names the manifest field to fix: "spec.containers[0]" and "spec" for
	// a Pod, "spec.template.spec.containers[0]" and "spec.template.spec"
	// for a Deployment. "" gives "container <name>" and "pod".
	ContainerPath, PodPath string
	// MetadataPath is where the Pod's annotations live, "metadata" for a
	// Pod, "spec.template.metadata" for a Deployment; "" means "metadata".
	MetadataPath string

	// RootfsPath is the image's root filesystem on this machine (absolute),
	// where /etc/passwd and /etc/group are read. "" means the spec's
	// root.path if that is absolute; if it is not either, no file is read:
	// numeric ids work as if the image had no /etc/passwd, and a named
	// image USER is an error.
	RootfsPath string
	// ImageUser is the image config's USER, used when no runAsUser is set.
	ImageUser string

	// Sysctls is the node's sysctl policy (Kubernetes version for the safe
	// set, the admin's unsafe allowlist).
	Sysctls spec.SysctlPolicy
	// SeccompProfileRoot holds Localhost profiles; "" means
	// DefaultSeccompProfileRoot.
	SeccompProfileRoot string
	// SeccompDefault is the kubelet's --seccomp-default: a container
	// without a profile gets RuntimeDefault instead of Unconfined.
	SeccompDefault bool
	// AppArmor is the node's AppArmor; nil means a kernel without it.
	AppArmor spec.AppArmorHost

	// Annotations are the Pod's, for the legacy seccomp and AppArmor keys.
	Annotations map[string]string
	// KubernetesVersion decides whether the legacy seccomp annotations
	// count (up to 1.26); "" means Sysctls.KubernetesVersion, and if that
	// is empty too, the newest version known.
	KubernetesVersion string
	// HostUsers is the Pod's hostUsers; nil means true (no user
	// namespace).
	HostUsers *bool

	// AmbientCapabilities is a policy opt-in beyond containerd
	// (kubernetes#56374): a non-root process also gets its added
	// capabilities in the ambient set, so they survive execve.
	AmbientCapabilities bool
	// PrivilegedWithoutHostDevices leaves the host's devices out of a
	// privileged container, as containerd's runtime option of that name.
	PrivilegedWithoutHostDevices bool
	// HostDevRoot is where privileged mode finds the host's devices; ""
	// means /dev.
	HostDevRoot string

	// SELinux says whether the node has SELinux; nil asks the kernel.
	SELinux *bool
	// SELinuxLevel is the Pod's MCS level ("s0:c12,c345"), which its
	// sandbox and every container without seLinuxOptions share; "" draws
	// one.
	SELinuxLevel string
	// NewSELinuxLevel draws MCS levels; nil means NewMCSLevel. Tests make
	// it deterministic.
	NewSELinuxLevel func() string
	// Warn receives what is ignored or skipped, and why; nil drops it.
	Warn func(string)
}

// Step is one stage of the translation: a named Option and the Kubernetes
// field that asked for it.
type Step struct {
	// Name is the setting the step applies (policy's registry).
	Name   policy.Rule
	Field  string
	Option spec.Option
}

// stepBuilders hold the translation of each Translated setting of
// policy's registry; KubernetesSteps runs them in policy.ApplyOrder, where
// the order and the reasons for it are declared. A builder returns a
// Step without an Option when its fields are unset.
var stepBuilders = map[policy.Rule]func(*translation) Step{
	policy.RuleUser:                   (*translation).userStep,
	policy.RuleProcMount:              (*translation).procMountStep,
	policy.RuleCapabilities:           (*translation).capabilitiesStep,
	policy.RulePrivileged:             (*translation).privilegedStep,
	policy.RuleAmbient:                (*translation).ambientStep,
	policy.RuleNoNewPrivileges:        (*translation).noNewPrivilegesStep,
	policy.RuleReadOnlyRootFilesystem: (*translation).readOnlyRootStep,
	policy.RuleSysctls:                (*translation).sysctlsStep,
	policy.RuleSELinux:                (*translation).seLinuxStep,
	policy.RuleAppArmor:               (*translation).appArmorStep,
	policy.RuleSeccomp:                (*translation).seccompStep,
}

// KubernetesOptions returns the options that apply a Pod's and a
// container's securityContext to a spec made by DefaultSpec, in
// policy.ApplyOrder. Container fields override Pod fields, as in the
// kubelet.
//
// The combination is validated first, as the API server and the kubelet
// would, and every problem found is returned at once, each naming the
// manifest field and the fix. What only the spec or the node can tell
// (the image's users, the namespaces, the profile files) is checked when
// the options apply.
func KubernetesOptions(pod *PodSecurityContext, ctr *spec.SecurityContext, in KubernetesInputs) ([]spec.Option, error) {
	steps, err := KubernetesSteps(pod, ctr, in)
	if err != nil {
		return nil, err
	}
	out := make([]spec.Option, len(steps))
	for i, s := range steps {
		out[i] = s.Option
	}
	return out, nil
}

// KubernetesSteps is KubernetesOptions with each option's name and field,
// for callers that report or test what applies.
func KubernetesSteps(pod *PodSecurityContext, ctr *spec.SecurityContext, in KubernetesInputs) ([]Step, error) {
	t := newTranslation(pod, ctr, in)
	t.validate()
	if len(t.errs) > 0 {
		return nil, errors.Join(t.errs...)
	}
	order, err := policy.ApplyOrder()
	if err != nil {
		return nil, err
	}
	steps := make([]Step, 0, len(order))
	for _, rule := range order {
		build, ok := stepBuilders[rule]
		if !ok {
			return nil, fmt.Errorf("setting %s is declared Translated, but kubespec has no step for it", rule)
		}
		st := build(t)
		st.Name = rule
		steps = append(steps, st)
	}
	if len(t.errs) > 0 {
		return nil, errors.Join(t.errs...)
	}
	out := steps[:0]
	for _, s := range steps {
		if s.Option != nil {
			out = append(out, s)
		}
	}
	return out, nil
}

// translation holds the merged view of both levels while the steps are
// built.
type translation struct {
	pod PodSecurityContext
	ctr spec.SecurityContext
	eff spec.SecurityContext // pod overlaid with container
	in  KubernetesInputs

	privileged bool
	add, drop  []string // normalised; "ALL" kept
	seccomp    *resolvedProfile
	apparmor   *resolvedProfile
	errs       []error
}

// resolvedProfile is a seccomp or AppArmor profile with where it came
// from, for messages.
type resolvedProfile struct {
	Type      string
	Localhost string
	From      string // field path or annotation
	// Annotation is true when a legacy annotation decided the profile.
	Annotation bool
}

func newTranslation(pod *PodSecurityContext, ctr *spec.SecurityContext, in KubernetesInputs) *translation {
	t := &translation{in: in}
	if pod != nil {
		t.pod = *pod
	}
	if ctr != nil {
		t.ctr = *ctr
	}
	base := spec.SecurityContext{
		SELinuxOptions:  t.pod.SELinuxOptions,
		WindowsOptions:  t.pod.WindowsOptions,
		RunAsUser:       t.pod.RunAsUser,
		RunAsGroup:      t.pod.RunAsGroup,
		RunAsNonRoot:    t.pod.RunAsNonRoot,
		SeccompProfile:  t.pod.SeccompProfile,
		AppArmorProfile: t.pod.AppArmorProfile,
	}
	t.eff = base.Overlay(&t.ctr)
	// The kubelet merges windowsOptions field by field, unlike every other
	// block: a container may set only hostProcess, say.
	if p, c := t.pod.WindowsOptions, t.ctr.WindowsOptions; p != nil && c != nil {
		w := *p
		if c.GMSACredentialSpecName != nil {
			w.GMSACredentialSpecName = c.GMSACredentialSpecName
		}
		if c.GMSACredentialSpec != nil {
			w.GMSACredentialSpec = c.GMSACredentialSpec
		}
		if c.RunAsUserName != nil {
			w.RunAsUserName = c.RunAsUserName
		}
		if c.HostProcess != nil {
			w.HostProcess = c.HostProcess
		}
		t.eff.WindowsOptions = &w
	}
	t.privileged = t.eff.Privileged != nil && *t.eff.Privileged
	return t
}

func (t *translation) ctrPath(field string) string {
	base := t.in.ContainerPath
	if base == "" {
		base = "container " + strconv.Quote(t.in.ContainerName)
		if t.in.ContainerName == "" {
			base = "container"
		}
	}
	return base + ".securityContext." + field
}

func (t *translation) podPath(field string) string {
	base := t.in.PodPath
	if base == "" {
		base = "pod"
	}
	return base + ".securityContext." + field
}

func (t *translation) annotationPath(key string) string {
	base := t.in.MetadataPath
	if base == "" {
		base = "metadata"
	}
	return fmt.Sprintf("%s.annotations[%s]", base, strconv.Quote(key))
}

// scPath is the securityContext of the container or of the Pod.
func (t *translation) scPath(inContainer bool) string {
	if inContainer {
		return strings.TrimSuffix(t.ctrPath(""), ".")
	}
	return strings.TrimSuffix(t.podPath(""), ".")
}

// fieldPath names the level that set a field present at both levels.
func (t *translation) fieldPath(field string, setInContainer bool) string {
	if setInContainer {
		return t.ctrPath(field)
	}
	return t.podPath(field)
}

func (t *translation) fail(path, format string, args ...any) {
	t.errs = append(t.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func (t *translation) failErr(path string, err error) {
	t.errs = append(t.errs, fmt.Errorf("%s: %w", path, err))
}

func (t *translation) warn(path, format string, args ...any) {
	if t.in.Warn != nil {
		t.in.Warn(path + ": " + fmt.Sprintf(format, args...))
	}
}

// validate applies the API server's and the kubelet's rules for the
// combination, before anything touches a spec.
func (t *translation) validate() {
	t.validateWindows()
	t.validateIDs()
	t.validateCapabilities()
	if ape := t.ctr.AllowPrivilegeEscalation; ape != nil && !*ape {
		// The kernel would still honour no_new_privs, but the API refuses
		// the pairing: a privileged or SYS_ADMIN process can undo what
		// no_new_privs promises (mount a setuid binary, load a module).
		if t.privileged {
			t.fail(t.ctrPath("allowPrivilegeEscalation"), "false cannot be combined with privileged: true (the API refuses it); remove one of them")
		}
		if t.grantsSysAdmin() {
			t.fail(t.ctrPath("allowPrivilegeEscalation"), "false cannot be combined with capabilities.add of SYS_ADMIN (the API refuses it); drop SYS_ADMIN or allow escalation")
		}
	}
	if pm := t.ctr.ProcMount; pm != nil {
		switch *pm {
		case spec.ProcMountDefault:
		case spec.ProcMountUnmasked:
			if t.in.HostUsers == nil || *t.in.HostUsers {
				t.fail(t.ctrPath("procMount"), "Unmasked needs a user namespace, and this Pod runs in the host's (hostUsers is not false); set spec.hostUsers: false or use procMount: Default")
			}
		default:
			t.fail(t.ctrPath("procMount"), "unknown value %q%s; use Default or Unmasked", *pm, didYouMean(*pm, []string{spec.ProcMountDefault, spec.ProcMountUnmasked}))
		}
	}
	if p := t.pod.SupplementalGroupsPolicy; p != nil && *p != "Merge" && *p != "Strict" {
		t.fail(t.podPath("supplementalGroupsPolicy"), "unknown value %q%s; use Merge or Strict", *p, didYouMean(*p, []string{"Merge", "Strict"}))
	}
	if p := t.pod.FSGroupChangePolicy; p != nil && *p != "OnRootMismatch" && *p != "Always" {
		t.fail(t.podPath("fsGroupChangePolicy"), "unknown value %q%s; use OnRootMismatch or Always", *p, didYouMean(*p, []string{"OnRootMismatch", "Always"}))
	}
	if p := t.pod.SELinuxChangePolicy; p != nil && *p != "MountOption" && *p != "Recursive" {
		t.fail(t.podPath("seLinuxChangePolicy"), "unknown value %q%s; use MountOption or Recursive", *p, didYouMean(*p, []string{"MountOption", "Recursive"}))
	}
	t.seccomp = t.resolveSeccomp()
	t.apparmor = t.resolveAppArmor()
}

// validateWindows answers windowsOptions on a Linux node: the kubelet
// ignores them, except that a HostProcess container cannot exist here.
func (t *translation) validateWindows() {
	w := t.eff.WindowsOptions
	if w == nil {
		return
	}
	path := t.fieldPath("windowsOptions", t.ctr.WindowsOptions != nil)
	if w.HostProcess != nil && *w.HostProcess {
		t.fail(path+".hostProcess", "true asks for a Windows HostProcess container, which a Linux node cannot run; remove windowsOptions or schedule the Pod on a Windows node (nodeSelector kubernetes.io/os: windows)")
		return
	}
	t.warn(path, "ignored: windowsOptions apply only to Windows nodes, and this is a Linux container")
}

// validateIDs checks every uid and gid where it is written, so that the
// error names the field; WithUser would only know the merged value.
func (t *translation) validateIDs() {
	check := func(path string, v *int64) {
		switch {
		case v == nil:
		case *v < 0:
			t.fail(path, "%d: ids must not be negative", *v)
		case *v > maxID:
			t.fail(path, "%d: larger than %d, the largest id runc accepts", *v, maxID)
		}
	}
	check(t.podPath("runAsUser"), t.pod.RunAsUser)
	check(t.podPath("runAsGroup"), t.pod.RunAsGroup)
	check(t.podPath("fsGroup"), t.pod.FSGroup)
	for i := range t.pod.SupplementalGroups {
		check(fmt.Sprintf("%s[%d]", t.podPath("supplementalGroups"), i), &t.pod.SupplementalGroups[i])
	}
	check(t.ctrPath("runAsUser"), t.ctr.RunAsUser)
	check(t.ctrPath("runAsGroup"), t.ctr.RunAsGroup)
}

func (t *translation) validateCapabilities() {
	c := t.ctr.Capabilities
	if c == nil {
		return
	}
	norm := func(list []string, field string) []string {
		var out []string
		for i, name := range list {
			n, err := normalizeCapabilityField(name)
			if err != nil {
				t.failErr(fmt.Sprintf("%s[%d]", t.ctrPath("capabilities."+field), i), err)
				continue
			}
			if field == "add" && n != "ALL" && !spec.SupportedByKernel(n) {
				t.fail(fmt.Sprintf("%s[%d]", t.ctrPath("capabilities.add"), i), "%s is beyond this node's kernel (its last capability is %s), so no process here can hold it; remove it or run the Pod on a newer kernel", strings.TrimPrefix(n, "CAP_"), kernelLastCapName())
				continue
			}
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
		return out
	}
	t.add = norm(c.Add, "add")
	t.drop = norm(c.Drop, "drop")
	if t.privileged && len(t.drop) > 0 {
		t.warn(t.ctrPath("capabilities.drop"), "ignored: a privileged container gets every capability, as in containerd; drop privileged: true to make drops count")
	}
}

// normalizeCapabilityField is NormalizeCapability with the message the
// manifest author needs: the name as written, then the likely spelling.
func normalizeCapabilityField(name string) (string, error) {
	switch t := strings.TrimSpace(name); {
	case strings.EqualFold(t, "ALL"):
		return "ALL", nil
	case t == "":
		return "", errors.New("empty capability name; remove the entry")
	}
	n, err := spec.NormalizeCapability(name)
	if err == nil {
		return n, nil
	}
	short := make([]string, 0, 48)
	for _, c := range spec.KnownCapabilities() {
		short = append(short, strings.TrimPrefix(c, "CAP_"))
	}
	bare := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "CAP_")
	if s := spec.Suggest(bare, short); s != "" {
		return "", fmt.Errorf("unknown capability %s: did you mean %s?", name, s)
	}
	return "", fmt.Errorf("unknown capability %s; capabilities are named like NET_ADMIN or CAP_NET_ADMIN (see capabilities(7))", name)
}

func kernelLastCapName() string {
	last, err := spec.LastCapability()
	if err != nil {
		return "unknown"
	}
	return strings.ToUpper(last.String())
}

// grantsSysAdmin reports whether the final set will hold SYS_ADMIN by
// the Pod's own request: added by name or by ALL, and not dropped again
// (drops apply after adds).
func (t *translation) grantsSysAdmin() bool {
	if slices.Contains(t.drop, "CAP_SYS_ADMIN") {
		return false
	}
	return slices.Contains(t.add, "CAP_SYS_ADMIN") || slices.Contains(t.add, "ALL")
}

func (t *translation) userStep() Step {
	// Copies: the option runs later, and must do what the inputs said
	// when the steps were made.
	u := UserIntent{
		RunAsUser:          clonePtr(t.eff.RunAsUser),
		RunAsGroup:         clonePtr(t.eff.RunAsGroup),
		RunAsNonRoot:       clonePtr(t.eff.RunAsNonRoot),
		SupplementalGroups: slices.Clone(t.pod.SupplementalGroups),
		FSGroup:            clonePtr(t.pod.FSGroup),
		ImageUser:          t.in.ImageUser,
	}
	if t.pod.SupplementalGroupsPolicy != nil {
		u.SupplementalGroupsPolicy = *t.pod.SupplementalGroupsPolicy
	}
	// Name the level the decisive field came from: a root refusal belongs
	// to runAsNonRoot, anything else to runAsUser or, without one, to the
	// image's USER.
	wrap := func(err error) error {
		var where string
		switch {
		case errors.Is(err, ErrRunAsRoot):
			where = t.scPath(t.ctr.RunAsNonRoot != nil)
		case t.eff.RunAsUser != nil:
			where = t.scPath(t.ctr.RunAsUser != nil)
		default:
			where = strings.TrimSuffix(t.ctrPath(""), ".securityContext.")
		}
		return fmt.Errorf("%s: %w", where, err)
	}
	rootfs := t.in.RootfsPath
	return Step{Field: t.fieldPath("runAsUser", t.ctr.RunAsUser != nil), Option: func(s *specs.Spec) error {
		root := rootfs
		if root == "" && s.Root != nil && strings.HasPrefix(s.Root.Path, "/") {
			root = s.Root.Path
		}
		var err error
		if root == "" {
			err = withUserNoRootfs(u)(s)
		} else {
			err = WithUser(root, u)(s)
		}
		if err != nil {
			return wrap(err)
		}
		return nil
	}}
}

// withUserNoRootfs resolves the user as WithUser would for an image
// without /etc/passwd and /etc/group, for callers that only have a
// manifest: numeric ids stand, the primary group defaults to 0, and a
// name cannot be resolved at all.
func withUserNoRootfs(u UserIntent) spec.Option {
	return func(s *specs.Spec) error {
		// Strict and Merge agree here: without /etc/group there is
		// nothing to merge.
		if _, err := u.validate(); err != nil {
			return err
		}
		var cur specs.User
		if s.Process != nil {
			cur = s.Process.User
		}
		uid, gid := cur.UID, cur.GID
		gids := []uint32{}
		fromImage := ""
		switch {
		case u.RunAsUser != nil:
			uid, gid = uint32(*u.RunAsUser), 0
		case u.ImageUser != "":
			fromImage = u.ImageUser
			userPart, err := parseImageUser(u.ImageUser)
			if err != nil {
				return err
			}
			n, numeric, err := parseID(userPart)
			if !numeric {
				if u.RunAsNonRoot != nil && *u.RunAsNonRoot {
					return fmt.Errorf("%w: image has non-numeric user %q, and without the image's files it cannot be verified to be non-root; set runAsUser to a non-zero uid: %w", ErrRunAsRoot, userPart, ErrUserNotFound)
				}
				return fmt.Errorf("image USER %q: %w: a user name needs the image's /etc/passwd; give the image rootfs, or a numeric USER or runAsUser", u.ImageUser, ErrUserNotFound)
			}
			if err != nil {
				return fmt.Errorf("image USER %q: %w", u.ImageUser, err)
			}
			uid, gid = n, 0
		default:
			gids = append(gids, cur.AdditionalGids...)
		}
		if u.RunAsGroup != nil {
			gid = uint32(*u.RunAsGroup)
		}
		gids = append(gids, gid)
		return setResolvedUser(s, u, uid, gid, gids, fromImage)
	}
}

func (t *translation) procMountStep() Step {
	kind := spec.ProcMountDefault
	if t.ctr.ProcMount != nil {
		kind = *t.ctr.ProcMount
	}
	path := t.ctrPath("procMount")
	return Step{Field: path, Option: wrapField(path, spec.WithProcMount(kind))}
}

func (t *translation) capabilitiesStep() Step {
	if t.ctr.Capabilities == nil {
		return Step{}
	}
	path := t.ctrPath("capabilities")
	return Step{Field: path, Option: wrapField(path, spec.WithCapabilities(t.add, t.drop))}
}

func (t *translation) privilegedStep() Step {
	if !t.privileged {
		return Step{}
	}
	path := t.ctrPath("privileged")
	var o spec.Option
	switch {
	case t.in.PrivilegedWithoutHostDevices:
		o = func(s *specs.Spec) error {
			if err := spec.WithPrivilegedWithoutHostDevices()(s); err != nil {
				return err
			}
			return spec.WithAllDevicesAllowed()(s)
		}
	case t.in.HostDevRoot != "":
		root := t.in.HostDevRoot
		o = func(s *specs.Spec) error {
			for _, o := range []spec.Option{spec.WithPrivilegedWithoutHostDevices(), spec.WithHostDevices(root), spec.WithAllDevicesAllowed()} {
				if err := o(s); err != nil {
					return err
				}
			}
			return nil
		}
	default:
		o = spec.WithPrivileged()
	}
	return Step{Field: path, Option: wrapField(path, o)}
}

func (t *translation) ambientStep() Step {
	if !t.in.AmbientCapabilities || len(t.add) == 0 {
		return Step{}
	}
	names := slices.Clone(t.add)
	if slices.Contains(names, "ALL") {
		names = spec.AllCapabilities()
	}
	path := t.ctrPath("capabilities.add")
	return Step{Field: path, Option: wrapField(path, spec.WithAmbientCapabilities(names))}
}

func (t *translation) noNewPrivilegesStep() Step {
	ape := t.ctr.AllowPrivilegeEscalation
	if ape == nil {
		return Step{}
	}
	path := t.ctrPath("allowPrivilegeEscalation")
	return Step{Field: path, Option: spec.WithNoNewPrivileges(!*ape)}
}

func (t *translation) readOnlyRootStep() Step {
	ro := t.ctr.ReadOnlyRootFilesystem
	if ro == nil {
		return Step{}
	}
	path := t.ctrPath("readOnlyRootFilesystem")
	return Step{Field: path, Option: wrapField(path, spec.WithReadonlyRootfs(*ro))}
}

// sysctlsStep checks names and values now, so each refusal names its
// list entry, and leaves the namespace checks to WithSysctls, which sees
// the spec.
func (t *translation) sysctlsStep() Step {
	list := t.pod.Sysctls
	if len(list) == 0 {
		return Step{}
	}
	path := t.podPath("sysctls")
	if err := t.in.Sysctls.Validate(); err != nil {
		t.fail(path, "the node's sysctl policy is invalid: %v", err)
		return Step{}
	}
	m := make(map[string]string, len(list))
	first := make(map[string]int, len(list))
	for i, sc := range list {
		entry := fmt.Sprintf("%s[%d]", path, i)
		n := spec.NormalizeSysctlName(sc.Name)
		if j, dup := first[n]; dup {
			t.fail(entry+".name", "%s is already set by sysctls[%d]; keep one", n, j)
			continue
		}
		first[n] = i
		if err := t.in.Sysctls.Check(sc.Name, sc.Value, nil); err != nil {
			t.failErr(entry, err)
			continue
		}
		m[n] = sc.Value
	}
	// WithSysctls names each sysctl first, so the whole path goes in front.
	sysctls := spec.WithSysctls(t.in.Sysctls, m)
	return Step{Field: path, Option: func(s *specs.Spec) error {
		if err := sysctls(s); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	}}
}

// seLinuxStep labels the container as containerd does on an SELinux
// node: every container gets a label, seLinuxOptions or not. Without
// options it inherits its sandbox's, type container_t and the Pod's MCS
// pair (containerd copies the sandbox's label, DupSecOpt, in
// internal/cri/server/container_create.go); with options, go-selinux's
// InitLabels fills what they leave out from container_t and a fresh
// pair, and a level given replaces the pair.
func (t *translation) seLinuxStep() Step {
	o := t.eff.SELinuxOptions
	given := o != nil && *o != (spec.SELinuxOptions{})
	enabled := spec.SELinuxEnabled()
	if t.in.SELinux != nil {
		enabled = *t.in.SELinux
	}
	if !given {
		if !enabled {
			return Step{}
		}
		level := t.in.SELinuxLevel
		if level == "" {
			level = t.newSELinuxLevel()
		}
		opts := spec.SELinuxOptions{Level: level}
		return Step{Field: "(the Pod's SELinux label)", Option: spec.WithSELinuxOptions(&opts)}
	}
	path := t.fieldPath("seLinuxOptions", t.ctr.SELinuxOptions != nil)
	opts := *o
	if !enabled {
		t.warn(path, "ignored: SELinux is not enabled on this node (containerd leaves the labels out, and runc would refuse a labelled process)")
		// Still refuse what could never be a label.
		return Step{Field: path, Option: wrapField(path, func(*specs.Spec) error { return opts.Validate() })}
	}
	if opts.Level == "" {
		opts.Level = t.newSELinuxLevel()
	}
	return Step{Field: path, Option: wrapField(path, spec.WithSELinuxOptions(&opts))}
}

func (t *translation) newSELinuxLevel() string {
	if t.in.NewSELinuxLevel != nil {
		return t.in.NewSELinuxLevel()
	}
	return spec.NewMCSLevel()
}

// seccompAnnotationsLastMinor is the last Kubernetes minor version in
// which the legacy seccomp annotations decided anything. Up to 1.24 the
// kubelet read them itself; 1.25 stopped that (kubernetes PR 109819) but
// the API server still copied each annotation into its level's
// seccompProfile field when that field was unset, at Pod creation
// (applySeccompVersionSkew, pkg/registry/core/pod/strategy.go); 1.27
// removed the copying (PR 114947). Every version refuses a Pod whose
// annotation and field at one level disagree
// (validateSeccompAnnotationsAndFieldsMatch, pkg/apis/core/validation).
const seccompAnnotationsLastMinor = 26

// resolveSeccomp picks the profile the kubelet would: the container's
// field, else the Pod's; up to Kubernetes 1.26 an annotation stands in
// for the field of its level where that field is unset (the API server
// copied it there), so the order is container field, container
// annotation, Pod field, Pod annotation. From 1.27 the annotations decide
// nothing, and each one present is reported as ignored.
func (t *translation) resolveSeccomp() *resolvedProfile {
	ann := t.in.Annotations
	ctrKey := SeccompContainerAnnotationPrefix + t.in.ContainerName
	ctrAnn := ""
	if t.in.ContainerName != "" {
		ctrAnn = ann[ctrKey]
	}
	podAnn := ann[SeccompPodAnnotation]
	ctrA := t.seccompAnnotation(ctrKey, ctrAnn, t.ctr.SeccompProfile, true)
	podA := t.seccompAnnotation(SeccompPodAnnotation, podAnn, t.pod.SeccompProfile, false)
	honoured := t.kubernetesMinor() <= seccompAnnotationsLastMinor
	var r *resolvedProfile
	switch {
	case t.ctr.SeccompProfile != nil:
		r = t.fieldProfile("seccompProfile", t.ctr.SeccompProfile, true, seccompTypes)
	case honoured && ctrA != nil:
		r = ctrA
	case t.pod.SeccompProfile != nil:
		r = t.fieldProfile("seccompProfile", t.pod.SeccompProfile, false, seccompTypes)
	case honoured && podA != nil:
		r = podA
	}
	if !honoured {
		t.warnSeccompAnnotationsIgnored(r, []string{ctrKey, ctrAnn}, []string{SeccompPodAnnotation, podAnn})
		return r
	}
	t.warnSuperseded(r, "seccomp", ctrKey, SeccompPodAnnotation)
	return r
}

// kubernetesMinor is the minor version translated for; an invalid one
// has been refused by the sysctl policy's validation already, and counts
// as the newest here.
func (t *translation) kubernetesMinor() int {
	v := t.in.KubernetesVersion
	if v == "" {
		v = t.in.Sysctls.KubernetesVersion
	}
	m, err := spec.ParseKubernetesMinor(v)
	if err != nil {
		return spec.NewestKnownMinor()
	}
	return m
}

// seccompAnnotation parses a legacy seccomp annotation (nil when absent
// or invalid) and applies the API server's rule, in every version, that
// an annotation and the field of its level agree; the value must be
// valid even where it decides nothing.
func (t *translation) seccompAnnotation(key, v string, field *spec.Profile, inContainer bool) *resolvedProfile {
	if v == "" {
		return nil
	}
	a := t.annotationProfile(key, v, true)
	if a == nil || field == nil {
		return a
	}
	if a.Type != field.Type || (a.Type == spec.SeccompLocalhost && (field.LocalhostProfile == nil || *field.LocalhostProfile != a.Localhost)) {
		t.fail(t.annotationPath(key), "%q contradicts %s (type %s); the API server refuses a Pod whose seccomp annotation and field disagree: remove the annotation, the field decides", v, t.fieldPath("seccompProfile", inContainer), field.Type)
	}
	return a
}

// warnSeccompAnnotationsIgnored says, for a Kubernetes that no longer
// reads them, which annotations are ignored and what runs instead.
func (t *translation) warnSeccompAnnotationsIgnored(r *resolvedProfile, pairs ...[]string) {
	for _, kv := range pairs {
		if kv[1] == "" {
			continue
		}
		what := "no seccomp profile (Unconfined)"
		switch {
		case r != nil:
			what = "the profile of " + r.From
		case t.in.SeccompDefault:
			what = "RuntimeDefault, from the kubelet's --seccomp-default"
		}
		t.warn(t.annotationPath(kv[0]), "ignored: Kubernetes 1.27 and later ignore the seccomp annotations (the kubelet since 1.25), so the container runs with %s; set securityContext.seccompProfile instead", what)
	}
}

// warnSuperseded says when a field made a legacy annotation moot. One
// annotation overriding another (container over Pod) is the annotations'
// own rule and needs no word.
func (t *translation) warnSuperseded(r *resolvedProfile, what string, keys ...string) {
	if r == nil || r.Annotation {
		return
	}
	for _, key := range keys {
		if t.in.Annotations[key] != "" && (key != SeccompContainerAnnotationPrefix+t.in.ContainerName || t.in.ContainerName != "") {
			t.warn(t.annotationPath(key), "ignored: %s decides the %s profile (fields win over the deprecated annotations)", r.From, what)
		}
	}
}

// resolveAppArmor is resolveSeccomp for AppArmor, which never had a
// Pod-wide annotation.
func (t *translation) resolveAppArmor() *resolvedProfile {
	ann := t.in.Annotations
	ctrKey := AppArmorContainerAnnotationPrefix + t.in.ContainerName
	var r *resolvedProfile
	switch {
	case t.ctr.AppArmorProfile != nil:
		r = t.fieldProfile("appArmorProfile", t.ctr.AppArmorProfile, true, appArmorTypes)
	case t.in.ContainerName != "" && ann[ctrKey] != "":
		r = t.annotationProfile(ctrKey, ann[ctrKey], false)
	case t.pod.AppArmorProfile != nil:
		r = t.fieldProfile("appArmorProfile", t.pod.AppArmorProfile, false, appArmorTypes)
	}
	if t.in.ContainerName != "" {
		t.warnSuperseded(r, "AppArmor", ctrKey)
	}
	return r
}

var (
	seccompTypes  = []string{spec.SeccompRuntimeDefault, spec.SeccompUnconfined, spec.SeccompLocalhost}
	appArmorTypes = []string{spec.AppArmorRuntimeDefault, spec.AppArmorUnconfined, spec.AppArmorLocalhost}
)

func (t *translation) fieldProfile(field string, p *spec.Profile, inContainer bool, types []string) *resolvedProfile {
	path := t.fieldPath(field, inContainer)
	r := &resolvedProfile{Type: p.Type, From: path}
	if !slices.Contains(types, p.Type) {
		t.fail(path+".type", "unknown value %q%s; use %s", p.Type, didYouMean(p.Type, types), strings.Join(types, ", "))
		return nil
	}
	switch {
	case p.Type == "Localhost" && (p.LocalhostProfile == nil || *p.LocalhostProfile == ""):
		t.fail(path+".localhostProfile", "required when type is Localhost; name the profile")
		return nil
	case p.Type != "Localhost" && p.LocalhostProfile != nil:
		t.fail(path+".localhostProfile", "may only be set when type is Localhost (type is %s); remove it or set type: Localhost", p.Type)
		return nil
	case p.LocalhostProfile != nil:
		r.Localhost = *p.LocalhostProfile
	}
	return r
}

// annotationProfile reads a legacy annotation value: runtime/default
// (docker/default for seccomp), unconfined, localhost/<name>.
func (t *translation) annotationProfile(key, v string, seccomp bool) *resolvedProfile {
	path := t.annotationPath(key)
	r := &resolvedProfile{From: path, Annotation: true}
	switch {
	case v == "runtime/default", seccomp && v == "docker/default":
		r.Type = "RuntimeDefault"
	case v == "unconfined":
		r.Type = "Unconfined"
	case strings.HasPrefix(v, "localhost/") && len(v) > len("localhost/"):
		r.Type, r.Localhost = "Localhost", strings.TrimPrefix(v, "localhost/")
	default:
		valid := []string{"runtime/default", "unconfined", "localhost/<name>"}
		if seccomp {
			valid = []string{"runtime/default", "docker/default", "unconfined", "localhost/<path>"}
		}
		t.fail(path, "unknown value %q%s; use %s", v, didYouMean(v, valid[:len(valid)-1]), strings.Join(valid, ", "))
		return nil
	}
	return r
}

func (t *translation) appArmorStep() Step {
	h := t.in.AppArmor
	if h == nil {
		h = noAppArmor{}
	}
	r := t.apparmor
	if r == nil {
		// containerd confines every unprivileged container with its
		// default profile where the kernel has AppArmor; where it has
		// not, there is nothing to skip and nothing to warn about.
		if t.privileged {
			return Step{}
		}
		return Step{Field: "(runtime default)", Option: func(s *specs.Spec) error {
			if !h.Enabled() {
				return nil
			}
			return spec.WithAppArmorRuntimeDefault(h, nil)(s)
		}}
	}
	var o spec.Option
	switch r.Type {
	case spec.AppArmorRuntimeDefault:
		if t.privileged {
			t.warn(r.From, "RuntimeDefault does not apply to a privileged container, as in containerd; use Localhost to confine it")
			return Step{}
		}
		warn := func(msg string) { t.warn(r.From, "%s", strings.TrimPrefix(msg, "appArmorProfile ")) }
		o = spec.WithAppArmorRuntimeDefault(h, warn)
	case spec.AppArmorLocalhost:
		o = spec.WithAppArmorLocalhost(h, r.Localhost)
	case spec.AppArmorUnconfined:
		o = spec.WithAppArmorUnconfined()
	}
	return Step{Field: r.From, Option: wrapField(r.From, o)}
}

func (t *translation) seccompStep() Step {
	r := t.seccomp
	if t.privileged {
		if r != nil && r.Type != spec.SeccompUnconfined {
			t.warn(r.From, "ignored: a privileged container runs without seccomp, as in containerd")
		}
		return Step{Field: t.ctrPath("privileged"), Option: spec.WithUnconfinedSeccomp()}
	}
	if r == nil {
		if t.in.SeccompDefault {
			return Step{Field: "(kubelet --seccomp-default)", Option: spec.WithRuntimeDefaultSeccomp()}
		}
		return Step{Field: "(unset: Unconfined)", Option: spec.WithUnconfinedSeccomp()}
	}
	var o spec.Option
	switch r.Type {
	case spec.SeccompRuntimeDefault:
		o = spec.WithRuntimeDefaultSeccomp()
	case spec.SeccompLocalhost:
		root := t.in.SeccompProfileRoot
		if root == "" {
			root = spec.DefaultSeccompProfileRoot
		}
		o = spec.WithLocalhostSeccomp(root, r.Localhost)
	case spec.SeccompUnconfined:
		o = spec.WithUnconfinedSeccomp()
	}
	return Step{Field: r.From, Option: wrapField(r.From, o)}
}

// wrapField prefixes an option's errors with the manifest field that
// asked for it. The options' own messages start with their setting's
// name, so the prefix is the path up to the securityContext where that
// reads naturally ("spec.containers[0].securityContext: seccompProfile
// Localhost ...").
func wrapField(path string, o spec.Option) spec.Option {
	prefix := path
	if i := strings.LastIndex(path, ".securityContext."); i >= 0 {
		prefix = path[:i+len(".securityContext")]
	}
	prefix = strings.TrimSuffix(prefix, ".")
	return func(s *specs.Spec) error {
		if err := o(s); err != nil {
			return fmt.Errorf("%s: %w", prefix, err)
		}
		return nil
	}
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func didYouMean(v string, candidates []string) string {
	if s := spec.Suggest(v, candidates); s != "" && s != v {
		return "; did you mean " + s + "?"
	}
	return ""
}

// noAppArmor is a node whose kernel has no AppArmor.
type noAppArmor struct{}

func (noAppArmor) Enabled() bool                 { return false }
func (noAppArmor) IsLoaded(string) (bool, error) { return false, nil }
func (noAppArmor) LoadDefault(string) error {
	return errors.New("AppArmor is not enabled in this kernel")
}
