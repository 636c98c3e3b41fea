package heap

import (
	"sync"
	"sync/atomic"
	"time"
)

// heapStats are the heap's counters. Each is atomic unless its comment says
// otherwise; its comment names who adds to or stores it, and Stats reads
// them lock-free, one at a time.
type heapStats struct {
	cycles         atomic.Int64 // the leader, in the flip (endCycle)
	allocated      atomic.Int64 // objects ever allocated: flushStats, by a mutator at its safepoints or by the leader for it
	freed          atomic.Int64 // objects ever freed: sweepers, and Close
	markedObjects  atomic.Int64 // by the last mark; the leader, in the flip, like the next three
	markedBytes    atomic.Int64
	staleInMark    atomic.Int64
	foreignInMark  atomic.Int64
	spansAllocated atomic.Int64 // h.mu held (newSpanLocked)
	spansReleased  atomic.Int64 // h.mu held (releaseSpanLocked)
	limitHits      atomic.Int64 // allocating mutators (allocSlow), once per refused allocation
	panics         atomic.Int64 // any goroutine that reports a panic (finalizer runners, cleanup workers)
	slowFinalizers atomic.Int64 // a leader waiting for the world to stop
	lastMark       atomic.Int64 // ns; the leader, in the flip
	finCycles      atomic.Int64 // finalizable cycles reported (DebugCycles); the leader, world stopped
	badCleanups    atomic.Int64 // cleanups that can never run, reported (DebugCycles); likewise
	finRoots       atomic.Int64 // finalizable objects the last mark scanned as roots (Stats.FinalizerRoots); the leader, in the flip

	// mu protects the pause times: written by the leader just before it
	// restarts the world (recordPause), read by Stats.
	mu struct {
		sync.Mutex
		pauseTotal time.Duration
		pauseLast  time.Duration
	}
}

func (s *heapStats) recordPause(pause time.Duration) {
	s.mu.Lock()
	s.mu.pauseTotal += pause
	s.mu.pauseLast = pause
	s.mu.Unlock()
}

func (s *heapStats) endCycle(ms markStats) {
	s.cycles.Add(1)
	s.markedObjects.Store(ms.objects)
	s.markedBytes.Store(ms.bytes)
	s.staleInMark.Add(ms.stale)
	s.foreignInMark.Add(ms.foreign)
	s.lastMark.Store(int64(ms.duration))
	s.finRoots.Store(ms.finRoots)
}

// Stats is a snapshot of the heap's counters.
type Stats struct {
	HeapLive, HeapObjects, HeapGoal, SpanBytes, MetaBytes, SpareBytes, External int64
	Cycles                                                                      int64
	PauseTotal, PauseLast, LastMark                                             time.Duration
	Allocated, Freed                                                            int64
	FinalizersQueued, FinalizersExecuted                                        int64
	CleanupsQueued, CleanupsExecuted                                            int64
	CleanupGoroutines                                                           int
	FinalizerStatus                                                             uint32
	Panics, LimitHits, SlowFinalizers                                           int64
	StaleRefsInMark, ForeignRefsInMark                                          int64
	SpansAllocated, SpansReleased                                               int64
	Marked                                                                      int64
	FinalizerCycles, UnrunnableCleanups                                         int64
	FinalizerDelayP50, FinalizerDelayP99                                        time.Duration
	FinalizerDelaySamples                                                       uint64
	// FinalizerRoots is the number of finalizable objects the last mark
	// scanned as roots: those neither its other roots nor, before their
	// turn came, another finalizable object had reached (so with
	// finalizable objects reaching one another, the count depends on the
	// order of the scan and on the number of workers).
	FinalizerRoots int64
}

// Stats returns a snapshot.
func (h *Heap) Stats() Stats {
	var st Stats
	st.HeapLive = h.heapLive.Load()
	// Freed first: an object is counted allocated (flushStats, with the
	// world stopped at the latest) before a sweep can free it, so this
	// order never shows more freed than allocated; the other could, for
	// a reader preempted between the loads while a cycle ran.
	st.Freed = h.stats.freed.Load()
	st.Allocated = h.stats.allocated.Load()
	st.HeapObjects = st.Allocated - st.Freed
	st.HeapGoal = h.goal.Load()
	// Under mu, as one snapshot: the three move together (a released
	// span's memory passes from spanBytes and metaBytes to spareBytes, a
	// reused spare's back), and read one at a time they showed a span's
	// memory twice, past a limit the heap never exceeded.
	h.mu.Lock()
	st.SpanBytes, st.SpareBytes, st.MetaBytes = h.mu.spanBytes, h.mu.spareBytes, h.mu.metaBytes
	h.mu.Unlock()
	st.External = h.external.Load()
	st.Cycles = h.stats.cycles.Load()
	h.stats.mu.Lock()
	st.PauseTotal, st.PauseLast = h.stats.mu.pauseTotal, h.stats.mu.pauseLast
	h.stats.mu.Unlock()
	st.LastMark = time.Duration(h.stats.lastMark.Load())
	// Executed first: a record is counted queued before it can run, so
	// this order never shows more executed than queued.
	st.FinalizersExecuted = h.fin.executed.Load()
	st.FinalizersQueued = h.fin.queued.Load()
	cq := h.cq.Stats()
	st.CleanupsQueued = int64(cq.Queued)
	st.CleanupsExecuted = int64(cq.Executed)
	st.CleanupGoroutines = cq.Workers
	st.FinalizerStatus = h.fin.status.load()
	st.Panics = h.stats.panics.Load()
	st.LimitHits = h.stats.limitHits.Load()
	st.SlowFinalizers = h.stats.slowFinalizers.Load()
	st.StaleRefsInMark = h.stats.staleInMark.Load()
	st.ForeignRefsInMark = h.stats.foreignInMark.Load()
	st.SpansAllocated = h.stats.spansAllocated.Load()
	st.SpansReleased = h.stats.spansReleased.Load()
	st.Marked = h.stats.markedObjects.Load()
	st.FinalizerCycles = h.stats.finCycles.Load()
	st.UnrunnableCleanups = h.stats.badCleanups.Load()
	st.FinalizerRoots = h.stats.finRoots.Load()
	st.FinalizerDelayP50, st.FinalizerDelaySamples = h.fin.delay.quantile(0.50)
	st.FinalizerDelayP99, _ = h.fin.delay.quantile(0.99)
	return st
}
