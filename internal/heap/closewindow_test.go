package heap

import (
	"context"
	"sync/atomic"
	"testing"
)

// closeWindowHeap returns a closable heap with no mutator attached and
// a pinned object with one cleanup, which Close queues, and ran, which
// the cleanup increments.
func closeWindowHeap(t *testing.T) (*Heap, *atomic.Int64) {
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
	x, err := m.Alloc(vnodeType)
	if err != nil {
		t.Fatal(err)
	}
	h.Pin(x) // alive at Close, so Close queues its cleanup itself
	ran := new(atomic.Int64)
	addTestCleanup(m, x, ran)
	m.Detach()
	return h, ran
}

// drainedNow reports whether Drain returns nil at once: with its context
// ended before the call, it returns nil only if it finds the heap
// drained, and an error otherwise.
func drainedNow(h *Heap) bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return h.Drain(ctx) == nil
}

// TestDrainBesideCloseWaitsForItsCleanups: Close queues the cleanups left
// into a block of its own, then publishes it. A Drain between the two
// found no finalizer running and no cleanup pending (records in a block
// not yet published are not counted), and returned with the cleanup
// neither run nor counted.
func TestDrainBesideCloseWaitsForItsCleanups(t *testing.T) {
	h, ran := closeWindowHeap(t)
	hooked, drained := false, false
	testHookCloseCleanupsQueued = func(h *Heap) {
		if !hooked {
			hooked = true
			drained = drainedNow(h)
		}
	}
	defer func() { testHookCloseCleanupsQueued = nil }()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if !hooked {
		t.Fatal("Close did not reach the hook")
	}
	if drained {
		t.Error("Drain returned nil while Close held a queued cleanup it had not published yet")
	}
	if n := ran.Load(); n != 1 {
		t.Errorf("the cleanup ran %d times, want 1", n)
	}
}

// TestDrainAfterClosePanicked: a panic of the heap's own in a round of
// Close (here the hook's, between queueing the round's cleanups and
// publishing them) leaves Close with fin.mu.busy set; every Drain after it
// waited until its context ended.
func TestDrainAfterClosePanicked(t *testing.T) {
	h, _ := closeWindowHeap(t)
	testHookCloseCleanupsQueued = func(*Heap) { panic("closewindow test panic") }
	defer func() { testHookCloseCleanupsQueued = nil }()
	func() {
		defer func() {
			if v := recover(); v != "closewindow test panic" {
				t.Fatalf("Close: got panic %v, want the hook's", v)
			}
		}()
		h.Close()
	}()
	if !drainedNow(h) {
		t.Error("Drain after Close panicked finds the heap not drained: fin.mu.busy is still set")
	}
}
