// Package runccheck tells whether runc would accept a bundle's
// config.json, by running the same conversion and validation runc's
// create runs: libcontainer/specconv's CreateLibcontainerConfig, then
// libcontainer/configs/validate. A config runc refuses is reported with
// the config.json field before it reaches a node.
//
// It links runc's libcontainer, which is large: it is for secrunctl, and
// must stay out of the secrun wrapper (cmd/secrun has a test for that).
package runccheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/opencontainers/runc/libcontainer/configs/validate"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
)

// Problem is a config.json runc refuses.
type Problem struct {
	// Field is the config.json field runc's message is about, as well as
	// it can be told ("mounts", "linux.sysctl"); "" when unknown.
	Field string
	// Message is runc's own error.
	Message string
}

func (p *Problem) Error() string {
	if p.Field == "" {
		return "runc would refuse this config.json: " + p.Message
	}
	return fmt.Sprintf("runc would refuse this config.json: %s: %s", p.Field, p.Message)
}

// Result is what Check found.
type Result struct {
	// Warnings are what runc logs and goes on with (a mount it tolerates
	// for compatibility).
	Warnings []string
	// RootfsMissing says root.path does not exist yet: it was checked as
	// an empty directory, and runc will refuse the bundle until it exists.
	RootfsMissing bool
}

// logMu serialises checks: runc's validation logs through logrus's
// global logger, which Check redirects while it runs.
var logMu sync.Mutex

// Check converts and validates s as runc create would for a bundle in
// bundleDir (runc runs in the bundle directory, which relative paths are
// resolved against); "" is a config not yet on disk. It changes nothing
// on the host; s is not modified.
// The error is a *Problem when runc would refuse the config, another
// error when the check itself could not run.
func Check(bundleDir string, s *specs.Spec) (*Result, error) {
	if s == nil {
		return nil, &Problem{Message: "no config"}
	}
	dir := ""
	if bundleDir != "" {
		var err error
		if dir, err = filepath.Abs(bundleDir); err != nil {
			return nil, err
		}
	}
	spec, err := clone(s)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	if p := checkProcess(spec); p != nil {
		return res, p
	}
	if spec.Root == nil {
		return res, &Problem{Field: "root", Message: "root must be specified"}
	}
	// specconv resolves relative paths against the process's working
	// directory, which is the bundle under runc; here it is not.
	missing := false
	if !filepath.IsAbs(spec.Root.Path) {
		// No bundle directory: a config not on disk, whose relative
		// rootfs does not exist anywhere yet.
		missing = dir == ""
		spec.Root.Path = filepath.Join(dir, spec.Root.Path)
	}
	if _, err := os.Stat(spec.Root.Path); missing || errors.Is(err, os.ErrNotExist) {
		// translate writes bundles whose rootfs the user adds later;
		// everything but its existence can still be checked.
		empty, err := os.MkdirTemp("", "secrun-rootfs-")
		if err != nil {
			return nil, err
		}
		defer os.Remove(empty)
		if empty, err = filepath.EvalSymlinks(empty); err != nil {
			return nil, err
		}
		res.RootfsMissing = true
		spec.Root.Path = empty
	}
	for i := range spec.Mounts {
		m := &spec.Mounts[i]
		if m.Source != "" && !filepath.IsAbs(m.Source) && isBind(m) && dir != "" {
			m.Source = filepath.Join(dir, m.Source)
		}
	}

	logMu.Lock()
	defer logMu.Unlock()
	log := logrus.StandardLogger()
	prevOut, prevHooks := log.Out, log.ReplaceHooks(logrus.LevelHooks{})
	hook := &warnHook{}
	log.AddHook(hook)
	log.SetOutput(io.Discard)
	defer func() {
		log.SetOutput(prevOut)
		log.ReplaceHooks(prevHooks)
	}()

	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: "secrun-check", Spec: spec})
	if err == nil {
		err = validate.Validate(cfg)
	}
	res.Warnings = append(res.Warnings, hook.warnings...)
	if err != nil {
		return res, &Problem{Field: fieldOf(err.Error()), Message: err.Error()}
	}
	return res, nil
}

// checkProcess is what runc's create checks of process before libcontainer
// sees it (runc's utils_linux.go, validateProcessSpec).
func checkProcess(s *specs.Spec) *Problem {
	p := s.Process
	switch {
	case p == nil:
		return &Problem{Field: "process", Message: "process property must not be empty"}
	case p.Cwd == "":
		return &Problem{Field: "process.cwd", Message: "Cwd property must not be empty"}
	case !filepath.IsAbs(p.Cwd):
		return &Problem{Field: "process.cwd", Message: "Cwd must be an absolute path"}
	case len(p.Args) == 0 && p.CommandLine == "":
		return &Problem{Field: "process.args", Message: "args must not be empty"}
	}
	return nil
}

func isBind(m *specs.Mount) bool {
	if m.Type == "bind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

func clone(s *specs.Spec) (*specs.Spec, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var out specs.Spec
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

type warnHook struct{ warnings []string }

func (h *warnHook) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

func (h *warnHook) Fire(e *logrus.Entry) error {
	msg := e.Message
	if err, ok := e.Data[logrus.ErrorKey].(error); ok {
		msg += ": " + err.Error()
	}
	h.warnings = append(h.warnings, "runc: "+msg)
	return nil
}

// fields maps words of runc's messages to the config.json field they are
// about, most specific first.
var fields = []struct{ word, field string }{
	{"invalid mount", "mounts"},
	{"mount", "mounts"},
	{"rootfsPropagation", "linux.rootfsPropagation"},
	{"rootfs", "root.path"},
	{"sysctl", "linux.sysctl"},
	{"hostname", "hostname"},
	{"domainname", "domainname"},
	{"restrict sys", "linux.maskedPaths"},
	{"duplicated ns", "linux.namespaces"},
	{"mapping", "linux.uidMappings"},
	{"user namespace", "linux.namespaces"},
	{"namespace", "linux.namespaces"},
	{"selinux", "process.selinuxLabel"},
	{"seccomp", "linux.seccomp"},
	{"syscall", "linux.seccomp"},
	{"device", "linux.devices"},
	{"cgroup", "linux.cgroupsPath"},
	{"rlimit", "process.rlimits"},
	{"scheduler", "process.scheduler"},
	{"ioPriority", "process.ioPriority"},
	{"memory policy", "linux.memoryPolicy"},
	{"intelRdt", "linux.intelRdt"},
	{"personality", "linux.personality"},
	{"network", "linux.namespaces"},
}

func fieldOf(msg string) string {
	lower := strings.ToLower(msg)
	for _, f := range fields {
		if strings.Contains(lower, strings.ToLower(f.word)) {
			return f.field
		}
	}
	return ""
}
