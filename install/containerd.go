// Package install adds secrun's runtime handlers to a node's container
// runtime configuration and takes them out again.
//
// containerd's config.toml is edited as text, not decoded and re-encoded:
// a TOML round trip would drop the admin's comments and reorder the file.
// The file is parsed only to learn its format version, to find conflicts
// and to prove the edited text means what it should. The handlers live in
// one delimited block at the end of the file, so an install can be
// repeated (the block is replaced) and undone exactly (the block is cut).
package install

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// HandlerPrefix names a handler after the binary it runs: the RuntimeClass
// handler secrun-<policy> runs the binary secrun-<policy>, which applies
// policy <policy> (secrun picks its policy from its own name).
const HandlerPrefix = "secrun-"

// DefaultAnnotations is the allowlist each handler gets for Pod and
// container annotations. containerd copies only matching annotations into
// config.json, so without it a Pod's secrun.dev/security-context never
// reaches secrun.
var DefaultAnnotations = []string{"secrun.dev/*"}

// The lines that delimit secrun's block. They are matched as line
// prefixes, so the rest of each line is free for explanation.
const (
	beginMarker = "# BEGIN secrun runtime handlers"
	endMarker   = "# END secrun runtime handlers"
	// versionMarker ends a `version = N` line that install added to a file
	// that declared no version; uninstall removes exactly that line.
	versionMarker = "# secrun: added by secrunctl install containerd"
	// createdMarker is versionMarker's form when install created the file,
	// so that uninstall can remove the file instead of leaving it empty.
	createdMarker = "# secrun: file created by secrunctl install containerd"
)

// CRI plugin sections that hold runtime handlers, by config version.
// containerd 1.x reads version 2; containerd 2.x reads version 3 and
// migrates version 2 when it loads it.
var runtimesPath = map[int][]string{
	2: {"plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes"},
	3: {"plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes"},
}

// criPluginIDs are the plugin IDs whose presence in disabled_plugins turns
// off every CRI runtime handler, by config version.
var criPluginIDs = map[int][]string{
	2: {"cri", "io.containerd.grpc.v1.cri"},
	3: {"cri", "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime"},
}

// handlerNameRE is a Kubernetes RuntimeClass handler: a lowercase RFC 1123
// label. It is also a bare TOML key, so the name needs no quoting.
var handlerNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// bareKeyRE is a TOML key that needs no quotes.
var bareKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Options says which handlers to add.
type Options struct {
	// Policies get one handler each, named secrun-<policy>.
	Policies []string
	// BinDir holds the secrun-<policy> links on the node, as containerd
	// sees the filesystem.
	BinDir string
	// Version is the format for a file that declares no version (an empty
	// or new file). 0 means 2, which containerd 1.6 and later all read
	// (2.x migrates it when it loads it). A file that declares its version
	// keeps it: rewriting a whole file into another format is containerd's
	// job (`containerd config migrate`), not an installer's.
	Version int
	// Annotations is the pod_annotations and container_annotations
	// allowlist; nil means DefaultAnnotations.
	Annotations []string
	// Default, when set, makes the handler of this policy (one of
	// Policies) the CRI plugin's default_runtime_name: every Pod that
	// names no RuntimeClass runs through secrun.
	Default string
}

// Plan is an edit of config.toml worked out but not yet written.
type Plan struct {
	Before []byte
	// After is the new content; nil with Remove means delete the file.
	After  []byte
	Remove bool
	// Version is the config format the handlers were written for.
	Version int
	// Handlers are the handler names the file holds after the edit (for
	// an install) or held before it (for an uninstall).
	Handlers []string
	// Notes are things the admin should know about the edit.
	Notes []string
	// Own is true for a file that is secrun's alone (a drop-in): no
	// backup is kept, since nothing of the admin's is in it.
	Own bool
	// RemoveDir, with Remove, also removes the file's directory if it is
	// empty then: install created it.
	RemoveDir bool
}

// Changed reports whether the plan changes the file.
func (p *Plan) Changed() bool {
	return p.Remove || !bytes.Equal(p.Before, p.After)
}

// Handler is the handler name for a policy.
func Handler(policy string) string { return HandlerPrefix + policy }

