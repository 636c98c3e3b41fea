package workload

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

func finNop(*reclaim.Mutator, reclaim.Ref[obj]) {}

func goFinNop(*gobj) {}

// finalizerSetClear is the runtime's BenchmarkFinalizer, per object and on
// one goroutine: set a finalizer on each of batch live objects, then clear
// them all.
//
// Not inlined into All (see getWorkload).
//
//go:noinline
func finalizerSetClear(batch int) Workload {
	return Workload{
		Name:  "finalizer-setclear",
		Doc:   fmt.Sprintf("set then clear a finalizer, over %d live objects (runtime's BenchmarkFinalizer, one goroutine)", batch),
		Peer:  "finalizer-setclear",
		PeerN: batch,
		Reclaim: func(b *testing.B) {
			_, m := newHeap(b, reclaim.Options{})
			refs := liveObjs(m, batch)
			b.ResetTimer()
			for done := 0; done < b.N; done += batch {
				k := min(batch, b.N-done)
				for _, r := range refs[:k] {
					reclaim.SetFinalizer(m, r, finNop)
				}
				for _, r := range refs[:k] {
					reclaim.SetFinalizer[obj](m, r, nil)
				}
			}
		},
		Go: func(b *testing.B) {
			ptrs := liveGoObjs(batch)
			b.ResetTimer()
			for done := 0; done < b.N; done += batch {
				k := min(batch, b.N-done)
				for _, p := range ptrs[:k] {
					runtime.SetFinalizer(p, goFinNop)
				}
				for _, p := range ptrs[:k] {
					runtime.SetFinalizer(p, nil)
				}
			}
		},
	}
}

// counter counts finalizer or cleanup calls of one batch and closes done
// at the last one. n is immutable; done is closed once, by the call that
// brings the count to n.
//
// Cleanups run concurrently and count with hit, on the atomic count.
// Finalizers run one at a time on one goroutine, in the Go runtime (its
// SetFinalizer documentation says so) as in reclaim, and count with
// hitSeq, on seq, which only that goroutine writes: the finalizer then
// costs what the runtime's own BenchmarkFinalizerRun's empty one costs
// plus an increment, not a locked instruction, on both sides alike.
type counter struct {
	n     int64
	count atomic.Int64 // hit's count
	seq   int64        // hitSeq's count; written only by the finalizer goroutine
	seen  atomic.Int64 // seq, stored every 256 calls, for a stalled run's message
	done  chan struct{}
}

func newCounter(n int) *counter {
	return &counter{n: int64(n), done: make(chan struct{})}
}

func (c *counter) hit() {
	if c.count.Add(1) == c.n {
		close(c.done)
	}
}

// hitSeq counts a finalizer call; see counter.
func (c *counter) hitSeq() {
	c.seq++
	if c.seq%256 == 0 {
		c.seen.Store(c.seq)
	}
	if c.seq == c.n {
		close(c.done)
	}
}

// ran is the number of calls counted so far, for a stalled run's message:
// of finalizers, the last multiple of 256.
func (c *counter) ran() int64 { return max(c.count.Load(), c.seen.Load()) }

// reclaimWait waits for c's last call after the batch has been collected.
func reclaimWait(b *testing.B, h *reclaim.Heap, c *counter, what string) {
	await(b, c.done, what, func() string {
		return fmt.Sprintf("%d of %d ran; stats %+v", c.ran(), c.n, h.Stats())
	})
}

// reclaimRun is the reclaim side of a run workload: batches of n objects,
// each registered by batch (which allocates them, drops them and reaches
// safepoints), collected, and waited for to the last call; per object.
func reclaimRun(b *testing.B, n int, what string, batch func(m *reclaim.Mutator, c *counter)) {
	h, m := newHeap(b, reclaim.Options{})
	k := batches(b, n)
	b.ResetTimer()
	start := time.Now()
	for range k {
		c := newCounter(n)
		batch(m, c)
		m.Collect()
		reclaimWait(b, h, c, what)
	}
	reportPerObject(b, time.Since(start), k*n)
}

