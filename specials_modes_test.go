package reclaim_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/reclaimgc/reclaim"
)

// The ways finalizers may run (their goroutine; the embedder's mutator at
// safepoints), each with one and two mark workers, for tests of
// finalizers, cleanups and weak references as one system.

type finMode struct {
	name string
	opts reclaim.Options
}

func finModes() []finMode {
	var ms []finMode
	for _, here := range []bool{false, true} {
		for _, nw := range []int{1, 2} {
			name := fmt.Sprintf("goroutine/workers=%d", nw)
			if here {
				name = fmt.Sprintf("safepoints/workers=%d", nw)
			}
			ms = append(ms, finMode{name, reclaim.Options{GCPercent: -1, MarkWorkers: nw, FinalizersAtSafepoints: here}})
		}
	}
	return ms
}

// settle runs a full cycle and waits until what it queued has run; with
// FinalizersAtSafepoints, m's Drain runs the finalizers.
func settle(t testing.TB, m *reclaim.Mutator, h *reclaim.Heap) {
	t.Helper()
	m.Collect()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := m.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if err := h.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
}

// Close keeps the rule of an object with both a finalizer and cleanups:
// its cleanups run only after its finalizer has run, including one its
// finalizer set again (re-registration), which Close runs in a later
// round.
func TestCloseRunsCleanupsAfterReRegisteredFinalizer(t *testing.T) {
	for _, md := range finModes() {
		t.Run(md.name, func(t *testing.T) {
			h := newTestHeap(t, md.opts)
			m := h.Attach()
			var mu sync.Mutex
			var order []string
			note := func(s string) {
				mu.Lock()
				order = append(order, s)
				mu.Unlock()
			}
			r := reclaim.New[finNode](m)
			h.Pin(r.Object()) // alive at Close: no collection finalizes it
			reclaim.AddCleanup(m, r, note, "cleanup")
			reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
				note("first")
				reclaim.SetFinalizer(fm, x, func(*reclaim.Mutator, reclaim.Ref[finNode]) { note("second") })
			})
			m.Detach()
			if err := h.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := []string{"first", "second", "cleanup"}; !slices.Equal(order, want) {
				t.Fatalf("Close ran %v, want %v (cleanups only after the object's last finalizer)", order, want)
			}
		})
	}
}

// The finalizers Close runs follow the weak rule of every other: a short
// Weak of the object is nil in its finalizer (it went nil as the finalizer
// was taken to run), and stays nil; a LongWeak stays valid.
func TestCloseFinalizerSeesShortWeakNil(t *testing.T) {
	for _, md := range finModes() {
		t.Run(md.name, func(t *testing.T) {
			h := newTestHeap(t, md.opts)
			m := h.Attach()
			r := reclaim.New[finNode](m)
			h.Pin(r.Object())
			w, lw := reclaim.MakeWeak(m, r), reclaim.MakeLongWeak(m, r)
			var ran, weakNil, longOK bool
			reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
				ran = true
				weakNil = w.Value(fm).IsNil()
				longOK = lw.Value(fm) == x
			})
			m.Detach()
			if err := h.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if !ran || !weakNil || !longOK {
				t.Fatalf("finalizer run by Close: ran %v, short weak nil %v, long weak valid %v; want all true", ran, weakNil, longOK)
			}
		})
	}
}

// weakPair is a cleanup argument holding both kinds of weak reference to
// the cleanup's object.
type weakPair struct {
	w  reclaim.Weak[finNode]
	lw reclaim.LongWeak[finNode]
}

// A cleanup run by Close finds its object gone, as one run after a
// collection does: its Weak and LongWeak are nil, so no cleanup gets its
// object back.
func TestCloseCleanupSeesItsWeakRefsNil(t *testing.T) {
	for _, md := range finModes() {
		t.Run(md.name, func(t *testing.T) {
			h := newTestHeap(t, md.opts)
			m := h.Attach()
			r := reclaim.New[finNode](m)
			h.Pin(r.Object()) // alive at Close
			var mu sync.Mutex
			var got []string
			reclaim.AddCleanup(m, r, func(p weakPair) {
				cm := h.Attach()
				defer cm.Detach()
				mu.Lock()
				got = append(got, fmt.Sprintf("weak nil %v, long weak nil %v", p.w.Value(cm).IsNil(), p.lw.Value(cm).IsNil()))
				mu.Unlock()
			}, weakPair{reclaim.MakeWeak(m, r), reclaim.MakeLongWeak(m, r)})
			m.Detach()
			if err := h.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := []string{"weak nil true, long weak nil true"}; !slices.Equal(got, want) {
				t.Fatalf("cleanup run by Close saw %v, want %v", got, want)
			}
		})
	}
}
