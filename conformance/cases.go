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
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/secrun/secrun/manifest"
	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/spec"
)

// This file holds the cases: manifests loaded, translated and derived into the containers to run.

// Case is one manifest of the suite.
type Case struct {
	Name string
	File string
	Data []byte
}

// LoadCases reads *.yaml manifests from dir, or the built-in cases.
func LoadCases(dir string) ([]Case, error) {
	var fsys fs.FS = embeddedCases
	root := "cases"
	if dir != "" {
		fsys, root = os.DirFS(dir), "."
	}
	ents, err := fs.ReadDir(fsys, root)
	if err != nil {
		return nil, fmt.Errorf("read cases: %w", err)
	}
	var out []Case
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			continue
		}
		b, err := fs.ReadFile(fsys, filepath.Join(root, n))
		if err != nil {
			return nil, err
		}
		file := filepath.Join("conformance/cases", n)
		if dir != "" {
			file = filepath.Join(dir, n)
		}
		out = append(out, Case{Name: strings.TrimSuffix(strings.TrimSuffix(n, ".yaml"), ".yml"), File: file, Data: b})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil, fmt.Errorf("no *.yaml cases in %s", dir)
	}
	return out, nil
}

// setup derives every container's checks and translates its manifest.
func (s *suite) setup() ([]*containerRun, error) {
	cases, err := s.selectCases()
	if err != nil {
		return nil, err
	}
	var runs []*containerRun
	for _, c := range cases {
		crs, err := s.setupCase(c)
		if err != nil {
			return nil, fmt.Errorf("case %s (%s): %w", c.Name, c.File, err)
		}
		runs = append(runs, crs...)
	}
	if len(runs) == 0 {
		return nil, errors.New("no case selected")
	}
	return runs, nil
}

// selectCases loads the cases and keeps those Options.Cases names.
func (s *suite) selectCases() ([]Case, error) {
	cases, err := LoadCases(s.opts.CasesDir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = c.Name
	}
	for _, want := range s.opts.Cases {
		if !slices.Contains(names, want) {
			msg := fmt.Sprintf("no case %q", want)
			if sug := spec.Suggest(want, names); sug != "" {
				msg += fmt.Sprintf("; did you mean %s?", sug)
			}
			return nil, errors.New(msg)
		}
	}
	if len(s.opts.Cases) > 0 {
		cases = slices.DeleteFunc(cases, func(c Case) bool { return !slices.Contains(s.opts.Cases, c.Name) })
	}
	return cases, nil
}

