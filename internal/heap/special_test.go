package heap

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/cleanupq"
	"github.com/reclaimgc/reclaim/internal/handle"
	"github.com/reclaimgc/reclaim/internal/layout"
)

// testCleanup is a cleanup record as the root package builds them: the
// special first, then what the call needs.
type testCleanup struct {
	CleanupSpecial
	ran *atomic.Int64
}

func (c *testCleanup) Run()                                     { c.ran.Add(1) }
func (c *testCleanup) Scan(buf []handle.Handle) []handle.Handle { return buf }
func (c *testCleanup) Zero()                                    { c.ran = nil }
func (c *testCleanup) FuncPC() uintptr                          { return 0 }

var testCleanupType = &CleanupType{Layout: &layout.Type{NoRefs: true}}

// addTestCleanup registers a cleanup on x, reusing a stopped record of m's
// when there is one, as AddCleanup does; it returns the record and the
// generation its handle names.
func addTestCleanup(m *Mutator, x handle.Handle, ran *atomic.Int64) (*testCleanup, uint32) {
	var c *testCleanup
	if r := m.ReuseCleanup(testCleanupType); r != nil {
		c = (*testCleanup)(unsafe.Pointer(r))
		c.ran = ran
	} else {
		c = &testCleanup{ran: ran}
		c.Init(c, testCleanupType)
	}
	m.AddCleanup(x, &c.CleanupSpecial)
	return c, c.Gen()
}

