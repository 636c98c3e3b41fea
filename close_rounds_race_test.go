package reclaim_test

import (
	"sync/atomic"
	"testing"

	"github.com/reclaimgc/reclaim"
)

// Close queues the cleanups still registered while the ones it queued
// first already run (a full block is published as it fills), and those
// attach mutators and register cleanups and finalizers on new objects,
// in the holes of spans Close has yet to visit. Every callback runs
// exactly once, and (under the race detector) Close reads no object's
// words while a callback writes them.
func TestCloseQueuesCleanupsWhileCleanupsRegister(t *testing.T) {
	h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, Logger: quietLogger(), CleanupWorkers: 4})
	const n = 3000
	var first, second, fins atomic.Int32
	cleanup := func(id int) {
		first.Add(1)
		cm := h.Attach()
		defer cm.Detach()
		r := reclaim.New[finNode](cm)
		reclaim.AddCleanup(cm, r, func(int) { second.Add(1) }, id)
		reclaim.SetFinalizer(cm, r, func(*reclaim.Mutator, reclaim.Ref[finNode]) { fins.Add(1) })
	}
	m := h.Attach()
	for i := range 2 * n {
		r := reclaim.New[finNode](m)
		if i%2 == 0 {
			continue // freed by the Collect below: a hole for the cleanups' objects
		}
		h.Pin(r.Object())
		reclaim.AddCleanup(m, r, cleanup, i)
	}
	m.Collect()
	m.Detach()
	if err := closeWithin(t, h); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if first.Load() != n || second.Load() != n || fins.Load() != n {
		t.Fatalf("cleanups %d, the cleanups they added %d, the finalizers they set %d; want %d each", first.Load(), second.Load(), fins.Load(), n)
	}
}
