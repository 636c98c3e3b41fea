package reclaim_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/reclaimgc/reclaim"
	"github.com/reclaimgc/reclaim/internal/workload"
)

// BenchmarkFinalizerDelay reports the finalizer queue's delay, from the
// sweep that queues a block to the start of its first call, p50 and p99,
// over batches of 100 finalizers (Stats.FinalizerDelayP50/P99).
func BenchmarkFinalizerDelay(b *testing.B) {
	workload.FinalizerDelay(100).Reclaim(b)
}

// BenchmarkMarkWide runs the mark workloads on a graph of 128-byte nodes
// (workload.MarkWide), one and two mark workers, each on reclaim and on
// the Go runtime: their spans' mark bitmaps are smaller than a cache line.
func BenchmarkMarkWide(b *testing.B) {
	for _, workers := range []int{1, 2} {
		w := workload.MarkWide(workers, 1<<20)
		b.Run(w.Name+"/reclaim", w.Reclaim)
		b.Run(w.Name+"/go", w.Go)
	}
}

// BenchmarkMarkTree runs the mark of binary-trees' long-lived tree
// (workload.MarkTree, depth 18), one and two mark workers, on reclaim and
// on the Go runtime: a tree's cells are allocated together, and most
// handles a scan finds name the span it scans.
func BenchmarkMarkTree(b *testing.B) {
	for _, workers := range []int{1, 2} {
		w := workload.MarkTree(workers, 18)
		b.Run(w.Name+"/reclaim", w.Reclaim)
		b.Run(w.Name+"/go", w.Go)
	}
}

// BenchmarkWorkloads runs the benchmark suite (internal/workload), each
// workload on reclaim and on the Go runtime side by side. See
// docs/BENCHMARKS.md for the figures and the command that reproduces them.
func BenchmarkWorkloads(b *testing.B) {
	for _, w := range workload.All() {
		b.Run(w.Name+"/reclaim", w.Reclaim)
		if w.Go != nil {
			b.Run(w.Name+"/go", w.Go)
		}
	}
}

// BenchmarkCoreToCore measures the round trip of a cache line between two
// cores (workload.CoreToCore): on a virtual machine it changes from one
// minute to the next, and the collection-bound workloads change with it.
func BenchmarkCoreToCore(b *testing.B) { workload.CoreToCore(b) }

// cgNode is a node of BenchmarkCloseFinalizerGraph's graph: 24 bytes.
type cgNode struct{ child, sibling, x reclaim.Ref[cgNode] }

// BenchmarkCloseFinalizerGraph measures Close of a heap of 1M nodes (a
// random tree, kept as first-child/next-sibling links, plus one random
// edge a node) with a finalizer on every k-th node: Close runs them in an
// order that respects what reaches what (docs/DESIGN.md, "Close"), by a
// depth-first walk of what they reach, which here is the whole graph.
// Only Close is timed; reclaim only (the Go runtime runs no finalizers at
// exit). Run it with -benchtime 3x: each op builds a 1M-node heap.
func BenchmarkCloseFinalizerGraph(b *testing.B) {
	for _, k := range []int{1, 4, 64} {
		b.Run(fmt.Sprintf("every-%d", k), func(b *testing.B) {
			const n = 1 << 20
			for range b.N {
				b.StopTimer()
				h := reclaim.NewHeap(reclaim.Options{})
				m := h.Attach()
				refs := make([]reclaim.Ref[cgNode], n)
				r := rand.New(rand.NewPCG(1, 2))
				ran := 0
				fin := func(*reclaim.Mutator, reclaim.Ref[cgNode]) { ran++ }
				for i := range n {
					refs[i] = reclaim.New[cgNode](m)
					if i > 0 {
						p := refs[r.IntN(i)].Get(m)
						refs[i].Get(m).sibling = p.child
						p.child = refs[i]
						refs[i].Get(m).x = refs[r.IntN(i)]
					}
					if i%k == 0 {
						reclaim.SetFinalizer(m, refs[i], fin)
					}
					if i%1024 == 0 {
						m.Safepoint()
					}
				}
				h.Pin(refs[0].Object())
				m.Collect()
				m.Detach()
				refs = nil
				b.StartTimer()
				if err := h.Close(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if want := (n + k - 1) / k; ran != want {
					b.Fatalf("Close ran %d finalizers, want %d", ran, want)
				}
			}
		})
	}
}