// Install works out config.toml with secrun's handlers for opts. before is
// the current content and exists says whether the file exists (a missing
// file and an empty one differ only in what uninstall later restores).
// Installing again replaces the block, so the result depends only on the
// file outside the block and on opts.
func Install(before []byte, exists bool, opts Options) (*Plan, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	base, _, err := stripBlock(string(before))
	if err != nil {
		return nil, err
	}
	doc, err := parse(base)
	if err != nil {
		return nil, err
	}
	version, declared, err := configVersion(doc)
	if err != nil {
		return nil, err
	}
	plan := &Plan{Before: before}
	if !declared {
		if _, ok := doc["plugins"]; ok {
			return nil, errors.New("config.toml declares no version but has [plugins] sections: that is the version 1 format, which secrun does not edit; " +
				"convert it to version 2 (`containerd config default` shows the layout) and add `version = 2` at the top")
		}
		version = opts.Version
		if version == 0 {
			version = 2
		}
		marker := versionMarker
		if !exists {
			marker = createdMarker
		}
		// Root keys must precede every table header, so the version goes
		// first; the file has no version line to conflict with.
		base = fmt.Sprintf("version = %d %s\n", version, marker) + base
		plan.Notes = append(plan.Notes, fmt.Sprintf("the file declared no version; added `version = %d`", version))
	}
	if _, ok := runtimesPath[version]; !ok {
		return nil, fmt.Errorf("config.toml is version %d; secrun writes handlers for versions 2 (containerd 1.x) and 3 (containerd 2.x)", version)
	}
	if id := disabledCRI(doc, version); id != "" {
		return nil, fmt.Errorf("config.toml disables the CRI plugin (disabled_plugins contains %q), so Kubernetes cannot use any runtime handler; remove it from disabled_plugins and restart containerd", id)
	}
	runtimes := lookupTable(doc, runtimesPath[version])
	for _, p := range opts.Policies {
		if _, ok := runtimes[Handler(p)]; ok {
			return nil, fmt.Errorf("config.toml already defines runtime handler %s outside secrun's block (%s); delete that table so that secrun manages it, or leave this policy out", Handler(p), strings.Join(append(runtimesPath[version], Handler(p)), "."))
		}
	}
	systemd := systemdCgroup(doc, version)
	if systemd {
		plan.Notes = append(plan.Notes, "the default runtime uses SystemdCgroup = true; the secrun handlers do too, to match the kubelet's cgroup driver")
	}
	// containerd's built-in runc handler is a default of the runtimes
	// table: once config.toml names any handler, it is gone, and with it
	// the CRI plugin ("no corresponding runtime configured ... for
	// default_runtime_name"). A file that relies on the default gets it
	// written out in the block.
	if opts.Default != "" {
		// The block can add default_runtime_name only in a table of its
		// own: TOML has no way to add a key to a table the file already
		// defines.
		if name, ok := lookupTable(doc, runtimesPath[version][:len(runtimesPath[version])-1])["default_runtime_name"].(string); ok {
			return nil, fmt.Errorf("config.toml sets default_runtime_name = %q itself, and secrun's block cannot override a key of the file; change it there to %q, or on containerd 2.x install with --drop-in, whose file overrides config.toml",
				name, Handler(opts.Default))
		}
		plan.Notes = append(plan.Notes, fmt.Sprintf("%s is the default handler now: every Pod without a runtimeClassName runs through policy %s, kube-system's included; Pods that need more (kube-proxy is privileged) need a RuntimeClass whose policy allows it", Handler(opts.Default), opts.Default))
	}
	keepRunc := false
	if name := defaultRuntime(doc, version); runtimes[name] == nil {
		if name != "runc" {
			return nil, fmt.Errorf("config.toml sets default_runtime_name = %q but defines no such handler, so containerd's CRI plugin does not load; define it or remove the setting first", name)
		}
		keepRunc = true
		plan.Notes = append(plan.Notes, "the file relied on containerd's built-in runc handler, which containerd drops once any handler is configured; the block defines it as it was")
	}

	block := renderBlock(version, opts, systemd, keepRunc)
	after := base
	if after != "" {
		// The separator is one newline whether or not the file ended
		// with one: a blank line before the block, or the end of an
		// unterminated last line. Uninstall removes exactly one.
		after += "\n"
	}
	after += block
	plan.After = []byte(after)
	plan.Version = version
	for _, p := range opts.Policies {
		plan.Handlers = append(plan.Handlers, Handler(p))
	}
	if err := verify(after, version, opts, systemd, nil); err != nil {
		if opts.Default != "" {
			if _, perr := parse(after); perr != nil {
				return nil, fmt.Errorf("config.toml defines [%s] itself, so secrun's block cannot set default_runtime_name there; add default_runtime_name = %q to that table by hand, or on containerd 2.x install with --drop-in",
					tablePath(runtimesPath[version][:len(runtimesPath[version])-1]), Handler(opts.Default))
			}
		}
		return nil, err
	}
	return plan, nil
}

