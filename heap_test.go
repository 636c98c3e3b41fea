package reclaim_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/reclaimgc/reclaim"
)

// Types used by the heap tests.

type hPoint struct {
	X, Y int64
	Name string
}

type hLeaf struct {
	ID int
}

type hInner struct {
	R reclaim.Ref[hLeaf]
}

// hHolder keeps leaves through every kind of field the collector follows,
// and one it must not follow (W).
type hHolder struct {
	Direct reclaim.Ref[hLeaf]
	Arr    [3]reclaim.Ref[hLeaf]
	Slice  []reclaim.Ref[hLeaf]
	Nested struct{ In [2]hInner }
	Inners []hInner
	Obj    reclaim.Object
	W      reclaim.Weak[hLeaf]
}

type hEmpty struct{}

// hBig is larger than a span's target size, so each object gets a span.
type hBig struct {
	Data [20 << 10]byte
}

type hNode struct {
	Next reclaim.Ref[hNode]
	V    int
}

// hTracerMap keeps its refs in a Go map, which the collector cannot see: it
// implements Tracer.
type hTracerMap struct {
	m map[string]reclaim.Ref[hLeaf]
}

func (t *hTracerMap) Trace(visit func(reclaim.Object)) {
	for _, r := range t.m {
		visit(r.Object())
	}
}

// getWorks reports whether Get on r works (it panics on a freed object).
func getWorks[T any](m *reclaim.Mutator, r reclaim.Ref[T]) bool {
	_, panicked := panicValue(func() { r.Get(m) })
	return !panicked
}

func newHLeaf(m *reclaim.Mutator, id int) reclaim.Ref[hLeaf] {
	r := reclaim.New[hLeaf](m)
	r.Get(m).ID = id
	return r
}

func TestNewGet(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{})
	m := h.Attach()
	defer m.Detach()

	var refs []reclaim.Ref[hPoint]
	for i := range 3000 {
		r := reclaim.New[hPoint](m)
		if r.IsNil() {
			t.Fatal("New returned a nil ref")
		}
		p := r.Get(m)
		if *p != (hPoint{}) {
			t.Fatalf("new object %d is not zeroed: %+v", i, *p)
		}
		*p = hPoint{X: int64(i), Y: -int64(i), Name: fmt.Sprint("p", i)}
		refs = append(refs, r)
	}
	seen := make(map[reclaim.Ref[hPoint]]bool)
	for i, r := range refs {
		if seen[r] {
			t.Fatalf("ref %v handed out twice", r)
		}
		seen[r] = true
		if got, want := *r.Get(m), (hPoint{X: int64(i), Y: -int64(i), Name: fmt.Sprint("p", i)}); got != want {
			t.Fatalf("object %d = %+v, want %+v", i, got, want)
		}
	}
	// Pinned, they survive collections with their values.
	for _, r := range refs {
		h.Pin(r.Object())
	}
	m.Collect()
	m.Collect()
	for i, r := range refs {
		if got := r.Get(m); got.X != int64(i) || got.Name != fmt.Sprint("p", i) {
			t.Fatalf("object %d after collections = %+v", i, *got)
		}
		h.Unpin(r.Object())
	}
	m.Collect()
	for _, r := range refs {
		if getWorks(m, r) {
			t.Fatalf("unpinned %v survived a collection", r)
		}
	}
	if st := h.Stats(); st.HeapObjects != 0 || st.Freed != 3000 || st.Allocated != 3000 {
		t.Errorf("stats after freeing everything: objects %d, allocated %d, freed %d", st.HeapObjects, st.Allocated, st.Freed)
	}
}

func TestZeroSizeType(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{})
	m := h.Attach()
	defer m.Detach()
	a, b := reclaim.New[hEmpty](m), reclaim.New[hEmpty](m)
	if a == b || a.IsNil() || b.IsNil() {
		t.Fatalf("zero-size objects: %v and %v, want two distinct non-nil refs", a, b)
	}
	_ = a.Get(m)
	h.Pin(a.Object())
	m.Collect()
	if !getWorks(m, a) || getWorks(m, b) {
		t.Fatalf("after Collect: pinned live %v, unpinned live %v; want true, false", getWorks(m, a), getWorks(m, b))
	}
	h.Unpin(a.Object())
}

