package reclaim_test

import (
	"testing"

	"github.com/reclaimgc/reclaim"
)

// TestWeakMapSpareReused: the spans of freed tables become spares, whose
// slots hold the heap's id (the sweep wrote it back into every freed
// table), and the next tables are made in them. A spare of a table type
// is then zero but for that id, which the invariants build's check of
// spares took for a slab left dirty.
func TestWeakMapSpareReused(t *testing.T) {
	// Not newTestHeap: a failed check panics with the heap's mutex held,
	// and its end-of-test Close would wait for it for ever.
	h := reclaim.NewHeap(reclaim.Options{GCPercent: 100, Logger: quietLogger()})
	m := h.Attach()
	type table = reclaim.WeakMap[misuseObj, int]
	const n = 3000 // several spans of tables
	for range n {
		reclaim.New[table](m)
	}
	m.Collect() // every table freed
	m.Collect() // and their spans, empty twice, released to the spares
	if st := h.Stats(); st.SpareBytes == 0 {
		t.Fatalf("no spares after the collection (%+v)", st)
	}
	keep := reclaim.New[misuseObj](m)
	h.Pin(keep.Object())
	if v, panicked := panicValue(func() {
		for range n {
			tab := reclaim.New[table](m)
			tab.Get(m).Set(keep, 1) // a table made in a spare knows its heap
		}
	}); panicked {
		t.Fatalf("making tables in the spares of freed ones: %v", v)
	}
	h.Unpin(keep.Object())
	if err := h.Verify(); err != nil {
		t.Fatal(err)
	}
	m.Detach()
	checkHeap(t, h)
}
