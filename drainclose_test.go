package reclaim_test

import (
	"context"
	"fmt"
	"runtime"
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

// TestDrainAtSafepointsYieldsToCollection: with FinalizersAtSafepoints and
// a budget, Mutator.Drain runs the queue a budget at a time, and each round
// is a safepoint: a collection another mutator asks for meanwhile runs
// between two rounds. Drain went round after round without yielding, so
// the other mutator's Collect waited for the whole queue (and for Drain's
// goroutine to detach after it).
func TestDrainAtSafepointsYieldsToCollection(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, FinalizersAtSafepoints: true, FinalizerBudget: 1, Logger: quietLogger()})
	m := h.Attach()
	const n = 20
	var calls atomic.Int32
	started, release := make(chan struct{}), newGate(t)
	fin := func(*reclaim.Mutator, reclaim.Ref[finNode]) {
		if calls.Add(1) == 2 {
			close(started)
			release.wait()
		}
	}
	for range n {
		reclaim.SetFinalizer(m, reclaim.New[finNode](m), fin)
	}
	m.Collect() // queues the n; its safepoint runs the first (the budget)

	drained := make(chan error, 1)
	go func() {
		err := m.Drain(context.Background()) // the second call blocks
		m.Detach()
		drained <- err
	}()
	recvWithin(t, started, "Drain to run the second finalizer")
	collected := make(chan int32, 1)
	go func() {
		m2 := h.Attach()
		defer m2.Detach()
		m2.Collect()
		collected <- calls.Load()
	}()
	// Liveness, not speed: the deadline only keeps a broken request from
	// hanging the test.
	for deadline := time.Now().Add(waitLimit); !h.StopRequested(); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("the other mutator's Collect never asked to stop the world")
		}
	}
	release.open()
	ran := recvWithin(t, collected, "the other mutator's Collect")
	if err := recvWithin(t, drained, "Drain"); err != nil {
		t.Fatal(err)
	}
	if ran >= n {
		t.Errorf("the other mutator's Collect returned after %d finalizer calls, all %d: Drain ran the whole queue before it let the collection stop the world", ran, n)
	}
	if got := calls.Load(); got != n {
		t.Errorf("%d finalizer calls, want %d", got, n)
	}
}
