package heap

import (
	"testing"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// TestRetiredSlotStaleRefFails: a slot whose generation runs out is retired
// when its last object dies (kept allocated, never reused), and that
// object's handles must stop matching at the same moment, as any freed
// object's do. Left at the old generation, the handle word let a stale ref
// read the zeroed slot as if its object were alive.
func TestRetiredSlotStaleRefFails(t *testing.T) {
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
	x, err := m.Alloc(vnodeType)
	if err != nil {
		t.Fatal(err)
	}
	s := h.spans.get(x.Span())
	// Age the slot to its last generation; y is the object's handle now.
	y := handle.Pack(h.id, x.Span(), x.Slot(), handle.MaxGen-1)
	s.hv[x.Slot()].Store(uint64(y))
	(*vnode)(m.Deref(y)).val = 7
	m.Collect() // y dies and its slot is retired

	if s.retired == nil || s.retired[y.Slot()/64]&(1<<(y.Slot()%64)) == 0 {
		t.Fatalf("slot %d not retired after its last generation's object died", y.Slot())
	}
	func() {
		defer func() {
			if _, ok := recover().(DerefError); !ok {
				t.Errorf("Deref of a ref to the retired slot's dead object did not fail")
			}
		}()
		m.Deref(y)
	}()
	if err := h.Verify(); err != nil {
		t.Fatalf("after retiring a slot: %v", err)
	}
	// The slot is never handed out again.
	for range 2 * handle.MaxSlots {
		z, err := m.Alloc(vnodeType)
		if err != nil {
			t.Fatal(err)
		}
		if z.Span() == y.Span() && z.Slot() == y.Slot() {
			t.Fatalf("retired slot %d reused by %v", y.Slot(), z)
		}
	}
	m.Collect()
	if err := h.Verify(); err != nil {
		t.Fatalf("after a collection with a retired slot: %v", err)
	}
}
