package workload

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

// GraphChurn returns the graph-churn workload on an n-node long-lived
// graph (the mark workloads' graph). One op allocates a chain of 8 nodes
// and hangs it on a random long-lived node's x2 field, dropping the chain
// hung there before; reclaim's side reaches a safepoint every 1000 nodes,
// so its pacer collects (at GCPercent 100, like Go's GOGC). A collection
// is due after about as many ops as the graph has nodes divided by 8, so
// the run should be long enough for a few (-benchtime 3s or more at 4M
// nodes). Metrics:
//
//   - go-scan-MB: Go's scannable heap (runtime/metrics /gc/scan/heap:bytes)
//     with the graph built and collected once; go-scan-graph-MB: what
//     building the graph added to it; go-live-MB: Go's live heap
//     (/gc/heap/live:bytes) with the graph. A reclaim graph is pointer-free
//     memory to Go, so it adds almost nothing to Go's scan work; the
//     Go-pointer graph is nearly all scan.
//   - go-gc-cpu-ms: Go's GC CPU time (/cpu/classes/gc/total:cpu-seconds)
//     of the Go cycles that ended during the churn (the runtime brings that
//     figure up to date at the end of each cycle); go-gc-cycles: those
//     cycles.
//   - pauses, pause-max-ms, pause-avg-ms: stop-the-world pauses during the
//     churn, reclaim's (one per cycle: Stats.PauseLast, Stats.PauseTotal) on
//     the reclaim side, Go's (two per cycle: /sched/pauses/total/gc:seconds;
//     the max is the upper bound of its histogram bucket, the average from
//     bucket midpoints) on the Go side.
func GraphChurn(n int) Workload {
	return Workload{
		Name: "graph-churn",
		Doc: fmt.Sprintf("replace one edge of a long-lived %d-node graph with a new node; reports go-scan-MB, go-live-MB, go-gc-cpu-ms, pauses",
			n),
		Reclaim: func(b *testing.B) {
			h, m := newHeap(b, reclaim.Options{})
			scan0, _ := goScan()
			refs := buildGraph(h, m, n)
			m.Collect()
			scan, live := goScan()

			rng := rand.New(rand.NewPCG(graphSeed, 1))
			st0 := h.Stats()
			g0 := readGoGC()
			cycles, maxPause := st0.Cycles, time.Duration(0)
			i := 0
			for b.Loop() {
				refs[rng.IntN(n)].Get(m).x2 = churnChain(m)
				if i++; i%(safepointEvery/churnLen) == 0 {
					m.Safepoint()
					if st := h.Stats(); st.Cycles != cycles {
						cycles = st.Cycles
						maxPause = max(maxPause, st.PauseLast)
					}
				}
			}
			g1 := readGoGC()
			st1 := h.Stats()
			nc := st1.Cycles - st0.Cycles
			// b.Loop resets the metrics: report the figures after it.
			reportGoGC(b, scan0, scan, live, g0, g1)
			b.ReportMetric(float64(nc), "pauses")
			b.ReportMetric(maxPause.Seconds()*1e3, "pause-max-ms")
			if nc > 0 {
				b.ReportMetric((st1.PauseTotal-st0.PauseTotal).Seconds()*1e3/float64(nc), "pause-avg-ms")
			}
		},
		Go: func(b *testing.B) {
			scan0, _ := goScan()
			ptrs := buildGoGraph(n)
			scan, live := goScan()

			rng := rand.New(rand.NewPCG(graphSeed, 1))
			g0 := readGoGC()
			for b.Loop() {
				ptrs[rng.IntN(n)].x2 = goChurnChain()
			}
			g1 := readGoGC()
			runtime.KeepAlive(ptrs)
			nc := g1.pauses - g0.pauses
			// b.Loop resets the metrics: report the figures after it.
			reportGoGC(b, scan0, scan, live, g0, g1)
			b.ReportMetric(float64(nc), "pauses")
			b.ReportMetric(g1.maxPauseSince(g0)*1e3, "pause-max-ms")
			if nc > 0 {
				b.ReportMetric(g1.pauseSumSince(g0)*1e3/float64(nc), "pause-avg-ms")
			}
		},
	}
}

// churnLen is the length of the chain one graph-churn op allocates.
const churnLen = 8

func churnChain(m *reclaim.Mutator) reclaim.Ref[gnode] {
	first := reclaim.New[gnode](m)
	last := first
	for range churnLen - 1 {
		r := reclaim.New[gnode](m)
		last.Get(m).child = r
		last = r
	}
	return first
}

func goChurnChain() *ggnode {
	var first *ggnode
	for range churnLen {
		first = &ggnode{goLinks[ggnode]{child: first}}
	}
	return first
}

// goScan collects twice (so nothing of an earlier benchmark is left) and
// returns Go's scannable heap bytes and live heap bytes.
func goScan() (scan, live float64) {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/scan/heap:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return float64(s[0].Value.Uint64()), float64(s[1].Value.Uint64())
}

// goGC is a snapshot of Go's GC metrics.
type goGC struct {
	cpu    float64 // /cpu/classes/gc/total:cpu-seconds
	cycles uint64  // /gc/cycles/total:gc-cycles
	pauses uint64  // samples in the pause histogram
	hist   *metrics.Float64Histogram
}

func readGoGC() goGC {
	s := []metrics.Sample{
		{Name: "/cpu/classes/gc/total:cpu-seconds"},
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/sched/pauses/total/gc:seconds"},
	}
	metrics.Read(s)
	g := goGC{cpu: s[0].Value.Float64(), cycles: s[1].Value.Uint64(), hist: s[2].Value.Float64Histogram()}
	for _, c := range g.hist.Counts {
		g.pauses += c
	}
	return g
}

// maxPauseSince returns the upper bound of the highest pause bucket that
// gained samples since g0, in seconds.
func (g goGC) maxPauseSince(g0 goGC) float64 {
	for i := len(g.hist.Counts) - 1; i >= 0; i-- {
		if g.hist.Counts[i] > g0.hist.Counts[i] {
			if hi := g.hist.Buckets[i+1]; !math.IsInf(hi, 1) {
				return hi
			}
			return g.hist.Buckets[i]
		}
	}
	return 0
}

// pauseSumSince estimates the pauses' total since g0 from bucket
// midpoints, in seconds.
func (g goGC) pauseSumSince(g0 goGC) float64 {
	sum := 0.0
	for i, c := range g.hist.Counts {
		if d := c - g0.hist.Counts[i]; d > 0 {
			sum += float64(d) * bucketMid(g.hist.Buckets[i+1], g.hist.Buckets[i])
		}
	}
	return sum
}

// bucketMid is a histogram bucket's representative value: its midpoint, or
// its finite bound if the other one is infinite.
func bucketMid(hi, lo float64) float64 {
	switch {
	case math.IsInf(hi, 1):
		return lo
	case math.IsInf(lo, -1):
		return hi
	}
	return (hi + lo) / 2
}

// reportGoGC reports what Go's collector saw: its scannable heap with the
// graph (scan) and what the graph added to it (over scan0), its live heap,
// and its CPU and cycles between g0 and g1.
func reportGoGC(b *testing.B, scan0, scan, live float64, g0, g1 goGC) {
	b.ReportMetric(scan/(1<<20), "go-scan-MB")
	b.ReportMetric((scan-scan0)/(1<<20), "go-scan-graph-MB")
	b.ReportMetric(live/(1<<20), "go-live-MB")
	b.ReportMetric((g1.cpu-g0.cpu)*1e3, "go-gc-cpu-ms")
	b.ReportMetric(float64(g1.cycles-g0.cycles), "go-gc-cycles")
}
