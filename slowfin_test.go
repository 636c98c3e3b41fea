package reclaim_test

import (
	"strings"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

type slowFinBlamed struct{ id int }

// A finalizer that has returned keeps no collection waiting: when the
// finalizer goroutine then leads a collection at its safepoint between
// calls (here one the finalizer made due) and that collection waits for an
// embedder's mutator, no finalizer is to blame, and none is reported.
// fin.running was left naming the type of the call that had returned, and
// the leader reported it.
func TestFinalizerReturnedNotBlamedForWaitingCollection(t *testing.T) {
	logs, logger := newLogBuffer()
	h := newTestHeap(t, reclaim.Options{FinalizerBlockThreshold: time.Millisecond, Logger: logger})
	m := h.Attach()

	returned := make(chan struct{})
	reclaim.SetFinalizer(m, reclaim.New[slowFinBlamed](m), func(*reclaim.Mutator, reclaim.Ref[slowFinBlamed]) {
		// Makes a collection due: the goroutine leads it at its
		// safepoint after this call.
		h.AddExternal(1 << 40)
		close(returned)
	})
	m.Collect()
	recvWithin(t, returned, "the finalizer to run")
	// The goroutine leads the due collection, which waits for m (attached,
	// not at a safepoint) well past the threshold.
	waitUntil(t, "the finalizer goroutine to start a collection", h.StopRequested)
	time.Sleep(50 * time.Millisecond) // > 1ms threshold; only gives a report the chance
	m.Detach()
	drain(t, h)
	h.AddExternal(-(1 << 40))
	if st := h.Stats(); st.SlowFinalizers != 0 {
		t.Errorf("SlowFinalizers = %d, but no finalizer was running while the collection waited", st.SlowFinalizers)
	}
	if out := logs.String(); strings.Contains(out, "keeps a pending collection waiting") {
		t.Errorf("a returned finalizer was blamed for a waiting collection:\n%s", out)
	}
}

// With FinalizersAtSafepoints, a finalizer run at one mutator's safepoint
// that keeps another mutator's collection waiting past
// FinalizerBlockThreshold is reported as it is on the finalizer goroutine
// (Options.FinalizerBlockThreshold makes no exception for the mode).
func TestFinalizerAtSafepointBlockingCollectionReported(t *testing.T) {
	logs, logger := newLogBuffer()
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, FinalizersAtSafepoints: true, FinalizerBlockThreshold: time.Millisecond, Logger: logger})
	m := h.Attach()
	started, release := make(chan struct{}), newGate(t)
	reclaim.SetFinalizer(m, reclaim.New[slowFinBlamed](m), func(*reclaim.Mutator, reclaim.Ref[slowFinBlamed]) {
		close(started)
		release.wait()
	})
	m.Detach()

	// a collects and runs the finalizer at its safepoint (Collect), where
	// it blocks; b's collection then waits for a.
	a := h.Attach()
	aDone := make(chan struct{})
	go func() {
		defer close(aDone)
		a.Collect()
		a.Detach()
	}()
	recvWithin(t, started, "the finalizer to start")
	b := h.Attach()
	bDone := make(chan struct{})
	go func() {
		defer close(bDone)
		b.Collect()
		b.Detach()
	}()
	waitUntil(t, "b's collection to wait for a", h.StopRequested)
	// The report comes once the wait passes the threshold; waitUntil
	// fails the test if it never does.
	waitUntil(t, "the blocking finalizer to be reported", func() bool { return h.Stats().SlowFinalizers >= 1 })
	release.open()
	recvWithin(t, aDone, "a's Collect")
	recvWithin(t, bDone, "b's Collect")
	if slow := h.Stats().SlowFinalizers; slow != 1 {
		t.Errorf("SlowFinalizers = %d after one finalizer kept one collection waiting, want 1", slow)
	}
	if out := logs.String(); !strings.Contains(out, "reclaim_test.slowFinBlamed") {
		t.Errorf("log does not name the blocking finalizer's type:\n%s", out)
	}
}
