package heap

import (
	"reflect"
	"slices"
	"testing"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
	"github.com/reclaimgc/reclaim/internal/layout"
)

// orderObj holds a ref: the collector sees next.
type orderObj struct {
	next handle.Handle
	id   int64
}

// orderCall is what orderObjType's finalizer does: set by the test that
// uses the type, before the first call.
var orderCall func(m *Mutator, x handle.Handle)

var orderObjType = RegisterType(&Type{
	Name:    "orderObj",
	Layout:  layout.Of(reflect.TypeFor[orderObj](), nil),
	Size:    unsafe.Sizeof(orderObj{}),
	NewSlab: func(n int) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(make([]orderObj, n))) },
	Clear:   func(p unsafe.Pointer) { *(*orderObj)(p) = orderObj{} },
	FinCall: func(m *Mutator, x handle.Handle, _ unsafe.Pointer) { orderCall(m, x) },
})

// TestCloseRunsQueuedFinalizerBeforeWhatItReaches: with
// FinalizersAtSafepoints, the finalizer of Q, which the last mark found
// unreachable, is queued by the sweep Close finishes and run in Close's
// first round. Q reaches B, which has a finalizer too and which the mark
// kept for Q's (it marks the referents of finalizable objects). B's
// finalizer must not run before Q's: the queued record is a root of the
// walk that picks a round's finalizers, as it is of the next mark.
func TestCloseRunsQueuedFinalizerBeforeWhatItReaches(t *testing.T) {
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1, FinalizersAtSafepoints: true})
	var ran []int64
	orderCall = func(fm *Mutator, x handle.Handle) {
		ran = append(ran, (*orderObj)(fm.Deref(x)).id)
	}
	defer func() { orderCall = nil }()
	fn := unsafe.Pointer(&ran) // any non-nil word: FinCall ignores it
	alloc := func(id int64) handle.Handle {
		x, err := m.Alloc(orderObjType)
		if err != nil {
			t.Fatal(err)
		}
		(*orderObj)(m.Deref(x)).id = id
		m.SetFinalizer(x, fn)
		return x
	}
	b := alloc(2) // the lower slot: the slot order runs B first
	q := alloc(1)
	(*orderObj)(m.Deref(q)).next = b
	m.Detach()
	collectNoSweep(h) // Q is found unreachable; its span left unswept
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if want := []int64{1, 2}; !slices.Equal(ran, want) {
		t.Errorf("Close ran the finalizers of %v, want %v (Q's, then B's)", ran, want)
	}
}

// TestCloseRunsChainInOneRound: a chain of finalizable objects, each
// reaching the next, runs head first in one round of Close, from one walk
// of the heap. Picking a round's finalizers as a collection does (the
// heads alone) took a round, and a mark of the whole heap, per link.
func TestCloseRunsChainInOneRound(t *testing.T) {
	const n = 1000
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
	var ran []int64
	orderCall = func(fm *Mutator, x handle.Handle) {
		ran = append(ran, (*orderObj)(fm.Deref(x)).id)
	}
	rounds := 0
	testHookCloseCleanupsQueued = func(*Heap) { rounds++ }
	defer func() { orderCall, testHookCloseCleanupsQueued = nil, nil }()
	fn := unsafe.Pointer(&ran) // any non-nil word: FinCall ignores it
	next := handle.Handle(0)
	for id := int64(n); id >= 1; id-- { // the tail first: the slot order is the chain's reversed
		x, err := m.Alloc(orderObjType)
		if err != nil {
			t.Fatal(err)
		}
		o := (*orderObj)(m.Deref(x))
		o.id, o.next = id, next
		m.SetFinalizer(x, fn)
		next = x
	}
	m.Detach()
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if len(ran) != n {
		t.Fatalf("Close ran %d finalizers, want %d", len(ran), n)
	}
	for i, id := range ran {
		if id != int64(i+1) {
			t.Fatalf("finalizer %d to run was object %d's, want %d's (the chain from its head)", i, id, i+1)
		}
	}
	// The round that runs them, and the one that finds none left.
	if rounds > 2 {
		t.Errorf("Close took %d rounds for a chain of %d, want 2", rounds, n)
	}
}
