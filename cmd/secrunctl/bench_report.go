package main

import (
	"fmt"
	"strings"
	"time"
)

// benchReport is what one `secrunctl bench` run measured.
type benchReport struct {
	peers         []peer
	own           ownCosts
	init          time.Duration
	initPkgs      int
	work          *goBench
	bare, wrapped []sample
	cycles        int
	notes         []string
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// ratio is the CPU-median ratio of two peers, or 0 when one is missing.
func (r *benchReport) ratio(a, b string) float64 {
	x, y := r.own[a], r.own[b]
	if len(x) == 0 || len(y) == 0 {
		return 0
	}
	_, cx := medians(x)
	_, cy := medians(y)
	return float64(cx) / float64(cy)
}

func (r *benchReport) print() {
	fmt.Println()
	fmt.Println("== own cost of one create (the wrapper's process; delegate /bin/true)")
	fmt.Printf("%-26s %11s %11s  %s\n", "program", "CPU median", "wall median", "what it does")
	for _, p := range r.peers {
		w, c := medians(r.own[p.name])
		fmt.Printf("%-26s %11s %11s  %s\n", p.name, ms(c), ms(w), p.what)
	}
	fmt.Println()
	fmt.Println("== ratios (CPU medians, same run)")
	for _, q := range [][2]string{
		{"secrun-restricted", "naive-go-wrapper"},
		{"secrun-restricted", "nvidia-container-runtime"},
		{"secrun-privileged", "nvidia-container-runtime"},
		{"secrun-restricted", "go-exec-floor"},
		{"secrun-no-config", "go-exit-floor"},
		{"naive-go-wrapper", "go-exec-floor"},
		{"nvidia-container-runtime", "go-exec-floor"},
	} {
		if v := r.ratio(q[0], q[1]); v > 0 {
			fmt.Printf("%-26s / %-26s %6.2f\n", q[0], q[1], v)
		}
	}
	bw, bc := medians(r.bare)
	ww, wc := medians(r.wrapped)
	fmt.Println()
	fmt.Printf("== run cycles: %d per runtime, alternated (busybox /bin/true; secrun hardens under restricted, runc runs the same hardened config)\n", r.cycles)
	fmt.Printf("%-22s %12s %12s\n", "", "wall median", "CPU median")
	fmt.Printf("%-22s %12s %12s\n", "bare runc", ms(bw), ms(bc))
	fmt.Printf("%-22s %12s %12s\n", "secrun-restricted", ms(ww), ms(wc))
	fmt.Printf("%-22s %12.3f %12.3f\n", "ratio secrun/runc", float64(ww)/float64(bw), float64(wc)/float64(bc))

	fmt.Println()
	fmt.Println("== budgets")
	held := func(ok bool) string {
		if ok {
			return "held"
		}
		return "NOT HELD"
	}
	row := func(name, measured, budget string, ok bool) {
		fmt.Printf("%-58s %-18s %-10s %s\n", name, measured, budget, held(ok))
	}
	if v := r.ratio("secrun-restricted", "nvidia-container-runtime"); v > 0 {
		row("secrun-restricted own cost / nvidia-container-runtime", fmt.Sprintf("%.2f", v), fmt.Sprintf("<= %.2f", budgetVsNVIDIA), v <= budgetVsNVIDIA)
	} else {
		fmt.Printf("%-58s %-18s %-10s %s\n", "secrun-restricted own cost / nvidia-container-runtime", "-", fmt.Sprintf("<= %.2f", budgetVsNVIDIA), "not measured")
	}
	v := r.ratio("secrun-restricted", "go-exec-floor")
	row("secrun-restricted own cost / static Go floor (exec)", fmt.Sprintf("%.2f", v), fmt.Sprintf("<= %.2f", budgetVsFloor), v <= budgetVsFloor)
	row(fmt.Sprintf("package init of secrun (%d packages, median)", r.initPkgs), ms(r.init), "<= "+ms(budgetInit), r.init <= budgetInit)
	if r.work != nil {
		work := time.Duration(r.work.ns)
		row("in-process work per create (BenchmarkApplyCreate)", ms(work), "<= "+ms(budgetWork), work <= budgetWork)
		row("allocations per create (BenchmarkApplyCreate)", fmt.Sprintf("%.0f", r.work.allocs), fmt.Sprintf("<= %d", budgetAllocs), r.work.allocs <= budgetAllocs)
	}
	cr := float64(wc) / float64(bc)
	row("run cycle CPU, secrun-restricted / bare runc", fmt.Sprintf("%.3f", cr), fmt.Sprintf("<= %.2f", budgetRunCycle), cr <= budgetRunCycle)
	for _, n := range r.notes {
		fmt.Println("note:", strings.TrimSpace(n))
	}
}
