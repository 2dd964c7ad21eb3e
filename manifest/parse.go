package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/secrun/secrun/spec"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Workload is one object of a manifest that runs containers: a Pod, or a
// controller whose pod template does.
type Workload struct {
	// Kind and APIVersion as written ("Deployment", "apps/v1").
	Kind, APIVersion string
	// Name is metadata.name; Pods made from a template get generated
	// names, so bundles use this one.
	Name string
	// Namespace is metadata.namespace, "default" when absent (as kubectl
	// applies it).
	Namespace string
	// Document is the 1-based position of the object's YAML document in
	// the input; items of a List share their List's.
	Document int

	// Object is the decoded object: *corev1.Pod, *appsv1.Deployment,
	// *appsv1.StatefulSet, *appsv1.DaemonSet, *appsv1.ReplicaSet,
	// *batchv1.Job, *batchv1.CronJob, *corev1.ReplicationController or
	// *corev1.PodTemplate.
	Object any
	// PodMeta and PodSpec point into Object: the Pod's own, or the pod
	// template's.
	PodMeta *metav1.ObjectMeta
	PodSpec *corev1.PodSpec
	// Path is where the object sits in its document ("" for a document
	// of its own, "items[2]" in a List). PodPath and MetaPath are the
	// field paths of PodSpec and PodMeta from the document's root, which
	// every error and finding about the Pod starts with: "spec" for a
	// Pod, "spec.template.spec" for a Deployment,
	// "spec.jobTemplate.spec.template.spec" for a CronJob.
	Path, PodPath, MetaPath string
}

// String names the workload as kubectl does, "Deployment/web".
func (w *Workload) String() string { return w.Kind + "/" + w.Name }

// Skipped is a document Parse read but that runs no containers (a
// Service, a ConfigMap, a custom resource).
type Skipped struct {
	Document         int
	Kind, APIVersion string
	Name             string
}

// MaxManifestSize bounds the input Parse accepts; real manifests are
// kilobytes, and the YAML parser's memory grows with its input.
const MaxManifestSize = 8 << 20

// maxListDepth bounds List-in-List nesting, which only a hostile input has.
const maxListDepth = 4

// kindInfo says where a workload kind keeps its pod template.
type kindInfo struct {
	apiVersion string
	new        func() any
	// pod returns the pod metadata and spec inside obj; nil when the
	// object has no template (a ReplicationController may omit it).
	pod      func(obj any) (*metav1.ObjectMeta, *corev1.PodSpec)
	podPath  string
	metaPath string
}

