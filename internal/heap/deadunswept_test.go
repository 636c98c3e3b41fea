package heap

import (
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// TestAddCleanupOfDeadUnsweptObject: an object the last mark found
// unreachable, in a span not swept yet, gets no cleanup: AddCleanup's slow
// path sweeps the span first, which frees the object, and must then refuse
// it as Pin does. Linked on the freed slot, the cleanup would belong to the
// next object allocated there and run when that one dies.
func TestAddCleanupOfDeadUnsweptObject(t *testing.T) {
	h, m, _ := verifyHeap(t, 10)
	x, err := m.Alloc(vnodeType)
	if err != nil {
		t.Fatal(err)
	}
	collectNoSweep(h) // x dies; its span is not swept
	s := h.spans.get(x.Span())
	if s.sweepgen.Load() == h.sweepgen.Load() {
		t.Fatal("span swept already; the test needs it unswept")
	}
	var ran atomic.Int64
	func() {
		defer func() {
			v := recover()
			if msg, _ := v.(string); !strings.Contains(msg, "reclaim: AddCleanup of a ref to a freed object") {
				t.Errorf("AddCleanup of a dead, unswept object: got panic %v, want the freed-object panic", v)
			}
		}()
		addTestCleanup(m, x, &ran)
	}()
	// Whatever happened, no cleanup may run for another object that takes
	// x's slot.
	allocIntoSlot(t, m, vnodeType, x)
	m.Collect()
	m.Collect()
	m.Detach()
	if err := h.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := ran.Load(); n != 0 {
		t.Errorf("a cleanup registered on a dead object ran %d times, when another object in its slot died", n)
	}
}

// TestSetFinalizerOfDeadUnsweptObject: SetFinalizer, like AddCleanup, sets
// nothing on an object the last mark found unreachable in a span not yet
// swept. Set on the freed slot, the finalizer would be called for the next
// object allocated there (or, with none, by Close, with a ref to a free
// slot).
func TestSetFinalizerOfDeadUnsweptObject(t *testing.T) {
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
	x, err := m.Alloc(finObjType)
	if err != nil {
		t.Fatal(err)
	}
	collectNoSweep(h) // x dies; its span is not swept
	s := h.spans.get(x.Span())
	if s.sweepgen.Load() == h.sweepgen.Load() {
		t.Fatal("span swept already; the test needs it unswept")
	}
	before := finObjCalls.Load()
	func() {
		defer func() {
			v := recover()
			if msg, _ := v.(string); !strings.Contains(msg, "reclaim: SetFinalizer of a ref to a freed object") {
				t.Errorf("SetFinalizer of a dead, unswept object: got panic %v, want the freed-object panic", v)
			}
		}()
		m.SetFinalizer(x, unsafe.Pointer(&finObjCalls))
	}()
	allocIntoSlot(t, m, finObjType, x)
	m.Collect()
	m.Collect()
	if err := m.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := finObjCalls.Load() - before; n != 0 {
		t.Errorf("a finalizer set on a dead object ran %d times, for another object in its slot", n)
	}
}

// allocIntoSlot allocates objects of typ until one takes x's slot, which
// must be free, and fails the test if none does.
func allocIntoSlot(t *testing.T, m *Mutator, typ *Type, x handle.Handle) {
	t.Helper()
	for range 4 * handle.MaxSlots {
		y, err := m.Alloc(typ)
		if err != nil {
			t.Fatal(err)
		}
		if y.Span() == x.Span() && y.Slot() == x.Slot() {
			return
		}
	}
	t.Fatalf("no new object took the slot of %v", x)
}
