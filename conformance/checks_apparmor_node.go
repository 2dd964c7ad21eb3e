package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/secrun/secrun/conformance/probe/report"
	"github.com/secrun/secrun/spec"
)

// The AppArmor checks that only a node with AppArmor can make (the VM of
// `make conformance-vm`, the Vagrant box): the default profile's own deny
// rules, a Localhost profile the node has not loaded, and the default
// profile loaded on demand while many containers start at once. Where the
// kernel has no AppArmor they are not applicable: that is a fact of the
// node, not a skipped check. Where it has AppArmor but apparmor_parser is
// missing they skip, and fail under CI=true (a missing tool is a broken
// runner there).

// appArmorMissingProfile is the Localhost profile of the case
// apparmor-localhost-missing: the suite never loads it, so the runtime
// must refuse the container.
const appArmorMissingProfile = "secrun-conformance-not-loaded"

// concurrentStartsAnnotation, on a case's Pod, starts each of its
// containers that many times at once (conformance mode, secrun only),
// after unloading secrun's default AppArmor profile: every start races to
// load it (secrun serialises the load under a lock and looks again), and
// every check must hold in every start.
const concurrentStartsAnnotation = "conformance.secrun.dev/concurrent-starts"

const maxConcurrentStarts = 64

// kcorePath is the file the default profile denies outright: moby's
// template (github.com/moby/profiles apparmor/template.go) has
// "deny @{PROC}/kcore rwklx", and masking alone leaves it a readable
// /dev/null.
const kcorePath = "/proc/kcore"

// concurrentStarts reads the case's concurrentStartsAnnotation; 0 when absent.
func concurrentStarts(ann map[string]string) (int, error) {
	v, ok := ann[concurrentStartsAnnotation]
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 2 || n > maxConcurrentStarts {
		return 0, fmt.Errorf("annotation %s: %q is not a number of starts from 2 to %d", concurrentStartsAnnotation, v, maxConcurrentStarts)
	}
	return n, nil
}

// missingProfileCase reports whether the container asks for the Localhost
// profile the suite never loads.
func (d *deriver) missingProfileCase() bool {
	return d.req.AppArmor == spec.AppArmorLocalhost && d.req.AppArmorName == appArmorMissingProfile
}

// appArmorNodeReason is why this node cannot make the node-only AppArmor
// checks of this container, or "".
func (d *deriver) appArmorNodeReason() string {
	switch {
	case !d.s.host.AppArmor:
		return reasonNoAppArmor
	case d.s.kube != nil && (d.missingProfileCase() || d.c.starts > 0):
		return "the node's loaded AppArmor profiles are neither visible to nor changed by the Kubernetes target"
	case d.c.starts > 0 && d.s.kind != kindSecrun:
		return "loading the default AppArmor profile on demand is secrun's; a bare runtime needs it loaded beforehand"
	}
	return ""
}

// needsParser makes ch skip where the kernel has AppArmor but
// apparmor_parser is missing, and fail there under CI=true.
func (d *deriver) needsParser(ch *check) {
	if d.s.host.AppArmorParser != "" {
		return
	}
	const why = "apparmor_parser is missing, so the suite cannot load the profiles this check needs (apt-get install apparmor)"
	if os.Getenv("CI") == "true" {
		ch.eval = func(*observation) verdict { return failf("", "CI=true and %s", why) }
		return
	}
	ch.skip = why
}

// appArmorNodeOnly derives the checks of a container that exists for the
// node-only checks; true means nothing else is derived for it.
func (d *deriver) appArmorNodeOnly() bool {
	missing := d.missingProfileCase()
	if !missing && d.c.starts == 0 {
		return false
	}
	if why := d.appArmorNodeReason(); why != "" {
		d.notApplicable("%s: %s", d.c.caseName, why)
		return true
	}
	if missing {
		d.missingProfileCheck()
		return true
	}
	return false
}