var kinds = map[string]kindInfo{
	"Pod": {apiVersion: "v1", new: func() any { return &corev1.Pod{} },
		pod:     func(o any) (*metav1.ObjectMeta, *corev1.PodSpec) { p := o.(*corev1.Pod); return &p.ObjectMeta, &p.Spec },
		podPath: "spec", metaPath: "metadata"},
	"PodTemplate": {apiVersion: "v1", new: func() any { return &corev1.PodTemplate{} },
		pod: func(o any) (*metav1.ObjectMeta, *corev1.PodSpec) {
			p := o.(*corev1.PodTemplate)
			return &p.Template.ObjectMeta, &p.Template.Spec
		},
		podPath: "template.spec", metaPath: "template.metadata"},
	"ReplicationController": {apiVersion: "v1", new: func() any { return &corev1.ReplicationController{} },
		pod: func(o any) (*metav1.ObjectMeta, *corev1.PodSpec) {
			t := o.(*corev1.ReplicationController).Spec.Template
			if t == nil {
				return nil, nil
			}
			return &t.ObjectMeta, &t.Spec
		},
		podPath: "spec.template.spec", metaPath: "spec.template.metadata"},
	"Deployment": {apiVersion: "apps/v1", new: func() any { return &appsv1.Deployment{} },
		pod: func(o any) (*metav1.ObjectMeta, *corev1.PodSpec) {
			t := &o.(*appsv1.Deployment).Spec.Template
			return &t.ObjectMeta, &t.Spec
		},
		podPath: "spec.template.spec", metaPath: "spec.template.metadata"},
	"StatefulSet": {apiVersion: "apps/v1", new: func() any { return &appsv1.StatefulSet{} },
		pod: func(o any) (*metav1.ObjectMeta, *corev1.PodSpec) {
			t := &o.(*appsv1.StatefulSet).Spec.Template
			return &t.ObjectMeta, &t.Spec
		},
		podPath: "spec.template.spec", metaPath: "spec.template.metadata"},
	"DaemonSet": {apiVersion: "apps/v1", new: func() any { return &appsv1.DaemonSet{} },
		pod: func(o any) (*metav1.ObjectMeta, *corev1.PodSpec) {
			t := &o.(*appsv1.DaemonSet).Spec.Template
			return &t.ObjectMeta, &t.Spec
		},
		podPath: "spec.template.spec", metaPath: "spec.template.metadata"},
	"ReplicaSet": {apiVersion: "apps/v1", new: func() any { return &appsv1.ReplicaSet{} },
		pod: func(o any) (*metav1.ObjectMeta, *corev1.PodSpec) {
			t := &o.(*appsv1.ReplicaSet).Spec.Template
			return &t.ObjectMeta, &t.Spec
		},
		podPath: "spec.template.spec", metaPath: "spec.template.metadata"},
	"Job": {apiVersion: "batch/v1", new: func() any { return &batchv1.Job{} },
		pod: func(o any) (*metav1.ObjectMeta, *corev1.PodSpec) {
			t := &o.(*batchv1.Job).Spec.Template
			return &t.ObjectMeta, &t.Spec
		},
		podPath: "spec.template.spec", metaPath: "spec.template.metadata"},
	"CronJob": {apiVersion: "batch/v1", new: func() any { return &batchv1.CronJob{} },
		pod: func(o any) (*metav1.ObjectMeta, *corev1.PodSpec) {
			t := &o.(*batchv1.CronJob).Spec.JobTemplate.Spec.Template
			return &t.ObjectMeta, &t.Spec
		},
		podPath: "spec.jobTemplate.spec.template.spec", metaPath: "spec.jobTemplate.spec.template.metadata"},
}