// dropAndDrain unpins x, collects twice (x dies; a stopped record's
// object may need the second cycle), detaches m and waits for the cleanup
// queue to drain.
func dropAndDrain(t *testing.T, h *Heap, m *Mutator, x handle.Handle) {
	t.Helper()
	h.Unpin(x)
	m.Collect()
	m.Collect()
	m.Detach()
	if err := h.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func listLen(h *Heap, x handle.Handle) int {
	s := h.spans.get(x.Span())
	t := s.sp.cl.Load()
	if t == nil {
		return 0
	}
	n := 0
	for c := t.head[x.Slot()]; c != nil; c = c.next {
		n++
	}
	return n
}

// TestCleanupListStaysBounded: an object that keeps a window of live
// cleanups while many more are added and stopped, oldest first (the
// order that leaves stopped records below live ones), keeps a list within
// twice its live cleanups plus cleanupPruneMin.
func TestCleanupListStaysBounded(t *testing.T) {
	h, m, kept := verifyHeap(t, 10)
	x := kept[0]
	var ran atomic.Int64
	const window = 5
	type reg struct {
		c   *testCleanup
		gen uint32
	}
	var live []reg
	maxLen := 0
	for i := range 10000 {
		c, gen := addTestCleanup(m, x, &ran)
		live = append(live, reg{c, gen})
		if len(live) > window {
			live[0].c.Stop(live[0].gen)
			live = live[1:]
		}
		maxLen = max(maxLen, listLen(h, x))
		if i%1000 == 0 {
			if err := h.Verify(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if bound := 2*(window+1) + cleanupPruneMin; maxLen > bound {
		t.Fatalf("cleanup list reached %d records with %d live; want at most %d", maxLen, window, bound)
	}
	// The live ones still run, and only they: drop the object.
	dropAndDrain(t, h, m, x)
	if got := ran.Load(); got != window {
		t.Fatalf("%d cleanups ran, want the %d never stopped", got, window)
	}
}

// TestCleanupReuseGeneration: a record stopped and reused for a new
// cleanup is not stopped by the handles of its earlier generations.
func TestCleanupReuseGeneration(t *testing.T) {
	h, m, kept := verifyHeap(t, 10)
	x := kept[0]
	var ran atomic.Int64
	rec, gen0 := addTestCleanup(m, x, &ran)
	rec.Stop(gen0)
	// A stopped record is unlinked and recycled by the next push on its
	// slot, and reused by the one after.
	other, otherGen := addTestCleanup(m, x, &ran)
	c1, gen1 := addTestCleanup(m, x, &ran)
	if c1 != rec || other == rec {
		t.Fatalf("stopped record not reused: %p, then %p, %p", rec, other, c1)
	}
	c1.Stop(gen1)
	other.Stop(otherGen)
	filler, _ := addTestCleanup(m, x, &ran) // recycles c1 (and other)
	c2, gen2 := addTestCleanup(m, x, &ran)
	if c2 != rec && c2 != other {
		t.Fatalf("stopped record not reused the second time")
	}
	if gen0 == gen1 || (c2 == rec && (gen2 == gen0 || gen2 == gen1)) || (c2 == other && gen2 == otherGen) {
		t.Fatalf("generations not advanced: record %p had %d, %d; reused as %p with %d", rec, gen0, gen1, c2, gen2)
	}
	// The old handles must not stop c2.
	rec.Stop(gen0)
	rec.Stop(gen1)
	other.Stop(otherGen)
	filler.Stop(filler.Gen())
	dropAndDrain(t, h, m, x)
	if got := ran.Load(); got != 1 {
		t.Fatalf("%d cleanups ran, want 1 (the reused record's)", got)
	}
}

// TestCleanupStopRacesSweep: Stop from other goroutines races with the
// sweep that queues the cleanups; every cleanup either runs or was
// stopped by a Stop that won, never both, never neither.
func TestCleanupStopRacesSweep(t *testing.T) {
	const n = 20000
	h := New(Config{MarkWorkers: 2})
	m := NewMutator()
	h.Attach(m)
	defer h.Close()
	var ran atomic.Int64
	type reg struct {
		c   *testCleanup
		gen uint32
	}
	regs := make([]reg, n)
	for i := range regs {
		x, err := m.Alloc(vnodeType)
		if err != nil {
			t.Fatal(err)
		}
		c, gen := addTestCleanup(m, x, &ran)
		regs[i] = reg{c, gen}
	}
	var stopped atomic.Int64
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 { // half of them
				if r := regs[i]; r.c.Stop(r.gen) {
					stopped.Add(1)
				}
			}
		}()
	}
	m.Collect() // the objects are garbage: the sweep races the Stops
	wg.Wait()
	m.Collect()
	m.Detach()
	if err := h.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Every cleanup is queued or stopped now: further Stops cancel
	// nothing (one that did would be counted, and the sum would be off).
	for _, r := range regs {
		if r.c.Stop(r.gen) {
			stopped.Add(1)
		}
	}
	if err := h.Verify(); err != nil {
		t.Fatal(err)
	}
	if got := ran.Load() + stopped.Load(); got != n {
		t.Fatalf("%d ran + %d stopped = %d, want %d", ran.Load(), stopped.Load(), got, n)
	}
}

// collectNoSweep runs a cycle's mark and flip and leaves every span
// unswept: no mutator sweeps, and the background sweeper is stopped for
// good first. Not woken is not enough: the token of an earlier cycle's
// flip may still be waiting in its channel, or its loop may still be
// running, and it would sweep this cycle's spans once the flip is done.
func collectNoSweep(h *Heap) {
	h.bg.stop()
	h.mu.Lock()
	h.stopTheWorldLocked(time.Now(), false)
	h.mu.Unlock()
	h.gcDue.Store(false)
	h.finishSweep()
	h.flushCaches()
	h.flip(h.mark(context.Background()))
	h.startTheWorld()
}

// TestPinOfDeadUnsweptObject: an object the last mark found unreachable
// cannot be pinned, even before its span is swept.
func TestPinOfDeadUnsweptObject(t *testing.T) {
	h, m, kept := verifyHeap(t, 10)
	x, err := m.Alloc(vnodeType)
	if err != nil {
		t.Fatal(err)
	}
	collectNoSweep(h)
	s := h.spans.get(x.Span())
	if s.sweepgen.Load() == h.sweepgen.Load() {
		t.Fatal("span swept already; the test needs it unswept")
	}
	if !h.Valid(x) {
		t.Fatal("dead object freed before its span was swept")
	}
	func() {
		defer func() {
			v := recover()
			if msg, _ := v.(string); !strings.Contains(msg, "reclaim: Pin of a ref to a freed object") {
				t.Fatalf("Pin of a dead, unswept object: got %v, want the freed-object panic", v)
			}
		}()
		h.Pin(x)
	}()
	h.Pin(kept[1]) // live, in a span swept by the Pin above or not: fine
	h.Unpin(kept[1])
}

// TestPinPublishesItsSweepBeforeDone: Pin on a goroutine that is not a
// mutator sweeps into a cleanup block of its own. When another sweeper
// drains the list while Pin sweeps, Pin's sweep is the cycle's last, and
// the block must be published before the sweep says it is done: else a
// Drain in between finds the sweep done and nothing pending, and returns
// with the cleanup Pin found unpublished.
func TestPinPublishesItsSweepBeforeDone(t *testing.T) {
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
	h.bg.stop() // nothing sweeps but this test and Pin
	a, err := m.Alloc(vnodeType)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Alloc(vnodeType) // b's span is a's
	if err != nil {
		t.Fatal(err)
	}
	var ran atomic.Int64
	addTestCleanup(m, a, &ran)
	h.Pin(b)
	h.collect(m, false) // a dies; nothing is swept
	m.Detach()

	// The test plays another sweeper, active while Pin sweeps b's span
	// (the only one): it drains the list, and Pin's end is the last.
	if !h.sweep.active.begin() {
		t.Fatal("the sweep is already drained")
	}
	swept, proceed := make(chan struct{}), make(chan struct{})
	testHookPinSwept = func() {
		close(swept)
		<-proceed
	}
	defer func() { testHookPinSwept = nil }()
	pinned := make(chan struct{})
	go func() {
		defer close(pinned)
		h.Pin(b)
	}()
	<-swept
	var local cleanupq.Local
	if h.sweepone(&local) {
		t.Error("a span was left to sweep besides b's")
	}
	if h.sweep.active.end() {
		h.sweepDone()
	} else {
		t.Fatal("the test's sweeper was not the last")
	}
	if !h.sweep.done.Load() {
		t.Fatal("the sweep is not done after its last sweeper")
	}
	// drained with the cleanup not run means it was never published: a
	// worker that ran it counted it executed only after it ran.
	if h.drained() && ran.Load() == 0 {
		t.Error("the sweep is done and nothing is pending while Pin holds the cleanup its sweep found: Drain would return without it")
	}
	close(proceed)
	<-pinned
	if err := h.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := ran.Load(); n != 1 {
		t.Errorf("the cleanup ran %d times, want once", n)
	}
}
