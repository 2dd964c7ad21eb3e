package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/secrun/secrun/internal/safefile"
	"github.com/secrun/secrun/spec"
	"sigs.k8s.io/yaml"
)

// DefaultConfigPath is where node admins put secrun's configuration.
const DefaultConfigPath = "/etc/secrun/config.yaml"

// ConfigEnv points secrun at another configuration file, for tests and
// for nodes that keep configuration elsewhere.
const ConfigEnv = "SECRUN_CONFIG"

// maxConfigSize bounds the configuration file; a real one is a few KiB.
const maxConfigSize = 1 << 20

// Config is the admin's configuration file.
type Config struct {
	// Runtime is the delegate runtime for every policy that names none: a
	// name looked up on PATH or an absolute path. Default runc.
	Runtime string `json:"runtime,omitempty"`
	// DefaultPolicy is used when secrun is called by a name that names no
	// policy (plain "secrun"). Default baseline.
	DefaultPolicy string `json:"defaultPolicy,omitempty"`
	// AuditLog receives one JSON line per create and exec; "-" is stderr,
	// "off" disables it. Default /var/log/secrun/audit.log.
	AuditLog string `json:"auditLog,omitempty"`
	// SeccompProfileRoot holds Localhost seccomp profiles.
	SeccompProfileRoot string `json:"seccompProfileRoot,omitempty"`
	// Policies by name; a policy named like a preset, with no preset key,
	// changes that preset.
	Policies map[string]json.RawMessage `json:"policies,omitempty"`

	// Source is where the configuration came from, for messages.
	Source string `json:"-"`
	// policies holds the validated policies, presets included.
	policies map[string]*Policy
	// lazy: policies holds only those Policy was asked for (the
	// wrapper's load, see LoadWrapperConfig).
	lazy bool
}

// Presets are the built-in policy names, in order of strictness.
var Presets = []string{"privileged", "baseline", "restricted"}

// LoadConfig reads the configuration: the file $SECRUN_CONFIG names, else
// /etc/secrun/config.yaml. A missing default file means "built-in presets
// only"; a missing file that was named explicitly, or any file that cannot
// be read or parsed, is an error, so that secrun fails closed.
// DefaultAuditLog is where the audit lines go when the configuration
// names no auditLog.
const DefaultAuditLog = "/var/log/secrun/audit.log"

func LoadConfig() (*Config, error) { return loadConfig(false) }

// LoadWrapperConfig is LoadConfig as the wrapper needs it on every
// container start: the file is read and its top level checked as by
// LoadConfig, but a policy is decoded and validated only when Policy asks
// for it. A broken policy still refuses every container that asks for it,
// and only those; secrunctl check and install validate them all.
func LoadWrapperConfig() (*Config, error) { return loadConfig(true) }

func loadConfig(lazy bool) (*Config, error) {
	path := os.Getenv(ConfigEnv)
	explicit := path != ""
	if !explicit {
		path = DefaultConfigPath
	}
	b, err := readLimited(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		c, err := parseConfig(nil, lazy)
		if err != nil {
			return nil, err
		}
		c.Source = "built-in defaults (no " + path + ")"
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secrun configuration: %w", err)
	}
	c, err := parseConfig(b, lazy)
	if err != nil {
		return nil, fmt.Errorf("secrun configuration %s: %w", path, err)
	}
	c.Source = path
	return c, nil
}

// readLimited reads the configuration without blocking on a FIFO. It
// follows a symlink: the path is the admin's, and a Kubernetes ConfigMap
// mounts its files as links.
func readLimited(path string) ([]byte, error) {
	f, err := safefile.Open(path, os.O_RDONLY, 0, safefile.FollowLinks)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxConfigSize)
	}
	return b, nil
}

// ParseConfig parses and validates a configuration document (YAML or JSON).
// Unknown fields are errors that name the field and a likely spelling.
func ParseConfig(b []byte) (*Config, error) { return parseConfig(b, false) }

