package reclaim_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

// TestStatsObjectsNeverNegative: Stats read on other goroutines while a
// mutator churns short cycles never shows more objects freed than
// allocated (HeapObjects below zero). Every object is counted allocated
// (flushed with the world stopped) before a sweep can free it, so a
// snapshot that reads Freed before Allocated can never see it; one that
// reads them the other way round sees it when it is preempted between the
// two loads for a cycle or more.
func TestStatsObjectsNeverNegative(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	d := 2 * time.Second
	if testing.Short() {
		d = 500 * time.Millisecond
	}
	var bad atomic.Pointer[reclaim.Stats]
	var reads atomic.Int64
	stop := repeatUntilStopped(t, 4, "the Stats readers", func() bool {
		st := h.Stats()
		reads.Add(1)
		if st.Freed > st.Allocated || st.HeapObjects < 0 {
			bad.CompareAndSwap(nil, &st)
		}
		return true
	})
	defer stop()
	m := h.Attach()
	cycles := 0
	for deadline := time.Now().Add(d); time.Now().Before(deadline); cycles++ {
		for range 2000 {
			reclaim.New[lrW8](m)
		}
		m.Collect()
	}
	m.Detach()
	stop()
	if st := bad.Load(); st != nil {
		t.Errorf("Stats showed Allocated %d, Freed %d, HeapObjects %d", st.Allocated, st.Freed, st.HeapObjects)
	}
	t.Logf("%d cycles, %d reads", cycles, reads.Load())
}

// TestStatsHeldWithinLimit: Stats read on other goroutines while spans are
// made, released to spares and reused never shows slabs, metadata and
// spares past the memory limit, which the heap never holds: the three
// move together (a released span's memory passes from SpanBytes and
// MetaBytes to SpareBytes, a reused spare's back), and a snapshot that
// reads them one at a time, lock-free, sees a span's memory in both.
func TestStatsHeldWithinLimit(t *testing.T) {
	const limit = 2 << 20
	h := newTestHeap(t, reclaim.Options{MemoryLimit: limit})
	d := 2 * time.Second
	if testing.Short() {
		d = 500 * time.Millisecond
	}
	var bad atomic.Pointer[reclaim.Stats]
	stop := repeatUntilStopped(t, 3, "the Stats readers", func() bool {
		if st := h.Stats(); st.SpanBytes+st.MetaBytes+st.SpareBytes > limit {
			bad.CompareAndSwap(nil, &st)
		}
		return true
	})
	defer stop()
	m := h.Attach()
	rounds := 0
	for deadline := time.Now().Add(d); time.Now().Before(deadline); rounds++ {
		// Garbage of one type up to the limit, then of another: the
		// first's spans go to spares and are dropped for the second's.
		fillGarbage[lrW1K](t, m, limit/1024)
		m.Collect()
		m.Collect()
		fillGarbage[lrW100](t, m, limit/100)
		m.Collect()
		m.Collect()
	}
	m.Detach()
	stop()
	if st := bad.Load(); st != nil {
		t.Errorf("Stats showed slabs %d + meta %d + spares %d = %d, past the limit %d", st.SpanBytes, st.MetaBytes, st.SpareBytes, st.SpanBytes+st.MetaBytes+st.SpareBytes, limit)
	}
	t.Logf("%d rounds", rounds)
}
