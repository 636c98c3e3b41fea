package reclaim_test

import (
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/reclaimgc/reclaim"
)

// Misuse: every mistake the API can catch panics (or returns an error)
// with a message that starts with "reclaim:" and says what was wrong.
// docs/MISUSE.md lists them with the test that checks each.

type misuseObj struct {
	Ref reclaim.Ref[misuseObj]
	V   int
}

// misuseHeap returns a heap with an attached mutator that the test's end
// detaches (if the test did not).
func misuseHeap(t *testing.T, opts reclaim.Options) (*reclaim.Heap, *reclaim.Mutator) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	h := newTestHeap(t, opts)
	m := h.Attach()
	t.Cleanup(func() {
		_, _ = panicValue(m.Detach) // a panic means the test detached it
	})
	return h, m
}

// heldCollectHeap is misuseHeap (with opts' ScanRoots replaced) and a
// function duringCollect that runs f while another goroutine is inside
// m.Collect, held at a known point with the world stopped (the heap's call
// to ScanRoots), and returns once that Collect has.
func heldCollectHeap(t *testing.T, opts reclaim.Options) (h *reclaim.Heap, m *reclaim.Mutator, duringCollect func(f func())) {
	t.Helper()
	inScan := make(chan struct{})
	var resume chan struct{} // written before armed is set, read after it is taken
	var armed atomic.Bool
	opts.ScanRoots = func(func(reclaim.Object)) {
		if armed.CompareAndSwap(true, false) {
			inScan <- struct{}{}
			<-resume
		}
	}
	h, m = misuseHeap(t, opts)
	duringCollect = func(f func()) {
		resume = make(chan struct{})
		armed.Store(true)
		done := make(chan struct{})
		go func() {
			defer close(done)
			m.Collect()
		}()
		<-inScan
		defer func() {
			close(resume)
			<-done
		}()
		f()
	}
	return h, m, duringCollect
}

func TestMisuseGetNil(t *testing.T) {
	_, m := misuseHeap(t, reclaim.Options{})
	var r reclaim.Ref[misuseObj]
	wantPanic(t, func() { r.Get(m) }, "Get of a nil ref")
}

func TestMisuseGetFreed(t *testing.T) {
	_, m := misuseHeap(t, reclaim.Options{})
	r := reclaim.New[misuseObj](m)
	m.Collect()
	wantPanic(t, func() { r.Get(m) }, "Get of a ref to a freed object")
}

// A failed Get's panic value says what was wrong when it failed, also when
// it is formatted later, after its mutator was detached (an OnPanic
// handler that keeps it, a recover that logs it on the way out).
func TestMisuseGetFreedMessageKept(t *testing.T) {
	_, m := misuseHeap(t, reclaim.Options{})
	r := reclaim.New[misuseObj](m)
	m.Collect()
	v, ok := panicValue(func() { r.Get(m) })
	if !ok {
		t.Fatal("Get of a freed object did not panic")
	}
	m.Detach()
	if msg := fmt.Sprint(v); !strings.Contains(msg, "Get of a ref to a freed object") {
		t.Errorf("the panic value formatted after Detach says %q", msg)
	}
}

// TestMisuseStaleRefNeverAliases: a new object in a freed object's slot
// never answers to the old ref.
func TestMisuseStaleRefNeverAliases(t *testing.T) {
	_, m := misuseHeap(t, reclaim.Options{})
	type slotReuse struct{ V int }
	old := reclaim.New[slotReuse](m)
	old.Get(m).V = 1
	span, slot, gen := reclaim.HandleFields(old.Object())
	m.Collect()
	// The span is empty and cached by nobody: the next object of the type
	// takes its first slot again.
	r := reclaim.New[slotReuse](m)
	span2, slot2, gen2 := reclaim.HandleFields(r.Object())
	if span2 != span || slot2 != slot {
		t.Fatalf("new object at span %d slot %d, old at span %d slot %d: the test wants the slot reused", span2, slot2, span, slot)
	}
	if gen2 == gen || r == old {
		t.Fatalf("reused slot kept generation %d", gen)
	}
	r.Get(m).V = 2
	wantPanic(t, func() { old.Get(m) }, "freed object")
	if _, ok := reclaim.As[slotReuse](old.Object()); ok {
		t.Error("As accepts the stale ref")
	}
	if v := r.Get(m).V; v != 2 {
		t.Errorf("new object holds %d, want 2", v)
	}
}

