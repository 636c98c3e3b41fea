package reclaim_test

import (
	"testing"

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
