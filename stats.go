package reclaim

import (
	"time"

	"github.com/reclaimgc/reclaim/internal/heap"
)

// Stats is a snapshot of a heap's counters. Counters of allocation
// (Allocated, HeapObjects) are brought up to date for every mutator at each
// collection, and for one mutator when it detaches or reaches a safepoint
// that has work (a collection due or under way, finalizers to run there); a
// Safepoint with nothing to do costs two loads and leaves them as they
// were.
type Stats struct {
	HeapLiveBytes int64 // the pacer's live heap: bytes marked by the last cycle plus span bytes handed to allocators since
	HeapObjects   int64 // objects allocated and not yet freed
	HeapGoal      int64 // live bytes at which the next collection is due; -1 when automatic collection is off
	SpanBytes     int64 // memory held by spans' slabs (slots times the type's size)
	// MetaBytes is the memory the spans in use hold besides their slabs:
	// an 8-byte handle word per slot and three bitmaps of a bit per slot,
	// in whole 64-bit words (spans of few large objects round up); with
	// several mark workers, the mark and scan bitmaps fill whole cache
	// lines of their own (120 to 312 bytes a span). It counts
	// toward MemoryLimit but not toward HeapGoal, as the Go runtime's
	// metadata counts toward GOMEMLIMIT but not toward GOGC's goal.
	MetaBytes int64
	// SpareBytes is the memory of emptied spans (slabs and handle words)
	// kept for new spans of their type, up to the heap's goal (as the Go
	// runtime keeps free pages), instead of being given back. It counts
	// toward MemoryLimit; spares are dropped before an allocation is
	// refused.
	SpareBytes    int64
	ExternalBytes int64 // AddExternal total

	Cycles        int64         // completed collections
	PauseTotal    time.Duration // total stop-the-world time, each cycle's as PauseLast counts it
	PauseLast     time.Duration // the last cycle's stop-the-world time: from the request to stop, the wait for every mutator to reach a safepoint included (as the runtime's pause times include the stop), to the restart
	LastMark      time.Duration // the last mark's duration
	ObjectsMarked int64         // live objects found by the last mark (not counting those kept for their finalizer; counting a retired slot a stale ref marked, docs/MISUSE.md)

	Allocated int64 // objects ever allocated
	Freed     int64 // objects ever freed

	FinalizersQueued   int64
	FinalizersExecuted int64
	// FinalizerDelayP50 and FinalizerDelayP99 are quantiles of the
	// finalizer queue's delay: from the moment a block of queued
	// finalizers (up to 128, filled by sweepers) got its first record to
	// the start of the finalizer goroutine's first call from it, sampled
	// once per block over the heap's life (FinalizerDelaySamples blocks).
	// Each is the upper bound of a histogram bucket, within 25% of the
	// sampled value. Zero with FinalizersAtSafepoints, where finalizers
	// wait for the embedder's safepoints instead.
	FinalizerDelayP50     time.Duration
	FinalizerDelayP99     time.Duration
	FinalizerDelaySamples uint64
	// FinalizerStatus names the finalizer goroutine's status word:
	// "uninitialized", or "created" followed by "|running", "|waiting" and
	// "|wake" for the bits set.
	FinalizerStatus string

	CleanupsQueued    int64
	CleanupsExecuted  int64
	CleanupGoroutines int // cleanup goroutines now

	Panics          int64 // finalizers and cleanups that panicked
	MemoryLimitHits int64 // allocations refused by the memory limit
	SlowFinalizers  int64 // finalizers reported for holding a collection up

	StaleRefsInMark   int64 // refs to freed objects found in live objects (a ref kept across a safepoint and stored); one whose generation is a multiple of 256 behind its slot's new object is taken for that object and not counted, nor is one to a retired slot whose generation's low byte is 0 (docs/MISUSE.md)
	ForeignRefsInMark int64 // refs of another heap found in live objects (and keys of another heap deleted from WeakMaps)

	FinalizerCycles    int64 // finalizable cycles reported (Options.Debug)
	UnrunnableCleanups int64 // cleanups whose argument leads back to their object, reported (Options.Debug)
}

// Stats returns a snapshot of the heap's counters.
func (h *Heap) Stats() Stats {
	s := h.h.Stats()
	return Stats{
		HeapLiveBytes:         s.HeapLive,
		HeapObjects:           s.HeapObjects,
		HeapGoal:              s.HeapGoal,
		SpanBytes:             s.SpanBytes,
		SpareBytes:            s.SpareBytes,
		MetaBytes:             s.MetaBytes,
		ExternalBytes:         s.External,
		Cycles:                s.Cycles,
		PauseTotal:            s.PauseTotal,
		PauseLast:             s.PauseLast,
		LastMark:              s.LastMark,
		ObjectsMarked:         s.Marked,
		Allocated:             s.Allocated,
		Freed:                 s.Freed,
		FinalizersQueued:      s.FinalizersQueued,
		FinalizersExecuted:    s.FinalizersExecuted,
		FinalizerDelayP50:     s.FinalizerDelayP50,
		FinalizerDelayP99:     s.FinalizerDelayP99,
		FinalizerDelaySamples: s.FinalizerDelaySamples,
		FinalizerStatus:       heap.FingStatusName(s.FinalizerStatus),
		CleanupsQueued:        s.CleanupsQueued,
		CleanupsExecuted:      s.CleanupsExecuted,
		CleanupGoroutines:     s.CleanupGoroutines,
		Panics:                s.Panics,
		MemoryLimitHits:       s.LimitHits,
		SlowFinalizers:        s.SlowFinalizers,
		StaleRefsInMark:       s.StaleRefsInMark,
		ForeignRefsInMark:     s.ForeignRefsInMark,
		FinalizerCycles:       s.FinalizerCycles,
		UnrunnableCleanups:    s.UnrunnableCleanups,
	}
}
