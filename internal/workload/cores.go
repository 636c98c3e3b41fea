package workload

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// CoreToCore measures what it costs two cores to hand a cache line back
// and forth: two goroutines, each on its own thread, take turns
// incrementing one atomic word; one op is one round trip (two transfers of
// the line). The collection-bound workloads hand data between cores (the
// sweepers, the finalizer goroutine, the mark workers and the mutator), and
// on a virtual machine this cost changes with where the host runs the
// vCPUs: on this project's machine it moves between ~130 and ~500 ns from
// one minute to the next, and finalizer-run and mark-2w move with it.
// Measured beside them, it says which machine a figure was taken on. With
// GOMAXPROCS below 2 the two goroutines cannot run at once, and b is
// skipped.
func CoreToCore(b *testing.B) {
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
