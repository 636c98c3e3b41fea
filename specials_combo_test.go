package reclaim_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/reclaimgc/reclaim"
)

// Tests of finalizers, cleanups and weak references as one system, each in
// every mode of finModes.

// "If a finalizer ... calls SetFinalizer again": a finalizer that sets a new
// finalizer on its object, without storing it anywhere, gets the new one
// run the next time the object is found unreachable, and the object freed
// the time after; cleanups wait for the last finalizer; a short Weak made
// inside the first finalizer goes nil when the second is queued; the
// LongWeak stays valid until the object is freed.
func TestFinalizerReRegistersWithoutResurrection(t *testing.T) {
	for _, md := range finModes() {
		t.Run(md.name, func(t *testing.T) {
			h := newTestHeap(t, md.opts)
			m := h.Attach()
			defer m.Detach()
			cs := newCleanupSet()
			r := reclaim.New[finNode](m)
			r.Get(m).id = 7
			kid := reclaim.New[finNode](m)
			r.Get(m).next = kid
			lw := reclaim.MakeLongWeak(m, r)
			reclaim.AddCleanup(m, r, cs.run, 1)
			var first, second atomic.Int32
			var inner atomic.Value // reclaim.Weak[finNode]
			reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
				first.Add(1)
				inner.Store(reclaim.MakeWeak(fm, x))
				reclaim.SetFinalizer(fm, x, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
					if x.Get(fm).id != 7 || !isLive(x.Get(fm).next) {
						t.Errorf("second finalizer: object not intact")
					}
					second.Add(1)
				})
			})
			settle(t, m, h)
			if first.Load() != 1 || second.Load() != 0 || cs.total() != 0 || lw.Value(m) != r {
				t.Fatalf("cycle 1: first %d second %d cleanups %d long %v; want 1 0 0 %v", first.Load(), second.Load(), cs.total(), lw.Value(m), r)
			}
			w := inner.Load().(reclaim.Weak[finNode])
			if w.Value(m) != r {
				t.Fatalf("cycle 1: weak made in the finalizer = %v, want %v", w.Value(m), r)
			}
			settle(t, m, h)
			if first.Load() != 1 || second.Load() != 1 || cs.total() != 0 {
				t.Fatalf("cycle 2: first %d second %d cleanups %d; want 1 1 0", first.Load(), second.Load(), cs.total())
			}
			if !w.Value(m).IsNil() {
				t.Fatalf("cycle 2: weak not nil once the second finalizer was queued")
			}
			if lw.Value(m) != r || !isLive(kid) {
				t.Fatalf("cycle 2: long weak %v (want %v), child live %v", lw.Value(m), r, isLive(kid))
			}
			settle(t, m, h)
			if first.Load() != 1 || second.Load() != 1 || cs.count(1) != 1 {
				t.Fatalf("cycle 3: first %d second %d cleanup %d; want 1 1 1", first.Load(), second.Load(), cs.count(1))
			}
			if isLive(r) || !lw.Value(m).IsNil() {
				t.Fatalf("cycle 3: object live %v, long weak %v; want freed, nil", isLive(r), lw.Value(m))
			}
			settle(t, m, h)
			if isLive(kid) {
				t.Fatalf("child live after its parent was freed")
			}
		})
	}
}

// A finalizer that adds cleanups to its object: they run once the object
// is found unreachable again, with the ones registered before the
// finalizer ran, and not before.
func TestFinalizerAddsCleanupToItsObject(t *testing.T) {
	for _, md := range finModes() {
		t.Run(md.name, func(t *testing.T) {
			h := newTestHeap(t, md.opts)
			m := h.Attach()
			defer m.Detach()
			cs := newCleanupSet()
			var objs []reclaim.Ref[finNode]
			// Several objects, some in one span, so that a sweep sees both
			// finalizers and cleanups on neighbouring slots.
			for i := range 10 {
				r := reclaim.New[finNode](m)
				r.Get(m).id = i
				objs = append(objs, r)
				if i%2 == 0 {
					reclaim.AddCleanup(m, r, cs.run, 100+i)
				}
				reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
					id := x.Get(fm).id
					reclaim.AddCleanup(fm, x, cs.run, 200+id)
					if id%3 == 0 {
						// Clearing from inside is a no-op: the association
						// is gone already.
						reclaim.SetFinalizer(fm, x, nil)
					}
				})
			}
			settle(t, m, h)
			if cs.total() != 0 {
				t.Fatalf("cycle 1: %d cleanups ran, want 0", cs.total())
			}
			for _, r := range objs {
				if !isLive(r) {
					t.Fatalf("cycle 1: object %v freed with its finalizer queued", r)
				}
			}
			settle(t, m, h)
			for i := range 10 {
				want := 0
				if i%2 == 0 {
					want = 1
				}
				if cs.count(100+i) != want || cs.count(200+i) != 1 {
					t.Fatalf("cycle 2: object %d: cleanups %d and %d, want %d and 1", i, cs.count(100+i), cs.count(200+i), want)
				}
				if isLive(objs[i]) {
					t.Fatalf("cycle 2: object %d live", i)
				}
			}
		})
	}
}

