package reclaim_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

// Weak and LongWeak through resurrection, slot and span reuse, and a
// collector running beside Value.

// A weak ref made inside a finalizer (to its resurrected object) returns the
// object while it lives, goes nil when it is found unreachable again, and
// never names the slot's next object. A LongWeak made there equals the one
// made before.
func TestWeakMadeInFinalizer(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	r := reclaim.New[finNode](m)
	r.Get(m).id = 7
	lw := reclaim.MakeLongWeak(m, r)
	w0 := reclaim.MakeWeak(m, r)
	var inW reclaim.Weak[finNode]
	var inLW reclaim.LongWeak[finNode]
	var ok atomic.Bool
	reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		inW = reclaim.MakeWeak(fm, x)
		inLW = reclaim.MakeLongWeak(fm, x)
		ok.Store(inW.Value(fm) == x && w0.Value(fm).IsNil() && inW != w0)
	})
	r = reclaim.Ref[finNode]{}
	collectDrain(t, m, h)
	if !ok.Load() {
		t.Fatalf("in the finalizer: a fresh Weak did not return the object, or the old one did not return nil")
	}
	if inLW != lw {
		t.Errorf("LongWeak made in the finalizer differs from the one made before")
	}
	if got := inW.Value(m); got.IsNil() || got.Get(m).id != 7 {
		t.Fatalf("after the finalizer (object not yet freed): Weak made in it = %v, want the object", got)
	}
	collectDrain(t, m, h) // freed now
	if !inW.Value(m).IsNil() || !lw.Value(m).IsNil() || !w0.Value(m).IsNil() {
		t.Fatalf("after the object was freed: %v %v %v, want all nil", inW.Value(m), lw.Value(m), w0.Value(m))
	}
	// Refill the slots: the old weak refs never name a new object.
	var keep []reclaim.Ref[finNode]
	for range 2000 {
		n := reclaim.New[finNode](m)
		reclaim.MakeWeak(m, n)
		reclaim.MakeLongWeak(m, n)
		keep = append(keep, n)
		if !inW.Value(m).IsNil() || !lw.Value(m).IsNil() || !w0.Value(m).IsNil() || !inLW.Value(m).IsNil() {
			t.Fatalf("a stale weak ref named a new object")
		}
	}
	_ = keep
}

// A LongWeak stays valid through two resurrections (the finalizer sets a
// new one), and turns nil only once the object is freed; each short Weak
// goes nil when the finalizer it precedes is queued.
func TestLongWeakTwoResurrections(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	r := reclaim.New[finNode](m)
	lw := reclaim.MakeLongWeak(m, r)
	var runs atomic.Int32
	var f func(*reclaim.Mutator, reclaim.Ref[finNode])
	f = func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		if runs.Add(1) == 1 {
			reclaim.SetFinalizer(fm, x, f)
		}
	}
	reclaim.SetFinalizer(m, r, f)
	w1 := reclaim.MakeWeak(m, r)
	r = reclaim.Ref[finNode]{}
	collectDrain(t, m, h)
	if runs.Load() != 1 || !w1.Value(m).IsNil() || lw.Value(m).IsNil() {
		t.Fatalf("cycle 1: runs %d weak %v long %v", runs.Load(), w1.Value(m), lw.Value(m))
	}
	w2 := reclaim.MakeWeak(m, lw.Value(m)) // made from a LongWeak's value
	if w2.Value(m).IsNil() {
		t.Fatalf("fresh weak of a live object is nil")
	}
	collectDrain(t, m, h)
	if runs.Load() != 2 || !w2.Value(m).IsNil() || lw.Value(m).IsNil() {
		t.Fatalf("cycle 2: runs %d weak %v long %v", runs.Load(), w2.Value(m), lw.Value(m))
	}
	collectDrain(t, m, h)
	if runs.Load() != 2 || !lw.Value(m).IsNil() {
		t.Fatalf("cycle 3: runs %d long %v; want 2, nil", runs.Load(), lw.Value(m))
	}
}

