package reclaim_test

import (
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/reclaimgc/reclaim/internal/workload"
)

// BenchmarkFinalizerDelay reports the finalizer queue's delay, from the
// sweep that queues a block to the start of its first call, p50 and p99,
// over batches of 100 finalizers (Stats.FinalizerDelayP50/P99).
func BenchmarkFinalizerDelay(b *testing.B) {
	workload.FinalizerDelay(100).Reclaim(b)
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

// BenchmarkCoreToCore measures what it costs two cores to hand a cache line
// back and forth: two goroutines, each on its own thread, take turns
// incrementing one atomic word; one op is one round trip (two transfers of
// the line). The collection-bound workloads hand data between cores (the
// sweepers, the finalizer goroutine, the mark workers and the mutator), and
// on a virtual machine this cost changes with where the host runs the two
// vCPUs: on this project's machine it moves between ~130 and ~500 ns from
// one minute to the next, and finalizer-run and mark-2w move with it. Run it
// beside them to know which machine a figure was measured on.
func BenchmarkCoreToCore(b *testing.B) {
	if runtime.GOMAXPROCS(0) < 2 {
		b.Skip("needs GOMAXPROCS of at least 2: the two goroutines must run at once")
	}
	var turn atomic.Int64
	n := int64(b.N)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for i := int64(1); i < 2*n; i += 2 {
			for turn.Load() != i {
			}
			turn.Store(i + 1)
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	for i := int64(0); i < 2*n; i += 2 {
		for turn.Load() != i {
		}
		turn.Store(i + 1)
	}
	<-done
}
