package reclaim_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/reclaimgc/reclaim"
)

// Finalizable WeakMap keys that nothing but their own entries' values
// reach: Lua and JavaScript finalize them, and so does reclaim. The mark
// dooms such a key (its finalizer queued, its entries kept for it), rather
// than counting its entries as its referents, which would put it on a
// reference cycle through itself.

// A key whose entry's value leads back to it (or is the key itself) is
// finalized once; its finalizer reads the entry; short weak refs to it are
// nil from the collection that queues the finalizer, long ones until it is
// freed; the next collection frees it, its entry and its value. Debug
// reports no cycle.
func TestWeakMapKeyReachedOnlyThroughOwnEntry(t *testing.T) {
	for _, workers := range []int{1, 2} {
		for _, here := range []bool{false, true} {
			for _, own := range []bool{false, true} {
				name := fmt.Sprintf("workers=%d/atSafepoints=%v/ownValue=%v", workers, here, own)
				t.Run(name, func(t *testing.T) {
					testKeyReachedOnlyThroughOwnEntry(t, workers, here, own)
				})
			}
		}
	}
}

func testKeyReachedOnlyThroughOwnEntry(t *testing.T, workers int, here, own bool) {
	logs, logger := newLogBuffer()
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: workers, FinalizersAtSafepoints: here, Debug: true, Logger: logger})
	m := h.Attach()
	defer m.Detach()
	tab := reclaim.New[rvTab](m)
	h.Pin(tab.Object())
	defer h.Unpin(tab.Object())
	k := newKey(m, 1)
	v := k
	if !own {
		v = newKey(m, 2)
		v.Get(m).Next = k
	}
	tab.Get(m).Set(k, v)
	var runs atomic.Int32
	var read atomic.Bool
	reclaim.SetFinalizer(m, k, func(fm *reclaim.Mutator, r reclaim.Ref[Key]) {
		runs.Add(1)
		got, ok := tab.Get(fm).Get(r)
		read.Store(ok && got == v && (own || got.Get(fm).Next == r))
	})
	wk, lk, wv := reclaim.MakeWeak(m, k), reclaim.MakeLongWeak(m, k), reclaim.MakeWeak(m, v)

	m.Collect()
	if !wk.Value(m).IsNil() {
		t.Error("a short weak ref to the key is not nil after the collection that queued its finalizer")
	}
	if lk.Value(m).IsNil() || !isLive(v) {
		t.Errorf("after the collection that queued the key's finalizer: long weak ref %v, value live %v (want both)", lk.Value(m), isLive(v))
	}
	drain(t, h)
	if runs.Load() != 1 || !read.Load() {
		t.Fatalf("the key's finalizer ran %d times (want 1); it read its entry: %v", runs.Load(), read.Load())
	}
	if tab.Get(m).Len() != 1 {
		t.Fatalf("the entry of a key being finalized was removed before the key was freed (len %d)", tab.Get(m).Len())
	}
	collectDrain(t, m, h)
	if isLive(k) || isLive(v) || !lk.Value(m).IsNil() || !wv.Value(m).IsNil() || tab.Get(m).Len() != 0 {
		t.Errorf("the collection after the finalizer ran: key live %v, value live %v, long weak %v, len %d (want all gone)",
			isLive(k), isLive(v), lk.Value(m), tab.Get(m).Len())
	}
	if runs.Load() != 1 {
		t.Errorf("the finalizer ran %d times, want 1", runs.Load())
	}
	if n := h.Stats().FinalizerCycles; n != 0 || strings.Contains(logs.String(), "reference cycle") {
		t.Errorf("FinalizerCycles %d, want 0; log:\n%s", n, logs.String())
	}
}

