package reclaim_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/reclaimgc/reclaim"
)

// A table whose keys are tables: a finalizable table reached only through
// its own entry in another table (its value is the table itself) is
// finalized, its entry kept for the finalizer and deleted once it is
// freed.
func TestWeakMapTableKeys(t *testing.T) {
	for _, w := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", w), func(t *testing.T) {
			h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: w})
			m := h.Attach()
			defer m.Detach()
			outer := reclaim.New[reclaim.WeakMap[rvTab, reclaim.Object]](m)
			h.Pin(outer.Object())
			inner := reclaim.New[rvTab](m)
			k := newKey(m, 1)
			inner.Get(m).Set(k, k)
			outer.Get(m).Set(inner, inner.Object())
			ran := 0
			reclaim.SetFinalizer(m, inner, func(m *reclaim.Mutator, r reclaim.Ref[rvTab]) {
				ran++
				if v, ok := outer.Get(m).Get(r); !ok || v != r.Object() {
					t.Errorf("in its finalizer, the table's own entry is %v %v", v, ok)
				}
			})
			m.Collect()
			if err := m.Drain(context.Background()); err != nil {
				t.Fatal(err)
			}
			if ran != 1 {
				t.Fatalf("the table's finalizer ran %d times, want 1", ran)
			}
			m.Collect()
			if n := outer.Get(m).Len(); n != 0 {
				t.Fatalf("after the table was freed, its entry remains: len %d", n)
			}
		})
	}
}

// A finalizer of a key reached only through its own entry reads the entry
// and replaces it: its short weak ref is cleared before it runs, its long
// one only once the key is freed, and the new entry goes with the key.
func TestWeakMapFinalizerReplacesOwnEntry(t *testing.T) {
	for _, w := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", w), func(t *testing.T) {
			h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: w})
			m := h.Attach()
			defer m.Detach()
			tab := reclaim.New[rvTab](m)
			h.Pin(tab.Object())
			k := newKey(m, 1)
			tab.Get(m).Set(k, k)
			wk, lk := reclaim.MakeWeak(m, k), reclaim.MakeLongWeak(m, k)
			var wv reclaim.Weak[Key]
			ran := 0
			reclaim.SetFinalizer(m, k, func(m *reclaim.Mutator, r reclaim.Ref[Key]) {
				ran++
				if v, ok := tab.Get(m).Get(r); !ok || v != r {
					t.Errorf("in its finalizer, the key's own entry is %v %v", v, ok)
				}
				if !tab.Get(m).Delete(r) {
					t.Error("Delete of the key's own entry found none")
				}
				nv := newKey(m, 2)
				wv = reclaim.MakeWeak(m, nv)
				tab.Get(m).Set(r, nv)
			})
			m.Collect()
			if err := m.Drain(context.Background()); err != nil {
				t.Fatal(err)
			}
			if ran != 1 {
				t.Fatalf("finalizer ran %d times, want 1", ran)
			}
			if !wk.Value(m).IsNil() {
				t.Fatal("the short weak ref of a finalized key still gives it")
			}
			if lk.Value(m).IsNil() {
				t.Fatal("the long weak ref of a key not yet freed was cleared")
			}
			if n := tab.Get(m).Len(); n != 1 {
				t.Fatalf("len %d after the finalizer replaced its entry, want 1", n)
			}
			m.Collect()
			if n := tab.Get(m).Len(); n != 0 {
				t.Fatalf("len %d after the key was freed, want 0", n)
			}
			if !lk.Value(m).IsNil() {
				t.Fatal("the long weak ref of a freed key still gives it")
			}
			if !wv.Value(m).IsNil() {
				t.Fatal("the value the finalizer stored outlived its key")
			}
		})
	}
}

// Many tables share their keys, each value the next key: a cycle through
// every table's entries, anchored in a few live keys, keeps every entry;
// once the values no longer lead anywhere, only the live keys' entries
// remain, in every table.
func TestWeakMapManyTablesSharingKeys(t *testing.T) {
	for _, w := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", w), func(t *testing.T) {
			h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: w})
			m := h.Attach()
			defer m.Detach()
			const nt, nk = 8, 200
			hold := reclaim.New[holder](m)
			h.Pin(hold.Object())
			tabs := make([]reclaim.Ref[rvTab], nt)
			keys := make([]reclaim.Ref[Key], nk)
			for i := range keys {
				keys[i] = newKey(m, i)
			}
			for j := range tabs {
				tabs[j] = reclaim.New[rvTab](m)
				h.Pin(tabs[j].Object())
				for i := range keys {
					tabs[j].Get(m).Set(keys[(i*7+j)%nk], keys[(i*7+j+1)%nk])
				}
			}
			for i := 0; i < nk; i += 10 {
				hold.Get(m).Keys = append(hold.Get(m).Keys, keys[i])
			}
			m.Collect()
			for j := range tabs {
				if n := tabs[j].Get(m).Len(); n != nk {
					t.Fatalf("table %d: len %d, want %d", j, n, nk)
				}
			}
			for j := range tabs {
				for i := range keys {
					tabs[j].Get(m).Set(keys[i], reclaim.Ref[Key]{})
				}
			}
			weaks := make([]reclaim.Weak[Key], nk)
			for i := range keys {
				weaks[i] = reclaim.MakeWeak(m, keys[i])
			}
			m.Collect()
			for j := range tabs {
				if n := tabs[j].Get(m).Len(); n != nk/10 {
					t.Fatalf("table %d: len %d, want %d", j, n, nk/10)
				}
			}
			for i := range keys {
				if live := !weaks[i].Value(m).IsNil(); live != (i%10 == 0) {
					t.Fatalf("key %d live %v", i, live)
				}
			}
		})
	}
}
