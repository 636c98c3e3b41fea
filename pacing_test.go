package reclaim_test

import (
	"testing"

	"github.com/reclaimgc/reclaim"
)

// External bytes the last cycle saw are already in the goal: a cycle is due
// only when the heap plus external bytes grow GCPercent% past it, not on the
// next AddExternal.
func TestExternalPacing(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{})
	m := h.Attach()
	defer m.Detach()
	h.AddExternal(64 << 20)
	m.Collect()
	before := h.Stats().Cycles
	h.AddExternal(1 << 20)
	m.Safepoint()
	if got := h.Stats().Cycles; got != before {
		t.Fatalf("1 MiB of external growth over a 64 MiB base made a cycle due (cycles %d -> %d, goal %d)", before, got, h.Stats().HeapGoal)
	}
	h.AddExternal(64 << 20) // now 129 MiB: past 2x the base
	m.Safepoint()
	if got := h.Stats().Cycles; got != before+1 {
		t.Fatalf("doubling external bytes did not make a cycle due (cycles %d -> %d)", before, got)
	}
	h.AddExternal(-129 << 20)
}

// pNode is a 16-byte list cell: a slot of 16 bytes and a handle word of 8.
type pNode struct {
	Next reclaim.Ref[pNode]
	V    int64
}

// TestLimitPacingCountsMetadata: under a memory limit, the goal leaves room
// for the spans' handle words, so a program whose live heap fits churns
// garbage with collections at its safepoints and is never refused. With
// small objects the metadata is a third of the memory: a goal capped at
// the limit in object bytes alone was reached only after the limit, and
// allocation failed with garbage waiting to be collected.
func TestLimitPacingCountsMetadata(t *testing.T) {
	const limit = 8 << 20
	h := newTestHeap(t, reclaim.Options{MemoryLimit: limit})
	m := h.Attach()
	defer m.Detach()
	// About 3 MiB of live cells (4.5 MiB with their handle words): a goal
	// of twice that in object bytes passes the limit, its metadata counted.
	var head reclaim.Ref[pNode]
	for range 3 << 20 / 16 {
		n := reclaim.New[pNode](m)
		n.Get(m).Next = head
		head = n
	}
	h.Pin(head.Object())
	m.Collect()
	churnGarbage(t, h, m, 4*limit/16)
	if st := h.Stats(); st.Cycles < 3 {
		t.Errorf("%d cycles while allocating four times the limit in garbage", st.Cycles)
	}
	h.Unpin(head.Object())
}

// TestLimitPacingBeforeFirstCycle: TestLimitPacingCountsMetadata before
// any cycle has ended. The goal's cap follows the spans' proportion of
// metadata to slabs as they are made (pacer.Spans); with the floor goal of
// a new heap (4 MiB of objects, 6 with their handle words) a program
// churning 16-byte garbage under a 5 MiB limit was refused before its
// first collection was due.
func TestLimitPacingBeforeFirstCycle(t *testing.T) {
	const limit = 5 << 20
	h := newTestHeap(t, reclaim.Options{MemoryLimit: limit})
	m := h.Attach()
	defer m.Detach()
	churnGarbage(t, h, m, 4*limit/16)
}

// churnGarbage allocates n cells of garbage on m, with a safepoint every
// 1024, and fails t at the first allocation refused.
func churnGarbage(t *testing.T, h *reclaim.Heap, m *reclaim.Mutator, n int) {
	t.Helper()
	for i := range n {
		if _, err := reclaim.TryNew[pNode](m); err != nil {
			st := h.Stats()
			t.Fatalf("allocation %d of garbage refused (%v): goal %d, slabs %d, metadata %d, spares %d, cycles %d",
				i, err, st.HeapGoal, st.SpanBytes, st.MetaBytes, st.SpareBytes, st.Cycles)
		}
		if i%1024 == 0 {
			m.Safepoint()
		}
	}
}

// With GCPercent -1 and a MemoryLimit, collection is due near the limit (as
// with GOGC=off and GOMEMLIMIT): a mutator that makes garbage and reaches
// safepoints is never refused, and the heap collects as it nears the limit.
func TestLimitWithPacingOff(t *testing.T) {
	const limit = 2 << 20
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, MemoryLimit: limit})
	m := h.Attach()
	defer m.Detach()
	if g := h.Stats().HeapGoal; g <= 0 || g > limit {
		t.Fatalf("goal %d with GCPercent -1 under a %d-byte limit, want the limit's share", g, limit)
	}
	for i := range 20 * limit / 1024 { // twenty times the limit in garbage
		if _, err := reclaim.TryNew[[1024]byte](m); err != nil {
			t.Fatalf("allocation %d: %v (stats %+v)", i, err, h.Stats())
		}
		if i%64 == 63 {
			m.Safepoint()
		}
	}
	st := h.Stats()
	if st.Cycles < 5 || st.MemoryLimitHits != 0 {
		t.Errorf("%d cycles, %d limit hits over twenty limits of garbage; want collections before the limit and no hit", st.Cycles, st.MemoryLimitHits)
	}
}
