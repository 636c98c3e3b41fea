package reclaim_test

import (
	"sync/atomic"
	"testing"

	"github.com/reclaimgc/reclaim"
)

// Tests of weak references: weak.Pointer's documented rules and the product
// brief's "Weak references" section, plus LongWeak.

// weakHolder keeps weak references in an object.
type weakHolder struct {
	w    reclaim.Weak[finNode]
	long reclaim.LongWeak[finNode]
}

// Value returns the object while it is reachable, and nil once a cycle has
// found it unreachable; never the object again.
func TestWeakValueTracksReachability(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	r := reclaim.New[finNode](m)
	r.Get(m).id = 9
	w := reclaim.MakeWeak(m, r)
	if got := w.Value(m); got != r {
		t.Fatalf("Value of a fresh weak = %v, want %v", got, r)
	}
	h.Pin(r.Object())
	for range 3 {
		collectDrain(t, m, h)
		if got := w.Value(m); got != r || got.Get(m).id != 9 {
			t.Fatalf("Value of a weak to a pinned object = %v, want %v", got, r)
		}
	}
	h.Unpin(r.Object())
	collectDrain(t, m, h)
	if got := w.Value(m); !got.IsNil() {
		t.Fatalf("Value after the object was collected = %v, want nil", got)
	}
	if isLive(r) {
		t.Fatalf("object is live after a cycle found it unreachable")
	}
	// Slots are reused; the weak never names a new object.
	for range 100 {
		n := reclaim.New[finNode](m)
		h.Pin(n.Object())
		defer h.Unpin(n.Object())
	}
	collectDrain(t, m, h)
	if got := w.Value(m); !got.IsNil() {
		t.Fatalf("Value after slot reuse = %v, want nil", got)
	}
}

// Value is nil without a collection in between for a weak made from nil,
// and the zero Weak and LongWeak are nil.
func TestWeakZeroAndNil(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	var zero reclaim.Weak[finNode]
	if !zero.Value(m).IsNil() {
		t.Errorf("zero Weak Value is not nil")
	}
	var zeroLong reclaim.LongWeak[finNode]
	if !zeroLong.Value(m).IsNil() {
		t.Errorf("zero LongWeak Value is not nil")
	}
	if w := reclaim.MakeWeak(m, reclaim.Ref[finNode]{}); w != zero || !w.Value(m).IsNil() {
		t.Errorf("MakeWeak(nil) = %v, want the zero Weak", w)
	}
	if w := reclaim.MakeLongWeak(m, reclaim.Ref[finNode]{}); w != zeroLong || !w.Value(m).IsNil() {
		t.Errorf("MakeLongWeak(nil) = %v, want the zero LongWeak", w)
	}
}

// "Two Pointer values compare equal if and only if the pointers from which
// they were created compare equal. This property is maintained even after the
// object referenced by the pointer used to create a weak reference is
// reclaimed."
func TestWeakEquality(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	a, b := reclaim.New[finNode](m), reclaim.New[finNode](m)
	wa1, wa2 := reclaim.MakeWeak(m, a), reclaim.MakeWeak(m, a)
	wb := reclaim.MakeWeak(m, b)
	if wa1 != wa2 {
		t.Errorf("two Weak of one object are not equal")
	}
	if wa1 == wb {
		t.Errorf("Weak of two objects are equal")
	}
	la1, la2, lb := reclaim.MakeLongWeak(m, a), reclaim.MakeLongWeak(m, a), reclaim.MakeLongWeak(m, b)
	if la1 != la2 || la1 == lb {
		t.Errorf("LongWeak equality: same object %v (want true), different objects %v (want false)", la1 == la2, la1 == lb)
	}
	// Zero-size objects are distinct objects too.
	z1, z2 := reclaim.New[zeroObj](m), reclaim.New[zeroObj](m)
	if reclaim.MakeWeak(m, z1) == reclaim.MakeWeak(m, z2) {
		t.Errorf("Weak of two zero-size objects are equal")
	}

	h.Pin(b.Object())
	defer h.Unpin(b.Object())
	collectDrain(t, m, h) // a is freed
	if !wa1.Value(m).IsNil() {
		t.Fatalf("weak of a freed object is not nil")
	}
	if wa1 != wa2 || wa1 == wb {
		t.Errorf("equality changed after the object was freed")
	}
	// A weak made now, from a new object (possibly in a's slot), differs.
	var fresh []reclaim.Weak[finNode]
	for range 50 {
		n := reclaim.New[finNode](m)
		w := reclaim.MakeWeak(m, n)
		if w == wa1 {
			t.Fatalf("a new object's Weak equals a freed object's")
		}
		fresh = append(fresh, w)
	}
	for i, w := range fresh {
		for _, v := range fresh[i+1:] {
			if w == v {
				t.Fatalf("Weak of two live objects are equal")
			}
		}
	}
}