func (s *suite) setupCase(c Case) ([]*containerRun, error) {
	views, err := parsePodViews(c.Data)
	if err != nil {
		return nil, err
	}
	workloads, werr := manifest.Parse(c.Data)
	// Pair each view with its workload by kind and name.
	workloadOf := func(pv *podView) (*manifest.Workload, error) {
		if werr != nil {
			return nil, fmt.Errorf("manifest.Parse: %w", werr)
		}
		for _, w := range workloads {
			if w.Kind == pv.Kind && w.Name == pv.Metadata.Name {
				return w, nil
			}
		}
		return nil, fmt.Errorf("manifest.Parse returned no %s/%s", pv.Kind, pv.Metadata.Name)
	}
	var out []*containerRun
	multi := len(views) > 1
	for _, pv := range views {
		if ps, _ := pv.podSpec(); len(ps.Containers) > 1 {
			multi = true
		}
	}
	for _, pv := range views {
		ps, ann := pv.podSpec()
		w, wErr := workloadOf(pv)
		var bundles map[string]manifest.ContainerBundle
		var terr error
		translated := false
		for _, ctr := range ps.Containers {
			cr := &containerRun{caseName: c.Name, file: c.File, workload: pv.Metadata.Name, container: ctr.Name, multi: multi}
			out = append(out, cr)
			if err := s.deriveContainer(cr, pv, ps, ann, &ctr); err != nil {
				return nil, err
			}
			if wErr != nil {
				cr.setupErr = wErr
				continue
			}
			cr.wl = w
			// A Pod's containers are made by the node's kubelet and
			// containerd, not translated here.
			if s.kube != nil || !anyRunnable(cr.checks) {
				continue
			}
			if !translated {
				bundles, terr = s.translate(w)
				translated = true
			}
			// Translate returns the containers that translated together
			// with the error of those that did not.
			b, ok := bundles[ctr.Name]
			if !ok {
				cr.setupErr = terr
				if terr == nil {
					cr.setupErr = fmt.Errorf("manifest.Translate returned no bundle for container %s", ctr.Name)
				}
				continue
			}
			cr.warnings = b.Warnings
			rootfs := filepath.Join(s.work, "template-rootfs")
			if cr.translated, err = prepareSpec(b.Spec, rootfs, probeArgs(cr.final.m, s.host)); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func anyRunnable(checks []*check) bool {
	for _, ch := range checks {
		if ch.skip == "" {
			return true
		}
	}
	return false
}

// translate runs manifest.Translate against a probe image, so that users
// and groups resolve against the image's /etc files.
func (s *suite) translate(w *manifest.Workload) (map[string]manifest.ContainerBundle, error) {
	rootfs := filepath.Join(s.work, "template-rootfs")
	if _, err := os.Stat(rootfs); err != nil {
		if err := s.makeRootfs(rootfs); err != nil {
			return nil, err
		}
	}
	unsafe := s.opts.AllowedUnsafeSysctls
	if unsafe == nil {
		unsafe = DefaultAllowedUnsafeSysctls
	}
	opts := manifest.Options{
		RootfsPath:           rootfs,
		ImageRootfs:          rootfs,
		SeccompProfileRoot:   s.profileRoot,
		AllowedUnsafeSysctls: unsafe,
	}
	if s.host.AppArmor {
		opts.AppArmor = missingProfileHost{spec.HostAppArmor{}}
	}
	bs, terr := manifest.Translate(w, opts)
	if terr != nil {
		terr = fmt.Errorf("manifest.Translate: %w", terr)
	}
	out := map[string]manifest.ContainerBundle{}
	for _, b := range bs {
		if b.Spec != nil {
			out[b.Name] = b
		}
	}
	return out, terr
}

// deriveContainer builds the container's model and checks.
func (s *suite) deriveContainer(cr *containerRun, pv *podView, ps *podSpecView, ann map[string]string, ctr *containerView) error {
	ann, ignored := s.honouredAnnotations(ann)
	cr.sc = mergeSecurityContext(ps, ann, ctr)
	req, err := deriveRequested(s.host, cr.sc)
	if err != nil {
		return fmt.Errorf("container %s: %w", ctr.Name, err)
	}
	for _, k := range ignored {
		req.note("annotation %s is ignored: from Kubernetes 1.27 only seccompProfile decides (the kubelet stopped reading the annotations in 1.25, kubernetes PR 109819; the API server stopped copying them in 1.27, PR 114947)", k)
	}
	cr.requested = req
	final := &derivation{m: req.m.clone(), notes: slices.Clone(req.notes), covered: cloneCovered(req.covered)}
	cr.final = final

	switch s.kind {
	case kindBare:
		cr.runtime = s.runtime
		final.note("runtime %s runs the bundle as translated (no policy)", filepath.Base(s.runtime))
	case kindSecrun:
		name := s.policyName(ps)
		pol, err := s.cfg.Policy(name)
		if err != nil {
			return err
		}
		cr.policy = &policySim{p: pol}
		if s.kube == nil {
			link := filepath.Join(s.work, "bin", "secrun-"+name)
			if _, err := os.Lstat(link); err != nil {
				if err := os.Symlink(s.runtime, link); err != nil {
					return fmt.Errorf("link %s: %w", link, err)
				}
			}
			cr.runtime = link
			cr.env = []string{policy.ConfigEnv + "=" + s.configPath}
		}
		if err := cr.policy.apply(s.host, final, cr.sc, s.confined); err != nil {
			return err
		}
	}

	// The kubelet refuses a Pod that asks for AppArmor on a node without
	// it, so nothing else of such a container can be checked here.
	if req.m.AppArmor != "" && !s.host.AppArmor {
		final.refusal = nil
		final.covered = map[Setting][]string{SettingAppArmor: req.covered[SettingAppArmor]}
		final.note("the node has no AppArmor: the kubelet would refuse this Pod, so only its AppArmor checks are listed (skipped)")
	}
	// The node-only AppArmor cases check AppArmor alone: a container whose
	// Localhost profile is not loaded never starts, and a container
	// started many times at once is there for the default profile's race.
	if cr.starts, err = concurrentStarts(ann); err != nil {
		return fmt.Errorf("container %s: %w", ctr.Name, err)
	}
	missing := req.m.AppArmor == spec.AppArmorLocalhost && req.m.AppArmorName == appArmorMissingProfile
	if missing || cr.starts > 0 {
		final.refusal = nil
		final.covered = map[Setting][]string{SettingAppArmor: req.covered[SettingAppArmor]}
	}
	switch {
	case missing:
		final.note("Localhost profile %s is never loaded: the runtime must refuse the container, so only that check is listed", appArmorMissingProfile)
	case cr.starts > 0 && s.kind == kindSecrun && s.kube == nil && s.host.AppArmor:
		cr.unloadDefault = final.m.AppArmor == spec.AppArmorRuntimeDefault
		final.note("started %d times at once with %s unloaded first: every start must load it or find it loaded; only the AppArmor checks are listed", cr.starts, spec.DefaultAppArmorProfile)
	}
	// Likewise runc refuses to start a process with an SELinux label on
	// a node without SELinux (containerd leaves labels out there).
	if req.m.SELinuxLabel != "" && !s.host.SELinux {
		final.refusal = nil
		final.covered = map[Setting][]string{SettingSELinux: req.covered[SettingSELinux]}
		final.note("the node has no SELinux and runc refuses a labelled process there, so only the SELinux checks are listed (skipped)")
	}
	if err := s.deriveChecks(cr); err != nil {
		return fmt.Errorf("container %s: %w", ctr.Name, err)
	}
	if why := final.unmodelled; why != "" {
		cr.checks = nil
		cr.notApplicable = append(cr.notApplicable, cr.id()+": "+why)
	}
	if s.nosuidWork {
		cr.checks = slices.DeleteFunc(cr.checks, func(c *check) bool {
			if c.Name == "nnp.setuid" {
				cr.notApplicable = append(cr.notApplicable, "nnp.setuid: the work directory is on a nosuid mount; pass a work dir on a suid mount")
				return true
			}
			return false
		})
	}
	// Focus and skip select checks by ID.
	cr.checks = slices.DeleteFunc(cr.checks, func(c *check) bool {
		return (s.opts.Focus != nil && !s.opts.Focus.MatchString(c.ID)) || (s.opts.Skip != nil && s.opts.Skip.MatchString(c.ID))
	})
	return nil
}

func cloneCovered(c map[Setting][]string) map[Setting][]string {
	out := make(map[Setting][]string, len(c))
	for k, v := range c {
		out[k] = slices.Clone(v)
	}
	return out
}

// policyName is the secrun policy a Pod runs under: the --policy given
// for all, the runtime's own (secrun-<policy>), the Pod's RuntimeClass
// when it names a secrun-<policy> handler the configuration defines, the
// --policy default, or the configuration's defaultPolicy.
func (s *suite) policyName(ps *podSpecView) string {
	switch {
	case s.opts.PolicyForAll && s.opts.Policy != "":
		return s.opts.Policy
	case s.fixedPolicy != "":
		return s.fixedPolicy
	}
	if name, ok := strings.CutPrefix(ps.RuntimeClassName, "secrun-"); ok {
		if _, err := s.cfg.Policy(name); err == nil {
			return name
		}
	}
	if s.opts.Policy != "" {
		return s.opts.Policy
	}
	return s.cfg.DefaultPolicy
}