// Uninstall works out config.toml without secrun's block: the file as it
// was before the first install, byte for byte, unless the admin edited it
// since. A file install created is removed.
func Uninstall(before []byte) (*Plan, error) {
	doc, err := parse(string(before))
	if err != nil {
		return nil, err
	}
	version, _, err := configVersion(doc)
	if err != nil {
		return nil, err
	}
	after, had, err := stripBlock(string(before))
	if err != nil {
		return nil, err
	}
	plan := &Plan{Before: before, After: before, Version: version}
	if !had {
		plan.Notes = append(plan.Notes, "config.toml holds no secrun block; nothing to remove")
		return plan, nil
	}
	if p, ok := runtimesPath[version]; ok {
		for name := range lookupTable(doc, p) {
			if strings.HasPrefix(name, HandlerPrefix) {
				plan.Handlers = append(plan.Handlers, name)
			}
		}
		slices.Sort(plan.Handlers)
	}
	// The version line install added goes too, unless the file now has
	// [plugins] sections: without the line they would read as version 1.
	first, rest, _ := strings.Cut(after, "\n")
	if strings.HasSuffix(first, " "+createdMarker) || strings.HasSuffix(first, " "+versionMarker) {
		restDoc, err := parse(rest)
		switch {
		case err != nil:
			return nil, err
		case restDoc["plugins"] != nil:
			plan.Notes = append(plan.Notes, "kept the `version` line secrun added: the file now has [plugins] sections that need it")
		default:
			after = rest
			plan.Remove = after == "" && strings.HasSuffix(first, " "+createdMarker)
		}
	}
	plan.After = []byte(after)
	if plan.Remove {
		plan.After = nil
	}
	return plan, nil
}

func (o *Options) validate() error {
	if len(o.Policies) == 0 {
		return errors.New("no policies given; name at least one (e.g. restricted,baseline)")
	}
	seen := map[string]bool{}
	for _, p := range o.Policies {
		h := Handler(p)
		if len(h) > 63 || !handlerNameRE.MatchString(h) {
			return fmt.Errorf("policy %q gives handler name %q, which is not a lowercase RFC 1123 label of at most 63 characters (a RuntimeClass handler must be one); rename the policy", p, h)
		}
		if seen[p] {
			return fmt.Errorf("policy %q is listed twice", p)
		}
		seen[p] = true
	}
	if !strings.HasPrefix(o.BinDir, "/") {
		return fmt.Errorf("binary directory %q is not absolute; containerd resolves BinaryName from its own working directory, so give the full path (e.g. /usr/local/bin)", o.BinDir)
	}
	switch o.Version {
	case 0, 2, 3:
	default:
		return fmt.Errorf("config version %d is not one secrun writes; use 2 (containerd 1.x) or 3 (containerd 2.x)", o.Version)
	}
	if o.Default != "" && !slices.Contains(o.Policies, o.Default) {
		return fmt.Errorf("default policy %q is not among the policies installed (%s); add it to them", o.Default, strings.Join(o.Policies, ", "))
	}
	for _, a := range o.annotations() {
		if a == "" || strings.ContainsAny(a, "\"\\\n") {
			return fmt.Errorf("annotation pattern %q is empty or holds a quote, backslash or newline", a)
		}
	}
	return nil
}

func (o *Options) annotations() []string {
	if o.Annotations == nil {
		return DefaultAnnotations
	}
	return o.Annotations
}