// missingProfileCheck: the runtime refuses a container whose Localhost
// profile is not loaded. Whoever refuses, secrun or its delegate, the
// container must never start: runc and crun fail when they write the
// profile for exec (secrun's own wording for a Pod's intent annotation,
// "no profile of that name is loaded on this node", is spec's, tested in
// spec/apparmor_test.go).
func (d *deriver) missingProfileCheck() {
	name := d.m.AppArmorName
	ch := &check{
		Name:        "apparmor.missing_profile",
		Setting:     SettingAppArmor,
		Description: fmt.Sprintf("a Localhost AppArmor profile the node has not loaded (%s) stops the container before it starts", name),
		Expected:    "non-zero exit with an error; the probe never runs",
		eval: func(o *observation) verdict {
			if o.rep != nil {
				return failf("the container ran, confined by "+orDash(o.rep.AppArmor), "the runtime started a container whose AppArmor profile %s is not loaded", name)
			}
			if o.runErr != nil {
				return failf("", "the container did not run, and not because the runtime refused it: %v", o.runErr)
			}
			if o.exit == 0 {
				return failf("exit 0", "the runtime exited 0 without running the probe")
			}
			msg := lastLine(o.stderr)
			if msg == "" {
				return failf(fmt.Sprintf("exit %d", o.exit), "the runtime refused without saying why")
			}
			// A start that failed for another reason (a broken rootfs)
			// proves nothing about the profile. runc names AppArmor;
			// crun only the LSM attribute it failed to write
			// ("write file `/proc/thread-self/attr/exec`").
			if low := strings.ToLower(o.stderr); !strings.Contains(low, "apparmor") && !strings.Contains(low, "attr/exec") && !strings.Contains(o.stderr, name) {
				return failf(msg, "the runtime refused, but its error names neither AppArmor, the LSM exec attribute, nor the profile %s", name)
			}
			return pass(fmt.Sprintf("refused (exit %d): %s", o.exit, msg))
		},
		brk: appArmorToggle,
	}
	d.needsParser(ch)
	d.add(ch)
}

// appArmorDefaultChecks: the default profile denies what masking alone
// does not, reading /proc/kcore.
func (d *deriver) appArmorDefaultChecks() {
	const name = "apparmor.default_denied"
	if d.m.AppArmor != spec.AppArmorRuntimeDefault {
		return
	}
	if why := d.appArmorNodeReason(); why != "" {
		if d.c.starts == 0 {
			d.notApplicable("%s: %s", name, why)
		}
		return
	}
	if !d.s.host.pathExists(kcorePath) {
		d.notApplicable("%s: %s does not exist on this kernel", name, kcorePath)
		return
	}
	key := report.PathOp(report.OpProcMasked, kcorePath)
	errnos := []string{"EACCES"}
	ch := &check{
		Name:        name,
		Setting:     SettingAppArmor,
		Description: "the default AppArmor profile denies reading " + kcorePath + d.startsNote() + " (masked, it reads as an empty /dev/null without the profile)",
		Expected:    expectText(false, errnos),
		eval:        expectOp(key, false, errnos),
		brk:         appArmorToggle,
	}
	d.needsParser(ch)
	d.add(ch)
}

// startsNote says, in a check's description, that it holds in every one
// of the container's concurrent starts.
func (d *deriver) startsNote() string {
	if d.c.starts == 0 {
		return ""
	}
	if d.c.unloadDefault {
		return fmt.Sprintf(", in each of %d containers started at once with %s unloaded first", d.c.starts, spec.DefaultAppArmorProfile)
	}
	return fmt.Sprintf(", in each of %d containers started at once", d.c.starts)
}

// appArmorRemoveFile is the kernel's interface that unloads a profile by
// name (security/apparmor/apparmorfs.c; apparmor_parser -R writes to it).
const appArmorRemoveFile = "/sys/kernel/security/apparmor/.remove"