// Two finalizable keys whose entries' values lead to each other are both
// finalized, in the same collection.
func TestWeakMapKeysReachingEachOtherThroughEntries(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: 2})
	m := h.Attach()
	defer m.Detach()
	tab := reclaim.New[rvTab](m)
	h.Pin(tab.Object())
	defer h.Unpin(tab.Object())
	k1, k2 := newKey(m, 1), newKey(m, 2)
	v1, v2 := newKey(m, 11), newKey(m, 12)
	v1.Get(m).Next, v2.Get(m).Next = k2, k1
	tab.Get(m).Set(k1, v1)
	tab.Get(m).Set(k2, v2)
	var runs [2]atomic.Int32
	for i, k := range []reclaim.Ref[Key]{k1, k2} {
		reclaim.SetFinalizer(m, k, func(*reclaim.Mutator, reclaim.Ref[Key]) { runs[i].Add(1) })
	}
	collectDrain(t, m, h)
	if runs[0].Load() != 1 || runs[1].Load() != 1 {
		t.Fatalf("after one collection the finalizers ran %d and %d times, want 1 and 1", runs[0].Load(), runs[1].Load())
	}
	collectDrain(t, m, h)
	for _, r := range []reclaim.Ref[Key]{k1, k2, v1, v2} {
		if isLive(r) {
			t.Errorf("%v outlived the collection after the finalizers", r)
		}
	}
	if tab.Get(m).Len() != 0 {
		t.Errorf("%d entries left", tab.Get(m).Len())
	}
}

// keyTable is a value that holds another table: a table reached only
// through an entry of a key being finalized.
type keyTable struct {
	Tab reclaim.Ref[rvTab]
}

// A doomed key's entry leads to a second table, reached nowhere else, with
// an entry of another finalizable key whose value leads back to it: the
// mark finds that entry only once it traces the first key's entry, and
// dooms the second key then, in a further phase. Its value survives the
// collection that queues both finalizers (a mark of one round left it
// unmarked, and the sweep freed it under a kept entry).
func TestWeakMapDoomedKeysInTableFoundLate(t *testing.T) {
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: workers})
			m := h.Attach()
			defer m.Detach()
			t1 := reclaim.New[reclaim.WeakMap[Key, reclaim.Ref[keyTable]]](m)
			h.Pin(t1.Object())
			defer h.Unpin(t1.Object())
			k1, k2 := newKey(m, 1), newKey(m, 2)
			t2 := reclaim.New[rvTab](m)
			v1 := reclaim.New[keyTable](m)
			v1.Get(m).Tab = t2
			t1.Get(m).Set(k1, v1)
			v2 := newKey(m, 22)
			v2.Get(m).Next = k2
			t2.Get(m).Set(k2, v2)
			var runs [2]atomic.Int32
			var read atomic.Bool
			reclaim.SetFinalizer(m, k1, func(*reclaim.Mutator, reclaim.Ref[Key]) { runs[0].Add(1) })
			reclaim.SetFinalizer(m, k2, func(fm *reclaim.Mutator, r reclaim.Ref[Key]) {
				runs[1].Add(1)
				got, ok := t2.Get(fm).Get(r)
				read.Store(ok && got == v2 && got.Get(fm).Next == r)
			})
			m.Collect()
			for _, r := range []reclaim.Ref[Key]{v2, k1, k2} {
				if !isLive(r) {
					t.Fatalf("%v was freed by the collection that queued the finalizers", r)
				}
			}
			drain(t, h)
			if runs[0].Load() != 1 || runs[1].Load() != 1 || !read.Load() {
				t.Fatalf("finalizers ran %d and %d times (want 1 and 1); the second read its entry: %v", runs[0].Load(), runs[1].Load(), read.Load())
			}
			collectDrain(t, m, h)
			collectDrain(t, m, h)
			for _, r := range []reclaim.Ref[Key]{k1, k2, v2} {
				if isLive(r) {
					t.Errorf("%v outlived its finalized key", r)
				}
			}
			if isLive(t2) || isLive(v1) || t1.Get(m).Len() != 0 {
				t.Errorf("second table live %v, first value live %v, first table len %d", isLive(t2), isLive(v1), t1.Get(m).Len())
			}
		})
	}
}

// selfKeyed is a key that refers to a table holding an entry of its own.
type selfKeyed struct {
	Tab reclaim.Ref[selfTab]
}

type selfTab = reclaim.WeakMap[selfKeyed, reclaim.Ref[selfKeyed]]

