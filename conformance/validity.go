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
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// This file holds the validity mode: every check against a twin that does not enforce it.

// validity runs, per container, the control (the model itself, which
// every check must pass) and one twin per distinct breaker (which every
// check of that breaker must fail), all with the bare delegate.
func (s *suite) validity(ctx context.Context, runs []*containerRun) {
	var jobs []job
	for _, cr := range runs {
		if !s.startResults(cr) {
			continue
		}
		control := &validityState{}
		if cr.final.refusal == nil {
			jobs = append(jobs, job{cr: cr, run: func(ctx context.Context) {
				sp, err := s.materialize(cr.final.m, cr.translated)
				if err == nil {
					err = withAgent(sp, cr.final.m, cr.agentSocket())
				}
				var obs *observation
				var dir string
				if err != nil {
					obs = &observation{runErr: err}
				} else {
					obs, dir = s.run(ctx, &runJob{name: strings.ReplaceAll(cr.id(), "/", "_") + "_control", spec: sp, runtime: s.delegate, sysctls: cr.final.m.Sysctls})
				}
				control.set(obs)
				unexpected := false
				for _, ch := range cr.checks {
					if ch.skip == "" && ch.eval(obs).Status == StatusFail {
						unexpected = true
					}
				}
				s.keepOrRemove(dir, unexpected)
			}})
		} else {
			control.set(nil)
		}
		groups := map[string][]int{}
		var keys []string
		for i, ch := range cr.checks {
			if ch.skip != "" {
				continue
			}
			if ch.brk == nil {
				cr.results[i].apply(failf("", "the check has no non-enforcing twin: a check that cannot be shown to fail is a defect"))
				continue
			}
			if _, ok := groups[ch.brk.key]; !ok {
				keys = append(keys, ch.brk.key)
			}
			groups[ch.brk.key] = append(groups[ch.brk.key], i)
		}
		for n, key := range keys {
			idx := groups[key]
			b := cr.checks[idx[0]].brk
			ops := twinOps(cr.checks, idx)
			jobs = append(jobs, job{cr: cr, run: func(ctx context.Context) {
				obs, dir := s.runTwin(ctx, cr, b, n, ops)
				ctl := control.wait()
				unexpected := false
				s.mu.Lock()
				for _, i := range idx {
					ch := cr.checks[i]
					v := validityVerdict(ch, ctl, obs, b)
					cr.results[i].apply(v)
					cr.results[i].Twin = b.desc
					unexpected = unexpected || v.Status == StatusFail
				}
				s.mu.Unlock()
				s.keepOrRemove(dir, unexpected)
			}})
		}
	}
	s.schedule(ctx, jobs, s.progressFunc(runs))
}

// validityState hands the control observation to the twins.
type validityState struct {
	once sync.Once
	ch   chan struct{}
	mu   sync.Mutex
	obs  *observation
}

func (v *validityState) init() { v.once.Do(func() { v.ch = make(chan struct{}) }) }

func (v *validityState) set(o *observation) {
	v.init()
	v.mu.Lock()
	v.obs = o
	v.mu.Unlock()
	close(v.ch)
}

func (v *validityState) wait() *observation {
	v.init()
	<-v.ch
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.obs
}

// twinOps is the probe ops a twin must attempt: those the checks of its
// group read. A twin runs once per breaker, about ten per container, and
// most of them are there for one or two checks; the probe's whole op list
// re-executes it several times (setuid, setgid, user namespaces,
// personality, ...), which under emulation costs more than the runtime
// itself. Each check reads its op before anything else, so evaluating it
// against an empty observation names the op; a check that read another
// op later would see that op as a skip against the twin, which fails its
// validation loudly instead of passing it.
func twinOps(checks []*check, idx []int) []string {
	reads := map[string]bool{}
	for _, i := range idx {
		(&observation{reads: reads}).evalFor(checks[i])
	}
	ops := map[string]bool{}
	for name := range reads {
		ops[probeOp(name)] = true
	}
	return sortedKeys(ops)
}

// evalFor evaluates ch, for twinOps's discovery only.
func (o *observation) evalFor(ch *check) { _ = ch.eval(o) }

// probeOp is the probe op that reports result name: the proc ops report
// one result per path ("proc.masked:/proc/kcore").
func probeOp(name string) string {
	op, _, _ := strings.Cut(name, ":")
	return op
}

func (s *suite) runTwin(ctx context.Context, cr *containerRun, b *breaker, n int, ops []string) (*observation, string) {
	m := cr.final.m.clone()
	if b.requested {
		m = cr.requested.m.clone()
	}
	if b.model != nil {
		b.model(m)
	}
	sp, err := s.materialize(m, cr.translated)
	if err == nil {
		err = withAgent(sp, m, cr.agentSocket())
	}
	if err == nil && b.spec != nil {
		err = b.spec(sp)
	}
	if err == nil {
		err = selectProbeOps(sp, ops)
	}
	if err != nil {
		return &observation{runErr: fmt.Errorf("build the twin: %w", err)}, ""
	}
	name := fmt.Sprintf("%s_twin%d", strings.ReplaceAll(cr.id(), "/", "_"), n)
	obs, dir := s.run(ctx, &runJob{name: name, spec: sp, runtime: s.delegate, sysctls: m.Sysctls, joinOuter: b.joinOuter})
	obs.attempted = map[string]bool{}
	for _, op := range ops {
		obs.attempted[op] = true
	}
	return obs, dir
}

// selectProbeOps replaces the probe's trailing "all" (probeArgs) with ops.
func selectProbeOps(sp *specs.Spec, ops []string) error {
	if sp.Process == nil || len(sp.Process.Args) == 0 || sp.Process.Args[len(sp.Process.Args)-1] != "all" {
		return errors.New("the probe's arguments do not end in \"all\"")
	}
	sp.Process.Args = append(sp.Process.Args[:len(sp.Process.Args)-1:len(sp.Process.Args)-1], ops...)
	return nil
}

// validityVerdict: a check is validated when it passes against the
// control and fails against its twin.
func validityVerdict(ch *check, control, twin *observation, b *breaker) verdict {
	if control != nil {
		c := ch.eval(control)
		switch c.Status {
		case StatusSkip:
			return c
		case StatusFail:
			return failf(c.Observed, "the check fails even against a bundle that enforces its setting: %s", c.Message)
		}
	}
	// A twin that did not start shows nothing about the check, except
	// for a refusal check, whose twin must start.
	if _, v := twin.started(); v != nil && !b.requested {
		return failf("", "the twin (%s) did not run, so it cannot show the check failing: %s", b.desc, v.Message)
	}
	t := ch.eval(twin)
	switch t.Status {
	case StatusFail:
		return pass("fails against its twin: " + t.Message)
	case StatusSkip:
		return failf("", "the twin (%s) could not show the check failing: %s", b.desc, t.Message)
	}
	return failf(t.Observed, "the check cannot fail: it passes against a twin where %s", b.desc)
}
