package heap

import (
	"testing"
)

// spareSum is the memory the heap's spare lists hold, which spareBytes
// must equal.
// REQUIRES: h.mu held.
func spareSum(h *Heap) int64 {
	var n int64
	for t, l := range h.mu.spares {
		for _, sp := range l {
			n += sp.bytes(t)
		}
	}
	return n
}

// TestFitsReleasesIdleSpansOfItsOwnType: under a memory limit, a new span
// that does not fit first releases the spans the last sweep found empty.
// When those are spans of the very type being allocated, they become its
// spares, and the span fits by reusing one. fitsLocked measured the spares
// of the type before releasing them, so it went on to drop "the other
// types' spares" with the type's own list unlinked from the map: the new
// spares were lost, their memory never freed and still counted, and the
// span refused.
func TestFitsReleasesIdleSpansOfItsOwnType(t *testing.T) {
	n := slotsFor(vnodeType.Size)
	spanBytes := int64(n)*int64(vnodeType.Size) + spanMeta(n, false)
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1, MemoryLimit: spanBytes + spanBytes/4})
	for range n { // one span, full
		if _, err := m.Alloc(vnodeType); err != nil {
			t.Fatal(err)
		}
	}
	m.Collect() // every object dies; the swept span is kept idle for a cycle

	h.mu.Lock()
	defer h.mu.Unlock()
	before := h.mu.spanBytes
	fits := h.fitsLocked(vnodeType)
	if got, want := h.mu.spareBytes, spareSum(h); got != want {
		t.Errorf("after fitsLocked: spareBytes %d, spare lists hold %d", got, want)
	}
	if h.mu.spanBytes >= before {
		t.Fatalf("no idle span released (span bytes %d, before %d); the test needs some", h.mu.spanBytes, before)
	}
	if len(h.mu.spares[vnodeType]) > 0 && !fits {
		t.Errorf("a span of a type with %d spares refused", len(h.mu.spares[vnodeType]))
	}
}