// A key reached from a root is not doomed, whatever its entry's value
// holds, nor reported on a cycle by Debug when it refers to the table
// (key -> table -> its own entry -> key is no cycle: were the key
// unreachable, the entry would wait on it); once the root lets go, it is
// doomed.
func TestWeakMapLiveKeyWithValueToItselfNotDoomed(t *testing.T) {
	logs, logger := newLogBuffer()
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: 2, Debug: true, Logger: logger})
	m := h.Attach()
	defer m.Detach()
	tab := reclaim.New[selfTab](m)
	h.Pin(tab.Object())
	defer h.Unpin(tab.Object())
	k := reclaim.New[selfKeyed](m)
	k.Get(m).Tab = tab
	h.Pin(k.Object())
	tab.Get(m).Set(k, k)
	var runs atomic.Int32
	reclaim.SetFinalizer(m, k, func(*reclaim.Mutator, reclaim.Ref[selfKeyed]) { runs.Add(1) })
	wk := reclaim.MakeWeak(m, k)
	for range 2 {
		collectDrain(t, m, h)
	}
	if runs.Load() != 0 || wk.Value(m).IsNil() {
		t.Fatalf("while pinned: the key's finalizer ran %d times, its weak ref %v", runs.Load(), wk.Value(m))
	}
	if n := h.Stats().FinalizerCycles; n != 0 {
		t.Errorf("FinalizerCycles %d, want 0: a key's own entry does not keep it alive; log:\n%s", n, logs.String())
	}
	h.Unpin(k.Object())
	collectDrain(t, m, h)
	if runs.Load() != 1 {
		t.Fatalf("once unpinned: the finalizer ran %d times, want 1", runs.Load())
	}
	collectDrain(t, m, h)
	if isLive(k) || tab.Get(m).Len() != 0 {
		t.Errorf("after its finalizer: key live %v, table len %d", isLive(k), tab.Get(m).Len())
	}
}

// Debug's cycle report follows a WeakMap entry only if its key is live
// without the finalizable object it checks. Here the pinned key k refers
// to the table, whose entry for k leads to k2 and whose entry for k2
// leads back to k: k2 is marked only through k's own entry, so were k
// unreachable, both entries would wait and k would be doomed; no cycle.
// Pinning k2 as well makes it one: k2's entry then keeps k alive whatever
// else holds it.
func TestWeakMapDebugNoCycleThroughOwnEntryChain(t *testing.T) {
	logs, logger := newLogBuffer()
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: 2, Debug: true, Logger: logger})
	m := h.Attach()
	defer m.Detach()
	tab := reclaim.New[selfTab](m)
	k, k2 := reclaim.New[selfKeyed](m), reclaim.New[selfKeyed](m)
	k.Get(m).Tab = tab
	h.Pin(k.Object())
	tab.Get(m).Set(k, k2)
	tab.Get(m).Set(k2, k)
	var runs atomic.Int32
	reclaim.SetFinalizer(m, k, func(*reclaim.Mutator, reclaim.Ref[selfKeyed]) { runs.Add(1) })
	for range 2 {
		collectDrain(t, m, h)
	}
	if n := h.Stats().FinalizerCycles; n != 0 || strings.Contains(logs.String(), "reference cycle") {
		t.Fatalf("FinalizerCycles %d, want 0: k2 is live only through k's own entry; log:\n%s", n, logs.String())
	}

	h.Pin(k2.Object())
	collectDrain(t, m, h)
	if n := h.Stats().FinalizerCycles; n != 1 || !strings.Contains(logs.String(), "reference cycle") {
		t.Errorf("with k2 pinned too: FinalizerCycles %d, want 1 (k -> table -> k2's entry -> k); log:\n%s", n, logs.String())
	}
	h.Unpin(k2.Object())

	h.Unpin(k.Object())
	collectDrain(t, m, h)
	if runs.Load() != 1 {
		t.Fatalf("once unpinned: k's finalizer ran %d times, want 1", runs.Load())
	}
	collectDrain(t, m, h)
	if isLive(k) || isLive(k2) {
		t.Errorf("after k's finalizer: k live %v, k2 live %v (want neither)", isLive(k), isLive(k2))
	}
}
