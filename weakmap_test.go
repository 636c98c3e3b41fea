package reclaim_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/reclaimgc/reclaim"
)

type Key struct {
	ID   int
	Next reclaim.Ref[Key]
}

// holder is a pinned root that keeps a table and chosen keys alive.
type holder struct {
	Table reclaim.Ref[reclaim.WeakMap[Key, reclaim.Ref[Key]]]
	Other reclaim.Ref[reclaim.WeakMap[Key, reclaim.Ref[Key]]]
	Keys  []reclaim.Ref[Key]
}

func newKey(m *reclaim.Mutator, id int) reclaim.Ref[Key] {
	k := reclaim.New[Key](m)
	k.Get(m).ID = id
	return k
}

func setupWeakMap(t *testing.T) (*reclaim.Heap, *reclaim.Mutator, reclaim.Ref[holder]) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	t.Cleanup(m.Detach)
	hold := reclaim.New[holder](m)
	h.Pin(hold.Object())
	hold.Get(m).Table = reclaim.New[reclaim.WeakMap[Key, reclaim.Ref[Key]]](m)
	return h, m, hold
}

// ECMAScript WeakMap: an entry lives exactly as long as its key is
// reachable; the table does not keep the key alive.
func TestWeakMapEntryFollowsKey(t *testing.T) {
	_, m, hold := setupWeakMap(t)
	k1, k2 := newKey(m, 1), newKey(m, 2)
	v1, v2 := newKey(m, 101), newKey(m, 102)
	tab := hold.Get(m).Table
	tab.Get(m).Set(k1, v1)
	tab.Get(m).Set(k2, v2)
	hold.Get(m).Keys = []reclaim.Ref[Key]{k1}
	w1, w2 := reclaim.MakeWeak(m, v1), reclaim.MakeWeak(m, v2)
	m.Collect()
	tm := tab.Get(m)
	if got, ok := tm.Get(k1); !ok || got != v1 || got.Get(m).ID != 101 {
		t.Fatalf("live key's entry: got %v %v", got, ok)
	}
	if tm.Len() != 1 {
		t.Fatalf("dead key's entry not removed: len %d", tm.Len())
	}
	if w1.Value(m).IsNil() {
		t.Fatal("value of a live key was freed")
	}
	if !w2.Value(m).IsNil() {
		t.Fatal("value of a dead key survived")
	}
}

// A value that refers to its own key must not keep the key alive (the
// point of ephemerons over strong maps).
func TestWeakMapValuePointingToOwnKey(t *testing.T) {
	_, m, hold := setupWeakMap(t)
	k := newKey(m, 1)
	hold.Get(m).Table.Get(m).Set(k, k)
	wk := reclaim.MakeWeak(m, k)
	m.Collect()
	if !wk.Value(m).IsNil() {
		t.Fatal("a key reachable only from its own value was kept alive")
	}
	if n := hold.Get(m).Table.Get(m).Len(); n != 0 {
		t.Fatalf("len %d, want 0", n)
	}
}

// Keys reachable only through other entries' values: k0 is live, its value
// is k1, whose entry's value is k2, and so on. Every entry of the chain
// survives; a chain not anchored in a live key dies entirely.
func TestWeakMapChains(t *testing.T) {
	for _, n := range []int{1, 10, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			_, m, hold := setupWeakMap(t)
			live := make([]reclaim.Ref[Key], n+1)
			dead := make([]reclaim.Ref[Key], n+1)
			for i := range live {
				live[i] = newKey(m, i)
				dead[i] = newKey(m, -i)
			}
			tab := hold.Get(m).Table.Get(m)
			// Insert in reverse so that a single pass in insertion order
			// would not reach the fixpoint.
			for i := n - 1; i >= 0; i-- {
				tab.Set(live[i], live[i+1])
				tab.Set(dead[i], dead[i+1])
			}
			hold.Get(m).Keys = []reclaim.Ref[Key]{live[0]}
			wl, wd := reclaim.MakeWeak(m, live[n]), reclaim.MakeWeak(m, dead[n])
			m.Collect()
			if got := hold.Get(m).Table.Get(m).Len(); got != n {
				t.Fatalf("len %d, want %d", got, n)
			}
			if wl.Value(m).IsNil() {
				t.Fatal("end of the live chain was freed")
			}
			if !wd.Value(m).IsNil() {
				t.Fatal("end of the dead chain survived")
			}
			// Cut the chain's anchor: everything goes.
			hold.Get(m).Keys = nil
			m.Collect()
			if got := hold.Get(m).Table.Get(m).Len(); got != 0 {
				t.Fatalf("after cutting the anchor: len %d", got)
			}
			if !wl.Value(m).IsNil() {
				t.Fatal("chain survived its anchor")
			}
		})
	}
}