func TestLargeType(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{})
	m := h.Attach()
	defer m.Detach()
	size := int64(len(hBig{}.Data))
	before := h.Stats().SpanBytes
	var refs []reclaim.Ref[hBig]
	for i := range 5 {
		r := reclaim.New[hBig](m)
		r.Get(m).Data[i] = byte(i + 1)
		r.Get(m).Data[len(hBig{}.Data)-1] = byte(i + 1)
		refs = append(refs, r)
	}
	if got := h.Stats().SpanBytes - before; got != 5*size {
		t.Fatalf("5 large objects take %d span bytes, want %d (one span each)", got, 5*size)
	}
	h.Pin(refs[2].Object())
	m.Collect()
	m.Collect() // spans found empty twice are released
	if got := h.Stats().SpanBytes - before; got != size {
		t.Errorf("after freeing 4 of 5 large objects: %d span bytes, want %d", got, size)
	}
	if d := refs[2].Get(m).Data; d[2] != 3 || d[len(d)-1] != 3 {
		t.Errorf("large object's contents changed")
	}
	h.Unpin(refs[2].Object())
}

// TestReferenceFields checks that the collector follows refs in every kind
// of field, one field at a time, and not weak refs.
func TestReferenceFields(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{})
	m := h.Attach()
	defer m.Detach()

	hr := reclaim.New[hHolder](m)
	h.Pin(hr.Object())
	defer h.Unpin(hr.Object())

	type path struct {
		name string
		set  func(hd *hHolder, r reclaim.Ref[hLeaf])
		cut  func(hd *hHolder)
	}
	paths := []path{
		{"direct field", func(hd *hHolder, r reclaim.Ref[hLeaf]) { hd.Direct = r }, func(hd *hHolder) { hd.Direct = reclaim.Ref[hLeaf]{} }},
		{"array element", func(hd *hHolder, r reclaim.Ref[hLeaf]) { hd.Arr[1] = r }, func(hd *hHolder) { hd.Arr[1] = reclaim.Ref[hLeaf]{} }},
		{"last array element", func(hd *hHolder, r reclaim.Ref[hLeaf]) { hd.Arr[2] = r }, func(hd *hHolder) { hd.Arr[2] = reclaim.Ref[hLeaf]{} }},
		{"slice element", func(hd *hHolder, r reclaim.Ref[hLeaf]) { hd.Slice = append(hd.Slice, reclaim.Ref[hLeaf]{}, r) }, func(hd *hHolder) { hd.Slice = hd.Slice[:0] }},
		{"nested struct in array", func(hd *hHolder, r reclaim.Ref[hLeaf]) { hd.Nested.In[1].R = r }, func(hd *hHolder) { hd.Nested.In[1].R = reclaim.Ref[hLeaf]{} }},
		{"slice of structs", func(hd *hHolder, r reclaim.Ref[hLeaf]) { hd.Inners = []hInner{{}, {}, {R: r}} }, func(hd *hHolder) { hd.Inners = nil }},
		{"Object field", func(hd *hHolder, r reclaim.Ref[hLeaf]) { hd.Obj = r.Object() }, func(hd *hHolder) { hd.Obj = reclaim.Object{} }},
	}
	for i, p := range paths {
		r := newHLeaf(m, 100+i)
		p.set(hr.Get(m), r)
		m.Collect()
		if !getWorks(m, r) || r.Get(m).ID != 100+i {
			t.Fatalf("%s: hLeaf did not survive a collection with its value", p.name)
		}
		p.cut(hr.Get(m))
		m.Collect()
		if getWorks(m, r) {
			t.Fatalf("%s: hLeaf survived after the ref was cut", p.name)
		}
	}

	// A weak field keeps nothing alive.
	r := newHLeaf(m, 7)
	hr.Get(m).W = reclaim.MakeWeak(m, r)
	m.Collect()
	if getWorks(m, r) {
		t.Fatal("a hLeaf reachable only through a Weak field survived")
	}
	if v := hr.Get(m).W.Value(m); !v.IsNil() {
		t.Fatalf("Weak.Value of a freed hLeaf = %v, want nil", v)
	}
}

