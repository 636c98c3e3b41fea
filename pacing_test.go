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