func TestMisuseForeignRef(t *testing.T) {
	h, m := misuseHeap(t, reclaim.Options{})
	_, m2 := misuseHeap(t, reclaim.Options{})
	r2 := reclaim.New[misuseObj](m2)
	wantPanic(t, func() { r2.Get(m) }, "Get of a ref from another heap")
	wantPanic(t, func() { h.Pin(r2.Object()) }, "Pin", "another heap")
	wantPanic(t, func() { reclaim.SetFinalizer(m, r2, nil) }, "SetFinalizer", "another heap")
	wantPanic(t, func() { reclaim.MakeWeak(m, r2) }, "MakeWeak", "another heap")
	w2 := reclaim.MakeWeak(m2, r2)
	wantPanic(t, func() { w2.Value(m) }, "Weak.Value", "another heap")
}

func TestMisuseDetachedMutator(t *testing.T) {
	h, m := misuseHeap(t, reclaim.Options{})
	r := reclaim.New[misuseObj](m)
	h.Pin(r.Object())
	defer h.Unpin(r.Object())
	w := reclaim.MakeWeak(m, r)
	m.Detach()
	wantPanic(t, func() { r.Get(m) }, "Get on a detached mutator")
	wantPanic(t, func() { reclaim.New[misuseObj](m) }, "New on a detached mutator")
	wantPanic(t, func() { reclaim.AddCleanup(m, r, func(int) {}, 1) }, "AddCleanup on a detached mutator")
	wantPanic(t, func() { reclaim.MakeWeak(m, r) }, "MakeWeak on a detached mutator")
	wantPanic(t, func() { m.Safepoint() }, "Safepoint on a detached mutator")
	wantPanic(t, func() { m.Collect() }, "Collect on a detached mutator")
	wantPanic(t, func() { m.Detach() }, "Detach on a detached mutator")
	wantPanic(t, func() { w.Value(m) }, "Weak.Value on a detached mutator")
	wantPanic(t, func() { reclaim.SetFinalizer(m, r, func(*reclaim.Mutator, reclaim.Ref[misuseObj]) {}) }, "SetFinalizer on a detached mutator")
}

// TestMisuseMutatorFromTwoGoroutines: while one goroutine is inside
// m.Collect (held at a known point: the heap's call to ScanRoots), another
// goroutine's use of m panics.
func TestMisuseMutatorFromTwoGoroutines(t *testing.T) {
	_, m, duringCollect := heldCollectHeap(t, reclaim.Options{})
	duringCollect(func() {
		wantPanic(t, func() { m.Collect() }, "mutator used from two goroutines at once", "Collect")
		wantPanic(t, func() { m.Safepoint() }, "mutator used from two goroutines at once", "Safepoint")
	})
	m.Collect() // one goroutine again: fine
}

func TestMisuseSecondFinalizer(t *testing.T) {
	_, m := misuseHeap(t, reclaim.Options{})
	r := reclaim.New[misuseObj](m)
	f := func(*reclaim.Mutator, reclaim.Ref[misuseObj]) {}
	reclaim.SetFinalizer(m, r, f)
	wantPanic(t, func() { reclaim.SetFinalizer(m, r, f) }, "SetFinalizer called twice", "misuseObj")
	reclaim.SetFinalizer(m, r, nil) // clearing, then setting again, is fine
	reclaim.SetFinalizer(m, r, f)
	reclaim.SetFinalizer(m, r, nil)
}

func TestMisuseSetFinalizerNilOrFreed(t *testing.T) {
	_, m := misuseHeap(t, reclaim.Options{})
	f := func(*reclaim.Mutator, reclaim.Ref[misuseObj]) {}
	wantPanic(t, func() { reclaim.SetFinalizer(m, reclaim.Ref[misuseObj]{}, f) }, "SetFinalizer of a nil ref")
	r := reclaim.New[misuseObj](m)
	m.Collect()
	wantPanic(t, func() { reclaim.SetFinalizer(m, r, f) }, "SetFinalizer of a ref to a freed object")
	wantPanic(t, func() { reclaim.MakeWeak(m, r) }, "MakeWeak of a ref to a freed object")
}

