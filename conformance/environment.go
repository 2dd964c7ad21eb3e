// Package conformance is secrun's enforcement suite. Each case is a
// Kubernetes Pod manifest (cases/*.yaml). The suite translates it into an
// OCI bundle with package manifest, as `secrunctl translate` does, puts
// the static probe (conformance/probe) in as the whole rootfs, runs it
// through secrun or a bare OCI runtime, and compares what the probe could
// and could not do with what the manifest and the node's policy say it
// must be allowed and denied.
//
// Expectations are derived, never written per case: deriveRequested
// reads the manifest with containerd's and the kubelet's semantics,
// policySim applies the secrun policy the container runs under, and
// deriveChecks turns the resulting model into checks. A check that
// cannot fail is a defect; the validity mode (Options.Validity) runs
// every check against a twin bundle where its setting is deliberately
// not enforced and reports any check that passes there.
package conformance

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/spec"
)

// This file holds the machine and its artefacts: the delegate runtime, secrun's configuration, the probe binary, the AppArmor profiles.

// resolveRuntime decides between secrun and a bare runtime, and loads
// the secrun configuration the expectations are derived from.
func (s *suite) resolveRuntime() error {
	delegate := s.opts.Delegate
	if delegate == "" {
		delegate = "runc"
	}
	d, err := exec.LookPath(delegate)
	if err != nil {
		return fmt.Errorf("delegate runtime %q: %w", delegate, err)
	}
	s.delegate, _ = filepath.Abs(d)

	rt := s.opts.Runtime
	base := filepath.Base(rt)
	if base != "secrun" && !strings.HasPrefix(base, "secrun-") {
		p, err := exec.LookPath(rt)
		if err != nil {
			return fmt.Errorf("runtime %q: %w", rt, err)
		}
		s.kind, s.runtime = kindBare, p
		// Twins run with the runtime under test when it is bare.
		s.delegate, _ = filepath.Abs(p)
		return nil
	}
	s.kind = kindSecrun
	if name, ok := strings.CutPrefix(base, "secrun-"); ok {
		s.fixedPolicy = name
	}
	bin := s.opts.SecrunBinary
	switch {
	case bin != "":
	case rt != "secrun" && rt != base || rt != "secrun" && strings.Contains(rt, "/"):
		// A path to secrun or a secrun-<policy> link: the binary behind it.
		if bin, err = filepath.EvalSymlinks(rt); err != nil {
			return fmt.Errorf("runtime %s: %w", rt, err)
		}
	default:
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find secrun: %w", err)
		}
		bin = filepath.Join(filepath.Dir(exe), "secrun")
		if _, err := os.Stat(bin); err != nil {
			if p, lerr := exec.LookPath("secrun"); lerr == nil {
				bin = p
			} else {
				return fmt.Errorf("secrun binary not found next to %s or on PATH; build it (make build) or pass --secrun", exe)
			}
		}
	}
	if s.runtime, err = filepath.Abs(bin); err != nil {
		return err
	}
	if _, err := os.Stat(s.runtime); err != nil {
		return fmt.Errorf("secrun binary: %w", err)
	}

	cfgPath := s.opts.ConfigPath
	if cfgPath == "" {
		cfgPath = os.Getenv(policy.ConfigEnv)
	}
	if cfgPath != "" {
		s.configPath, _ = filepath.Abs(cfgPath)
	} else {
		dir := s.opts.ReportDir
		if dir == "" {
			dir = s.work
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		audit := filepath.Join(dir, "audit.log")
		s.configPath = filepath.Join(dir, "secrun-config.yaml")
		body := GeneratedConfig(s.delegate, audit, s.profileRoot, filepath.Join(s.work, "seccomp-agent.sock"))
		if err := os.WriteFile(s.configPath, []byte(body), 0o644); err != nil {
			return fmt.Errorf("write the suite's secrun configuration: %w", err)
		}
	}
	raw, err := os.ReadFile(s.configPath)
	if err != nil {
		return fmt.Errorf("secrun configuration: %w", err)
	}
	if s.cfg, err = policy.ParseConfig(raw); err != nil {
		return fmt.Errorf("secrun configuration %s: %w", s.configPath, err)
	}
	s.cfg.Source = s.configPath
	// Twins run with the runtime secrun delegates to, so that a check is
	// shown to fail on the same low-level runtime it passed on.
	if s.opts.Delegate == "" {
		d, err := exec.LookPath(s.cfg.Runtime)
		if err != nil {
			return fmt.Errorf("the delegate runtime %q of %s: %w", s.cfg.Runtime, s.configPath, err)
		}
		s.delegate, _ = filepath.Abs(d)
	}
	return nil
}