func TestAs(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{})
	m := h.Attach()
	defer m.Detach()
	r := newHLeaf(m, 5)
	o := r.Object()
	if got, ok := reclaim.As[hLeaf](o); !ok || got != r || got.Get(m).ID != 5 {
		t.Fatalf("As[hLeaf] = %v, %v; want %v, true", got, ok, r)
	}
	if got, ok := reclaim.As[hPoint](o); ok || !got.IsNil() {
		t.Fatalf("As[hPoint] of a hLeaf = %v, %v; want nil, false", got, ok)
	}
	if got, ok := reclaim.As[hLeaf](reclaim.Object{}); !ok || !got.IsNil() {
		t.Fatalf("As of the nil Object = %v, %v; want nil, true", got, ok)
	}
	if !(reclaim.Object{}).IsNil() || o.IsNil() {
		t.Fatal("Object.IsNil wrong")
	}
	m.Collect()
	if got, ok := reclaim.As[hLeaf](o); ok || !got.IsNil() {
		t.Fatalf("As of a freed object = %v, %v; want nil, false", got, ok)
	}
}

func TestTracer(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{})
	m := h.Attach()
	defer m.Detach()
	tr := reclaim.New[hTracerMap](m)
	h.Pin(tr.Object())
	defer h.Unpin(tr.Object())
	tr.Get(m).m = make(map[string]reclaim.Ref[hLeaf])
	leaves := make(map[string]reclaim.Ref[hLeaf])
	for i := range 50 {
		k := fmt.Sprint("k", i)
		r := newHLeaf(m, i)
		leaves[k] = r
		tr.Get(m).m[k] = r
	}
	m.Collect()
	for k, r := range leaves {
		if !getWorks(m, r) {
			t.Fatalf("hLeaf %s held only through Trace was freed", k)
		}
	}
	for i := range 25 {
		delete(tr.Get(m).m, fmt.Sprint("k", i))
	}
	m.Collect()
	for i := range 50 {
		k := fmt.Sprint("k", i)
		if live := getWorks(m, leaves[k]); live != (i >= 25) {
			t.Fatalf("hLeaf %s live = %v after it was removed from the map = %v", k, live, i < 25)
		}
		if i >= 25 && leaves[k].Get(m).ID != i {
			t.Fatalf("hLeaf %s lost its value", k)
		}
	}
}

func TestPinCounted(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{})
	m := h.Attach()
	defer m.Detach()
	r := newHLeaf(m, 1)
	h.Pin(r.Object())
	h.Pin(r.Object())
	h.Unpin(r.Object())
	m.Collect()
	if !getWorks(m, r) {
		t.Fatal("object pinned twice and unpinned once was freed")
	}
	h.Unpin(r.Object())
	m.Collect()
	if getWorks(m, r) {
		t.Fatal("object unpinned as often as pinned survived")
	}
}

func TestScanRoots(t *testing.T) {
	var roots []reclaim.Object // read by ScanRoots on the collecting goroutine, which is this one
	calls := 0
	h := newTestHeap(t, reclaim.Options{ScanRoots: func(visit func(reclaim.Object)) {
		calls++
		for _, o := range roots {
			visit(o)
		}
		visit(reclaim.Object{}) // nil roots are ignored
	}})
	m := h.Attach()
	defer m.Detach()
	var all []reclaim.Ref[hLeaf]
	for i := range 100 {
		r := newHLeaf(m, i)
		all = append(all, r)
		if i%10 == 0 {
			roots = append(roots, r.Object())
		}
	}
	m.Collect()
	if calls != 1 {
		t.Errorf("ScanRoots called %d times in one collection, want 1", calls)
	}
	for i, r := range all {
		if getWorks(m, r) != (i%10 == 0) {
			t.Fatalf("hLeaf %d live = %v, want %v", i, getWorks(m, r), i%10 == 0)
		}
	}
	roots = nil
	m.Collect()
	if n := h.Stats().HeapObjects; n != 0 {
		t.Fatalf("%d objects left after the roots went away", n)
	}
}