func TestMisuseUnpinNotPinned(t *testing.T) {
	h, m := misuseHeap(t, reclaim.Options{})
	r := reclaim.New[misuseObj](m)
	wantPanic(t, func() { h.Unpin(r.Object()) }, "Unpin of an object that is not pinned")
	h.Pin(r.Object())
	h.Unpin(r.Object())
	wantPanic(t, func() { h.Unpin(r.Object()) }, "not pinned")
	wantPanic(t, func() { h.Pin(reclaim.Object{}) }, "Pin of a nil ref")
	m.Collect()
	wantPanic(t, func() { h.Pin(r.Object()) }, "Pin of a ref to a freed object")
}

// TestMisusePinAfterClose: once Close has released the objects, Pin and
// Unpin panic saying the heap is closed, also for a pin Close dropped
// (before, Unpin said it was not pinned or named a freed object).
func TestMisusePinAfterClose(t *testing.T) {
	h, m := misuseHeap(t, reclaim.Options{})
	r := reclaim.New[misuseObj](m)
	h.Pin(r.Object())
	m.Detach()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	wantPanic(t, func() { h.Unpin(r.Object()) }, "reclaim: Unpin on a closed heap")
	wantPanic(t, func() { h.Pin(r.Object()) }, "reclaim: Pin on a closed heap")
	wantPanic(t, func() { h.Pin(reclaim.Object{}) }, "reclaim: Pin on a closed heap")
}

func TestMisuseCleanupArgIsObject(t *testing.T) {
	_, m := misuseHeap(t, reclaim.Options{})
	r := reclaim.New[misuseObj](m)
	wantPanic(t, func() {
		reclaim.AddCleanup(m, r, func(reclaim.Ref[misuseObj]) {}, r)
	}, "AddCleanup", "arg is the object itself")
	wantPanic(t, func() {
		reclaim.AddCleanup(m, r, func(reclaim.Object) {}, r.Object())
	}, "AddCleanup", "arg is the object itself")
	wantPanic(t, func() {
		reclaim.AddCleanup[misuseObj, int](m, r, nil, 0)
	}, "AddCleanup with a nil cleanup function")
}

// ignore is a cleanup function for any argument type: one whose argument
// holds a WeakMap by value, written as a func literal, is a copy that go
// vet's copylocks check reports (WeakMap holds a noCopy).
func ignore[T any](T) {}

// A cleanup's argument that holds a WeakMap by value, or is one, would
// keep the table's keys alive until the cleanup has run (the argument is
// scanned as an object's fields are): AddCleanup panics, as New does for
// such a type. A Ref to a WeakMap is the way.
func TestMisuseCleanupArgHoldsWeakMap(t *testing.T) {
	h, m := misuseHeap(t, reclaim.Options{GCPercent: -1})
	r := reclaim.New[misuseObj](m)
	h.Pin(r.Object())
	defer h.Unpin(r.Object())
	wantPanic(t, func() {
		reclaim.AddCleanup(m, r, ignore[weakMapField], weakMapField{})
	}, "reclaim: AddCleanup: arg type reclaim_test.weakMapField holds a WeakMap by value (field Tab: reclaim.WeakMap[")
	wantPanic(t, func() {
		reclaim.AddCleanup(m, r, ignore[weakMapDeep], weakMapDeep{})
	}, "reclaim: AddCleanup: arg type", "holds a WeakMap by value (field Scopes: element: field Names: element: reclaim.WeakMap[")
	wantPanic(t, func() {
		reclaim.AddCleanup(m, r, ignore[reclaim.WeakMap[misuseObj, int]], reclaim.WeakMap[misuseObj, int]{})
	}, "reclaim: AddCleanup: arg type reclaim.WeakMap[", "holds a WeakMap by value (itself)")
	// Asked again, the type panics again: a refused type caches nothing.
	wantPanic(t, func() {
		reclaim.AddCleanup(m, r, ignore[weakMapField], weakMapField{})
	}, "reclaim: AddCleanup: arg type reclaim_test.weakMapField holds a WeakMap by value")
	// A Ref to a WeakMap is an argument like any other.
	tab := reclaim.New[reclaim.WeakMap[misuseObj, reclaim.Ref[misuseObj]]](m)
	reclaim.AddCleanup(m, r, func(weakMapByRef) {}, weakMapByRef{Tab: tab})
}

