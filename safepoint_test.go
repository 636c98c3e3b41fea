package reclaim_test

import (
	"context"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

type luaObj struct{ N int }

// With FinalizersAtSafepoints, finalizers run on the embedder's own
// mutator, inside Safepoint and Collect, within the budget; never on
// another goroutine (the plain counter below would be a data race under
// -race otherwise).
func TestFinalizersAtSafepoints(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, FinalizersAtSafepoints: true, FinalizerBudget: 3})
	m := h.Attach()
	defer m.Detach()
	ran := 0
	for i := 0; i < 10; i++ {
		r := reclaim.New[luaObj](m)
		reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, r reclaim.Ref[luaObj]) {
			if fm != m {
				t.Errorf("finalizer ran on another mutator")
			}
			r.Get(fm).N++ // the object is alive for its finalizer
			ran++
		})
	}
	if st := h.Stats(); st.FinalizerStatus != "uninitialized" {
		t.Fatalf("finalizer goroutine started in safepoint mode: %s", st.FinalizerStatus)
	}
	m.Collect() // queues 10, runs the first 3
	if ran != 3 {
		t.Fatalf("after Collect: %d finalizers ran, want 3 (budget)", ran)
	}
	m.Safepoint()
	if ran != 6 {
		t.Fatalf("after a safepoint: %d ran, want 6", ran)
	}
	m.Safepoint()
	m.Safepoint()
	if ran != 10 {
		t.Fatalf("after two more safepoints: %d ran, want 10", ran)
	}
	m.Safepoint()
	if ran != 10 {
		t.Fatalf("a finalizer ran twice: %d", ran)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if st := h.Stats(); st.FinalizersQueued != 10 || st.FinalizersExecuted != 10 {
		t.Fatalf("stats: queued %d executed %d", st.FinalizersQueued, st.FinalizersExecuted)
	}
}

// The objects finalized at safepoints are freed by the next collection.
func TestFinalizersAtSafepointsFree(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, FinalizersAtSafepoints: true})
	m := h.Attach()
	defer m.Detach()
	var weaks []reclaim.LongWeak[luaObj]
	for i := 0; i < 100; i++ {
		r := reclaim.New[luaObj](m)
		reclaim.SetFinalizer(m, r, func(*reclaim.Mutator, reclaim.Ref[luaObj]) {})
		weaks = append(weaks, reclaim.MakeLongWeak(m, r))
	}
	m.Collect() // queues and runs all (no budget)
	for _, w := range weaks {
		if w.Value(m).IsNil() {
			t.Fatal("object freed before its finalizer's cycle ended")
		}
	}
	m.Collect()
	for _, w := range weaks {
		if !w.Value(m).IsNil() {
			t.Fatal("finalized object not freed by the next collection")
		}
	}
}
