package heap

import (
	"testing"
	"time"
)

// TestPauseIncludesTheStop: a cycle's pause runs from its request to stop
// the world, as the runtime's pause times do, so a mutator that is slow to
// reach its safepoint shows in PauseLast. It counted from the moment the
// world was stopped and left that wait out.
func TestPauseIncludesTheStop(t *testing.T) {
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
	other := NewMutator()
	h.Attach(other)
	defer other.Detach()
	const hold = 20 * time.Millisecond
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Collect()
	}()
	// The stop is requested before stwReq is set, and the pause begins
	// before that: every moment from here to the safepoint is in it.
	for !h.stwReq.Load() {
		time.Sleep(10 * time.Microsecond)
	}
	requested := time.Now()
	time.Sleep(hold)
	held := time.Since(requested)
	other.Safepoint()
	<-done
	if got := h.Stats().PauseLast; got < held {
		t.Errorf("PauseLast = %v; the other mutator reached its safepoint %v after the stop was requested", got, held)
	}
}
