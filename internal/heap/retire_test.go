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
	y := retireSlot(t, h, m, x)
	derefFails(t, m, y)
	if err := h.Verify(); err != nil {
		t.Fatalf("after retiring a slot: %v", err)
	}
	neverHandedOut(t, m, y)
	m.Collect()
	if err := h.Verify(); err != nil {
		t.Fatalf("after a collection with a retired slot: %v", err)
	}
}

// retireSlot ages the slot of x, a live vnode no root holds, to its last
// generation, collects, and returns the handle its object had then (the
// object died and the slot was retired).
func retireSlot(t *testing.T, h *Heap, m *Mutator, x handle.Handle) handle.Handle {
	t.Helper()
	s := h.spans.get(x.Span())
	y := handle.Pack(h.id, x.Span(), x.Slot(), handle.MaxGen-1)
	s.hv[x.Slot()].Store(uint64(y))
	(*vnode)(m.Deref(y)).val = 7
	m.Collect() // y dies and its slot is retired
	if !isRetiredSlot(s, y.Slot()) {
		t.Fatalf("slot %d not retired after its last generation's object died", y.Slot())
	}
	return y
}

func isRetiredSlot(s *span, i uint32) bool {
	return s.retired != nil && s.retired[i/64]&(1<<(i%64)) != 0
}

// derefFails fails t unless Deref of y panics with a DerefError.
func derefFails(t *testing.T, m *Mutator, y handle.Handle) {
	t.Helper()
	defer func() {
		if _, ok := recover().(DerefError); !ok {
			t.Errorf("Deref of %v, a handle of a retired slot, did not fail", y)
		}
	}()
	m.Deref(y)
}

// neverHandedOut allocates vnodes until two spans' worth have come out
// and fails t if one takes the slot of y.
func neverHandedOut(t *testing.T, m *Mutator, y handle.Handle) {
	t.Helper()
	for range 2 * handle.MaxSlots {
		z, err := m.Alloc(vnodeType)
		if err != nil {
			t.Fatal(err)
		}
		if z.Span() == y.Span() && z.Slot() == y.Slot() {
			t.Fatalf("retired slot %d reused by %v", y.Slot(), z)
		}
	}
}

// TestRetiredSlotMarkedByStaleHandle: a stale handle of a retired slot
// whose generation's low byte is 0 has the slot's mark tag (0), so a live
// object holding it marks the slot. The slot must stay retired (never
// handed out, its memory zero) and the heap consistent.
func TestRetiredSlotMarkedByStaleHandle(t *testing.T) {
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
	root, err := m.Alloc(vnodeType)
	if err != nil {
		t.Fatal(err)
	}
	x, err := m.Alloc(vnodeType)
	if err != nil {
		t.Fatal(err)
	}
	h.Pin(root)
	defer h.Unpin(root)
	y := retireSlot(t, h, m, x)
	s := h.spans.get(y.Span())
	stale := handle.Pack(h.id, y.Span(), y.Slot(), handle.MaxGen&^0xff)
	if markTag(stale) != s.markTags[y.Slot()] {
		t.Fatalf("stale handle %v has tag %d, the retired slot %d", stale, markTag(stale), s.markTags[y.Slot()])
	}
	(*vnode)(m.Deref(root)).next = stale
	for range 2 {
		m.Collect()
		if got := h.Stats().Marked; got != 2 {
			t.Errorf("the mark marked %d objects, want 2 (the root and the retired slot)", got)
		}
		if err := h.Verify(); err != nil {
			t.Fatalf("after a mark of the retired slot: %v", err)
		}
		if !isRetiredSlot(s, y.Slot()) {
			t.Fatalf("slot %d no longer retired after a stale handle marked it", y.Slot())
		}
		if v := *(*vnode)(s.ptr(y.Slot())); v != (vnode{}) {
			t.Fatalf("the retired slot holds %+v, want zeros", v)
		}
	}
	neverHandedOut(t, m, y)
	derefFails(t, m, stale)
}
