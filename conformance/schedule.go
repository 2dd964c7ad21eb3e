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
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds running the containers: scheduling, results, progress.

type job struct {
	cr  *containerRun
	run func(ctx context.Context)
}

func (s *suite) schedule(ctx context.Context, jobs []job, progress func(done, total int)) {
	var wg sync.WaitGroup
	var done atomic.Int64
	// Jobs take a slot in order, so a container's control run always has
	// one before the twins that wait for it.
	sem := make(chan struct{}, s.opts.Parallel)
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			j.run(ctx)
			n := done.Add(1)
			if progress != nil {
				s.mu.Lock()
				progress(int(n), len(jobs))
				s.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// startResults gives every check of cr a result to fill, and reports
// whether cr has a container to run; one that cannot run is finished here.
func (s *suite) startResults(cr *containerRun) bool {
	cr.results = make([]CheckResult, len(cr.checks))
	for i, ch := range cr.checks {
		cr.results[i] = newResult(cr, ch)
	}
	if cr.setupErr != nil || !anyRunnable(cr.checks) {
		s.finishWithoutRun(cr)
		return false
	}
	return true
}

// conformance runs each container once with the runtime under test, then
// each container that starts many times at once (concurrentStarts) alone.
func (s *suite) conformance(ctx context.Context, runs []*containerRun) {
	var jobs []job
	var concurrent []*containerRun
	for _, cr := range runs {
		if !s.startResults(cr) {
			continue
		}
		if cr.starts > 0 {
			concurrent = append(concurrent, cr)
			continue
		}
		jobs = append(jobs, job{cr: cr, run: func(ctx context.Context) {
			name := strings.ReplaceAll(cr.id(), "/", "_")
			start := time.Now()
			obs, dir := s.run(ctx, &runJob{name: name, spec: cr.translated, runtime: cr.runtime, env: cr.env, sysctls: cr.requested.m.Sysctls})
			cr.run = runInfo(obs, time.Since(start), cr.runtime)
			unexpected := false
			s.mu.Lock()
			for i, ch := range cr.checks {
				if ch.skip != "" {
					continue
				}
				v := ch.eval(obs)
				cr.results[i].apply(v)
				unexpected = unexpected || v.Status == StatusFail
			}
			s.mu.Unlock()
			s.keepOrRemove(dir, unexpected)
		}})
	}
	s.schedule(ctx, jobs, s.progressFunc(runs))
	// Alone: unloading the default profile under other containers'
	// feet would fail them, not the race.
	for _, cr := range concurrent {
		s.runConcurrent(ctx, cr)
	}
}

func (s *suite) finishWithoutRun(cr *containerRun) {
	for i, ch := range cr.checks {
		switch {
		case ch.skip != "":
		case cr.setupErr != nil:
			cr.results[i].apply(failf("", "%v", cr.setupErr))
		}
	}
}

func (s *suite) keepOrRemove(dir string, unexpected bool) {
	if unexpected {
		s.keepWork.Store(true)
		return
	}
	if !s.opts.Keep {
		os.RemoveAll(dir)
	}
}

func (s *suite) progressFunc(runs []*containerRun) func(done, total int) {
	if s.opts.Progress == nil {
		return nil
	}
	return func(done, total int) {
		var p, f, k int
		for _, cr := range runs {
			for _, r := range cr.results {
				switch r.Status {
				case StatusPass:
					p++
				case StatusFail:
					f++
				case StatusSkip:
					k++
				}
			}
		}
		fmt.Fprintf(s.opts.Progress, "\r\033[K%s: run %d/%d: %d passed, %d failed, %d skipped", s.modeName(), done, total, p, f, k)
		if done == total {
			fmt.Fprint(s.opts.Progress, "\r\033[K")
		}
	}
}

func (s *suite) modeName() string {
	if s.opts.Validity {
		return "validity"
	}
	return "conformance"
}