// Several tables: a value in one table makes a key of another reachable.
func TestWeakMapAcrossTables(t *testing.T) {
	_, m, hold := setupWeakMap(t)
	other := reclaim.New[reclaim.WeakMap[Key, reclaim.Ref[Key]]](m)
	hold.Get(m).Other = other
	a, b, c := newKey(m, 1), newKey(m, 2), newKey(m, 3)
	other.Get(m).Set(b, c)
	hold.Get(m).Table.Get(m).Set(a, b)
	hold.Get(m).Keys = []reclaim.Ref[Key]{a}
	wc := reclaim.MakeWeak(m, c)
	m.Collect()
	if wc.Value(m).IsNil() {
		t.Fatal("value reachable through two tables was freed")
	}
	if !other.Get(m).Has(b) {
		t.Fatal("entry whose key is another table's value was removed")
	}
}

// Lua 5.4 §2.5.4: an object being finalized is removed from weak keys only
// when it is actually freed; its entry (and value) survive until then.
func TestWeakMapFinalizableKey(t *testing.T) {
	h, m, hold := setupWeakMap(t)
	k, v := newKey(m, 1), newKey(m, 2)
	hold.Get(m).Table.Get(m).Set(k, v)
	ran := 0
	reclaim.SetFinalizer(m, k, func(m *reclaim.Mutator, r reclaim.Ref[Key]) { ran++ })
	wv := reclaim.MakeWeak(m, v)
	m.Collect()
	if err := h.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ran != 1 {
		t.Fatalf("finalizer ran %d times", ran)
	}
	if !hold.Get(m).Table.Get(m).Has(k) || wv.Value(m).IsNil() {
		t.Fatal("entry of a key being finalized was removed before the key was freed")
	}
	m.Collect()
	if hold.Get(m).Table.Get(m).Len() != 0 {
		t.Fatal("entry not removed once its finalized key was freed")
	}
	if !wv.Value(m).IsNil() {
		t.Fatal("value survived its key")
	}
}

// TestWeakMapFinalizableTable: an unreachable table with a finalizer
// survives the cycle that queues its finalizer, and so do the values of
// its live keys, which the finalizer may read: the mark scans such a
// table as a root the way it scans a reachable one (its entries), not
// only its layout, which holds no refs. A value whose key is dead is not
// kept.
func TestWeakMapFinalizableTable(t *testing.T) {
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			h := newTestHeap(t, reclaim.Options{MarkWorkers: workers, GCPercent: -1})
			m := h.Attach()
			defer m.Detach()
			k, v := newKey(m, 1), newKey(m, 2)
			h.Pin(k.Object())
			defer h.Unpin(k.Object())
			dk, dv := newKey(m, 3), newKey(m, 4)
			tab := reclaim.New[reclaim.WeakMap[Key, reclaim.Ref[Key]]](m)
			tab.Get(m).Set(k, v)
			tab.Get(m).Set(dk, dv)
			wv, wdv := reclaim.MakeWeak(m, v), reclaim.MakeWeak(m, dv)
			var got reclaim.Ref[Key]
			var id int
			reclaim.SetFinalizer(m, tab, func(fm *reclaim.Mutator, r reclaim.Ref[reclaim.WeakMap[Key, reclaim.Ref[Key]]]) {
				got, _ = r.Get(fm).Get(k)
				if !got.IsNil() {
					id = got.Get(fm).ID
				}
			})
			tab, dk, dv = reclaim.Ref[reclaim.WeakMap[Key, reclaim.Ref[Key]]]{}, reclaim.Ref[Key]{}, reclaim.Ref[Key]{}
			m.Collect()
			if wv.Value(m).IsNil() {
				t.Fatal("the value of a live key in an unreachable finalizable table was freed in the cycle that queued the table's finalizer")
			}
			if !wdv.Value(m).IsNil() {
				t.Error("the value of a dead key in an unreachable finalizable table survived")
			}
			if err := h.Drain(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got != v || id != 2 {
				t.Fatalf("the finalizer read %v (id %d) for the live key, want %v (id 2)", got, id, v)
			}
			m.Collect()
			if !wv.Value(m).IsNil() {
				t.Error("the value outlived its table once the table's finalizer had run")
			}
		})
	}
}

// holderOf is a value that refers back to its table.
type holderOf struct {
	Table reclaim.Ref[reclaim.WeakMap[Key, reclaim.Ref[holderOf]]]
}

// TestWeakMapFinalizableCycleReported: a finalizable table whose live
// key's value refers back to the table keeps itself alive (the value is a
// referent of the table, so the table is marked at every cycle) and its
// finalizer never runs. With Debug on, that cycle is reported, like one
// through fields.
func TestWeakMapFinalizableCycleReported(t *testing.T) {
	logs, logger := newLogBuffer()
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, Debug: true, Logger: logger})
	m := h.Attach()
	defer m.Detach()
	k := newKey(m, 1)
	h.Pin(k.Object())
	defer h.Unpin(k.Object())
	tab := reclaim.New[reclaim.WeakMap[Key, reclaim.Ref[holderOf]]](m)
	v := reclaim.New[holderOf](m)
	v.Get(m).Table = tab
	tab.Get(m).Set(k, v)
	ran := 0
	reclaim.SetFinalizer(m, tab, func(*reclaim.Mutator, reclaim.Ref[reclaim.WeakMap[Key, reclaim.Ref[holderOf]]]) { ran++ })
	for range 3 {
		m.Collect()
		if err := h.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if ran != 0 {
		t.Fatalf("the finalizer of a table on a cycle through its own entry ran %d times", ran)
	}
	if st := h.Stats(); st.FinalizerCycles != 1 {
		t.Errorf("Stats.FinalizerCycles = %d, want 1: the cycle through the table's entry", st.FinalizerCycles)
	}
	if out := logs.String(); !strings.Contains(out, "reclaim_test.holderOf") {
		t.Errorf("the Debug log does not name the value on the cycle:\n%s", out)
	}
	// Break it: drop the value's ref to the table.
	v.Get(m).Table = reclaim.Ref[reclaim.WeakMap[Key, reclaim.Ref[holderOf]]]{}
	m.Collect()
	if err := h.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ran != 1 {
		t.Fatalf("after the cycle was broken the finalizer ran %d times, want 1", ran)
	}
}

