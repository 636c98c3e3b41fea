package reclaim_test

import (
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

// WeakMap: unreachable tables, chains through finalizable keys, and tables
// changed while another goroutine collects.

type rvTab = reclaim.WeakMap[Key, reclaim.Ref[Key]]

// Ephemeron chains across two tables, through a finalizable key in the
// middle: k0 (live) -> t1[k0] = k1 (finalizable, otherwise unreachable)
// -> t2[k1] = v2. k1 is reachable (through k0's entry), so its finalizer
// must not run and v2 must survive; once k0 dies the whole chain goes, k1's
// finalizer runs exactly once and can read its entry in t2.
func TestWeakMapChainThroughFinalizableKey(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: 2})
	m := h.Attach()
	defer m.Detach()
	t1, t2 := reclaim.New[rvTab](m), reclaim.New[rvTab](m)
	h.Pin(t1.Object())
	defer h.Unpin(t1.Object())
	h.Pin(t2.Object())
	defer h.Unpin(t2.Object())
	k0, k1, v2 := newKey(m, 0), newKey(m, 1), newKey(m, 2)
	h.Pin(k0.Object())
	t1.Get(m).Set(k0, k1)
	t2.Get(m).Set(k1, v2)
	var runs atomic.Int32
	var read atomic.Bool
	reclaim.SetFinalizer(m, k1, func(fm *reclaim.Mutator, r reclaim.Ref[Key]) {
		runs.Add(1)
		if got, ok := t2.Get(fm).Get(r); ok && got.Get(fm).ID == 2 {
			read.Store(true)
		}
	})
	wk1, wv2 := reclaim.MakeWeak(m, k1), reclaim.MakeWeak(m, v2)
	k1, v2 = reclaim.Ref[Key]{}, reclaim.Ref[Key]{}
	for range 2 {
		collectDrain(t, m, h)
		if runs.Load() != 0 || wk1.Value(m).IsNil() || wv2.Value(m).IsNil() {
			t.Fatalf("while k0 lives: runs %d, k1 %v, v2 %v", runs.Load(), wk1.Value(m), wv2.Value(m))
		}
	}
	h.Unpin(k0.Object())
	for range 3 {
		collectDrain(t, m, h)
	}
	if runs.Load() != 1 || !read.Load() {
		t.Fatalf("after k0 died: finalizer runs %d (want 1), read its value %v", runs.Load(), read.Load())
	}
	if !wv2.Value(m).IsNil() || t1.Get(m).Len() != 0 || t2.Get(m).Len() != 0 {
		t.Fatalf("after the chain died: v2 %v, len t1 %d, len t2 %d", wv2.Value(m), t1.Get(m).Len(), t2.Get(m).Len())
	}
}