// TestCollectFreesExactlyUnreachable checks the counters: a collection frees
// exactly the objects no root reaches.
func TestCollectFreesExactlyUnreachable(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{})
	m := h.Attach()
	defer m.Detach()
	const n = 5000
	// Lists of 10; every third list's head is pinned.
	var heads []reclaim.Ref[hNode]
	for l := range n / 10 {
		var head reclaim.Ref[hNode]
		for i := range 10 {
			x := reclaim.New[hNode](m)
			*x.Get(m) = hNode{Next: head, V: l*10 + i}
			head = x
		}
		if l%3 == 0 {
			h.Pin(head.Object())
			heads = append(heads, head)
		}
	}
	before := h.Stats()
	m.Collect()
	st := h.Stats()
	kept := int64(len(heads) * 10)
	if got := st.Freed - before.Freed; got != n-kept {
		t.Errorf("freed %d objects, want %d", got, n-kept)
	}
	if st.HeapObjects != kept {
		t.Errorf("HeapObjects = %d, want %d", st.HeapObjects, kept)
	}
	if st.ObjectsMarked != kept {
		t.Errorf("ObjectsMarked = %d, want %d", st.ObjectsMarked, kept)
	}
	for _, head := range heads {
		k := 0
		for x := head; !x.IsNil(); x = x.Get(m).Next {
			k++
		}
		if k != 10 {
			t.Fatalf("a kept list has %d nodes, want 10", k)
		}
		h.Unpin(head.Object())
	}
}

// TestMemoryGoesDown frees most of a big graph and checks that span memory
// is given back.
func TestMemoryGoesDown(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 50_000
	}
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	// A list, allocated in order, so the first nodes share the first spans.
	first := reclaim.New[hNode](m)
	h.Pin(first.Object())
	tail := first
	var cut reclaim.Ref[hNode]
	for i := 1; i < n; i++ {
		x := reclaim.New[hNode](m)
		x.Get(m).V = i
		tail.Get(m).Next = x
		tail = x
		if i == n/100 {
			cut = x
		}
	}
	m.Collect()
	full := h.Stats().SpanBytes
	size := int64(unsafe.Sizeof(hNode{})) // 16 bytes, 12 where a word is 32 bits
	if want := int64(n) * size; full < want {
		t.Fatalf("span bytes %d for %d %d-byte objects", full, n, size)
	}
	cut.Get(m).Next = reclaim.Ref[hNode]{}
	m.Collect()
	m.Collect()
	m.Collect()
	st := h.Stats()
	if st.HeapObjects != int64(n/100+1) {
		t.Errorf("HeapObjects = %d, want %d", st.HeapObjects, n/100+1)
	}
	if bound := int64(n/100+1)*size + 2*16<<10; st.SpanBytes > bound {
		t.Errorf("span bytes %d after freeing 99%% of %d, want at most %d", st.SpanBytes, full, bound)
	}
	h.Unpin(first.Object())
}