// Weak.Value on one goroutine races with collections (and the background
// and mutator-assisted sweeps that free the objects) on another. A weak ref
// must return its own object or nil, and once nil, nil for ever; objects
// kept alive must always be returned.
func TestWeakValueRacesSweep(t *testing.T) {
	rounds := 60
	if testing.Short() {
		rounds = 40
	}
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: 2})
	type entry struct {
		w    reclaim.Weak[finNode]
		lw   reclaim.LongWeak[finNode]
		r    reclaim.Ref[finNode]
		id   int
		gone bool
		keep bool
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cm := h.Attach()
		defer cm.Detach()
		for !stop.Load() {
			cm.Collect()
		}
	}()
	m := h.Attach()
	defer func() { stop.Store(true); wg.Wait() }()
	defer m.Detach()
	holder := reclaim.New[finHolder](m)
	h.Pin(holder.Object())
	defer h.Unpin(holder.Object())
	deadline := time.Now().Add(waitLimit)
	id := 0
	for round := range rounds {
		if time.Now().After(deadline) {
			t.Fatalf("round %d: out of time", round)
		}
		es := make([]entry, 300)
		var chain reclaim.Ref[finNode]
		for i := range es {
			id++
			r := reclaim.New[finNode](m)
			r.Get(m).id = id
			es[i] = entry{w: reclaim.MakeWeak(m, r), lw: reclaim.MakeLongWeak(m, r), r: r, id: id, keep: i%3 == 0}
			if es[i].keep {
				r.Get(m).next = chain
				chain = r
				holder.Get(m).obj = chain
			}
			if i%16 == 0 {
				m.Safepoint()
			}
		}
		holder.Get(m).obj = chain
		for pass := 0; pass < 10; pass++ {
			for i := range es {
				e := &es[i]
				for _, got := range []reclaim.Ref[finNode]{e.w.Value(m), e.lw.Value(m)} {
					if got.IsNil() {
						if e.keep {
							t.Fatalf("round %d: weak ref of a kept object returned nil", round)
						}
						e.gone = true
						continue
					}
					if got != e.r {
						t.Fatalf("round %d: weak ref returned %v, want %v", round, got, e.r)
					}
					if e.gone {
						t.Fatalf("round %d: weak ref returned its object after it had returned nil", round)
					}
					if got.Get(m).id != e.id {
						t.Fatalf("round %d: object id %d, want %d", round, got.Get(m).id, e.id)
					}
				}
				m.Safepoint()
			}
		}
		holder.Get(m).obj = reclaim.Ref[finNode]{}
	}
}

// Weak refs into spans that empty out, are released and whose slots (or
// span indexes) are reused by objects of another type and size: the old
// weak refs must stay nil, and new weak refs must name the new objects.
func TestWeakSpanReleaseReuse(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	type big struct {
		a    [200]byte
		next reclaim.Ref[big]
	}
	var olds []reclaim.Weak[finNode]
	var oldl []reclaim.LongWeak[finNode]
	for range 20000 {
		r := reclaim.New[finNode](m)
		olds = append(olds, reclaim.MakeWeak(m, r))
		oldl = append(oldl, reclaim.MakeLongWeak(m, r))
	}
	for range 4 { // free, then let the empty spans idle and be released
		collectDrain(t, m, h)
	}
	holder := reclaim.New[finHolder](m)
	h.Pin(holder.Object())
	defer h.Unpin(holder.Object())
	var bigs []reclaim.Weak[big]
	var bigRefs []reclaim.Ref[big]
	var head reclaim.Ref[big]
	for i := range 5000 {
		b := reclaim.New[big](m)
		b.Get(m).a[0] = byte(i)
		b.Get(m).next = head
		head = b
		bigs = append(bigs, reclaim.MakeWeak(m, b))
		bigRefs = append(bigRefs, b)
	}
	hb := reclaim.New[finNode](m)
	_ = hb
	h.Pin(head.Object())
	defer h.Unpin(head.Object())
	var nodes []reclaim.Ref[finNode]
	var nw []reclaim.Weak[finNode]
	var chain reclaim.Ref[finNode]
	for range 20000 {
		r := reclaim.New[finNode](m)
		r.Get(m).next = chain
		chain = r
		nodes = append(nodes, r)
		nw = append(nw, reclaim.MakeWeak(m, r))
	}
	holder.Get(m).obj = chain
	for c := range 3 {
		for i, w := range olds {
			if !w.Value(m).IsNil() || !oldl[i].Value(m).IsNil() {
				t.Fatalf("cycle %d: stale weak %d returned an object", c, i)
			}
		}
		for i, w := range bigs {
			if w.Value(m) != bigRefs[i] {
				t.Fatalf("cycle %d: weak of a live big object = %v, want %v", c, w.Value(m), bigRefs[i])
			}
		}
		for i, w := range nw {
			if w.Value(m) != nodes[i] {
				t.Fatalf("cycle %d: weak of a live node = %v, want %v", c, w.Value(m), nodes[i])
			}
		}
		collectDrain(t, m, h)
	}
}
