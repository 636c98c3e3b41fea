package heap

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestPinAcrossCollectionOfItsSpan: Pin on a goroutine that is not a
// mutator lets collections run while it sweeps the object's span. When a
// whole cycle, sweep included, comes between its reading of the sweep
// generation and its look at the span, the span is past the generation it
// read, swept, and Pin goes on; waiting for the span to equal that
// generation, it waited for ever.
func TestPinAcrossCollectionOfItsSpan(t *testing.T) {
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
	h.bg.stop() // nothing sweeps but this test's mutator and Pin
	x, err := m.Alloc(vnodeType)
	if err != nil {
		t.Fatal(err)
	}
	h.Pin(x)            // reachable by other means than the Pin below
	h.collect(m, false) // x's span is left unswept
	s := h.spans.get(x.Span())
	if s.sweepgen.Load() == h.sweepgen.Load() {
		t.Fatal("span swept already; the test needs it unswept")
	}
	reached, proceed := holdEnsureSwept(t)
	pinned := make(chan struct{})
	go func() {
		defer close(pinned)
		h.Pin(x)
	}()
	<-reached
	m.Collect() // a whole cycle, its sweep of x's span included
	if s.sweepgen.Load() != h.sweepgen.Load() {
		t.Fatal("Collect left x's span unswept")
	}
	close(proceed)
	select {
	case <-pinned:
	case <-time.After(5 * time.Second):
		t.Fatal("Pin still waits for x's span to be swept, 5s after a collection swept it")
	}
	h.Unpin(x)
	h.Unpin(x)
}

// holdEnsureSwept holds the next ensureSwept in its test hook: reached is
// closed when a goroutine gets there, and it goes on once the test closes
// proceed. The hook is removed when the test ends.
func holdEnsureSwept(t *testing.T) (reached, proceed chan struct{}) {
	var hooked atomic.Bool
	reached, proceed = make(chan struct{}), make(chan struct{})
	testHookEnsureSwept = func() {
		if hooked.CompareAndSwap(false, true) {
			close(reached)
			<-proceed
		}
	}
	t.Cleanup(func() { testHookEnsureSwept = nil })
	return reached, proceed
}
