package reclaim_test

import (
	"sync/atomic"
	"testing"

	"github.com/reclaimgc/reclaim"
)

// TestRetainingPathBesideSweep: RetainingPath stops the world, but the
// background sweeper is no mutator and sweeps on; the search reads the
// finalizer tables and cleanup lists the sweep writes. It finishes the
// sweep first, as a collection does, so none runs beside it.
func TestRetainingPathBesideSweep(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: 100, MarkWorkers: 1})
	m := h.Attach()
	defer m.Detach()
	var ran atomic.Int32
	keep := reclaim.New[finNode](m)
	h.Pin(keep.Object())
	defer h.Unpin(keep.Object())
	for range 3 {
		for range 20000 {
			r := reclaim.New[finNode](m)
			reclaim.SetFinalizer(m, r, counter(&ran))
			reclaim.AddCleanup(m, r, func(int) {}, 0)
		}
		// A cycle led at a safepoint leaves its sweep to the background
		// sweeper (Collect would finish it).
		h.AddExternal(1 << 30)
		m.Safepoint()
		h.AddExternal(-(1 << 30))
		if _, ok := m.RetainingPath(keep.Object()); !ok {
			t.Fatal("RetainingPath: a pinned object is not reachable")
		}
	}
	m.Collect()
}