func TestMisuseAddExternalNegative(t *testing.T) {
	h, _ := misuseHeap(t, reclaim.Options{})
	h.AddExternal(100)
	wantPanic(t, func() { h.AddExternal(-101) }, "AddExternal(-101)", "negative")
	if e := h.Stats().ExternalBytes; e != 100 {
		t.Errorf("ExternalBytes = %d after a refused AddExternal, want 100", e)
	}
	h.AddExternal(-100)
}

func TestMisuseAddExternalOverflow(t *testing.T) {
	h, _ := misuseHeap(t, reclaim.Options{})
	h.AddExternal(100)
	wantPanic(t, func() { h.AddExternal(math.MaxInt64 - 99) }, "AddExternal(", "overflows")
	if e := h.Stats().ExternalBytes; e != 100 {
		t.Errorf("ExternalBytes = %d after a refused AddExternal, want 100", e)
	}
	h.AddExternal(-100)
}

func TestMisuseCloseTwice(t *testing.T) {
	h, m := misuseHeap(t, reclaim.Options{})
	m.Detach()
	if err := h.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	err := h.Close()
	if err == nil {
		t.Fatal("second Close returned nil")
	}
	if msg := err.Error(); msg != "reclaim: Close called twice" {
		t.Errorf("second Close: %q", msg)
	}
}

func TestMisuseAttachAfterClose(t *testing.T) {
	h, m := misuseHeap(t, reclaim.Options{})
	m.Detach()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	wantPanic(t, func() { h.Attach() }, "Attach on a closed heap")
}

// A mutator left attached when its heap closes: its refs and weak refs
// answer as into freed objects, Collect does nothing, and New panics rather
// than give the closed heap memory again.
func TestMisuseNewAfterClose(t *testing.T) {
	h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, Logger: quietLogger()})
	m := h.Attach()
	defer m.Detach()
	r := reclaim.New[misuseObj](m)
	h.Pin(r.Object())
	w := reclaim.MakeWeak(m, r)
	lw := reclaim.MakeLongWeak(m, r)
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wantPanic(t, func() { _ = r.Get(m) }, "freed object")
	if got := w.Value(m); !got.IsNil() {
		t.Errorf("Weak.Value after Close = %v, want nil", got)
	}
	if got := lw.Value(m); !got.IsNil() {
		t.Errorf("LongWeak.Value after Close = %v, want nil", got)
	}
	if _, ok := reclaim.As[misuseObj](r.Object()); ok {
		t.Errorf("As succeeds on a ref into a closed heap")
	}
	m.Collect() // no collection once Close has begun
	wantPanic(t, func() { _ = reclaim.New[misuseObj](m) }, "New on a closed heap")
	if st := h.Stats(); st.SpanBytes != 0 {
		t.Errorf("the closed heap holds %d span bytes after a New on a mutator left attached", st.SpanBytes)
	}
}

func TestMisuseNegativeOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts reclaim.Options
		want string
	}{
		{"MemoryLimit", reclaim.Options{MemoryLimit: -1}, "negative MemoryLimit"},
		{"MarkWorkers", reclaim.Options{MarkWorkers: -1}, "negative MarkWorkers"},
		{"CleanupWorkers", reclaim.Options{CleanupWorkers: -2}, "negative"},
		{"FinalizerBudget", reclaim.Options{FinalizerBudget: -1}, "negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantPanic(t, func() {
				h := reclaim.NewHeap(tt.opts)
				h.Close() // not reached
			}, tt.want)
		})
	}
}

