package conformance

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/spec"
	"sigs.k8s.io/yaml"
)

// The suite reads each case manifest twice: manifest.Parse and
// manifest.Translate build the OCI bundle the runtime gets, and the small
// view below is what the expectations are derived from. Keeping the two
// apart means a translation bug shows up as a failing check instead of
// moving the expectation along with it.

// podView is the part of a Pod (or of a workload's Pod template) that
// decides what a container must be allowed and denied.
type podView struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec podSpecView `json:"spec"`
}

type podSpecView struct {
	RuntimeClassName string                  `json:"runtimeClassName"`
	HostNetwork      bool                    `json:"hostNetwork"`
	HostPID          bool                    `json:"hostPID"`
	HostIPC          bool                    `json:"hostIPC"`
	SecurityContext  *podSecurityContextView `json:"securityContext"`
	Containers       []containerView         `json:"containers"`
	// Template is the Pod template of a Deployment, DaemonSet, Job, ...
	Template *struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec podSpecView `json:"spec"`
	} `json:"template"`
	// JobTemplate is a CronJob's.
	JobTemplate *struct {
		Spec podSpecView `json:"spec"`
	} `json:"jobTemplate"`
}

// podSecurityContextView mirrors core/v1 PodSecurityContext.
type podSecurityContextView struct {
	RunAsUser                *int64               `json:"runAsUser"`
	RunAsGroup               *int64               `json:"runAsGroup"`
	RunAsNonRoot             *bool                `json:"runAsNonRoot"`
	SupplementalGroups       []int64              `json:"supplementalGroups"`
	SupplementalGroupsPolicy *string              `json:"supplementalGroupsPolicy"`
	FSGroup                  *int64               `json:"fsGroup"`
	Sysctls                  []sysctlView         `json:"sysctls"`
	SELinuxOptions           *spec.SELinuxOptions `json:"seLinuxOptions"`
	SeccompProfile           *spec.Profile        `json:"seccompProfile"`
	AppArmorProfile          *spec.Profile        `json:"appArmorProfile"`
}

type sysctlView struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type containerView struct {
	Name            string                `json:"name"`
	SecurityContext *spec.SecurityContext `json:"securityContext"`
}

// podSpec returns the Pod spec of any workload kind: a Pod's own spec, a
// template's, or a CronJob's job template's.
func (p *podView) podSpec() (*podSpecView, map[string]string) {
	s := &p.Spec
	ann := p.Metadata.Annotations
	if s.JobTemplate != nil {
		s = &s.JobTemplate.Spec
	}
	if s.Template != nil {
		ann = s.Template.Metadata.Annotations
		s = &s.Template.Spec
	}
	return s, ann
}

