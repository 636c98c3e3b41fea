package reclaim_test

import (
	"testing"

	"github.com/reclaimgc/reclaim"
)

type wmeLeaf struct{ v int }

// wmeTable embeds a WeakMap: it holds one by value, as a field. Were it
// taken for an ephemeron table of its own, the refs in its other fields
// would never be scanned.
type wmeTable struct {
	reclaim.WeakMap[wmeLeaf, int]
	Extra reclaim.Ref[wmeLeaf]
}

// wmePtrTable embeds a pointer to a WeakMap: a Go pointer, opaque to the
// collector like any other, not an ephemeron table.
type wmePtrTable struct {
	*reclaim.WeakMap[wmeLeaf, int]
	Extra reclaim.Ref[wmeLeaf]
}

type wmeOuter struct {
	N int
	T wmeTable
}

func TestMisuseWeakMapEmbedded(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	wantPanic(t, func() { reclaim.New[wmeTable](m) }, "wmeTable holds a WeakMap by value (field WeakMap: reclaim.WeakMap[")
	wantPanic(t, func() { reclaim.New[wmeOuter](m) }, "wmeOuter holds a WeakMap by value (field T: ")
	wantPanic(t, func() { reclaim.New[[]wmeTable](m) }, "holds a WeakMap by value (element: ")
	// WeakMap itself is still an object of its own.
	tab := reclaim.New[reclaim.WeakMap[wmeLeaf, int]](m)
	tab.Get(m).Set(reclaim.New[wmeLeaf](m), 1)
}

// A type embedding a *WeakMap is an ordinary object: its refs are found by
// reflection, and the collection does not take it for a table (whose
// entries it would read through the pointer, nil here).
func TestWeakMapPointerEmbedded(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	r := reclaim.New[wmePtrTable](m)
	h.Pin(r.Object())
	defer h.Unpin(r.Object())
	leaf := reclaim.New[wmeLeaf](m)
	r.Get(m).Extra = leaf
	if v, p := panicValue(m.Collect); p {
		t.Fatalf("Collect panicked: %v", v)
	}
	if !isLive(leaf) {
		t.Fatal("a ref in a field of a type embedding a *WeakMap was freed")
	}
}

// wmePtrHolder holds a wmePtrTable by value: it holds a *WeakMap, a Go
// pointer, and no WeakMap by value.
type wmePtrHolder struct {
	P wmePtrTable
	N int
}

// A type holding, by value, a type that embeds a *WeakMap is an ordinary
// object as wmePtrTable itself is: the *WeakMap's promoted methods do not
// make it a WeakMap held by value.
func TestWeakMapPointerEmbeddedNested(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	if v, p := panicValue(func() { reclaim.New[wmePtrHolder](m) }); p {
		t.Fatalf("New of a type holding a wmePtrTable by value panicked: %v", v)
	}
	if v, p := panicValue(func() { reclaim.New[[]wmePtrTable](m) }); p {
		t.Fatalf("New of a slice of wmePtrTable panicked: %v", v)
	}
}

// A WeakMap whose values hold a WeakMap by value: the inner table would be
// scanned as the entry's value is, like any field, its keys kept alive (as
// strong refs) while the outer entry's key lives, and its dead entries
// never pruned. New refuses it, as it refuses any other type holding a
// WeakMap by value.
func TestMisuseWeakMapInWeakMapValues(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	wantPanic(t, func() { reclaim.New[reclaim.WeakMap[wmeLeaf, reclaim.WeakMap[wmeLeaf, int]]](m) }, "holds a WeakMap by value (values: reclaim.WeakMap[")
	wantPanic(t, func() { reclaim.New[reclaim.WeakMap[wmeLeaf, []wmeOuter]](m) }, "holds a WeakMap by value (values: element: field T: ")
	// Values holding a Ref to a WeakMap, or a pointer to one, are fine.
	reclaim.New[reclaim.WeakMap[wmeLeaf, reclaim.Ref[reclaim.WeakMap[wmeLeaf, int]]]](m)
	reclaim.New[reclaim.WeakMap[wmeLeaf, wmePtrTable]](m)
}
