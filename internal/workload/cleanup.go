package workload

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

// cleanupRun is finalizerRun with cleanups: allocate n objects, each with
// a cleanup that counts, drop them, collect, and wait for the last cleanup;
// per object.
func cleanupRun(n int) Workload {
	return Workload{
		Name:  scalingName("cleanup-run", n),
		Doc:   fmt.Sprintf("allocate %d objects with a cleanup, drop, collect, run to the last cleanup; per object", n),
		Peer:  "cleanup-run",
		PeerN: n,
		Reclaim: func(b *testing.B) {
			reclaimRun(b, n, "cleanup-run", func(m *reclaim.Mutator, c *counter) {
				for i := range n {
					reclaim.AddCleanup(m, reclaim.New[obj](m), (*counter).hit, c)
					if i%safepointEvery == safepointEvery-1 {
						m.Safepoint()
					}
				}
			})
		},
		Go: func(b *testing.B) { goRun(b, n, "cleanup-run", goAllocCleanups) },
	}
}

//go:noinline
func goAllocCleanups(n int, c *counter) {
	for range n {
		runtime.AddCleanup(new(gobj), (*counter).hit, c)
	}
}

func cleanupNop(int) {}

// cleanupStop is the runtime's BenchmarkAddCleanupAndStop, round-robin over
// batch live objects as the peers do it.
//
// Not inlined into All (see getWorkload).
//
//go:noinline
func cleanupStop(batch int) Workload {
	return Workload{
		Name:  "cleanup-stop",
		Doc:   fmt.Sprintf("add a cleanup and stop it at once, over %d live objects (runtime's BenchmarkAddCleanupAndStop)", batch),
		Peer:  "cleanup-stop",
		PeerN: batch,
		Reclaim: func(b *testing.B) {
			_, m := newHeap(b, reclaim.Options{})
			refs := liveObjs(m, batch)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				reclaim.AddCleanup(m, refs[i%batch], cleanupNop, 14).Stop()
			}
		},
		Go: func(b *testing.B) {
			ptrs := liveGoObjs(batch)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				runtime.AddCleanup(ptrs[i%batch], cleanupNop, 14).Stop()
			}
			runtime.KeepAlive(ptrs)
		},
	}
}

// Burst returns the cleanup-burst workload with the given cleanup pool
// size (named "cleanup-burst-1w", "cleanup-burst-2w", ...): bursts of up to
// n cleanups, each about 1µs of computation, run to the last one. b.N is
// the number of cleanups; allocating the objects and adding the cleanups
// is not timed, the collection that queues them and their run is. The Go
// side runs the same bursts on the runtime's own cleanup goroutines, which
// workers does not change.
func Burst(workers, n int) Workload {
	if workers < 1 || n < 1 {
		panic("reclaim: workload.Burst: workers and n must be positive")
	}
	return Workload{
		Name: fmt.Sprintf("cleanup-burst-%dw", workers),
		Doc:  fmt.Sprintf("one cleanup of ~1µs of work, in bursts of %d, CleanupWorkers=%d; wall time per cleanup", n, workers),
		Reclaim: func(b *testing.B) {
			h, m := newHeap(b, reclaim.Options{CleanupWorkers: workers, GCPercent: -1})
			iters := spinIters()
			b.ResetTimer()
			for done := 0; done < b.N; done += n {
				b.StopTimer()
				k := min(n, b.N-done)
				c := newCounter(k)
				work := func(c *counter) { spin(iters); c.hit() }
				for range k {
					reclaim.AddCleanup(m, reclaim.New[obj](m), work, c)
				}
				b.StartTimer()
				m.Collect()
				reclaimWait(b, h, c, "cleanup-burst")
			}
			b.StopTimer()
			b.ReportMetric(float64(h.Stats().CleanupGoroutines), "goroutines")
		},
		Go: func(b *testing.B) {
			iters := spinIters()
			runtime.GC()
			b.ResetTimer()
			for done := 0; done < b.N; done += n {
				b.StopTimer()
				k := min(n, b.N-done)
				c := newCounter(k)
				goAllocBurst(k, c, iters)
				b.StartTimer()
				goWait(b, c, "cleanup-burst")
			}
		},
	}
}

//go:noinline
func goAllocBurst(n int, c *counter, iters int) {
	work := func(c *counter) { spin(iters); c.hit() }
	for range n {
		runtime.AddCleanup(new(gobj), work, c)
	}
}

// spin does iters rounds of a dependent multiply-add chain, which the
// compiler cannot fold.
//
//go:noinline
func spin(iters int) uint64 {
	x := uint64(iters) | 1
	for range iters {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

var spinCal struct {
	once  sync.Once
	iters int // rounds of spin in 1µs; written once under once
}

// spinIters returns how many rounds of spin take about 1µs on this machine,
// measured once (the fastest of a few tries, so a busy machine does not
// shrink the work).
func spinIters() int {
	spinCal.once.Do(func() {
		const rounds = 1 << 20
		best := time.Duration(1 << 62)
		for range 5 {
			start := time.Now()
			sinkInt += spin(rounds)
			best = min(best, time.Since(start))
		}
		spinCal.iters = max(1, int(float64(rounds)*float64(time.Microsecond)/float64(best)))
	})
	return spinCal.iters
}