// A -> B, both finalizable, in one span and in different spans: only A's
// finalizer runs first; B's once A is freed; B's short Weak stays valid
// while A's finalizer runs, and goes nil in the cycle that queues B's.
func TestFinalizerChainWeakAcrossSpans(t *testing.T) {
	type other struct {
		next reclaim.Ref[finNode]
		id   int
		pad  [40]byte
	}
	for _, md := range finModes() {
		t.Run(md.name, func(t *testing.T) {
			h := newTestHeap(t, md.opts)
			m := h.Attach()
			defer m.Detach()
			var mu sync.Mutex
			var order []int
			rec := func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
				mu.Lock()
				order = append(order, x.Get(fm).id)
				mu.Unlock()
			}
			// A (type other, its own span) -> B -> C (finNode, one span).
			a := reclaim.New[other](m)
			b, c := reclaim.New[finNode](m), reclaim.New[finNode](m)
			b.Get(m).id, c.Get(m).id = 2, 3
			a.Get(m).next, b.Get(m).next = b, c
			wb, wc := reclaim.MakeWeak(m, b), reclaim.MakeWeak(m, c)
			var bOK atomic.Bool
			reclaim.SetFinalizer(m, a, func(fm *reclaim.Mutator, x reclaim.Ref[other]) {
				mu.Lock()
				order = append(order, 1)
				mu.Unlock()
				bOK.Store(wb.Value(fm) == x.Get(fm).next && x.Get(fm).next.Get(fm).id == 2)
			})
			reclaim.SetFinalizer(m, b, rec)
			reclaim.SetFinalizer(m, c, rec)
			got := func() []int { mu.Lock(); defer mu.Unlock(); return slices.Clone(order) }
			settle(t, m, h)
			if o := got(); !slices.Equal(o, []int{1}) || !bOK.Load() {
				t.Fatalf("cycle 1: ran %v (want [1]); B intact and weak valid in A's finalizer: %v", o, bOK.Load())
			}
			if wb.Value(m) != b || wc.Value(m) != c {
				t.Fatalf("cycle 1: weak refs of B, C went nil while A's finalizer held them")
			}
			settle(t, m, h)
			if o := got(); !slices.Equal(o, []int{1, 2}) {
				t.Fatalf("cycle 2: ran %v, want [1 2]", o)
			}
			if !wb.Value(m).IsNil() || wc.Value(m) != c {
				t.Fatalf("cycle 2: weak of B %v (want nil), of C %v (want %v)", wb.Value(m), wc.Value(m), c)
			}
			settle(t, m, h)
			settle(t, m, h)
			if o := got(); !slices.Equal(o, []int{1, 2, 3}) {
				t.Fatalf("cycle 4: ran %v, want [1 2 3]", o)
			}
			if !wc.Value(m).IsNil() || isLive(b) || isLive(c) {
				t.Fatalf("end: weak of C %v, B live %v, C live %v", wc.Value(m), isLive(b), isLive(c))
			}
		})
	}
}

// Objects reachable only from queued finalizer records stay alive (and
// their short weak refs valid) across any number of collections until
// the record has run: here the first finalizer to run collects several
// times while the others wait.
func TestQueuedRecordsKeepReferentsAcrossCollections(t *testing.T) {
	for _, md := range finModes() {
		t.Run(md.name, func(t *testing.T) {
			opts := md.opts
			opts.FinalizerBudget = 1
			h := newTestHeap(t, opts)
			m := h.Attach()
			defer m.Detach()
			const n = 40
			var ran, bad atomic.Int32
			var collected atomic.Bool
			weaks := make([]reclaim.Weak[finNode], n)
			for i := range n {
				r := reclaim.New[finNode](m)
				k := reclaim.New[finNode](m)
				r.Get(m).id, k.Get(m).id = i, 1000+i
				r.Get(m).next = k
				weaks[i] = reclaim.MakeWeak(m, k)
				reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
					ran.Add(1)
					id := x.Get(fm).id
					k := x.Get(fm).next
					if !isLive(k) || k.Get(fm).id != 1000+id || weaks[id].Value(fm) != k {
						bad.Add(1)
					}
					if collected.CompareAndSwap(false, true) {
						for range 3 {
							fm.Collect()
						}
					}
				})
			}
			settle(t, m, h)
			if ran.Load() != n || bad.Load() != 0 {
				t.Fatalf("ran %d finalizers (want %d); %d saw their child freed or its weak nil", ran.Load(), n, bad.Load())
			}
			settle(t, m, h)
			for i := range n {
				if !weaks[i].Value(m).IsNil() {
					t.Fatalf("child %d still reachable by weak after its parent was freed", i)
				}
			}
		})
	}
}

