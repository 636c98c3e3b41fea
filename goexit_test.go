package reclaim_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
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

// With FinalizersAtSafepoints, a finalizer runs on the goroutine of the
// mutator at a safepoint; one that calls runtime.Goexit ends that goroutine.
// Its record is retired all the same: it is reported, the others run at
// another mutator's safepoints, and Drain returns.
func TestFinalizerGoexitAtSafepoint(t *testing.T) {
	var mu sync.Mutex
	var reported []*reclaim.CallbackPanic
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, FinalizersAtSafepoints: true, Logger: quietLogger(),
		OnPanic: func(p *reclaim.CallbackPanic) {
			mu.Lock()
			defer mu.Unlock()
			reported = append(reported, p)
		}})
	var ran atomic.Int32
	ended := make(chan bool, 1)
	go func() {
		returned := false
		defer func() { ended <- returned }()
		m := h.Attach()
		defer m.Detach()
		for range 3 {
			reclaim.SetFinalizer(m, reclaim.New[exitObj](m), func(*reclaim.Mutator, reclaim.Ref[exitObj]) {
				if ran.Add(1) == 2 {
					runtime.Goexit()
				}
			})
		}
		m.Collect() // runs them at its safepoint
		returned = true
	}()
	if recvWithin(t, ended, "the mutator's goroutine to end") {
		t.Fatalf("Collect returned on a goroutine a finalizer ended with runtime.Goexit")
	}
	m := h.Attach()
	defer m.Detach()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := m.Drain(ctx); err != nil {
		t.Fatalf("Drain after a finalizer's Goexit at a safepoint: %v", err)
	}
	if n := ran.Load(); n != 3 {
		t.Errorf("%d finalizers ran, want 3", n)
	}
	if st := h.Stats(); st.FinalizersExecuted != 3 {
		t.Errorf("%d finalizers counted as run, want 3", st.FinalizersExecuted)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 1 || reported[0].Kind != "finalizer" {
		t.Errorf("reports %v, want one finalizer report", reported)
	}
}
