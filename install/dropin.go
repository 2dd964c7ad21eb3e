package install

import (
	"fmt"
	"path/filepath"
	"strings"
)

// DefaultDropIn is where the drop-in goes: containerd 2.2 and later write
// imports = ["/etc/containerd/conf.d/*.toml"] into the configuration
// `containerd config default` prints (defaults.DefaultConfigIncludePattern).
const DefaultDropIn = "/etc/containerd/conf.d/secrun.toml"

// dropInVersion is the format of the drop-in: containerd 2.x migrates
// every file it loads to version 3, and a file without a version reads as
// version 1, so the drop-in declares its own.
const dropInVersion = 3

// DropIn says where a drop-in goes and what imports it.
type DropIn struct {
	// Main is config.toml's content and MainPath its path on the node
	// (its imports may be relative to it).
	Main     []byte
	MainPath string
	// Path is the drop-in's path on the node.
	Path string
	// Containerd2: the node runs containerd 2.x.
	Containerd2 bool
	// DirMissing: the drop-in's directory does not exist yet; install
	// creates it, and uninstall removes it again if it is empty.
	DirMissing bool
}

// InstallDropIn works out a drop-in file of containerd 2.x holding
// secrun's handlers, so that config.toml is never edited. before and
// exists are the drop-in's current state.
//
// containerd 2.x loads config.toml, then each imported file, and merges
// each over what it has (cmd/containerd/server/config/config.go,
// LoadConfigWithPlugins and mergeConfig): handler tables add up, and a
// default_runtime_name in the drop-in overrides config.toml's. containerd
// 1.x replaced a plugin's whole section with an imported file's, which
// would wipe config.toml's CRI settings, so the drop-in is refused unless
// the node runs containerd 2.x (containerd2) or config.toml is version 3.
func InstallDropIn(d DropIn, before []byte, exists bool, opts Options) (*Plan, error) {
	main, mainPath, dropInPath, containerd2 := d.Main, d.MainPath, d.Path, d.Containerd2
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Version != 0 && opts.Version != dropInVersion {
		return nil, fmt.Errorf("a drop-in is version %d, for containerd 2.x; version %d cannot be asked for", dropInVersion, opts.Version)
	}
	if exists && !ownDropIn(before) {
		return nil, fmt.Errorf("%s exists and was not written by secrunctl; move it away or choose another --drop-in-file", dropInPath)
	}
	doc, err := parse(string(main))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mainPath, err)
	}
	version, _, err := configVersion(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mainPath, err)
	}
	if !containerd2 && version < 3 {
		return nil, fmt.Errorf("%s is version %d and this node's containerd is not 2.x: containerd 1.x replaces a plugin's whole configuration with an imported file's, so a drop-in would wipe the CRI settings of %s; install into %s instead (leave out --drop-in)",
			mainPath, version, mainPath, mainPath)
	}
	if _, ok := runtimesPath[version]; !ok {
		return nil, fmt.Errorf("%s is version %d; secrun reads versions 2 and 3", mainPath, version)
	}
	if !imports(doc, mainPath, dropInPath) {
		list, _ := doc["imports"].([]any)
		return nil, fmt.Errorf("%s does not import %s (its imports: %v), so containerd would never read the drop-in; add imports = [%q] at the top of %s (containerd 2.2's `containerd config default` has it), or install into %s itself (leave out --drop-in)",
			mainPath, dropInPath, list, filepath.Join(filepath.Dir(dropInPath), "*.toml"), mainPath, mainPath)
	}
	if id := disabledCRI(doc, version); id != "" {
		return nil, fmt.Errorf("%s disables the CRI plugin (disabled_plugins contains %q), so Kubernetes cannot use any runtime handler; remove it from disabled_plugins and restart containerd", mainPath, id)
	}
	runtimes := lookupTable(doc, runtimesPath[version])
	for _, p := range opts.Policies {
		if _, ok := runtimes[Handler(p)]; ok {
			return nil, fmt.Errorf("%s already defines runtime handler %s (%s), which the drop-in would replace; delete that table so that secrun manages it, or leave this policy out", mainPath, Handler(p), strings.Join(append(runtimesPath[version], Handler(p)), "."))
		}
	}
	plan := &Plan{Before: before, Version: dropInVersion, Own: true}
	systemd := systemdCgroup(doc, version)
	if systemd {
		plan.Notes = append(plan.Notes, "the default runtime uses SystemdCgroup = true; the secrun handlers do too, to match the kubelet's cgroup driver")
	}
	keepRunc := false
	if name := defaultRuntime(doc, version); runtimes[name] == nil {
		if name != "runc" {
			return nil, fmt.Errorf("%s sets default_runtime_name = %q but defines no such handler, so containerd's CRI plugin does not load; define it or remove the setting first", mainPath, name)
		}
		keepRunc = true
	}
	if opts.Default != "" {
		plan.Notes = append(plan.Notes, fmt.Sprintf("%s is the default handler now (the drop-in overrides %s's default_runtime_name): every Pod without a runtimeClassName runs through policy %s, kube-system's included; Pods that need more (kube-proxy is privileged) need a RuntimeClass whose policy allows it", Handler(opts.Default), mainPath, opts.Default))
	}
	header := fmt.Sprintf("version = %d %s\n", dropInVersion, createdMarker)
	// A directory install made is remembered in the file, across
	// reinstalls, so that uninstall takes it away too.
	if d.DirMissing || (exists && createdDir(before)) {
		header += dirCreatedMarker + "\n"
	}
	text := header + "\n" + renderBlock(dropInVersion, opts, systemd, keepRunc)
	if err := verify(text, dropInVersion, opts, systemd, doc); err != nil {
		return nil, err
	}
	plan.After = []byte(text)
	for _, p := range opts.Policies {
		plan.Handlers = append(plan.Handlers, Handler(p))
	}
	return plan, nil
}