// renderBlock writes the handler tables. Each handler is a pair of
// standard tables with full paths, which TOML accepts after any other
// content as long as those exact tables are new, whatever the file did
// with their parents.
func renderBlock(version int, opts Options, systemd, keepRunc bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (written by `secrunctl install containerd`).\n", beginMarker)
	b.WriteString("# Edits inside this block are replaced by the next install; remove the\n")
	b.WriteString("# block with `secrunctl install containerd --uninstall`.\n")
	prefix := tablePath(runtimesPath[version])
	var anns []string
	for _, a := range opts.annotations() {
		anns = append(anns, tomlString(a))
	}
	list := "[" + strings.Join(anns, ", ") + "]"
	if opts.Default != "" {
		// First in the block: a table header defined after its
		// sub-tables' headers is valid TOML, but reads badly.
		fmt.Fprintf(&b, "# Pods that name no RuntimeClass run through secrun policy %s.\n", opts.Default)
		fmt.Fprintf(&b, "[%s]\n  default_runtime_name = %s\n", tablePath(runtimesPath[version][:len(runtimesPath[version])-1]), tomlString(Handler(opts.Default)))
	}
	if keepRunc {
		b.WriteString("# containerd's built-in default handler, which it forgets once any\n# handler is configured.\n")
		fmt.Fprintf(&b, "[%s.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n", prefix)
	}
	for _, p := range opts.Policies {
		h := prefix + "." + Handler(p)
		fmt.Fprintf(&b, "[%s]\n", h)
		b.WriteString("  runtime_type = \"io.containerd.runc.v2\"\n")
		fmt.Fprintf(&b, "  pod_annotations = %s\n", list)
		fmt.Fprintf(&b, "  container_annotations = %s\n", list)
		fmt.Fprintf(&b, "[%s.options]\n", h)
		fmt.Fprintf(&b, "  BinaryName = %s\n", tomlString(joinPath(opts.BinDir, Handler(p))))
		if systemd {
			b.WriteString("  SystemdCgroup = true\n")
		}
	}
	fmt.Fprintf(&b, "%s\n", endMarker)
	return b.String()
}

// verify parses the edited file and checks that every handler says what
// it should: an edit that TOML reads differently (a parent defined as an
// inline table, say) must fail here, not when containerd restarts.
//
// under is the configuration text merges over (config.toml under a
// drop-in), nil when text stands alone; the default handler may be
// defined there.
func verify(text string, version int, opts Options, systemd bool, under map[string]any) error {
	doc, err := parse(text)
	if err != nil {
		return fmt.Errorf("adding the handlers would make config.toml invalid (%v); the file probably defines %s as an inline table, which cannot be extended: rewrite it as [table] sections or add the handlers by hand (docs/admin-guide.md)",
			err, tablePath(runtimesPath[version]))
	}
	got, _, err := configVersion(doc)
	if err != nil || got != version {
		return fmt.Errorf("edited config.toml reads as version %d, not %d", got, version)
	}
	runtimes := lookupTable(doc, runtimesPath[version])
	def := defaultRuntime(doc, version)
	if under != nil && opts.Default == "" {
		def = defaultRuntime(under, underVersion(under))
	}
	if runtimes[def] == nil && (under == nil || lookupTable(under, runtimesPath[underVersion(under)])[def] == nil) {
		return fmt.Errorf("edited config.toml has no handler for the default runtime %s; add the handlers by hand (docs/admin-guide.md)", def)
	}
	if opts.Default != "" && def != Handler(opts.Default) {
		return fmt.Errorf("edited configuration reads default_runtime_name = %q, not %q", def, Handler(opts.Default))
	}
	for _, p := range opts.Policies {
		h, _ := runtimes[Handler(p)].(map[string]any)
		o, _ := h["options"].(map[string]any)
		want := joinPath(opts.BinDir, Handler(p))
		if h["runtime_type"] != "io.containerd.runc.v2" || o["BinaryName"] != want {
			return fmt.Errorf("edited config.toml does not read back handler %s with BinaryName %s; add the handlers by hand (docs/admin-guide.md)", Handler(p), want)
		}
		if sc, _ := o["SystemdCgroup"].(bool); sc != systemd {
			return fmt.Errorf("edited config.toml reads handler %s with SystemdCgroup = %v, want %v", Handler(p), sc, systemd)
		}
	}
	return nil
}