// TestMisuseStaleRefStored: a ref kept across a safepoint cannot be caught
// when it is stored, only when it is used; the collector counts such refs
// (and refs of another heap) found in live objects, and logs them.
func TestMisuseStaleRefStored(t *testing.T) {
	h, m := misuseHeap(t, reclaim.Options{})
	_, m2 := misuseHeap(t, reclaim.Options{})
	stale := reclaim.New[misuseObj](m)
	m.Collect()
	holder := reclaim.New[misuseObj](m)
	h.Pin(holder.Object())
	defer h.Unpin(holder.Object())
	holder.Get(m).Ref = stale
	m.Collect()
	if n := h.Stats().StaleRefsInMark; n != 1 {
		t.Errorf("StaleRefsInMark = %d, want 1", n)
	}
	wantPanic(t, func() { holder.Get(m).Ref.Get(m) }, "freed object")

	holder.Get(m).Ref = reclaim.New[misuseObj](m2)
	m.Collect()
	if n := h.Stats().ForeignRefsInMark; n != 1 {
		t.Errorf("ForeignRefsInMark = %d, want 1", n)
	}
	wantPanic(t, func() { holder.Get(m).Ref.Get(m) }, "another heap")
}

// TestMisuseMemoryLimit: New past the limit panics with an error wrapping
// ErrMemoryLimit (TryNew returns it; see TestMemoryLimit).
func TestMisuseMemoryLimit(t *testing.T) {
	h, m := misuseHeap(t, reclaim.Options{MemoryLimit: 64 << 10})
	h.AddExternal(64 << 10)
	defer h.AddExternal(-64 << 10)
	wantPanic(t, func() { reclaim.New[misuseObj](m) }, "New[reclaim_test.misuseObj]", "memory limit")
}

type (
	weakMapField struct {
		ID  int
		Tab reclaim.WeakMap[misuseObj, reclaim.Ref[misuseObj]]
	}
	weakMapDeep struct {
		Scopes [2]struct {
			Names []reclaim.WeakMap[misuseObj, int]
		}
	}
	weakMapByRef struct {
		Tab reclaim.Ref[reclaim.WeakMap[misuseObj, reclaim.Ref[misuseObj]]]
	}
)

// A WeakMap held by value inside another object would keep its keys and
// values alive like any field's (its own fields hold refs), and its dead
// entries would never be pruned: New panics instead, saying where the
// WeakMap is. A Ref to a WeakMap is the way, and New of a WeakMap itself is
// fine.
func TestMisuseWeakMapByValue(t *testing.T) {
	_, m := misuseHeap(t, reclaim.Options{})
	wantPanic(t, func() { reclaim.New[weakMapField](m) }, "weakMapField holds a WeakMap by value (field Tab: reclaim.WeakMap[")
	wantPanic(t, func() { reclaim.New[weakMapDeep](m) }, "holds a WeakMap by value (field Scopes: element: field Names: element: reclaim.WeakMap[")
	wantPanic(t, func() { reclaim.New[[]reclaim.WeakMap[misuseObj, int]](m) }, "holds a WeakMap by value (element: reclaim.WeakMap[")
	// Asked again, the type panics again: a failed registration caches nothing.
	wantPanic(t, func() { reclaim.New[weakMapField](m) }, "weakMapField holds a WeakMap by value")
	r := reclaim.New[weakMapByRef](m)
	r.Get(m).Tab = reclaim.New[reclaim.WeakMap[misuseObj, reclaim.Ref[misuseObj]]](m)
	r.Get(m).Tab.Get(m).Set(reclaim.New[misuseObj](m), reclaim.Ref[misuseObj]{})
	if n := r.Get(m).Tab.Get(m).Len(); n != 1 {
		t.Fatalf("Len %d, want 1", n)
	}
}