// goRun is the Go side of a run workload: alloc makes n objects with a
// finalizer or cleanup that counts on c.
func goRun(b *testing.B, n int, what string, alloc func(n int, c *counter)) {
	k := batches(b, n)
	runtime.GC()
	b.ResetTimer()
	start := time.Now()
	for range k {
		c := newCounter(n)
		alloc(n, c)
		goWait(b, c, what)
	}
	reportPerObject(b, time.Since(start), k*n)
}

// goWait collects until c's last call: runtime.GC queues every unreachable
// object's finalizer or cleanup; a further cycle is forced only if the
// calls stall (an object the last cycle could not yet free).
func goWait(b *testing.B, c *counter, what string) {
	runtime.GC()
	deadline := time.Now().Add(waitGuard)
	t := time.NewTimer(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if time.Now().After(deadline) {
				b.Fatalf("%s: not done after %v: %d of %d ran", what, waitGuard, c.ran(), c.n)
			}
			runtime.GC()
			t.Reset(10 * time.Millisecond)
		}
	}
}

// finalizerRun is the runtime's BenchmarkFinalizerRun measured to the last
// call: allocate n objects, each with a finalizer that counts, drop them,
// collect, and wait for the last finalizer; per object. Reclaim's side
// reaches a safepoint every 1000 objects, so the pacer may collect during
// the allocation as Go's collector does.
func finalizerRun(n int) Workload {
	return Workload{
		Name:  scalingName("finalizer-run", n),
		Doc:   fmt.Sprintf("allocate %d objects with a finalizer, drop, collect, run to the last finalizer; per object", n),
		Peer:  "finalizer-run",
		PeerN: n,
		Reclaim: func(b *testing.B) {
			reclaimRun(b, n, "finalizer-run", func(m *reclaim.Mutator, c *counter) {
				fin := func(*reclaim.Mutator, reclaim.Ref[obj]) { c.hitSeq() }
				for i := range n {
					reclaim.SetFinalizer(m, reclaim.New[obj](m), fin)
					if i%safepointEvery == safepointEvery-1 {
						m.Safepoint()
					}
				}
			})
		},
		Go: func(b *testing.B) { goRun(b, n, "finalizer-run", goAllocFinalized) },
	}
}

//go:noinline
func goAllocFinalized(n int, c *counter) {
	fin := func(*gobj) { c.hitSeq() }
	for range n {
		runtime.SetFinalizer(new(gobj), fin)
	}
}

// FinalizerDelay measures the finalizer queue's delay (Stats.FinalizerDelayP50
// and P99: from the sweep that queues a block of finalizers to the start of
// its first call) when finalizers come in small batches: one op allocates n
// finalizable objects, drops them, collects and waits for the last call.
// Reclaim only (Go is nil): the Go runtime does not expose the delay, so
// the workload is not part of All and its side-by-side report.
func FinalizerDelay(n int) Workload {
	return Workload{
		Name: "finalizer-delay",
		Doc:  fmt.Sprintf("queue delay, sweep to call start, p50 and p99 over batches of %d finalizers (reclaim only)", n),
		Reclaim: func(b *testing.B) {
			h, m := newHeap(b, reclaim.Options{})
			for range b.N {
				c := newCounter(n)
				fin := func(*reclaim.Mutator, reclaim.Ref[obj]) { c.hitSeq() }
				for range n {
					reclaim.SetFinalizer(m, reclaim.New[obj](m), fin)
				}
				m.Collect()
				reclaimWait(b, h, c, "finalizer-delay")
			}
			st := h.Stats()
			b.ReportMetric(float64(st.FinalizerDelayP50.Nanoseconds())/1e3, "p50-delay-µs")
			b.ReportMetric(float64(st.FinalizerDelayP99.Nanoseconds())/1e3, "p99-delay-µs")
		},
	}
}