func TestPacing(t *testing.T) {
	alloc := func(m *reclaim.Mutator, bytes int) {
		for i := 0; i < bytes/1024; i++ {
			reclaim.New[[1024]byte](m)
			if i%16 == 0 {
				m.Safepoint()
			}
		}
		m.Safepoint()
	}
	t.Run("default", func(t *testing.T) {
		h := newTestHeap(t, reclaim.Options{})
		m := h.Attach()
		defer m.Detach()
		if g := h.Stats().HeapGoal; g < 4<<20 {
			t.Errorf("initial goal %d, want at least the 4 MiB floor", g)
		}
		alloc(m, 20<<20)
		st := h.Stats()
		if st.Cycles < 2 {
			t.Errorf("%d cycles after allocating 20 MiB of garbage with a 4 MiB goal, want at least 2", st.Cycles)
		}
		if st.SpanBytes > 12<<20 {
			t.Errorf("span bytes %d after collections, want them bounded near the goal", st.SpanBytes)
		}
	})
	t.Run("off", func(t *testing.T) {
		h := newTestHeap(t, reclaim.Options{GCPercent: -1})
		m := h.Attach()
		defer m.Detach()
		alloc(m, 8<<20)
		st := h.Stats()
		if st.Cycles != 0 {
			t.Errorf("%d cycles with GCPercent -1, want 0", st.Cycles)
		}
		if st.HeapGoal != -1 {
			t.Errorf("HeapGoal = %d with GCPercent -1, want -1", st.HeapGoal)
		}
		m.Collect()
		if st := h.Stats(); st.Cycles != 1 || st.HeapObjects != 0 {
			t.Errorf("Collect with GCPercent -1: %d cycles, %d objects; want 1, 0", st.Cycles, st.HeapObjects)
		}
	})
	t.Run("external", func(t *testing.T) {
		h := newTestHeap(t, reclaim.Options{})
		m := h.Attach()
		defer m.Detach()
		m.Safepoint()
		if c := h.Stats().Cycles; c != 0 {
			t.Fatalf("%d cycles before any allocation", c)
		}
		h.AddExternal(64 << 20)
		if e := h.Stats().ExternalBytes; e != 64<<20 {
			t.Errorf("ExternalBytes = %d, want %d", e, 64<<20)
		}
		m.Safepoint()
		if c := h.Stats().Cycles; c != 1 {
			t.Errorf("%d cycles after AddExternal past the goal and a safepoint, want 1", c)
		}
		h.AddExternal(-64 << 20)
		if e := h.Stats().ExternalBytes; e != 0 {
			t.Errorf("ExternalBytes = %d after giving it back, want 0", e)
		}
	})
	t.Run("external near MaxInt64", func(t *testing.T) {
		// Live bytes plus external bytes past MaxInt64 must make a cycle
		// due, not wrap around to a negative total that is never due.
		h := newTestHeap(t, reclaim.Options{})
		m := h.Attach()
		defer m.Detach()
		keep := reclaim.New[[64]byte](m) // some live bytes, for the sum to overflow
		h.Pin(keep.Object())
		defer h.Unpin(keep.Object())
		m.Safepoint()
		before := h.Stats().Cycles
		h.AddExternal(math.MaxInt64 - 1)
		m.Safepoint()
		if c := h.Stats().Cycles - before; c != 1 {
			t.Errorf("%d cycles after AddExternal(MaxInt64-1) and a safepoint, want 1", c)
		}
		if g := h.Stats().HeapGoal; g < 0 {
			t.Errorf("HeapGoal = %d after a cycle with external bytes near MaxInt64, want no overflow", g)
		}
		h.AddExternal(-(math.MaxInt64 - 1))
	})
}

func TestMemoryLimit(t *testing.T) {
	const limit = 1 << 20
	var roots []reclaim.Object // this goroutine collects, so ScanRoots reads it without a lock
	h := newTestHeap(t, reclaim.Options{MemoryLimit: limit, GCPercent: -1, ScanRoots: func(visit func(reclaim.Object)) {
		for _, o := range roots {
			visit(o)
		}
	}})
	m := h.Attach()
	defer m.Detach()

	var err error
	for {
		var r reclaim.Ref[[1024]byte]
		r, err = reclaim.TryNew[[1024]byte](m)
		if err != nil {
			break
		}
		r.Get(m)[0] = 1
		roots = append(roots, r.Object())
		if len(roots) > 2*limit/1024 {
			t.Fatalf("%d KiB allocated under a %d KiB limit", len(roots), limit/1024)
		}
	}
	if !errors.Is(err, reclaim.ErrMemoryLimit) {
		t.Fatalf("TryNew past the limit: %v, want ErrMemoryLimit", err)
	}
	st := h.Stats()
	if st.SpanBytes > limit {
		t.Errorf("span bytes %d past the limit %d", st.SpanBytes, limit)
	}
	if st.MemoryLimitHits != 1 {
		t.Errorf("MemoryLimitHits = %d, want 1", st.MemoryLimitHits)
	}
	if len(roots) < limit/1024/2 {
		t.Errorf("only %d KiB allocated under a %d KiB limit", len(roots), limit/1024)
	}

	v, panicked := panicValue(func() { reclaim.New[[1024]byte](m) })
	perr, isErr := v.(error)
	if !panicked || !isErr || !errors.Is(perr, reclaim.ErrMemoryLimit) {
		t.Fatalf("New past the limit panicked = %v with %v; want an error wrapping ErrMemoryLimit", panicked, v)
	}
	if !strings.HasPrefix(perr.Error(), "reclaim:") {
		t.Errorf("New's panic %q does not start with reclaim:", perr)
	}
	if n := h.Stats().MemoryLimitHits; n != 2 {
		t.Errorf("MemoryLimitHits = %d, want 2", n)
	}
	// A smaller type does not slip through either: lrW8 is 8 bytes on every
	// word size, and a span of 1024 of them with its handle words and
	// bitmaps is larger than the room the last [1024]byte span leaves under
	// the limit. (hLeaf, an int, is 4 bytes where a word is 32 bits: its
	// span is smaller than that room, and rightly fits in it.)
	if _, err := reclaim.TryNew[lrW8](m); !errors.Is(err, reclaim.ErrMemoryLimit) {
		t.Errorf("TryNew[lrW8] at the limit: %v, want ErrMemoryLimit", err)
	}

	// The heap stays usable: the roots survive intact, and freeing them
	// makes room again.
	m.Collect()
	for i, o := range roots {
		r, ok := reclaim.As[[1024]byte](o)
		if !ok || r.Get(m)[0] != 1 {
			t.Fatalf("root %d lost at the limit", i)
		}
	}
	n := len(roots)
	roots = roots[:n/4]
	m.Collect()
	m.Collect()
	for range n / 2 {
		r, err := reclaim.TryNew[[1024]byte](m)
		if err != nil {
			t.Fatalf("TryNew after freeing 3/4 of the heap: %v", err)
		}
		roots = append(roots, r.Object())
	}
	roots = nil
}

