package heap

import (
	"strings"
	"testing"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// A heap that takes a closed heap's id again starts its generations past
// that heap's: a ref kept past Close, whose id no longer tells it apart,
// names no object of the new heap, and Deref refuses it. Without the
// per-id base, the new heap's first object had the very handle of the
// old heap's first object.
func TestHeapIDReuseStartsPastOldGenerations(t *testing.T) {
	n := int(slotsFor(vnodeType.Size)) // a span's slots
	h := New(Config{})
	m := NewMutator()
	h.Attach(m)
	var old []handle.Handle
	for range 3 * n {
		x, err := m.Alloc(vnodeType)
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, x)
	}
	m.Collect() // unreachable: their slots are freed, their generations move on
	for range n {
		if _, err := m.Alloc(vnodeType); err != nil {
			t.Fatal(err)
		}
	}
	m.Detach()
	h.Close()

	// Open and close heaps until one has the closed heap's id.
	var h2 *Heap
	for range handle.MaxHeaps {
		h2 = New(Config{})
		if h2.id == old[0].Heap() {
			break
		}
		h2.Close()
		h2 = nil
	}
	if h2 == nil {
		t.Fatalf("no heap got id %d back", old[0].Heap())
	}
	defer h2.Close()
	m2 := NewMutator()
	h2.Attach(m2)
	defer m2.Detach()
	seen := make(map[handle.Handle]bool, len(old))
	for _, x := range old {
		seen[x] = true
	}
	for range 4 * n {
		y, err := m2.Alloc(vnodeType)
		if err != nil {
			t.Fatal(err)
		}
		if seen[y] {
			t.Fatalf("the new heap with id %d handed out %v, a handle of the closed heap", h2.id, y)
		}
	}
	for _, x := range old {
		func() {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatalf("Deref of %v, kept from the closed heap with the same id, did not panic", x)
				}
				if msg := r.(error).Error(); !strings.Contains(msg, "freed object") {
					t.Fatalf("Deref of a ref from the closed heap: %s", msg)
				}
			}()
			m2.Deref(x)
		}()
	}
}
