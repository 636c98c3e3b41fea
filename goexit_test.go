package reclaim_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

type exitObj struct{ N int }

// A finalizer that calls runtime.Goexit is reported like a panic, and the
// finalizers queued after it still run.
func TestFinalizerGoexit(t *testing.T) {
	var reported []*reclaim.CallbackPanic
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, OnPanic: func(p *reclaim.CallbackPanic) { reported = append(reported, p) }})
	m := h.Attach()
	ran := 0
	for i := 0; i < 3; i++ {
		reclaim.SetFinalizer(m, reclaim.New[exitObj](m), func(*reclaim.Mutator, reclaim.Ref[exitObj]) {
			ran++
			if ran == 2 {
				runtime.Goexit()
			}
		})
	}
	m.Collect()
	m.Detach()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if ran != 3 {
		t.Fatalf("%d finalizers ran, want 3", ran)
	}
	if len(reported) != 1 || reported[0].Kind != "finalizer" {
		t.Fatalf("reports: %v", reported)
	}
	if st := h.Stats(); st.FinalizersExecuted != 3 {
		t.Fatalf("executed %d", st.FinalizersExecuted)
	}
	// The replacement goroutine keeps serving new work.
	m = h.Attach()
	reclaim.SetFinalizer(m, reclaim.New[exitObj](m), func(*reclaim.Mutator, reclaim.Ref[exitObj]) { ran++ })
	m.Collect()
	m.Detach()
	if err := h.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if ran != 4 {
		t.Fatalf("after restart: %d ran", ran)
	}
}
