package heap

import (
	"strings"
	"testing"
)

// TestWeakValueFromSecondGoroutineCaught: Weak.Value that must sweep its
// object's span first sweeps into the mutator's cleanup block, which only
// the goroutine using the mutator may write. While another goroutine is
// inside an operation on the mutator (held in MakeWeak's sweep of the same
// span), Value on that mutator panics as every other slow path does,
// instead of sweeping into the block beside the other goroutine.
func TestWeakValueFromSecondGoroutineCaught(t *testing.T) {
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
	h.bg.stop() // nothing sweeps but this test's goroutines
	a, err := m.Alloc(vnodeType)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Alloc(vnodeType) // in a's span
	if err != nil {
		t.Fatal(err)
	}
	h.Pin(a)
	h.Pin(b)
	defer h.Unpin(a)
	defer h.Unpin(b)
	wb := m.MakeWeak(b, false)
	collectNoSweep(h)
	if s := h.spans.get(b.Span()); s.sweepgen.Load() == h.sweepgen.Load() {
		t.Fatal("span swept already; the test needs it unswept")
	}

	reached, proceed := holdEnsureSwept(t)
	made := make(chan struct{})
	go func() {
		defer close(made)
		m.MakeWeak(a, false) // holds m, waiting in its sweep of the span
	}()
	<-reached

	var v any
	func() {
		defer func() { v = recover() }()
		m.WeakValue(wb)
	}()
	close(proceed)
	<-made
	if msg, _ := v.(string); !strings.Contains(msg, "reclaim: mutator used from two goroutines at once (in Weak.Value)") {
		t.Fatalf("Weak.Value on a mutator another goroutine is using, with a sweep to do: got %v, want the two-goroutines panic", v)
	}
	// One goroutine again: fine.
	if got := m.WeakValue(wb); got != b {
		t.Fatalf("Weak.Value = %v, want %v", got, b)
	}
}