// stripBlock removes secrun's block and the one newline install put before
// it. It reports whether there was a block.
func stripBlock(s string) (string, bool, error) {
	begin, end := -1, -1
	off := 0
	for line := range strings.SplitAfterSeq(s, "\n") {
		switch {
		case strings.HasPrefix(line, beginMarker):
			if begin >= 0 {
				return "", false, errors.New("config.toml holds two secrun blocks; delete one (keep the newer) and run the install again")
			}
			begin = off
		case strings.HasPrefix(line, endMarker):
			if begin < 0 || end >= 0 {
				return "", false, fmt.Errorf("config.toml has a %q line without its %q line; repair the block by hand or restore a backup", endMarker, beginMarker)
			}
			end = off + len(line)
		}
		off += len(line)
	}
	if begin < 0 {
		return s, false, nil
	}
	if end < 0 {
		return "", false, fmt.Errorf("config.toml has a %q line without its %q line; repair the block by hand or restore a backup", beginMarker, endMarker)
	}
	head := s[:begin]
	if strings.HasSuffix(head, "\n") {
		head = head[:len(head)-1]
	}
	return head + s[end:], true, nil
}

func parse(s string) (map[string]any, error) {
	doc := map[string]any{}
	if err := toml.Unmarshal([]byte(s), &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("config.toml is not valid TOML at line %d column %d: %v; fix it first (containerd would not start with it either)", row, col, err)
		}
		return nil, fmt.Errorf("config.toml is not valid TOML: %w; fix it first (containerd would not start with it either)", err)
	}
	return doc, nil
}

// configVersion is the file's declared version, and whether it declared one.
func configVersion(doc map[string]any) (int, bool, error) {
	v, ok := doc["version"]
	if !ok {
		return 0, false, nil
	}
	n, ok := v.(int64)
	if !ok {
		return 0, false, fmt.Errorf("config.toml has version = %v, which is not an integer", v)
	}
	return int(n), true, nil
}

func lookupTable(doc map[string]any, path []string) map[string]any {
	cur := doc
	for _, k := range path {
		next, ok := cur[k].(map[string]any)
		if !ok {
			return nil
		}
		cur = next
	}
	return cur
}

func disabledCRI(doc map[string]any, version int) string {
	list, _ := doc["disabled_plugins"].([]any)
	for _, v := range list {
		if s, ok := v.(string); ok && slices.Contains(criPluginIDs[version], s) {
			return s
		}
	}
	return ""
}

// systemdCgroup reports whether the default runtime handler uses the
// systemd cgroup driver. A handler with another driver than the kubelet
// fails every Pod, so secrun's handlers follow the default one.
func systemdCgroup(doc map[string]any, version int) bool {
	h, _ := lookupTable(doc, runtimesPath[version])[defaultRuntime(doc, version)].(map[string]any)
	o, _ := h["options"].(map[string]any)
	b, _ := o["SystemdCgroup"].(bool)
	return b
}

// defaultRuntime is the handler the CRI plugin uses for Pods that name
// none: default_runtime_name, which defaults to runc.
func defaultRuntime(doc map[string]any, version int) string {
	path := runtimesPath[version]
	name, _ := lookupTable(doc, path[:len(path)-1])["default_runtime_name"].(string)
	if name == "" {
		return "runc"
	}
	return name
}

// tablePath writes a table key, quoting the parts that are not bare keys
// (plugin IDs hold dots).
func tablePath(parts []string) string {
	out := make([]string, len(parts))
	for i, p := range parts {
		if bareKeyRE.MatchString(p) {
			out[i] = p
		} else {
			out[i] = tomlString(p)
		}
	}
	return strings.Join(out, ".")
}

// tomlString is a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func joinPath(dir, name string) string {
	return strings.TrimSuffix(dir, "/") + "/" + name
}

// underVersion is a parsed file's version, 2 when it declares none or an
// unknown one (callers have checked it).
func underVersion(doc map[string]any) int {
	v, declared, err := configVersion(doc)
	if err != nil || !declared {
		return 2
	}
	if _, ok := runtimesPath[v]; !ok {
		return 2
	}
	return v
}
