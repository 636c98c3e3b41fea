package handle

import (
	"testing"
	"testing/quick"
)

func TestRoundTrip(t *testing.T) {
	f := func(heap, span, slot, gen uint32) bool {
		heap = heap%MaxHeaps + 1
		span %= MaxSpans
		slot %= MaxSlots
		gen %= MaxGen + 1
		h := Make(heap, span, slot, gen)
		return h != 0 && h.Heap() == heap && h.Span() == span && h.Slot() == slot && h.Gen() == gen
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
	g := func(heap, cell, gen uint32) bool {
		heap = heap%MaxHeaps + 1
		cell %= MaxCells
		gen %= MaxGen + 1
		w := MakeWeak(heap, cell, gen)
		return w != 0 && w.Heap() == heap && w.Cell() == cell && w.Gen() == gen
	}
	if err := quick.Check(g, nil); err != nil {
		t.Fatal(err)
	}
}

func TestMakeRejectsOutOfRange(t *testing.T) {
	for _, c := range []struct{ heap, span, slot, gen uint32 }{
		{0, 0, 0, 0}, {MaxHeaps + 1, 0, 0, 0}, {1, MaxSpans, 0, 0}, {1, 0, MaxSlots, 0}, {1, 0, 0, MaxGen + 1},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Make(%v) did not panic", c)
				}
			}()
			Make(c.heap, c.span, c.slot, c.gen)
		}()
	}
}