func parseConfig(b []byte, lazy bool) (*Config, error) {
	c := &Config{lazy: lazy}
	if len(bytes.TrimSpace(b)) > 0 {
		if err := strictYAML(b, c, configFields()); err != nil {
			return nil, err
		}
	}
	if c.Runtime == "" {
		c.Runtime = "runc"
	}
	if c.DefaultPolicy == "" {
		c.DefaultPolicy = "baseline"
	}
	if c.AuditLog == "" {
		c.AuditLog = DefaultAuditLog
	}
	if c.SeccompProfileRoot == "" {
		c.SeccompProfileRoot = spec.DefaultSeccompProfileRoot
	}
	c.policies = map[string]*Policy{}
	for name := range c.Policies {
		if !validPolicyName(name) {
			return nil, fmt.Errorf("policies.%s: a policy name may hold only a-z, 0-9 and '-' (it becomes part of the binary name secrun-<policy>)", name)
		}
	}
	if lazy {
		if !slices.Contains(Presets, c.DefaultPolicy) && c.Policies[c.DefaultPolicy] == nil {
			return nil, fmt.Errorf("defaultPolicy %q is not defined; define it under policies or use one of %s", c.DefaultPolicy, strings.Join(c.PolicyNames(), ", "))
		}
		return c, nil
	}
	// Every policy, each built as the wrapper builds the one it runs, in
	// name order (a preset the configuration overrides once).
	names := slices.Concat(Presets, slices.Collect(maps.Keys(c.Policies)))
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		if _, _, err := c.buildPolicy(name); err != nil {
			return nil, err
		}
	}
	if _, ok := c.policies[c.DefaultPolicy]; !ok {
		return nil, fmt.Errorf("defaultPolicy %q is not defined; define it under policies or use one of %s", c.DefaultPolicy, strings.Join(c.PolicyNames(), ", "))
	}
	return c, nil
}