type plainObj struct{ id int }

type emptyObj struct{}

type plainHolder struct {
	p reclaim.Ref[plainObj]
	e reclaim.Ref[emptyObj]
}

// Objects without refs (a span the mark never scans) and zero-size objects
// follow the same rules: the finalizer runs once, resurrection keeps the
// object, a short Weak goes nil when the finalizer is queued, a LongWeak
// when the object is freed, and cleanups run only after the finalizer.
func TestFinalizerNoRefAndZeroSizeObjects(t *testing.T) {
	for _, md := range finModes() {
		t.Run(md.name, func(t *testing.T) {
			h := newTestHeap(t, md.opts)
			m := h.Attach()
			defer m.Detach()
			holder := reclaim.New[plainHolder](m)
			h.Pin(holder.Object())
			defer h.Unpin(holder.Object())
			cs := newCleanupSet()
			var pf, ef atomic.Int32
			p := reclaim.New[plainObj](m)
			p.Get(m).id = 5
			e := reclaim.New[emptyObj](m)
			e2 := reclaim.New[emptyObj](m) // a neighbour with its own finalizer
			pw, pl := reclaim.MakeWeak(m, p), reclaim.MakeLongWeak(m, p)
			ew, el := reclaim.MakeWeak(m, e), reclaim.MakeLongWeak(m, e)
			e2w := reclaim.MakeWeak(m, e2)
			reclaim.AddCleanup(m, p, cs.run, 1)
			reclaim.AddCleanup(m, e, cs.run, 2)
			reclaim.AddCleanup(m, e2, cs.run, 3)
			reclaim.SetFinalizer(m, p, func(fm *reclaim.Mutator, x reclaim.Ref[plainObj]) {
				pf.Add(1)
				holder.Get(fm).p = x
			})
			reclaim.SetFinalizer(m, e, func(fm *reclaim.Mutator, x reclaim.Ref[emptyObj]) {
				ef.Add(1)
				holder.Get(fm).e = x
			})
			var e2f atomic.Int32
			reclaim.SetFinalizer(m, e2, func(*reclaim.Mutator, reclaim.Ref[emptyObj]) { e2f.Add(1) })
			settle(t, m, h)
			if pf.Load() != 1 || ef.Load() != 1 || e2f.Load() != 1 || cs.total() != 0 {
				t.Fatalf("cycle 1: finalizers %d %d %d, cleanups %d; want 1 1 1, 0", pf.Load(), ef.Load(), e2f.Load(), cs.total())
			}
			if !pw.Value(m).IsNil() || !ew.Value(m).IsNil() || !e2w.Value(m).IsNil() {
				t.Fatalf("cycle 1: short weak refs not nil once the finalizers were queued")
			}
			if pl.Value(m) != p || el.Value(m) != e || p.Get(m).id != 5 {
				t.Fatalf("cycle 1: long weak refs %v %v, want %v %v", pl.Value(m), el.Value(m), p, e)
			}
			settle(t, m, h)
			if cs.count(3) != 1 || cs.count(1) != 0 || cs.count(2) != 0 || isLive(e2) {
				t.Fatalf("cycle 2: cleanups %d %d %d (want 0 0 1), e2 live %v", cs.count(1), cs.count(2), cs.count(3), isLive(e2))
			}
			if pl.Value(m) != p || el.Value(m) != e {
				t.Fatalf("cycle 2: long weak refs of resurrected objects went nil")
			}
			holder.Get(m).p, holder.Get(m).e = reclaim.Ref[plainObj]{}, reclaim.Ref[emptyObj]{}
			settle(t, m, h)
			if cs.count(1) != 1 || cs.count(2) != 1 || pf.Load() != 1 || ef.Load() != 1 {
				t.Fatalf("cycle 3: cleanups %d %d (want 1 1), finalizers %d %d (want 1 1)", cs.count(1), cs.count(2), pf.Load(), ef.Load())
			}
			if !pl.Value(m).IsNil() || !el.Value(m).IsNil() || isLive(p) || isLive(e) {
				t.Fatalf("cycle 3: long weak %v %v, live %v %v; want nil, freed", pl.Value(m), el.Value(m), isLive(p), isLive(e))
			}
		})
	}
}

