package heap

import (
	"testing"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// TestMarkTag: the handles of one slot whose generations are less than
// 256 apart have different tags, and those 256 apart the same (which the
// aliased cases below rely on).
func TestMarkTag(t *testing.T) {
	for _, g := range []uint32{0, 1, 254, 255, 256, 1000, handle.MaxGen - 300} {
		x := handle.Pack(7, 3, 5, g)
		for k := uint32(1); k < 256; k++ {
			if y := handle.Pack(7, 3, 5, g+k); markTag(y) == markTag(x) {
				t.Fatalf("gens %d and %d share tag %d", g, g+k, markTag(x))
			}
		}
		if y := handle.Pack(7, 3, 5, g+256); markTag(y) != markTag(x) {
			t.Errorf("gens %d and %d have tags %d and %d", g, g+256, markTag(x), markTag(y))
		}
	}
}

// tagHolder is a root in a span of its own, whose ref the mark checks
// through greyAll rather than markLocal (a handle into the span scanned).
type tagHolder struct{ ref handle.Handle }

var tagHolderType = newTestType[tagHolder]()

// TestMarkFreeSlotHandle: a live object holds a handle to a free slot
// whose tag equals the slot's (the generation of the slot's handle word
// plus 256), and, in another case, the slot's word itself, the handle its
// next object will get (a forged ref). The mark must take both for stale,
// count them and mark nothing: the slot's allocation bit is clear. Marked,
// the free slot came out of the sweep allocated, an object nobody had
// allocated.
func TestMarkFreeSlotHandle(t *testing.T) {
	type gen func(next handle.Handle) uint32
	aliased := func(next handle.Handle) uint32 { return next.Gen() + 256 }
	forged := func(next handle.Handle) uint32 { return next.Gen() }
	for _, c := range []struct {
		name    string
		gen     gen
		rootTyp *Type // vnodeType: the root shares the dead object's span
	}{
		{"aliased/local", aliased, vnodeType},
		{"forged/local", forged, vnodeType},
		{"aliased/other-span", aliased, tagHolderType},
		{"forged/other-span", forged, tagHolderType},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
			root, err := m.Alloc(c.rootTyp)
			if err != nil {
				t.Fatal(err)
			}
			dead, err := m.Alloc(vnodeType)
			if err != nil {
				t.Fatal(err)
			}
			if (root.Span() == dead.Span()) != (c.rootTyp == vnodeType) {
				t.Fatalf("root %v and dead %v: not the spans the case wants", root, dead)
			}
			h.Pin(root)
			defer h.Unpin(root)
			m.Collect() // frees dead: its slot's word is now the next object's handle
			next := h.spans.get(dead.Span()).handleAt(dead.Slot())
			if next == dead {
				t.Fatalf("the freed slot's handle word is still %v", dead)
			}
			bad := handle.Pack(h.id, next.Span(), next.Slot(), c.gen(next))
			*(*handle.Handle)(m.Deref(root)) = bad // the first field of both types
			before := h.Stats()
			m.Collect()
			st := h.Stats()
			if d := st.StaleRefsInMark - before.StaleRefsInMark; d != 1 {
				t.Errorf("StaleRefsInMark grew by %d, want 1", d)
			}
			if st.Marked != 1 {
				t.Errorf("the mark marked %d objects, want 1 (the root alone)", st.Marked)
			}
			if err := h.Verify(); err != nil {
				t.Error(err)
			}
			*(*handle.Handle)(m.Deref(root)) = 0
		})
	}
}

// TestLocalKey: one masked compare against localKey holds exactly for the
// handles of heap hid into span idx, whatever their slot and generation.
func TestLocalKey(t *testing.T) {
	for _, c := range []struct{ hid, idx uint32 }{{1, 0}, {7, 3}, {handle.MaxHeaps, handle.MaxSpans - 1}} {
		key := localKey(c.hid, c.idx)
		for _, x := range []struct{ hid, idx, slot, gen uint32 }{
			{c.hid, c.idx, 0, 0}, {c.hid, c.idx, handle.MaxSlots - 1, handle.MaxGen},
			{c.hid ^ 1, c.idx, 5, 9}, {c.hid, c.idx ^ 1, 5, 9}, {c.hid, c.idx ^ 1<<19, 5, 9}, {c.hid ^ 1<<11, c.idx, 5, 9},
		} {
			if x.hid == 0 || x.hid > handle.MaxHeaps {
				continue
			}
			h := handle.Pack(x.hid, x.idx, x.slot, x.gen)
			want := x.hid == c.hid && x.idx == c.idx
			if got := uint64(h)&localKeyMask == key; got != want {
				t.Errorf("handle %v against the key of heap %d span %d: %v, want %v", h, c.hid, c.idx, got, want)
			}
		}
	}
}