// Several mutators, each with its own table (tables are not safe for
// concurrent use), mutate them between safepoints while another goroutine
// collects: every value of a live key survives, deleted and overwritten
// values and the entries of dropped keys are freed.
func TestWeakMapMutateDuringCollections(t *testing.T) {
	rounds := 300
	if testing.Short() {
		rounds = 60
	}
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: 2})
	var stop atomic.Bool
	var cwg sync.WaitGroup
	cwg.Add(1)
	go func() {
		defer cwg.Done()
		cm := h.Attach()
		defer cm.Detach()
		for !stop.Load() {
			cm.Collect()
		}
	}()
	defer func() { stop.Store(true); cwg.Wait() }()
	type root struct {
		Tab  reclaim.Ref[rvTab]
		Keys []reclaim.Ref[Key]
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	deadline := time.Now().Add(waitLimit)
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := h.Attach()
			defer m.Detach()
			rt := reclaim.New[root](m)
			h.Pin(rt.Object())
			defer h.Unpin(rt.Object())
			rt.Get(m).Tab = reclaim.New[rvTab](m)
			type gone struct {
				w  reclaim.Weak[Key]
				at int
			}
			var dead []gone
			vals := map[int]reclaim.Weak[Key]{} // index in Keys -> weak of its value
			for round := range rounds {
				if time.Now().After(deadline) {
					errs <- "out of time"
					return
				}
				k := newKey(m, round)
				rt.Get(m).Keys = append(rt.Get(m).Keys, k)
				i := len(rt.Get(m).Keys) - 1
				v := newKey(m, -round)
				rt.Get(m).Tab.Get(m).Set(k, v)
				vals[i] = reclaim.MakeWeak(m, v)
				m.Safepoint()
				switch round % 5 {
				case 1: // overwrite an older key's value
					j := (round*7 + g) % len(rt.Get(m).Keys)
					if rk := rt.Get(m).Keys[j]; !rk.IsNil() {
						nv := newKey(m, 1000+round)
						dead = append(dead, gone{vals[j], round})
						rt.Get(m).Tab.Get(m).Set(rk, nv)
						vals[j] = reclaim.MakeWeak(m, nv)
					}
				case 2: // delete an entry
					j := (round * 3) % len(rt.Get(m).Keys)
					if rk := rt.Get(m).Keys[j]; !rk.IsNil() && rt.Get(m).Tab.Get(m).Delete(rk) {
						dead = append(dead, gone{vals[j], round})
						delete(vals, j)
					}
				case 3: // drop a key
					j := (round * 5) % len(rt.Get(m).Keys)
					if rk := rt.Get(m).Keys[j]; !rk.IsNil() {
						if w, ok := vals[j]; ok {
							dead = append(dead, gone{w, round})
							delete(vals, j)
						}
						rt.Get(m).Keys[j] = reclaim.Ref[Key]{}
					}
				}
				m.Safepoint()
				tab := rt.Get(m).Tab.Get(m)
				for j, w := range vals {
					rk := rt.Get(m).Keys[j]
					got, ok := tab.Get(rk)
					if !ok || got != w.Value(m) || got.IsNil() {
						errs <- "a live key's entry or value was lost"
						return
					}
					_ = got.Get(m).ID // panics if stale
				}
			}
			// Everything dropped must be gone after two full cycles.
			m.Collect()
			m.Collect()
			for _, d := range dead {
				if !d.w.Value(m).IsNil() {
					errs <- "a deleted, overwritten or dropped value survived two collections"
					return
				}
			}
			if n, want := rt.Get(m).Tab.Get(m).Len(), len(vals); n != want {
				errs <- "table length differs from the live keys' entries"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// An unreachable table (no finalizer) keeps nothing alive: the values of
// its live keys are freed with it; the keys are untouched.
func TestWeakMapUnreachableTable(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: 2})
	m := h.Attach()
	defer m.Detach()
	k := newKey(m, 1)
	h.Pin(k.Object())
	defer h.Unpin(k.Object())
	tab := reclaim.New[rvTab](m)
	v := newKey(m, 2)
	tab.Get(m).Set(k, v)
	wt, wv := reclaim.MakeWeak(m, tab), reclaim.MakeWeak(m, v)
	tab, v = reclaim.Ref[rvTab]{}, reclaim.Ref[Key]{}
	collectDrain(t, m, h)
	if !wt.Value(m).IsNil() || !wv.Value(m).IsNil() {
		t.Fatalf("unreachable table %v or its value %v survived", wt.Value(m), wv.Value(m))
	}
	if !isLive(k) {
		t.Fatal("key freed")
	}
}

// A WeakMap holds a field whose pointer has Lock and Unlock methods, which
// is what go vet's copylocks check looks for: a WeakMap copied by value
// (sharing the original's index map, with its heap's id) is reported. The
// marker takes no room.
func TestWeakMapNoCopyMarker(t *testing.T) {
	typ := reflect.TypeFor[reclaim.WeakMap[Key, int]]()
	found := false
	for f := range typ.Fields() {
		p := reflect.PointerTo(f.Type)
		_, lock := p.MethodByName("Lock")
		_, unlock := p.MethodByName("Unlock")
		if lock && unlock {
			found = true
			if f.Type.Size() != 0 {
				t.Errorf("WeakMap's copy marker %s takes %d bytes, want 0", f.Name, f.Type.Size())
			}
		}
	}
	if !found {
		t.Errorf("WeakMap has no field with Lock and Unlock methods: go vet would not report a copy of one")
	}
}