func TestWeakMapAPI(t *testing.T) {
	_, m, hold := setupWeakMap(t)
	tab := hold.Get(m).Table.Get(m)
	k1, k2 := newKey(m, 1), newKey(m, 2)
	hold.Get(m).Keys = []reclaim.Ref[Key]{k1, k2}
	tab.Set(k1, k2)
	tab.Set(k1, k1)
	if v, _ := tab.Get(k1); v != k1 || tab.Len() != 1 {
		t.Fatal("Set did not replace")
	}
	tab.Set(k2, k1)
	n := 0
	for k, v := range tab.All() {
		if (k == k1 && v != k1) || (k == k2 && v != k1) {
			t.Fatalf("All: %v -> %v", k, v)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("All yielded %d", n)
	}
	if !tab.Delete(k1) || tab.Delete(k1) || tab.Has(k1) || !tab.Has(k2) {
		t.Fatal("Delete")
	}
	wantPanic(t, func() { tab.Set(reclaim.Ref[Key]{}, k1) }, "reclaim:", "nil key")
}

// BenchmarkEphemeronFixpoint measures the mark of a table whose entries
// form one chain, inserted in the worst order for a rescanning fixpoint.
// ns/entry stays flat from 10^3 to 10^6 entries: the fixpoint is linear.
func BenchmarkEphemeronFixpoint(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			if testing.Short() && n > 100_000 {
				b.Skip("large size skipped in short mode")
			}
			h := reclaim.NewHeap(reclaim.Options{GCPercent: -1})
			defer h.Close()
			m := h.Attach()
			defer m.Detach()
			hold := reclaim.New[holder](m)
			h.Pin(hold.Object())
			tab := reclaim.New[reclaim.WeakMap[Key, reclaim.Ref[Key]]](m)
			hold.Get(m).Table = tab
			keys := make([]reclaim.Ref[Key], n+1)
			for i := range keys {
				keys[i] = reclaim.New[Key](m)
			}
			for i := n - 1; i >= 0; i-- {
				tab.Get(m).Set(keys[i], keys[i+1])
			}
			hold.Get(m).Keys = []reclaim.Ref[Key]{keys[0]}
			m.Collect()
			b.ResetTimer()
			for range b.N {
				m.Collect()
			}
			b.StopTimer()
			if got := tab.Get(m).Len(); got != n {
				b.Fatalf("len %d, want %d", got, n)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/entry")
		})
	}
}

// TestWeakMapParallelMark races the registration of entries against the
// marking of their keys: two mark workers, tables scanned while the chain
// that reaches every key is being walked. Every key is live, so every value
// must survive every collection (a lost wake-up would leave an entry
// waiting on a marked key, its value freed under a live entry).
func TestWeakMapParallelMark(t *testing.T) {
	const tables, perTable = 32, 256
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: 2})
	m := h.Attach()
	defer m.Detach()
	// The keys form one chain from a pinned head, so the workers reach
	// them one after another while they scan the tables.
	n := tables * perTable
	keys := make([]reclaim.Ref[Key], n)
	for i := n - 1; i >= 0; i-- {
		keys[i] = newKey(m, i)
		if i+1 < n {
			keys[i].Get(m).Next = keys[i+1]
		}
	}
	h.Pin(keys[0].Object())
	type tab = reclaim.WeakMap[Key, reclaim.Ref[Key]]
	var weaks []reclaim.Weak[Key]
	for ti := range tables {
		tr := reclaim.New[tab](m)
		h.Pin(tr.Object())
		for j := range perTable {
			// Keys from all along the chain, so that each table waits on
			// keys marked early and late.
			k := keys[(j*tables+ti)%n]
			v := newKey(m, -1-len(weaks))
			tr.Get(m).Set(k, v)
			weaks = append(weaks, reclaim.MakeWeak(m, v))
		}
	}
	for round := range rounds {
		m.Collect()
		lost := 0
		for _, w := range weaks {
			if w.Value(m).IsNil() {
				lost++
			}
		}
		if lost > 0 {
			t.Fatalf("round %d: %d of %d values of live keys were freed", round, lost, len(weaks))
		}
	}
}