// "If a weak pointer points to an object with a finalizer, then Value will
// return nil as soon as the object's finalizer is queued for execution":
// the finalizer still finds its object intact, and the weak never returns
// the object again, even after resurrection. A Weak made after resurrection
// is new and unequal.
func TestWeakNilOnceFinalizerQueued(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	holder := reclaim.New[finHolder](m)
	h.Pin(holder.Object())
	defer h.Unpin(holder.Object())

	r := reclaim.New[finNode](m)
	r.Get(m).id = 31
	w := reclaim.MakeWeak(m, r)
	lw := reclaim.MakeLongWeak(m, r)
	var runs, weakNil, longOK, objOK atomic.Int32
	reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		runs.Add(1)
		if w.Value(fm).IsNil() {
			weakNil.Add(1)
		}
		if lw.Value(fm) == x {
			longOK.Add(1)
		}
		if x.Get(fm).id == 31 {
			objOK.Add(1)
		}
		holder.Get(fm).obj = x // resurrect
	})

	collectDrain(t, m, h)
	if runs.Load() != 1 || weakNil.Load() != 1 || longOK.Load() != 1 || objOK.Load() != 1 {
		t.Fatalf("in the finalizer: runs %d, weak nil %d, long weak valid %d, object intact %d; want 1 each",
			runs.Load(), weakNil.Load(), longOK.Load(), objOK.Load())
	}
	// Resurrected: the object is valid, the weak stays nil for good.
	for range 2 {
		if !w.Value(m).IsNil() {
			t.Fatalf("weak returned a resurrected object")
		}
		if got := lw.Value(m); got != r {
			t.Fatalf("long weak of a resurrected object = %v, want %v", got, r)
		}
		if got := holder.Get(m).obj; got != r || got.Get(m).id != 31 {
			t.Fatalf("resurrected object not intact")
		}
		collectDrain(t, m, h)
	}
	w2 := reclaim.MakeWeak(m, r)
	if w2 == w {
		t.Fatalf("a Weak made after resurrection equals the one made before")
	}
	if got := w2.Value(m); got != r {
		t.Fatalf("Value of a Weak made after resurrection = %v, want %v", got, r)
	}
	if lw2 := reclaim.MakeLongWeak(m, r); lw2 != lw {
		t.Errorf("a LongWeak made after resurrection differs from the one made before")
	}

	// Dropped for good: everything goes nil together, and stays nil.
	holder.Get(m).obj = reclaim.Ref[finNode]{}
	collectDrain(t, m, h)
	if !w.Value(m).IsNil() || !w2.Value(m).IsNil() || !lw.Value(m).IsNil() {
		t.Fatalf("after the object was freed: weak %v, new weak %v, long weak %v; want all nil",
			w.Value(m), w2.Value(m), lw.Value(m))
	}
	if isLive(r) {
		t.Fatalf("object live after being dropped")
	}
	if runs.Load() != 1 {
		t.Fatalf("finalizer ran %d times, want 1", runs.Load())
	}
}