// A WeakMap key that is freed, or of another heap than the table's,
// panics in Set, Get, Has and Delete as every other use of such a ref does
// (Set took it, and the next collection deleted the entry, dropping its
// value, as if its key had died).
func TestMisuseWeakMapKey(t *testing.T) {
	h, m := misuseHeap(t, reclaim.Options{})
	_, m2 := misuseHeap(t, reclaim.Options{})
	tab := reclaim.New[reclaim.WeakMap[misuseObj, int]](m)
	h.Pin(tab.Object())
	defer h.Unpin(tab.Object())
	stale := reclaim.New[misuseObj](m)
	m.Collect()
	tm := tab.Get(m)
	wantPanic(t, func() { tm.Set(stale, 1) }, "WeakMap.Set of a ref to a freed object")
	wantPanic(t, func() { tm.Get(stale) }, "WeakMap.Get of a ref to a freed object")
	wantPanic(t, func() { tm.Has(stale) }, "WeakMap.Has of a ref to a freed object")
	wantPanic(t, func() { tm.Delete(stale) }, "WeakMap.Delete of a ref to a freed object")
	if n := tm.Len(); n != 0 {
		t.Errorf("Len %d after refused Sets, want 0", n)
	}

	k := reclaim.New[misuseObj](m)
	tm.Set(k, 1)
	foreign := reclaim.New[misuseObj](m2)
	wantPanic(t, func() { tm.Set(foreign, 2) }, "WeakMap.Set of a ref from another heap")
	wantPanic(t, func() { tm.Get(foreign) }, "WeakMap.Get of a ref from another heap")
	wantPanic(t, func() { tm.Has(foreign) }, "WeakMap.Has of a ref from another heap")
	wantPanic(t, func() { tm.Delete(foreign) }, "WeakMap.Delete of a ref from another heap")
	if v, ok := tm.Get(k); !ok || v != 1 || tm.Len() != 1 {
		t.Errorf("Get(k) = %d, %v with Len %d; want 1, true with Len 1", v, ok, tm.Len())
	}
	// k took stale's slot; stale names the freed object still.
	if slotOf(k.Object()) != slotOf(stale.Object()) {
		t.Fatalf("k is %v, not in the slot of the freed %v", k, stale)
	}
	wantPanic(t, func() { tm.Set(stale, 3) }, "WeakMap.Set of a ref to a freed object")
	if v, ok := tm.Get(k); !ok || v != 1 || tm.Len() != 1 {
		t.Errorf("after a refused Set, Get(k) = %d, %v with Len %d; want 1, true with Len 1", v, ok, tm.Len())
	}
}

// A table knows its heap from New on: a key of another heap is refused
// from the first Set on (the table took the heap of its first key as its
// own, and then refused its own heap's keys), and by a table whose slot
// held a freed table before; a refused Set leaves the table as it was.
func TestMisuseWeakMapForeignFirstKey(t *testing.T) {
	h, m := misuseHeap(t, reclaim.Options{GCPercent: -1})
	_, m2 := misuseHeap(t, reclaim.Options{GCPercent: -1})
	foreign := reclaim.New[misuseObj](m2)
	type table = reclaim.WeakMap[misuseObj, reclaim.Ref[misuseObj]]
	for _, reuse := range []bool{false, true} {
		var freed reclaim.Ref[table]
		if reuse {
			freed = reclaim.New[table](m) // freed by the collection: its slot is the next table's
			m.Collect()
		}
		tab := reclaim.New[table](m)
		h.Pin(tab.Object())
		if reuse && slotOf(tab.Object()) != slotOf(freed.Object()) {
			t.Fatalf("the table is %v, not in the slot of the freed %v", tab, freed)
		}
		k, v := reclaim.New[misuseObj](m), reclaim.New[misuseObj](m)
		tm := tab.Get(m)
		wantPanic(t, func() { tm.Set(foreign, v) }, "WeakMap.Set of a ref from another heap")
		wantPanic(t, func() { tm.Get(foreign) }, "WeakMap.Get of a ref from another heap")
		wantPanic(t, func() { tm.Has(foreign) }, "WeakMap.Has of a ref from another heap")
		wantPanic(t, func() { tm.Delete(foreign) }, "WeakMap.Delete of a ref from another heap")
		if n := tm.Len(); n != 0 {
			t.Errorf("reused slot %v: Len %d after a refused Set, want 0", reuse, n)
		}
		if pv, panicked := panicValue(func() { tm.Set(k, v) }); panicked {
			t.Fatalf("reused slot %v: Set of a key of the table's own heap panicked: %v", reuse, pv)
		}
		if got, ok := tm.Get(k); !ok || got != v || tm.Len() != 1 {
			t.Errorf("reused slot %v: Get(k) = %v, %v with Len %d; want %v, true with Len 1", reuse, got, ok, tm.Len(), v)
		}
		wantPanic(t, func() { tm.Set(foreign, v) }, "WeakMap.Set of a ref from another heap")
		if got, ok := tm.Get(k); !ok || got != v || tm.Len() != 1 {
			t.Errorf("reused slot %v: after a refused Set, Get(k) = %v, %v with Len %d; want %v, true with Len 1", reuse, got, ok, tm.Len(), v)
		}
		h.Pin(k.Object())
		h.Pin(v.Object())
	}
}