// TestMemoryLimitCountsHandleWords: the limit counts each object's handle
// word and bitmaps, not only its slot, so a heap of small objects holds no
// more memory than the limit: at most limit/16 of 8-byte objects, where
// counting slots alone allowed limit/8.
func TestMemoryLimitCountsHandleWords(t *testing.T) {
	const limit = 1 << 20
	type small struct{ V int64 } // 8 bytes a slot, 8 bytes a handle word
	var roots []reclaim.Object
	h := newTestHeap(t, reclaim.Options{MemoryLimit: limit, GCPercent: -1, ScanRoots: func(visit func(reclaim.Object)) {
		for _, o := range roots {
			visit(o)
		}
	}})
	m := h.Attach()
	defer m.Detach()
	for {
		r, err := reclaim.TryNew[small](m)
		if errors.Is(err, reclaim.ErrMemoryLimit) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, r.Object())
		if len(roots) > limit/8 {
			t.Fatalf("%d objects of 8 bytes allocated under a %d-byte limit", len(roots), limit)
		}
	}
	st := h.Stats()
	if held := st.SpanBytes + st.MetaBytes + st.SpareBytes; held > limit {
		t.Errorf("slabs %d + metadata %d + spares %d = %d bytes, past the limit %d", st.SpanBytes, st.MetaBytes, st.SpareBytes, held, limit)
	}
	if st.MetaBytes < st.HeapObjects*8 {
		t.Errorf("MetaBytes %d counts less than a handle word for each of %d objects", st.MetaBytes, st.HeapObjects)
	}
	if n := len(roots); n > limit/16 || n < limit/16*3/4 {
		t.Errorf("%d objects of 8 bytes fit under a %d-byte limit; want at most %d (slot and handle word) and at least three quarters of that", n, limit, limit/16)
	}
	roots = nil
}

func TestAddExternalLimit(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{MemoryLimit: 1 << 20})
	m := h.Attach()
	defer m.Detach()
	h.AddExternal(1 << 20)
	if _, err := reclaim.TryNew[hLeaf](m); !errors.Is(err, reclaim.ErrMemoryLimit) {
		t.Fatalf("TryNew with external memory at the limit: %v, want ErrMemoryLimit", err)
	}
	h.AddExternal(-1 << 20)
	if _, err := reclaim.TryNew[hLeaf](m); err != nil {
		t.Fatalf("TryNew after giving external memory back: %v", err)
	}
}

// hFatNode is a list node of 256 bytes, to reach the pacer's goal quickly.
type hFatNode struct {
	Next reclaim.Ref[hFatNode]
	V    int
	Pad  [240]byte
}