// validPolicyName: ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$, at most 63 bytes (a
// DNS label, as a RuntimeClass handler is).
func validPolicyName(n string) bool {
	if n == "" || len(n) > 63 || n[0] == '-' || n[len(n)-1] == '-' {
		return false
	}
	for _, c := range []byte(n) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// layeredPolicy decodes raw on top of its preset: fields the admin leaves
// out keep the preset's value.
func layeredPolicy(name string, raw json.RawMessage) (*Policy, error) {
	keys, base, err := policyKeys(raw)
	if err != nil {
		return nil, fmt.Errorf("must be a mapping of policy fields: %w", err)
	}
	if base == "" && slices.Contains(Presets, name) {
		base = name
	}
	p := &Policy{}
	if base != "" {
		if p, err = presetPolicy(base); err != nil {
			return nil, err
		}
	}
	if err := overlayJSON(raw, keys, p); err != nil {
		return nil, err
	}
	p.Name = name
	p.Preset = base
	return p, nil
}

// presetPolicy is a built-in preset, its preset chain resolved: Go
// values generated from profiles/policies/<name>.yaml and tested equal to
// what the YAML decodes to (presets_test.go), so that a create decodes no
// preset. The caller owns the result.
func presetPolicy(name string) (*Policy, error) {
	p, ok := generatedPreset(name)
	if !ok {
		return nil, fmt.Errorf("preset %q is unknown; use one of %s", name, strings.Join(Presets, ", "))
	}
	return p, nil
}

// Policy returns the named policy.
func (c *Config) Policy(name string) (*Policy, error) {
	p, ok := c.policies[name]
	if !ok && c.lazy {
		var err error
		if p, ok, err = c.buildPolicy(name); err != nil {
			return nil, fmt.Errorf("secrun configuration %s: %w", c.Source, err)
		}
	}
	if !ok {
		msg := fmt.Sprintf("policy %q is not defined in %s", name, c.Source)
		if s := spec.Suggest(name, c.PolicyNames()); s != "" {
			msg += fmt.Sprintf("; did you mean %s?", s)
		} else {
			msg += "; defined: " + strings.Join(c.PolicyNames(), ", ")
		}
		return nil, errors.New(msg)
	}
	return p, nil
}

// buildPolicy decodes and validates one policy: the configuration's own
// by that name, else the preset. ParseConfig builds them all; a lazy
// configuration (the wrapper's) builds only the one its create runs.
func (c *Config) buildPolicy(name string) (*Policy, bool, error) {
	var p *Policy
	var err error
	if raw, ok := c.Policies[name]; ok {
		if p, err = layeredPolicy(name, raw); err != nil {
			return nil, false, fmt.Errorf("policies.%s: %w", name, err)
		}
	} else if slices.Contains(Presets, name) {
		if p, err = presetPolicy(name); err != nil {
			return nil, false, err
		}
		p.Name = name
	} else {
		return nil, false, nil
	}
	if err := p.Validate(); err != nil {
		return nil, false, err
	}
	c.policies[name] = p
	return p, true, nil
}

// PolicyNames lists the defined policies, sorted.
func (c *Config) PolicyNames() []string {
	out := make([]string, 0, len(c.policies)+len(c.Policies)+len(Presets))
	for n := range c.policies {
		out = append(out, n)
	}
	if c.lazy {
		for n := range c.Policies {
			out = append(out, n)
		}
		out = append(out, Presets...)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// RuntimeFor is the delegate runtime for p.
func (c *Config) RuntimeFor(p *Policy) string {
	if p.Runtime != "" {
		return p.Runtime
	}
	return c.Runtime
}

func strictYAML(b []byte, v any, fields []string) error {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return fmt.Errorf("not valid YAML: %w", err)
	}
	return strictJSON(j, v, fields)
}

// overlayJSON decodes a policy document over p, the policy it layers on.
// A list the document names replaces the inherited one whole: without the
// reset, encoding/json decodes into the inherited elements and keeps
// their fields the document leaves out (an allowedDevices entry without
// access would inherit the preset's "m").
func overlayJSON(j []byte, keys map[string]json.RawMessage, p *Policy) error {
	v := reflect.ValueOf(p).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if _, ok := keys[name]; ok && t.Field(i).Type.Kind() == reflect.Slice {
			v.Field(i).SetZero()
		}
	}
	return strictJSON(j, p, policyFields())
}

// policyKeys reads a policy document's top level once: its keys (for the
// lists overlayJSON replaces) and the preset it layers on.
func policyKeys(j []byte) (map[string]json.RawMessage, string, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(j, &keys); err != nil {
		return nil, "", err
	}
	var preset string
	if raw, ok := keys["preset"]; ok {
		if err := json.Unmarshal(raw, &preset); err != nil {
			return nil, "", fmt.Errorf("preset: %w", err)
		}
	}
	return keys, preset, nil
}

// strictJSON decodes refusing unknown fields, and turns encoding/json's
// message into one that names the field and its likely spelling.
func strictJSON(j []byte, v any, fields []string) error {
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if field, ok := unknownField(err); ok {
			msg := fmt.Sprintf("unknown field %q", field)
			if s := spec.Suggest(field, fields); s != "" {
				msg += fmt.Sprintf(": did you mean %s?", s)
			}
			return errors.New(msg)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("field %s: expected %s, got a JSON %s", te.Field, te.Type, te.Value)
		}
		return err
	}
	return nil
}

// unknownField is the field of encoding/json's `json: unknown field "x"`.
func unknownField(err error) (string, bool) {
	_, rest, ok := strings.Cut(err.Error(), `unknown field "`)
	if !ok {
		return "", false
	}
	field, _, ok := strings.Cut(rest, `"`)
	return field, ok
}

// jsonFieldNames lists the JSON names of a struct's fields, for "did you
// mean" answers to unknown fields.
func jsonFieldNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

var (
	configFields = sync.OnceValue(func() []string { return jsonFieldNames(reflect.TypeFor[Config]()) })
	policyFields = sync.OnceValue(func() []string { return jsonFieldNames(reflect.TypeFor[Policy]()) })
)