type selfWeakNode struct {
	w  reclaim.Weak[selfWeakNode]
	lw reclaim.LongWeak[selfWeakNode]
}

// A finalizable object whose only path back to itself is through its own
// Weak and LongWeak fields is not on a cycle: its finalizer runs, Debug
// reports nothing, the LongWeak field stays valid while the object is kept
// for its finalizer, and the object is freed the next cycle.
func TestFinalizerSelfWeakIsNoCycle(t *testing.T) {
	logs, logger := newLogBuffer()
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, Debug: true, Logger: logger})
	m := h.Attach()
	defer m.Detach()
	r := reclaim.New[selfWeakNode](m)
	r.Get(m).w = reclaim.MakeWeak(m, r)
	r.Get(m).lw = reclaim.MakeLongWeak(m, r)
	lw := r.Get(m).lw
	var ran, ok atomic.Int32
	reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[selfWeakNode]) {
		ran.Add(1)
		if x.Get(fm).w.Value(fm).IsNil() && x.Get(fm).lw.Value(fm) == x {
			ok.Add(1)
		}
	})
	collectDrain(t, m, h)
	if ran.Load() != 1 || ok.Load() != 1 {
		t.Fatalf("finalizer ran %d times (want 1); its weak fields nil/valid as required: %d", ran.Load(), ok.Load())
	}
	collectDrain(t, m, h)
	if isLive(r) || !lw.Value(m).IsNil() {
		t.Fatalf("object live %v, long weak %v; want freed, nil", isLive(r), lw.Value(m))
	}
	if st := h.Stats(); st.FinalizerCycles != 0 {
		t.Fatalf("Debug reported %d finalizer cycles for weak self-references:\n%s", st.FinalizerCycles, logs.String())
	}
}

// A -> B, both finalizable, with cleanups: a collection that A's finalizer
// forces finds A still kept (its record is a root while it runs), so B's
// finalizer is not queued, B's weak stays valid and no cleanup runs; B's
// finalizer runs once A is freed, and B's cleanup once B is freed.
func TestFinalizerCollectsInsideKeepsOrder(t *testing.T) {
	for _, md := range finModes() {
		t.Run(md.name, func(t *testing.T) {
			h := newTestHeap(t, md.opts)
			m := h.Attach()
			defer m.Detach()
			cs := newCleanupSet()
			a, b := reclaim.New[finNode](m), reclaim.New[finNode](m)
			a.Get(m).id, b.Get(m).id = 1, 2
			a.Get(m).next = b
			wa, wb := reclaim.MakeWeak(m, a), reclaim.MakeWeak(m, b)
			reclaim.AddCleanup(m, a, cs.run, 1)
			reclaim.AddCleanup(m, b, cs.run, 2)
			var bRan atomic.Int32
			var inside atomic.Value
			reclaim.SetFinalizer(m, a, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
				for range 2 {
					fm.Collect()
				}
				inside.Store(fmt.Sprintf("a intact %v, b intact %v, weak a nil %v, weak b valid %v, b finalized %d, cleanups %d",
					x.Get(fm).id == 1, x.Get(fm).next.Get(fm).id == 2, wa.Value(fm).IsNil(), wb.Value(fm) == x.Get(fm).next, bRan.Load(), cs.total()))
			})
			reclaim.SetFinalizer(m, b, func(*reclaim.Mutator, reclaim.Ref[finNode]) { bRan.Add(1) })
			settle(t, m, h)
			want := "a intact true, b intact true, weak a nil true, weak b valid true, b finalized 0, cleanups 0"
			if got, _ := inside.Load().(string); got != want {
				t.Fatalf("in A's finalizer after its Collect: %s\nwant %s", got, want)
			}
			if bRan.Load() != 0 || cs.total() != 0 {
				t.Fatalf("cycle 1: B finalized %d, cleanups %d; want 0, 0", bRan.Load(), cs.total())
			}
			settle(t, m, h)
			if bRan.Load() != 1 || cs.count(1) != 1 || cs.count(2) != 0 || !wb.Value(m).IsNil() {
				t.Fatalf("cycle 2: B finalized %d, cleanups %d %d, weak b %v; want 1, 1 0, nil", bRan.Load(), cs.count(1), cs.count(2), wb.Value(m))
			}
			settle(t, m, h)
			if cs.count(2) != 1 || isLive(a) || isLive(b) {
				t.Fatalf("cycle 3: B's cleanup %d (want 1), live %v %v", cs.count(2), isLive(a), isLive(b))
			}
		})
	}
}
