package reclaim_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

// TestDrainBesideCloseWaitsForItsFinalizers: Close takes the finalizers
// left (queued ones, and, at safepoints, ones no safepoint ran yet) and
// runs them on its own goroutine. A Drain called while it runs one waits
// for it: the finalizer is running, counted queued and not executed. Close
// took the records off the queue (and off the pending count at
// safepoints), and Drain found no finalizer queued or running and returned
// at once.
func TestDrainBesideCloseWaitsForItsFinalizers(t *testing.T) {
	for _, here := range []bool{false, true} {
		t.Run(fmt.Sprint("atSafepoints=", here), func(t *testing.T) {
			h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, FinalizersAtSafepoints: here, FinalizerBudget: 1, Logger: quietLogger()})
			m := h.Attach()
			started, release := make(chan struct{}), newGate(t)
			var calls atomic.Int32
			fin := func(*reclaim.Mutator, reclaim.Ref[finNode]) {
				if calls.Add(1) == 2 {
					close(started)
					release.wait()
				}
			}
			if here {
				queueTwoRunOne(t, m, fin, &calls)
			} else {
				calls.Store(1)
				r := reclaim.New[finNode](m)
				h.Pin(r.Object()) // still registered when Close runs it
				reclaim.SetFinalizer(m, r, fin)
			}
			m.Detach()
			closed := make(chan error, 1)
			go func() { closed <- h.Close() }()
			recvWithin(t, started, "Close to run the finalizer")
			st := h.Stats()
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			err := h.Drain(ctx)
			cancel()
			if err == nil {
				t.Errorf("Drain returned nil while Close ran a finalizer (queued %d, executed %d)", st.FinalizersQueued, st.FinalizersExecuted)
			}
			release.open()
			if err := recvWithin(t, closed, "Close to return"); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := h.Drain(context.Background()); err != nil {
				t.Errorf("Drain after Close: %v", err)
			}
		})
	}
}

// queueTwoRunOne, on a heap with FinalizersAtSafepoints and a
// FinalizerBudget of 1, makes two objects with finalizer fin, which counts
// its calls on calls, unreachable and collects: the collection's safepoint
// runs one (the budget), and the other stays queued for Close.
func queueTwoRunOne(t *testing.T, m *reclaim.Mutator, fin func(*reclaim.Mutator, reclaim.Ref[finNode]), calls *atomic.Int32) {
	t.Helper()
	reclaim.SetFinalizer(m, reclaim.New[finNode](m), fin)
	reclaim.SetFinalizer(m, reclaim.New[finNode](m), fin)
	m.Collect()
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d finalizers ran at the collection's safepoint, want 1", n)
	}
}
