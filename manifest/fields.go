package manifest

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// fieldNamesAt returns the JSON field names of the object found at path
// (as the strict decoder writes paths) inside obj's type, or nil when the
// path does not lead to a struct. Map keys containing dots cannot be told
// from nesting and end the walk, which only costs the suggestion.
func fieldNamesAt(obj any, path string) []string {
	t := reflect.TypeOf(obj)
	for _, seg := range pathSegments(path) {
		t = deref(t)
		switch {
		case strings.HasPrefix(seg, "["):
			if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
				return nil
			}
			t = t.Elem()
		case t.Kind() == reflect.Map:
			t = t.Elem()
		case t.Kind() == reflect.Struct:
			f, ok := fieldByJSONName(t, seg)
			if !ok {
				return nil
			}
			t = f.Type
		default:
			return nil
		}
	}
	t = deref(t)
	if t.Kind() != reflect.Struct {
		return nil
	}
	return jsonFieldNames(t)
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

// jsonFieldNames lists the JSON names of t's fields, those of inlined
// embedded structs (TypeMeta, ObjectMeta in templates) included. A type
// that decodes itself (Quantity, Time, IntOrString) has no fields to
// suggest.
func jsonFieldNames(t reflect.Type) []string {
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return nil
	}
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case f.Anonymous && (name == "" || strings.Contains(opts, "inline")):
			if et := deref(f.Type); et.Kind() == reflect.Struct {
				out = append(out, jsonFieldNames(et)...)
			}
		case name != "":
			out = append(out, name)
		default:
			out = append(out, f.Name)
		}
	}
	return out
}

func fieldByJSONName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && (tag == "" || strings.Contains(opts, "inline")) {
			if et := deref(f.Type); et.Kind() == reflect.Struct {
				if g, ok := fieldByJSONName(et, name); ok {
					return g, true
				}
			}
			continue
		}
		if tag == name || tag == "" && f.Name == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// allFieldNames is every JSON field name of the workload types, for
// suggestions where the position in the object is unknown (a document
// that is not YAML at all).
var allFieldNames = sync.OnceValue(func() []string {
	seen := map[reflect.Type]bool{}
	set := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		t = deref(t)
		switch t.Kind() {
		case reflect.Slice, reflect.Array, reflect.Map:
			walk(t.Elem())
			return
		case reflect.Struct:
		default:
			return
		}
		if seen[t] {
			return
		}
		seen[t] = true
		for _, n := range jsonFieldNames(t) {
			set[n] = true
		}
		for i := 0; i < t.NumField(); i++ {
			walk(t.Field(i).Type)
		}
	}
	for _, v := range []any{corev1.Pod{}, corev1.PodTemplate{}, corev1.ReplicationController{}, appsv1.Deployment{},
		appsv1.StatefulSet{}, appsv1.DaemonSet{}, appsv1.ReplicaSet{}, batchv1.Job{}, batchv1.CronJob{}} {
		walk(reflect.TypeOf(v))
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
})