// UninstallDropIn removes a drop-in secrunctl wrote; one it did not write
// is left alone with an error.
func UninstallDropIn(path string, before []byte) (*Plan, error) {
	if !ownDropIn(before) {
		return nil, fmt.Errorf("%s was not written by secrunctl (it lacks the %q line); remove it by hand if it is secrun's", path, createdMarker)
	}
	plan := &Plan{Before: before, Remove: true, RemoveDir: createdDir(before), Own: true, Version: dropInVersion}
	if doc, err := parse(string(before)); err == nil {
		for name := range lookupTable(doc, runtimesPath[dropInVersion]) {
			if strings.HasPrefix(name, HandlerPrefix) {
				plan.Handlers = append(plan.Handlers, name)
			}
		}
	}
	return plan, nil
}

// dirCreatedMarker is the drop-in's second line when install created its
// directory.
const dirCreatedMarker = "# secrun: directory created by secrunctl install containerd"

// ownDropIn reports whether a drop-in is secrunctl's: its first line
// carries the marker and the rest is one secrun block.
func ownDropIn(b []byte) bool {
	first, rest, _ := strings.Cut(string(b), "\n")
	if !strings.HasSuffix(first, " "+createdMarker) {
		return false
	}
	rest = strings.TrimPrefix(rest, dirCreatedMarker+"\n")
	outside, had, err := stripBlock(rest)
	return err == nil && had && strings.TrimSpace(outside) == ""
}

func createdDir(b []byte) bool {
	_, rest, _ := strings.Cut(string(b), "\n")
	return strings.HasPrefix(rest, dirCreatedMarker+"\n")
}

// imports reports whether config.toml's imports name dropInPath, as
// containerd resolves them (relative to config.toml's directory, with
// globs).
func imports(doc map[string]any, mainPath, dropInPath string) bool {
	list, _ := doc["imports"].([]any)
	for _, v := range list {
		s, ok := v.(string)
		if !ok {
			continue
		}
		pattern := filepath.Clean(s)
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(filepath.Dir(mainPath), pattern)
		}
		if ok, err := filepath.Match(pattern, filepath.Clean(dropInPath)); err == nil && ok {
			return true
		}
	}
	return false
}