// TestMisuseFinalizerDetachesItsMutator: the mutator a finalizer is given
// on the finalizer goroutine, or on Close's caller, is the heap's own; a
// finalizer's Detach of it panics, and the finalizer's panic is contained
// like any other. The mutator stays attached and usable.
func TestMisuseFinalizerDetachesItsMutator(t *testing.T) {
	h, m := misuseHeap(t, reclaim.Options{GCPercent: -1})
	msgs := make(chan string, 2)
	fin := func(fm *reclaim.Mutator, _ reclaim.Ref[misuseObj]) {
		v, panicked := panicValue(fm.Detach)
		if !panicked {
			msgs <- "no panic"
			return
		}
		msg, _ := panicText(v)
		reclaim.New[misuseObj](fm) // still attached
		msgs <- msg
	}
	reclaim.SetFinalizer(m, reclaim.New[misuseObj](m), fin) // unreachable: the finalizer goroutine runs it
	keep := reclaim.New[misuseObj](m)
	h.Pin(keep.Object()) // alive at Close, which runs its finalizer itself
	reclaim.SetFinalizer(m, keep, fin)
	m.Collect()
	for _, where := range []string{"on the finalizer goroutine", "run by Close"} {
		if where == "run by Close" {
			m.Detach()
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if msg := <-msgs; !strings.HasPrefix(msg, "reclaim:") || !strings.Contains(msg, "Detach") {
			t.Errorf("a finalizer's Detach of its mutator %s: %q, want a reclaim: panic", where, msg)
		}
	}
}

// TestMisuseMutatorFromTwoGoroutinesFastPaths: SetFinalizer and AddCleanup
// of an object on a swept span whose tables exist take no slow path; while
// another goroutine is inside m.Collect (held in ScanRoots, the world
// stopped), they panic all the same instead of writing the tables the
// mark reads.
func TestMisuseMutatorFromTwoGoroutinesFastPaths(t *testing.T) {
	h, m, duringCollect := heldCollectHeap(t, reclaim.Options{GCPercent: -1})
	fin := func(*reclaim.Mutator, reclaim.Ref[misuseObj]) {}
	r1, r2 := reclaim.New[misuseObj](m), reclaim.New[misuseObj](m) // one span
	h.Pin(r1.Object())
	h.Pin(r2.Object())
	reclaim.SetFinalizer(m, r1, fin) // the span's finalizer and cleanup tables
	reclaim.AddCleanup(m, r1, func(int) {}, 1)
	duringCollect(func() {
		wantPanic(t, func() { reclaim.SetFinalizer(m, r2, fin) }, "mutator used from two goroutines at once", "SetFinalizer")
		wantPanic(t, func() { reclaim.AddCleanup(m, r2, func(int) {}, 2) }, "mutator used from two goroutines at once", "AddCleanup")
	})
	reclaim.SetFinalizer(m, r1, nil) // one goroutine again: fine
	h.Unpin(r1.Object())
	h.Unpin(r2.Object())
}

// slotOf returns the heap, span and slot o names, without its generation.
func slotOf(o reclaim.Object) string {
	s, _, _ := strings.Cut(o.String(), " gen ")
	return s
}

// A WeakMap of one heap given a key of another: Set refuses it
// (TestMisuseWeakMapKey), but a table the program zeroed has forgotten its
// heap and takes any first key. Its entry cannot be kept (the mark cannot
// tell whether the key lives), and the mark deletes it. It counts the key
// as a foreign ref, as it counts one in a field, so that the loss is
// reported rather than silent.
func TestMisuseWeakMapForeignKey(t *testing.T) {
	h, m := misuseHeap(t, reclaim.Options{GCPercent: -1})
	h2, m2 := misuseHeap(t, reclaim.Options{GCPercent: -1})
	for _, refs := range []bool{false, true} {
		k := reclaim.New[misuseObj](m2)
		h2.Pin(k.Object())
		before := h.Stats().ForeignRefsInMark
		if refs {
			tab := reclaim.New[reclaim.WeakMap[misuseObj, reclaim.Ref[misuseObj]]](m)
			h.Pin(tab.Object())
			*tab.Get(m) = reclaim.WeakMap[misuseObj, reclaim.Ref[misuseObj]]{}
			tab.Get(m).Set(k, reclaim.New[misuseObj](m))
		} else {
			tab := reclaim.New[reclaim.WeakMap[misuseObj, int]](m)
			h.Pin(tab.Object())
			*tab.Get(m) = reclaim.WeakMap[misuseObj, int]{}
			tab.Get(m).Set(k, 1)
		}
		m.Collect()
		if d := h.Stats().ForeignRefsInMark - before; d != 1 {
			t.Errorf("values with refs %v: ForeignRefsInMark grew by %d, want 1 (the key of another heap whose entry the mark deleted)", refs, d)
		}
	}
}

// promoInner is a Tracer that knows only its own ref.
type promoInner struct{ own reclaim.Ref[misuseObj] }

func (p *promoInner) Trace(visit func(reclaim.Object)) { visit(p.own.Object()) }

type (
	// promoLoses embeds promoInner: the promoted Trace would not visit r.
	promoLoses struct {
		promoInner
		r reclaim.Ref[misuseObj]
	}
	// promoLosesByPointer embeds it by pointer: the same.
	promoLosesByPointer struct {
		*promoInner
		list []reclaim.Object
	}
	// promoHarmless embeds it and holds no other ref: nothing is lost.
	promoHarmless struct {
		promoInner
		n int
	}
	// promoDeclared embeds it and declares its own Trace.
	promoDeclared struct {
		promoInner
		r reclaim.Ref[misuseObj]
	}
)

func (p *promoDeclared) Trace(visit func(reclaim.Object)) {
	p.promoInner.Trace(visit)
	visit(p.r.Object())
}

// A Trace method promoted from an embedded field (docs/API.md, Tracer rule
// 5) that leaves refs of the outer type unvisited is refused where the type
// is first used, as an object's type or as a cleanup argument's: those
// refs' objects would otherwise be freed while the outer object holds them.
// A promotion that loses no ref, and a type that declares its own Trace,
// are accepted.
func TestMisusePromotedTrace(t *testing.T) {
	h, m := misuseHeap(t, reclaim.Options{})
	wantPanic(t, func() { reclaim.New[promoLoses](m) }, "promoLoses's Trace method is promoted from its embedded field promoInner", "field r")
	wantPanic(t, func() { reclaim.New[promoLoses](m) }, "promoted") // refused again, not registered
	wantPanic(t, func() { reclaim.New[promoLosesByPointer](m) }, "embedded field promoInner", "field list")
	obj := reclaim.New[misuseObj](m)
	wantPanic(t, func() { reclaim.AddCleanup(m, obj, func(promoLoses) {}, promoLoses{}) }, "promoted from its embedded field promoInner")

	// Accepted: the promoted Trace is the whole story, or T has its own,
	// which the collector calls (what only d.r holds survives).
	reclaim.New[promoHarmless](m)
	d := reclaim.New[promoDeclared](m)
	h.Pin(d.Object())
	defer h.Unpin(d.Object())
	d.Get(m).r = reclaim.New[misuseObj](m)
	m.Collect()
	d.Get(m).r.Get(m) // panics if the collector did not see d.r
}