// TestSafepointOnAlloc: with SafepointOnAlloc and a ScanRoots that reports
// everything live, collections run inside New.
func TestSafepointOnAlloc(t *testing.T) {
	var stack []reclaim.Ref[hFatNode] // the "VM stack"; only this goroutine allocates and collects
	h := newTestHeap(t, reclaim.Options{SafepointOnAlloc: true, ScanRoots: func(visit func(reclaim.Object)) {
		for _, r := range stack {
			visit(r.Object())
		}
	}})
	m := h.Attach()
	defer m.Detach()
	n := 100_000
	if testing.Short() {
		n = 40_000
	}
	for i := range n {
		x := reclaim.New[hFatNode](m)
		x.Get(m).V = i
		if i%1000 == 0 {
			stack = append(stack, x)
		}
	}
	if c := h.Stats().Cycles; c < 2 {
		t.Fatalf("%d collections during %d allocations (%d MiB) with SafepointOnAlloc, want at least 2", c, n, n*256>>20)
	}
	for j, r := range stack {
		if r.Get(m).V != j*1000 {
			t.Fatalf("root %d holds %d, want %d", j, r.Get(m).V, j*1000)
		}
	}
	stack = nil
}

func TestStatsSane(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{})
	if st := h.Stats(); st != (reclaim.Stats{HeapGoal: st.HeapGoal, FinalizerStatus: "uninitialized"}) {
		t.Errorf("fresh heap stats: %+v", st)
	}
	m := h.Attach()
	defer m.Detach()
	r := newHLeaf(m, 1)
	h.Pin(r.Object())
	for range 999 {
		reclaim.New[hLeaf](m)
	}
	m.Collect()
	m.Collect()
	st := h.Stats()
	switch {
	case st.Cycles != 2:
		t.Errorf("Cycles = %d, want 2", st.Cycles)
	case st.Allocated != 1000 || st.Freed != 999 || st.HeapObjects != 1:
		t.Errorf("Allocated %d Freed %d HeapObjects %d, want 1000 999 1", st.Allocated, st.Freed, st.HeapObjects)
	case st.ObjectsMarked != 1:
		t.Errorf("ObjectsMarked = %d, want 1", st.ObjectsMarked)
	case st.PauseTotal < st.PauseLast || st.PauseLast <= 0:
		t.Errorf("PauseTotal %v, PauseLast %v", st.PauseTotal, st.PauseLast)
	case st.SpanBytes <= 0 || st.HeapLiveBytes < 0 || st.HeapGoal < 4<<20:
		t.Errorf("SpanBytes %d HeapLiveBytes %d HeapGoal %d", st.SpanBytes, st.HeapLiveBytes, st.HeapGoal)
	case st.FinalizerStatus != "uninitialized" || st.FinalizersQueued != 0 || st.CleanupsQueued != 0 || st.Panics != 0:
		t.Errorf("finalizer and cleanup stats of a heap without any: %+v", st)
	case st.StaleRefsInMark != 0 || st.ForeignRefsInMark != 0 || st.MemoryLimitHits != 0:
		t.Errorf("error counters: %+v", st)
	}
	h.Unpin(r.Object())
}

// TestDetachFlushesCounts: objects allocated by a mutator that detaches
// before any safepoint are counted.
func TestDetachFlushesCounts(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{})
	m := h.Attach()
	for range 3 {
		reclaim.New[hLeaf](m)
	}
	m.Detach()
	if st := h.Stats(); st.Allocated != 3 || st.HeapObjects != 3 {
		t.Errorf("after Detach: Allocated %d, HeapObjects %d; want 3, 3", st.Allocated, st.HeapObjects)
	}
}