// WorkloadKinds lists the kinds Parse turns into workloads, sorted.
func WorkloadKinds() []string {
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Parse reads a YAML or JSON manifest, one or more documents separated by
// "---", and returns its workloads in document order. Documents of other
// kinds are skipped (see ParseAll). Every error names the document, the
// object and the field path; all problems of a document are reported
// together.
func Parse(data []byte) ([]*Workload, error) {
	ws, _, err := ParseAll(data)
	return ws, err
}

// ParseAll is Parse that also says which documents it skipped.
func ParseAll(data []byte) ([]*Workload, []Skipped, error) {
	if len(data) > MaxManifestSize {
		return nil, nil, fmt.Errorf("manifest is %d bytes, more than the %d secrunctl reads", len(data), MaxManifestSize)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var (
		ws      []*Workload
		skipped []Skipped
		errs    []error
	)
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if isBlank(raw) {
			doc--
			continue
		}
		j, err := yaml.YAMLToJSONStrict(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("document %d: %s", doc, yamlError(raw, err)))
			continue
		}
		w, s, err := parseObject(j, doc, "", 0)
		ws, skipped = append(ws, w...), append(skipped, s...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return ws, skipped, nil
}

// isBlank reports whether a document holds only comments and space, as
// the documents around a leading or trailing "---" do.
func isBlank(doc []byte) bool {
	for line := range strings.Lines(string(doc)) {
		t := strings.TrimSpace(line)
		if t != "" && t != "---" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// parseObject decodes one JSON object, at path within document doc.
func parseObject(j []byte, doc int, path string, depth int) ([]*Workload, []Skipped, error) {
	where := fmt.Sprintf("document %d", doc)
	if path != "" {
		where += " " + path
	}
	if t := bytes.TrimSpace(j); len(t) == 0 || t[0] != '{' {
		return nil, nil, fmt.Errorf("%s: not a Kubernetes object (a mapping with apiVersion and kind)", where)
	}
	var tm typeMeta
	// A loose look at the header only: the strict decode below reports
	// every problem with its path, this one would stop at the first.
	_ = json.Unmarshal(j, &tm)
	if tm.Kind == "" {
		return nil, nil, fmt.Errorf("%s: kind is missing; a manifest object needs apiVersion and kind (e.g. apiVersion: v1, kind: Pod)", where)
	}
	if tm.Metadata.Name != "" {
		where += fmt.Sprintf(" (%s %s)", tm.Kind, tm.Metadata.Name)
	} else {
		where += fmt.Sprintf(" (%s)", tm.Kind)
	}
	if tm.Kind == "List" || strings.HasSuffix(tm.Kind, "List") && tm.APIVersion == "v1" {
		return parseList(j, doc, path, depth, where)
	}
	info, ok := kinds[tm.Kind]
	if !ok {
		if s := spec.Suggest(tm.Kind, WorkloadKinds()); s != "" {
			return nil, nil, fmt.Errorf("%s: kind %q is unknown; did you mean %s?", where, tm.Kind, s)
		}
		return nil, []Skipped{{Document: doc, Kind: tm.Kind, APIVersion: tm.APIVersion, Name: tm.Metadata.Name}}, nil
	}
	if tm.APIVersion != info.apiVersion {
		return nil, nil, fmt.Errorf("%s: apiVersion %q does not serve %s; use apiVersion: %s", where, tm.APIVersion, tm.Kind, info.apiVersion)
	}
	obj := info.new()
	strictErrs, err := sigsjson.UnmarshalStrict(j, obj)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s", where, decodeError(err, path))
	}
	if len(strictErrs) > 0 {
		var b strings.Builder
		for i, e := range strictErrs {
			if i > 0 {
				b.WriteString("\n  ")
			}
			b.WriteString(describeStrictError(obj, e, path))
		}
		sep := " "
		if len(strictErrs) > 1 {
			sep = "\n  "
		}
		return nil, nil, fmt.Errorf("%s:%s%s", where, sep, b.String())
	}
	meta, podSpec := info.pod(obj)
	if podSpec == nil {
		return nil, []Skipped{{Document: doc, Kind: tm.Kind, APIVersion: tm.APIVersion, Name: tm.Metadata.Name}}, nil
	}
	ns := tm.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	prefix := ""
	if path != "" {
		prefix = path + "."
	}
	return []*Workload{{
		Kind: tm.Kind, APIVersion: tm.APIVersion, Name: tm.Metadata.Name, Namespace: ns,
		Document: doc, Object: obj, PodMeta: meta, PodSpec: podSpec,
		Path: path, PodPath: prefix + info.podPath, MetaPath: prefix + info.metaPath,
	}}, nil, nil
}

// parseList reads a v1 List (what kubectl get -o yaml prints for more than
// one object).
func parseList(j []byte, doc int, path string, depth int, where string) ([]*Workload, []Skipped, error) {
	if depth >= maxListDepth {
		return nil, nil, fmt.Errorf("%s: Lists nested more than %d deep", where, maxListDepth)
	}
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(j, &list); err != nil {
		return nil, nil, fmt.Errorf("%s: items: %v", where, err)
	}
	var (
		ws      []*Workload
		skipped []Skipped
		errs    []error
	)
	for i, item := range list.Items {
		p := fmt.Sprintf("items[%d]", i)
		if path != "" {
			p = path + "." + p
		}
		w, s, err := parseObject(item, doc, p, depth+1)
		ws, skipped = append(ws, w...), append(skipped, s...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return ws, skipped, errors.Join(errs...)
}

var typeErrorRE = regexp.MustCompile(`cannot unmarshal (\S+) into Go (?:struct field \S+?\.(\S+)|value) of type (\S+)`)

// decodeError rewrites a JSON type error into the manifest's terms:
// the field path, what it wants, what it got.
func decodeError(err error, path string) string {
	m := typeErrorRE.FindStringSubmatch(err.Error())
	if m == nil {
		return err.Error()
	}
	field := m[2]
	if field == "" {
		field = "(document)"
	}
	if path != "" {
		field = path + "." + field
	}
	want := m[3]
	switch {
	case strings.Contains(want, "int"):
		want = "an integer"
	case want == "string" || strings.HasSuffix(want, "Type") || strings.HasSuffix(want, "Policy"):
		want = "a string"
	case want == "bool":
		want = "true or false"
	case strings.HasPrefix(want, "[]"):
		want = "a list"
	default:
		want = "a " + want
	}
	hint := ""
	if (m[1] == "number" || m[1] == "bool") && want == "a string" {
		// YAML reads 0, yes, no, on, off, y and n unquoted as numbers and
		// booleans.
		hint = "; quote the value, e.g. \"0\" or \"n\""
	}
	return fmt.Sprintf("%s: expected %s, got a %s%s", field, want, m[1], hint)
}

// documentationLineRE matches the notation of kubectl explain and of many
// tutorials, "runAsUser <integer>", which is not YAML.
var documentationLineRE = regexp.MustCompile(`^\s*(?:-\s+)?([A-Za-z][A-Za-z0-9]*)\s+<([^>]*)>`)

// yamlError explains a YAML syntax error. A document written in the
// "field <type>" notation of reference pages fails to parse somewhere
// unhelpful, so such lines are pointed out, and each name there that is
// not a field gets its likely spelling.
func yamlError(doc []byte, err error) string {
	msg := "not valid YAML: " + err.Error()
	var (
		lines []int
		typos []string
	)
	n := 0
	for line := range strings.Lines(string(doc)) {
		n++
		m := documentationLineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		lines = append(lines, n)
		if name := m[1]; !slices.Contains(allFieldNames(), name) {
			t := fmt.Sprintf("line %d: %s is not a field", n, name)
			if s := spec.Suggest(name, allFieldNames()); s != "" {
				t += "; did you mean " + s + "?"
			}
			typos = append(typos, t)
		}
	}
	if len(lines) == 0 {
		return msg
	}
	where := fmt.Sprintf("line %d", lines[0])
	if len(lines) > 1 {
		where = fmt.Sprintf("%d lines from line %d on", len(lines), lines[0])
	}
	msg += fmt.Sprintf("\n  %s use the \"field <type>\" notation of reference pages (kubectl explain), which is not YAML; write \"field: value\", e.g. \"runAsUser: 1000\"", where)
	for _, t := range typos {
		msg += "\n  " + t
	}
	return msg
}

// describeStrictError renders one unknown or duplicate field with its
// path and, for an unknown one, the field of that object it most likely
// meant.
func describeStrictError(obj any, e error, path string) string {
	var fe interface{ FieldPath() string }
	if !errors.As(e, &fe) {
		return e.Error()
	}
	p := fe.FieldPath()
	full := p
	if path != "" {
		full = path + "." + p
	}
	kind, _, _ := strings.Cut(e.Error(), " \"")
	msg := full + ": " + kind
	if kind == "unknown field" {
		parent, name := splitLast(p)
		if names := fieldNamesAt(obj, parent); len(names) > 0 {
			if s := spec.Suggest(name, names); s != "" && s != name {
				msg += "; did you mean " + s + "?"
			}
		}
	}
	return msg
}

// splitLast splits "a.b[0].c" into "a.b[0]" and "c".
func splitLast(p string) (string, string) {
	i := strings.LastIndexByte(p, '.')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// pathSegments splits "spec.containers[0].securityContext" into
// spec, containers, [0], securityContext.
func pathSegments(p string) []string {
	var out []string
	for _, part := range strings.Split(p, ".") {
		if part == "" {
			continue
		}
		for {
			i := strings.IndexByte(part, '[')
			if i < 0 {
				out = append(out, part)
				break
			}
			if i > 0 {
				out = append(out, part[:i])
			}
			j := strings.IndexByte(part[i:], ']')
			if j < 0 {
				out = append(out, part[i:])
				break
			}
			out = append(out, part[i:i+j+1])
			part = part[i+j+1:]
			if part == "" {
				break
			}
		}
	}
	return out
}