// GeneratedConfig is the secrun configuration the suite uses unless
// given one: the presets in harden mode, so that each case shows both
// what the Pod asks for and what the policy rewrites. Harden refuses
// only what no rewrite can fix, so a privileged Pod and a root Pod under
// restricted (no runAsUser is configured on purpose) show refusals.
// Every policy has a seccomp agent on agentSocket that only Pods that
// ask get (secrun.dev/seccomp-agent), record included, so that the
// seccomp-agent cases check record and explain under any of them.
func GeneratedConfig(delegate, auditLog, profileRoot, agentSocket string) string {
	agent := fmt.Sprintf(`    seccompAgent:
      socket: %q
      allowPodRecord: true
`, agentSocket)
	return fmt.Sprintf(`# Written by secrunctl conformance.
runtime: %q
defaultPolicy: baseline
auditLog: %q
seccompProfileRoot: %q
policies:
  privileged:
%s  baseline:
    mode: harden
%s  restricted:
    mode: harden
%s`, delegate, auditLog, profileRoot, agent, agent, agent)
}

// prepareProbe builds the static probe once (or takes the given one) and
// makes its setuid-root copy.
func (s *suite) prepareProbe() error {
	s.probe = filepath.Join(s.work, "bin", "probe")
	s.probeSUID = filepath.Join(s.work, "bin", "probe-suid")
	if err := s.probeBinary(s.probe); err != nil {
		return err
	}
	if err := linkOrCopyFresh(s.probe, s.probeSUID); err != nil {
		return fmt.Errorf("probe setuid copy: %w", err)
	}
	if err := os.Chown(s.probeSUID, 0, 0); err != nil {
		return err
	}
	return os.Chmod(s.probeSUID, os.ModeSetuid|0o755)
}

// probeBinary puts the static probe at dst: the one given, the one
// `make conformance` leaves next to secrunctl, or one built from the
// module.
func (s *suite) probeBinary(dst string) error {
	if s.opts.ProbePath == "" {
		// `make conformance` leaves a fresh one next to secrunctl.
		if exe, err := os.Executable(); err == nil {
			if p := filepath.Join(filepath.Dir(exe), "conformance-probe"); checkStatic(p) == nil {
				s.opts.ProbePath = p
			}
		}
	}
	if s.opts.ProbePath != "" {
		if err := linkOrCopy(s.opts.ProbePath, dst); err != nil {
			return fmt.Errorf("probe: %w", err)
		}
	} else {
		root := s.opts.ModuleRoot
		if root == "" {
			var err error
			if root, err = findModuleRoot(); err != nil {
				return err
			}
		}
		fmt.Fprintf(s.opts.Log, "conformance: building the probe (CGO_ENABLED=0 go build ./conformance/probe)\n")
		cmd := exec.Command("go", "build", "-trimpath", "-o", dst, "./conformance/probe")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build the probe (CGO_ENABLED=0 go build ./conformance/probe in %s): %v\n%s", root, err, out)
		}
	}
	if err := checkStatic(dst); err != nil {
		return err
	}
	return os.Chmod(dst, 0o755)
}

// linkOrCopyFresh copies (never links: the setuid bit must not reach the
// probe itself).
func linkOrCopyFresh(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

// checkStatic refuses a dynamically linked probe: the rootfs holds
// nothing else, so it could not start.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("probe %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("probe %s is dynamically linked; build it with CGO_ENABLED=0", p)
		}
	}
	return nil
}

func findModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/secrun/secrun\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the secrun module to build the probe from; run from the repository or pass --probe")
		}
		dir = parent
	}
}

// appArmorProfileName is the Localhost AppArmor profile the suite loads
// where the kernel has AppArmor.
const appArmorProfileName = "secrun-conformance-deny-write"

func (s *suite) loadAppArmorProfiles() error {
	if s.host.AppArmorParser == "" {
		return nil
	}
	// Twins and controls run RuntimeDefault bundles with the bare
	// delegate, which needs secrun's default profile loaded.
	if err := (spec.HostAppArmor{}).LoadDefault(spec.DefaultAppArmorProfile); err != nil {
		return err
	}
	return fs.WalkDir(embeddedAppArmor, "profiles/apparmor", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := embeddedAppArmor.ReadFile(p)
		if err != nil {
			return err
		}
		cmd := exec.Command(s.host.AppArmorParser, "-Kr")
		cmd.Stdin = strings.NewReader(string(body))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("load AppArmor profile %s: %v: %s", p, err, out)
		}
		return nil
	})
}