// Without resurrection: the weak goes nil when the finalizer is queued, the
// long weak when the object is freed one cycle later.
func TestLongWeakNilOnlyWhenFreed(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	r := reclaim.New[finNode](m)
	w, lw := reclaim.MakeWeak(m, r), reclaim.MakeLongWeak(m, r)
	var runs atomic.Int32
	reclaim.SetFinalizer(m, r, counter(&runs))
	collectDrain(t, m, h)
	if runs.Load() != 1 {
		t.Fatalf("finalizer ran %d times, want 1", runs.Load())
	}
	if !w.Value(m).IsNil() {
		t.Errorf("weak not nil after the finalizer was queued")
	}
	if got := lw.Value(m); got != r {
		t.Errorf("long weak = %v before the object was freed, want %v", got, r)
	}
	collectDrain(t, m, h)
	if !lw.Value(m).IsNil() {
		t.Errorf("long weak not nil after the object was freed")
	}

	// Without a finalizer, both go nil in the cycle that frees the object.
	r2 := reclaim.New[finNode](m)
	w2, lw2 := reclaim.MakeWeak(m, r2), reclaim.MakeLongWeak(m, r2)
	collectDrain(t, m, h)
	if !w2.Value(m).IsNil() || !lw2.Value(m).IsNil() {
		t.Errorf("after the object was freed: weak %v, long weak %v; want nil, nil", w2.Value(m), lw2.Value(m))
	}
}

// A Weak or LongWeak field inside an object does not keep its target alive.
func TestWeakFieldDoesNotKeepAlive(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	holder := reclaim.New[weakHolder](m)
	h.Pin(holder.Object())
	defer h.Unpin(holder.Object())
	target := reclaim.New[finNode](m)
	holder.Get(m).w = reclaim.MakeWeak(m, target)
	holder.Get(m).long = reclaim.MakeLongWeak(m, target)
	if holder.Get(m).w.Value(m) != target || holder.Get(m).long.Value(m) != target {
		t.Fatalf("weak fields do not name their target before a collection")
	}
	collectDrain(t, m, h)
	if isLive(target) {
		t.Fatalf("an object referenced only by weak fields survived a cycle")
	}
	if !holder.Get(m).w.Value(m).IsNil() || !holder.Get(m).long.Value(m).IsNil() {
		t.Fatalf("weak fields not nil after their target was freed")
	}

	// The same through a cleanup argument: a weak argument keeps nothing.
	target2 := reclaim.New[finNode](m)
	var runs atomic.Int32
	reclaim.AddCleanup(m, reclaim.New[finNode](m), func(reclaim.Weak[finNode]) { runs.Add(1) }, reclaim.MakeWeak(m, target2))
	collectDrain(t, m, h)
	if isLive(target2) || runs.Load() != 1 {
		t.Fatalf("target of a weak cleanup argument live %v (want false), cleanup ran %d (want 1)", isLive(target2), runs.Load())
	}
}

// Weak handles to objects in a finalizable chain: each goes nil in the cycle
// that queues its object's finalizer, not before.
func TestWeakFinalizerChain(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	a, b := reclaim.New[finNode](m), reclaim.New[finNode](m)
	a.Get(m).next = b
	var runs atomic.Int32
	reclaim.SetFinalizer(m, a, counter(&runs))
	reclaim.SetFinalizer(m, b, counter(&runs))
	wa, wb := reclaim.MakeWeak(m, a), reclaim.MakeWeak(m, b)

	collectDrain(t, m, h)
	if !wa.Value(m).IsNil() || wb.Value(m) != b {
		t.Fatalf("cycle 1: weak A %v (want nil), weak B %v (want B): B is still reachable from A",
			wa.Value(m), wb.Value(m))
	}
	collectDrain(t, m, h)
	if !wb.Value(m).IsNil() || runs.Load() != 2 {
		t.Fatalf("cycle 2: weak B %v (want nil), finalizers %d (want 2)", wb.Value(m), runs.Load())
	}
}