// TestConcurrentMutators: several mutators allocate lists, each rooted by a
// pin, and check them across safepoints while one of them collects.
func TestConcurrentMutators(t *testing.T) {
	const workers = 4
	rounds := 200
	if testing.Short() {
		rounds = 50
	}
	h := newTestHeap(t, reclaim.Options{MarkWorkers: 2})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := h.Attach()
			defer m.Detach()
			for round := range rounds {
				var head reclaim.Ref[hNode]
				for i := range 100 {
					x := reclaim.New[hNode](m)
					*x.Get(m) = hNode{Next: head, V: w<<20 | round<<8 | i}
					head = x
				}
				h.Pin(head.Object())
				if w == 0 && round%10 == 0 {
					m.Collect()
				} else {
					m.Safepoint()
				}
				i := 99
				for x := head; !x.IsNil(); x = x.Get(m).Next {
					if want := w<<20 | round<<8 | i; x.Get(m).V != want {
						errs <- fmt.Errorf("worker %d round %d: node holds %#x, want %#x", w, round, x.Get(m).V, want)
						return
					}
					i--
				}
				if i != -1 {
					errs <- fmt.Errorf("worker %d round %d: list has %d nodes, want 100", w, round, 99-i)
					return
				}
				h.Unpin(head.Object())
				m.Safepoint()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	m := h.Attach()
	m.Collect()
	m.Detach()
	if n := h.Stats().HeapObjects; n != 0 {
		t.Errorf("%d objects left after every pin was dropped", n)
	}
	if c := h.Stats().Cycles; c < int64(rounds/10) {
		t.Errorf("%d cycles, want at least %d", c, rounds/10)
	}
}

// TestDetachWhileCollecting: mutators attach, allocate and detach while
// another mutator collects in a loop.
func TestDetachWhileCollecting(t *testing.T) {
	iters := 300
	if testing.Short() {
		iters = 100
	}
	h := newTestHeap(t, reclaim.Options{})
	stop := make(chan struct{})
	collected := make(chan int)
	var collections atomic.Int64
	go func() {
		m := h.Attach()
		defer m.Detach()
		for {
			select {
			case <-stop:
				collected <- int(collections.Load())
				return
			default:
			}
			m.Collect()
			collections.Add(1)
		}
	}()
	// The workers run iters rounds, and on until the collector has
	// finished a few cycles, so their attaching and detaching overlaps
	// collections however the goroutines are scheduled.
	deadline := time.Now().Add(waitLimit)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < iters || (collections.Load() < 3 && time.Now().Before(deadline)); i++ {
				m := h.Attach()
				r := newHLeaf(m, i)
				h.Pin(r.Object())
				for range 50 {
					reclaim.New[hPoint](m)
				}
				m.Safepoint()
				if r.Get(m).ID != i {
					t.Errorf("pinned hLeaf lost its value")
				}
				h.Unpin(r.Object())
				m.Detach()
			}
		}()
	}
	wg.Wait()
	close(stop)
	if n := <-collected; n == 0 {
		t.Error("the collecting mutator never collected")
	}
}

// TestCloseReleasesSpans: a closed heap that stays referenced holds none
// of its objects' memory, pinned objects included, and its Stats say so:
// no live bytes (the pacer's count) either.
func TestCloseReleasesSpans(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{})
	m := h.Attach()
	refs := make([]reclaim.Ref[finNode], 5000)
	for i := range refs {
		refs[i] = reclaim.New[finNode](m)
	}
	h.Pin(refs[0].Object())
	m.Detach()
	if st := h.Stats(); st.SpanBytes == 0 {
		t.Fatal("no span bytes before Close")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	st := h.Stats()
	if st.SpanBytes != 0 || st.HeapObjects != 0 {
		t.Fatalf("after Close: %d span bytes, %d objects; want 0 and 0", st.SpanBytes, st.HeapObjects)
	}
	if st.HeapLiveBytes != 0 || st.MetaBytes != 0 || st.SpareBytes != 0 {
		t.Fatalf("after Close: HeapLiveBytes %d, MetaBytes %d, SpareBytes %d; want 0", st.HeapLiveBytes, st.MetaBytes, st.SpareBytes)
	}
	if st.Allocated != st.Freed {
		t.Fatalf("after Close: %d allocated, %d freed; want them equal", st.Allocated, st.Freed)
	}
}

// TestAsRacingSweep: As on a ref whose object the concurrent sweeper frees
// meanwhile answers false; it never panics (it checked the ref, then asked
// for the type of what might by then be a freed slot).
func TestAsRacingSweep(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	batches := make(chan []reclaim.Object)
	done := make(chan any)
	go func() {
		defer func() { done <- recover() }()
		var objs []reclaim.Object
		for {
			select {
			case b, ok := <-batches:
				if !ok {
					return
				}
				objs = b
			default:
			}
			for _, o := range objs {
				reclaim.As[hLeaf](o)
			}
		}
	}()
	rounds := 200
	if testing.Short() {
		rounds = 50
	}
	for range rounds {
		objs := make([]reclaim.Object, 4096)
		for i := range objs {
			objs[i] = newHLeaf(m, i).Object() // not roots: the next Collect frees them all
		}
		select {
		case batches <- objs:
		case v := <-done:
			t.Fatalf("As panicked racing the sweeper: %v", v)
		}
		m.Collect()
	}
	close(batches)
	if v := <-done; v != nil {
		t.Fatalf("As panicked racing the sweeper: %v", v)
	}
}