// parsePodViews reads every document of a manifest leniently: strict
// validation is manifest.Parse's job, and the expectation only needs the
// security fields.
func parsePodViews(data []byte) ([]*podView, error) {
	var out []*podView
	for i, doc := range splitYAMLDocuments(data) {
		var p podView
		if err := yaml.Unmarshal(doc, &p); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if p.Kind == "" {
			continue
		}
		out = append(out, &p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no Kubernetes object in the manifest")
	}
	return out, nil
}

// splitYAMLDocuments splits on "---" separator lines.
func splitYAMLDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if strings.TrimRight(line, " \t\r\n") == "---" {
			if len(bytes.TrimSpace(cur.Bytes())) > 0 {
				docs = append(docs, bytes.Clone(cur.Bytes()))
			}
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	if len(bytes.TrimSpace(cur.Bytes())) > 0 {
		docs = append(docs, cur.Bytes())
	}
	return docs
}

// legacy annotation keys Kubernetes used before the securityContext
// fields existed; the user's text still describes seccomp and AppArmor as
// annotations.
const (
	annSeccompPod             = "seccomp.security.alpha.kubernetes.io/pod"
	annSeccompContainerPrefix = "container.seccomp.security.alpha.kubernetes.io/"
	annAppArmorPrefix         = "container.apparmor.security.beta.kubernetes.io/"
)

// honouredAnnotations drops the legacy seccomp annotations for a
// Kubernetes version that no longer reads them (1.27 and later), and
// returns the keys it dropped. Both targets read manifests for a
// version: the API server's, or the newest (manifest.Translate's default).
func (s *suite) honouredAnnotations(ann map[string]string) (map[string]string, []string) {
	if s.kubeMinor < 27 {
		return ann, nil
	}
	var kept map[string]string
	var ignored []string
	for k, v := range ann {
		if k == annSeccompPod || strings.HasPrefix(k, annSeccompContainerPrefix) {
			ignored = append(ignored, k)
			continue
		}
		if kept == nil {
			kept = map[string]string{}
		}
		kept[k] = v
	}
	slices.Sort(ignored)
	return kept, ignored
}

// effectiveSC is a container's security context with the Pod's merged in,
// container fields winning, as the kubelet merges them.
type effectiveSC struct {
	Privileged               bool
	PrivilegedSet            bool
	Capabilities             *spec.Capabilities
	AllowPrivilegeEscalation *bool
	RunAsUser                *int64
	RunAsGroup               *int64
	RunAsNonRoot             *bool
	SupplementalGroups       []int64
	SupplementalGroupsPolicy string
	FSGroup                  *int64
	ReadOnlyRootFilesystem   *bool
	ProcMount                *string
	Seccomp                  *spec.Profile
	AppArmor                 *spec.Profile
	SELinux                  *spec.SELinuxOptions
	Sysctls                  []sysctlView
	HostNetwork, HostIPC     bool
	HostPID                  bool
	// SeccompAgent is what the Pod's secrun.dev/seccomp-agent annotation
	// (or its ".<container>" form, which wins) asks for this container.
	SeccompAgent string
}

func mergeSecurityContext(ps *podSpecView, ann map[string]string, c *containerView) effectiveSC {
	var e effectiveSC
	e.HostNetwork, e.HostIPC, e.HostPID = ps.HostNetwork, ps.HostIPC, ps.HostPID
	if p := ps.SecurityContext; p != nil {
		e.RunAsUser, e.RunAsGroup, e.RunAsNonRoot = p.RunAsUser, p.RunAsGroup, p.RunAsNonRoot
		e.SupplementalGroups, e.FSGroup = p.SupplementalGroups, p.FSGroup
		if p.SupplementalGroupsPolicy != nil {
			e.SupplementalGroupsPolicy = *p.SupplementalGroupsPolicy
		}
		e.Sysctls = p.Sysctls
		e.SELinux, e.Seccomp, e.AppArmor = p.SELinuxOptions, p.SeccompProfile, p.AppArmorProfile
	}
	// Annotations are older than the fields and lose to them. The
	// seccomp ones reach here only for Kubernetes up to 1.26:
	// honouredAnnotations drops them for later versions, in which the
	// kubelet (1.25, kubernetes PR 109819) and the API server (1.27, PR
	// 114947) no longer read them. The AppArmor one is still synced with
	// its field.
	if e.Seccomp == nil {
		e.Seccomp = legacyProfile(ann[annSeccompPod])
	}
	if v, ok := ann[annSeccompContainerPrefix+c.Name]; ok {
		e.Seccomp = legacyProfile(v)
	}
	if v, ok := ann[annAppArmorPrefix+c.Name]; ok {
		e.AppArmor = legacyProfile(v)
	}
	e.SeccompAgent = ann[policy.SeccompAgentAnnotation]
	if v, ok := ann[policy.SeccompAgentAnnotation+"."+c.Name]; ok {
		e.SeccompAgent = v
	}
	if s := c.SecurityContext; s != nil {
		if s.Privileged != nil {
			e.Privileged, e.PrivilegedSet = *s.Privileged, true
		}
		e.Capabilities = s.Capabilities
		e.AllowPrivilegeEscalation = s.AllowPrivilegeEscalation
		if s.RunAsUser != nil {
			e.RunAsUser = s.RunAsUser
		}
		if s.RunAsGroup != nil {
			e.RunAsGroup = s.RunAsGroup
		}
		if s.RunAsNonRoot != nil {
			e.RunAsNonRoot = s.RunAsNonRoot
		}
		e.ReadOnlyRootFilesystem = s.ReadOnlyRootFilesystem
		e.ProcMount = s.ProcMount
		if s.SeccompProfile != nil {
			e.Seccomp = s.SeccompProfile
		}
		if s.AppArmorProfile != nil {
			e.AppArmor = s.AppArmorProfile
		}
		if s.SELinuxOptions != nil {
			e.SELinux = s.SELinuxOptions
		}
	}
	return e
}

// legacyProfile turns an annotation value (runtime/default,
// docker/default, unconfined, localhost/<path>) into a profile.
func legacyProfile(v string) *spec.Profile {
	switch {
	case v == "":
		return nil
	case v == "runtime/default" || v == "docker/default":
		return &spec.Profile{Type: spec.SeccompRuntimeDefault}
	case v == "unconfined":
		return &spec.Profile{Type: spec.SeccompUnconfined}
	case strings.HasPrefix(v, "localhost/"):
		name := strings.TrimPrefix(v, "localhost/")
		return &spec.Profile{Type: spec.SeccompLocalhost, LocalhostProfile: &name}
	}
	return &spec.Profile{Type: v}
}