// unloadAppArmorProfile removes a loaded profile; one that is not loaded
// is no error. Only ever called where the kernel has AppArmor and the
// suite loads profiles itself (a test VM).
func (h *hostEnv) unloadAppArmorProfile(name string) error {
	if !h.AppArmor {
		return errors.New("the kernel has no AppArmor")
	}
	if !h.profileLoaded(name) {
		return nil
	}
	if err := os.WriteFile(appArmorRemoveFile, []byte(name), 0); err != nil {
		return fmt.Errorf("unload AppArmor profile %s: %w", name, err)
	}
	if h.profileLoaded(name) {
		return fmt.Errorf("unload AppArmor profile %s: still listed in %s", name, appArmorProfilesFile)
	}
	return nil
}

// runConcurrent starts cr's container cr.starts times at once (after
// unloading the default profile when cr.unloadDefault) and holds each
// check to every start: one start that fails a check fails it.
func (s *suite) runConcurrent(ctx context.Context, cr *containerRun) {
	fail := func(err error) {
		for i, ch := range cr.checks {
			if ch.skip == "" {
				cr.results[i].apply(failf("", "%v", err))
			}
		}
	}
	if cr.unloadDefault {
		if err := s.host.unloadAppArmorProfile(spec.DefaultAppArmorProfile); err != nil {
			fail(fmt.Errorf("before the concurrent starts: %w", err))
			return
		}
	}
	// Only the ops the checks read: the starts are there for the race,
	// and the probe's whole op list costs seconds each under emulation.
	sp, err := spec.Clone(cr.translated)
	if err == nil {
		var idx []int
		for i, ch := range cr.checks {
			if ch.skip == "" {
				idx = append(idx, i)
			}
		}
		err = selectProbeOps(sp, twinOps(cr.checks, idx))
	}
	if err != nil {
		fail(err)
		return
	}
	base := strings.ReplaceAll(cr.id(), "/", "_")
	obs := make([]*observation, cr.starts)
	dirs := make([]string, cr.starts)
	start := time.Now()
	// The starts share the CPUs that Parallel runs would: each gets the
	// time of its share.
	timeout := s.opts.Timeout * time.Duration((cr.starts+s.opts.Parallel-1)/s.opts.Parallel)
	var wg sync.WaitGroup
	for i := range obs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			obs[i], dirs[i] = s.run(ctx, &runJob{name: fmt.Sprintf("%s_start%d", base, i), spec: sp, runtime: cr.runtime, env: cr.env, timeout: timeout})
		}()
	}
	wg.Wait()
	cr.run = runInfo(obs[0], time.Since(start), cr.runtime)
	unexpected := false
	for i, ch := range cr.checks {
		if ch.skip != "" {
			continue
		}
		v := everyStart(ch, obs)
		cr.results[i].apply(v)
		unexpected = unexpected || v.Status == StatusFail
	}
	for _, dir := range dirs {
		s.keepOrRemove(dir, unexpected)
	}
}

// everyStart is ch's verdict over all starts: the first that does not
// pass, else a pass that says how many starts showed it.
func everyStart(ch *check, obs []*observation) verdict {
	var first verdict
	for i, o := range obs {
		v := ch.eval(o)
		if v.Status != StatusPass {
			v.Message = fmt.Sprintf("start %d of %d: %s", i+1, len(obs), v.Message)
			return v
		}
		if i == 0 {
			first = v
		}
	}
	return pass(fmt.Sprintf("all %d starts: %s", len(obs), first.Observed))
}

// missingProfileHost is the node as the suite translates for: the
// never-loaded profile reads as loaded, so that manifest.Translate (which
// refuses a Localhost profile the node lacks, as secrun does) writes the
// bundle containerd would. containerd's CRI names a Localhost profile
// without looking whether it is loaded (generateApparmorSpecOpts in
// internal/cri/server/container_create_linux.go); it is the runtime that
// must refuse it, and that is what apparmor.missing_profile checks.
type missingProfileHost struct{ spec.AppArmorHost }

func (h missingProfileHost) IsLoaded(name string) (bool, error) {
	if name == appArmorMissingProfile {
		return true, nil
	}
	return h.AppArmorHost.IsLoaded(name)
}
