package reclaim_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

// Tests of finalizers: each rule of runtime.SetFinalizer's documentation and
// of the product brief's "Finalizers" section, with exact counts. Tests wait
// for finalizers with Collect and Drain, never with sleeps; every wait is
// bounded by a generous deadline that fails the test, so a lost wake-up
// shows up as a failure instead of a hang.

// waitLimit bounds every wait of these tests. It is far above what any
// wait needs, even under the race detector on a loaded machine.
const waitLimit = 30 * time.Second

// finNode is the object type most finalizer tests use.
type finNode struct {
	next reclaim.Ref[finNode]
	id   int
}

// finHolder holds a ref; tests pin one and let finalizers store into it.
type finHolder struct {
	obj reclaim.Ref[finNode]
}

// drain waits until every queued finalizer and cleanup has run.
func drain(t testing.TB, h *reclaim.Heap) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := h.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
}

// collectDrain runs a full cycle and waits for what it queued.
func collectDrain(t testing.TB, m *reclaim.Mutator, h *reclaim.Heap) {
	t.Helper()
	m.Collect()
	drain(t, h)
}

// isLive reports whether r names an object that has not been freed.
func isLive[T any](r reclaim.Ref[T]) bool {
	if r.IsNil() {
		return false
	}
	_, ok := reclaim.As[T](r.Object())
	return ok
}

// waitUntil polls cond, yielding between polls, until it holds; it fails
// the test if cond does not hold within waitLimit.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		runtime.Gosched()
	}
}

// recvWithin waits for ch to be closed or to deliver, failing the test after
// waitLimit.
func recvWithin[E any](t testing.TB, ch <-chan E, what string) E {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}

// waitTimeout waits for wg, failing t if it takes longer than d.
func waitTimeout(t testing.TB, wg *sync.WaitGroup, d time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// repeatUntilStopped calls f over and over on each of n goroutines until
// stop is called, or until f returns false on that goroutine. stop waits
// for them (waitLimit at most, naming what) and may be called again: a
// test defers it, so that they end on every way out before newTestHeap's
// end-of-test check, and calls it where they must have ended.
func repeatUntilStopped(t testing.TB, n int, what string, f func() bool) (stop func()) {
	var done atomic.Bool
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() && f() {
			}
		}()
	}
	return sync.OnceFunc(func() {
		done.Store(true)
		waitTimeout(t, &wg, waitLimit, what)
	})
}

// mustPanic runs f and returns the message of its panic, failing the test if
// f does not panic.
func mustPanic(t testing.TB, f func()) (msg string) {
	t.Helper()
	defer func() {
		v := recover()
		if v == nil {
			t.Fatalf("no panic")
		}
		msg = fmt.Sprint(v)
	}()
	f()
	return ""
}

// logBuffer is an io.Writer for a slog handler that tests can read while
// the heap's goroutines write.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogBuffer() (*logBuffer, *slog.Logger) {
	lb := new(logBuffer)
	return lb, slog.New(slog.NewTextHandler(lb, nil))
}

// panicLog records the panics reported through Options.OnPanic.
type panicLog struct {
	mu sync.Mutex
	ps []reclaim.CallbackPanic
}

func (p *panicLog) record(cp *reclaim.CallbackPanic) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ps = append(p.ps, *cp)
}

func (p *panicLog) all() []reclaim.CallbackPanic {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ps)
}

// gate is what a blocked finalizer waits on. It opens at the latest when
// the test ends (create it after the heap, so that it opens before the
// heap's own cleanup drains), so a failing test leaves nothing blocked.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate(t testing.TB) *gate {
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }
func (g *gate) wait() { <-g.ch }

// counter returns a finalizer that counts its calls in n.
func counter(n *atomic.Int32) func(*reclaim.Mutator, reclaim.Ref[finNode]) {
	return func(*reclaim.Mutator, reclaim.Ref[finNode]) { n.Add(1) }
}

// "When the garbage collector finds an unreachable block with an associated
// finalizer, it clears the association and runs finalizer(obj)... the next
// time the garbage collector sees that obj is unreachable, it will free obj."
func TestFinalizerRunsOnceAfterUnreachable(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	r := reclaim.New[finNode](m)
	r.Get(m).id = 7
	var runs atomic.Int32
	var sawRef, sawID atomic.Bool
	reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		sawRef.Store(x == r)
		sawID.Store(x.Get(fm).id == 7)
		runs.Add(1)
	})

	// Nothing runs before a collection finds the object unreachable.
	drain(t, h)
	if n := runs.Load(); n != 0 {
		t.Fatalf("finalizer ran %d times before any collection", n)
	}

	collectDrain(t, m, h)
	if n := runs.Load(); n != 1 {
		t.Fatalf("after one cycle: finalizer ran %d times, want 1", n)
	}
	if !sawRef.Load() || !sawID.Load() {
		t.Errorf("finalizer got another ref or a changed object (same ref %v, id intact %v)", sawRef.Load(), sawID.Load())
	}
	// The object was kept for its finalizer and has not been found
	// unreachable since.
	if !isLive(r) {
		t.Fatalf("object freed in the cycle that queued its finalizer")
	}
	if got := r.Get(m).id; got != 7 {
		t.Errorf("object kept for its finalizer has id %d, want 7", got)
	}
	st := h.Stats()
	if st.FinalizersQueued != 1 || st.FinalizersExecuted != 1 {
		t.Errorf("Stats: FinalizersQueued %d, FinalizersExecuted %d; want 1, 1", st.FinalizersQueued, st.FinalizersExecuted)
	}

	collectDrain(t, m, h)
	if isLive(r) {
		t.Fatalf("object still live after the cycle following its finalizer")
	}
	collectDrain(t, m, h)
	if n := runs.Load(); n != 1 {
		t.Fatalf("finalizer ran %d times in all, want 1", n)
	}
	st = h.Stats()
	if st.FinalizersQueued != 1 || st.FinalizersExecuted != 1 {
		t.Errorf("Stats at end: FinalizersQueued %d, FinalizersExecuted %d; want 1, 1", st.FinalizersQueued, st.FinalizersExecuted)
	}
}

// A reachable object's finalizer does not run, however many cycles pass.
func TestFinalizerNotRunWhileReachable(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	pinned := reclaim.New[finNode](m)
	h.Pin(pinned.Object())
	child := reclaim.New[finNode](m) // reachable from a pinned object
	pinned.Get(m).next = child
	var runs atomic.Int32
	reclaim.SetFinalizer(m, pinned, counter(&runs))
	reclaim.SetFinalizer(m, child, counter(&runs))
	for range 3 {
		collectDrain(t, m, h)
	}
	if n := runs.Load(); n != 0 {
		t.Fatalf("finalizers of reachable objects ran %d times", n)
	}
	h.Unpin(pinned.Object())
	collectDrain(t, m, h)
	if n := runs.Load(); n != 1 {
		t.Fatalf("after unpinning: %d finalizers ran, want 1 (the parent's only)", n)
	}
}

// "Finalizers are run in dependency order: if A points at B, both have
// finalizers, and they are otherwise unreachable, only the finalizer for A
// runs; once A is freed, the finalizer for B can run."
func TestFinalizerDependencyOrder(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	var mu sync.Mutex
	var order []int
	record := func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		id := x.Get(fm).id
		mu.Lock()
		order = append(order, id)
		mu.Unlock()
	}
	got := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(order)
	}

	// A -> B -> C, all finalizable.
	a, b, c := reclaim.New[finNode](m), reclaim.New[finNode](m), reclaim.New[finNode](m)
	a.Get(m).id, b.Get(m).id, c.Get(m).id = 1, 2, 3
	a.Get(m).next, b.Get(m).next = b, c
	for _, r := range []reclaim.Ref[finNode]{a, b, c} {
		reclaim.SetFinalizer(m, r, record)
	}

	collectDrain(t, m, h)
	if o := got(); !slices.Equal(o, []int{1}) {
		t.Fatalf("cycle 1 ran finalizers %v, want [1] (only A's)", o)
	}
	if !isLive(b) || !isLive(c) || b.Get(m).next != c {
		t.Fatalf("objects reachable from a finalizable object were not kept intact")
	}

	collectDrain(t, m, h)
	if o := got(); !slices.Equal(o, []int{1, 2}) {
		t.Fatalf("cycle 2 ran finalizers %v, want [1 2]", o)
	}
	if isLive(a) {
		t.Errorf("A still live after its finalizer ran and a cycle passed")
	}

	collectDrain(t, m, h)
	if o := got(); !slices.Equal(o, []int{1, 2, 3}) {
		t.Fatalf("cycle 3 ran finalizers %v, want [1 2 3]", o)
	}
	collectDrain(t, m, h)
	if isLive(a) || isLive(b) || isLive(c) {
		t.Errorf("objects live after all finalizers ran: A %v B %v C %v", isLive(a), isLive(b), isLive(c))
	}
	if o := got(); len(o) != 3 {
		t.Errorf("finalizers ran %v in all, want each once", o)
	}
}

// TestFinalizableObjectsReachedAreNotRoots checks the mark's second phase:
// a finalizable object that the other roots reach is marked and scanned as
// any object is, and only the finalizable objects they do not reach are
// scanned as roots of what they point to. What either kind points to
// survives the cycle, and only the unreached ones' finalizers run.
func TestFinalizableObjectsReachedAreNotRoots(t *testing.T) {
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: workers})
			m := h.Attach()
			defer m.Detach()
			var ran atomic.Int64
			fin := func(*reclaim.Mutator, reclaim.Ref[finNode]) { ran.Add(1) }

			// A pinned chain of finalizable nodes, whose last points
			// to a plain one.
			const live, dead = 300, 200
			chain := make([]reclaim.Ref[finNode], live)
			for i := range chain {
				chain[i] = reclaim.New[finNode](m)
				reclaim.SetFinalizer(m, chain[i], fin)
				if i > 0 {
					chain[i-1].Get(m).next = chain[i]
				}
			}
			tail := reclaim.New[finNode](m)
			chain[live-1].Get(m).next = tail
			h.Pin(chain[0].Object())
			// Unreached finalizable nodes, each pointing to a plain one
			// that only it keeps alive.
			held := make([]reclaim.Ref[finNode], dead)
			for i := range held {
				f := reclaim.New[finNode](m)
				held[i] = reclaim.New[finNode](m)
				f.Get(m).next = held[i]
				reclaim.SetFinalizer(m, f, fin)
			}

			collectDrain(t, m, h)
			if got := h.FinalizerRoots(); got != dead {
				t.Errorf("the mark scanned %d finalizable objects as roots, want %d (the unreached ones only)", got, dead)
			}
			if n := ran.Load(); n != dead {
				t.Errorf("%d finalizers ran, want %d", n, dead)
			}
			if !isLive(tail) {
				t.Errorf("the object at the end of the live chain was freed")
			}
			for i, r := range held {
				if !isLive(r) {
					t.Fatalf("the object that unreached finalizable node %d points to was freed in the cycle that queued its finalizer", i)
				}
			}
			for i, r := range chain {
				if !isLive(r) {
					t.Fatalf("live chain node %d was freed", i)
				}
			}
			h.Unpin(chain[0].Object())
		})
	}
}

// Resurrection: "This makes obj reachable again, but now without an
// associated finalizer." A finalizer that stores its object somewhere keeps
// it alive with its contents; a finalizer set again from inside the
// finalizer runs when the object becomes unreachable again.
func TestFinalizerResurrectionAndReset(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	holder := reclaim.New[finHolder](m)
	h.Pin(holder.Object())
	defer h.Unpin(holder.Object())

	r := reclaim.New[finNode](m)
	r.Get(m).id = 42
	kid := reclaim.New[finNode](m)
	kid.Get(m).id = 43
	r.Get(m).next = kid

	var first, second atomic.Int32
	reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		first.Add(1)
		holder.Get(fm).obj = x
		reclaim.SetFinalizer(fm, x, counter(&second))
	})

	collectDrain(t, m, h)
	if first.Load() != 1 || second.Load() != 0 {
		t.Fatalf("after cycle 1: first %d, second %d; want 1, 0", first.Load(), second.Load())
	}
	got := holder.Get(m).obj
	if got != r || got.Get(m).id != 42 || got.Get(m).next.Get(m).id != 43 {
		t.Fatalf("resurrected object is not intact")
	}

	// Still stored: nothing runs, however many cycles pass.
	for range 2 {
		collectDrain(t, m, h)
	}
	if first.Load() != 1 || second.Load() != 0 || !isLive(r) || !isLive(kid) {
		t.Fatalf("resurrected object: first %d, second %d, live %v, child live %v; want 1, 0, true, true",
			first.Load(), second.Load(), isLive(r), isLive(kid))
	}

	// Dropped: the finalizer set inside the first one runs, once.
	holder.Get(m).obj = reclaim.Ref[finNode]{}
	collectDrain(t, m, h)
	if first.Load() != 1 || second.Load() != 1 {
		t.Fatalf("after dropping: first %d, second %d; want 1, 1", first.Load(), second.Load())
	}
	collectDrain(t, m, h)
	if isLive(r) {
		t.Fatalf("object live after its second finalizer ran and a cycle passed")
	}
	collectDrain(t, m, h)
	if first.Load() != 1 || second.Load() != 1 {
		t.Fatalf("at end: first %d, second %d; want 1, 1", first.Load(), second.Load())
	}
	if isLive(kid) {
		t.Errorf("the child of a freed object is still live")
	}
}

// "Assuming that SetFinalizer is not called again, the next time the garbage
// collector sees that obj is unreachable, it will free obj."
func TestFinalizerResurrectedObjectFreedWithoutReset(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	holder := reclaim.New[finHolder](m)
	h.Pin(holder.Object())
	defer h.Unpin(holder.Object())

	r := reclaim.New[finNode](m)
	var runs atomic.Int32
	reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		runs.Add(1)
		holder.Get(fm).obj = x
	})
	collectDrain(t, m, h)
	collectDrain(t, m, h)
	if runs.Load() != 1 || !isLive(r) {
		t.Fatalf("runs %d, live %v; want 1, true", runs.Load(), isLive(r))
	}
	holder.Get(m).obj = reclaim.Ref[finNode]{}
	collectDrain(t, m, h)
	if isLive(r) {
		t.Fatalf("resurrected object without a finalizer survived a cycle after being dropped")
	}
	if runs.Load() != 1 {
		t.Fatalf("finalizer ran %d times, want 1", runs.Load())
	}
}

type finCycA struct {
	b reclaim.Ref[finCycB]
}

type finCycB struct {
	a reclaim.Ref[finCycA]
}

// "If a cyclic structure includes a block with a finalizer, that cycle is
// not guaranteed to be garbage collected": in reclaim it never is, and
// Options.Debug reports it with the types on the cycle.
func TestFinalizerCycleNeverCollected(t *testing.T) {
	logs, logger := newLogBuffer()
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, Debug: true, Logger: logger})
	m := h.Attach()
	defer m.Detach()

	// A <-> B, A finalizable; and C -> C, finalizable.
	a, b := reclaim.New[finCycA](m), reclaim.New[finCycB](m)
	a.Get(m).b = b
	b.Get(m).a = a
	var runs atomic.Int32
	reclaim.SetFinalizer(m, a, func(*reclaim.Mutator, reclaim.Ref[finCycA]) { runs.Add(1) })
	c := reclaim.New[finNode](m)
	c.Get(m).next = c
	reclaim.SetFinalizer(m, c, counter(&runs))

	for range 4 {
		collectDrain(t, m, h)
	}
	if n := runs.Load(); n != 0 {
		t.Fatalf("finalizers on cycles ran %d times, want 0", n)
	}
	if !isLive(a) || !isLive(b) || !isLive(c) {
		t.Fatalf("objects on finalizable cycles were freed: A %v B %v C %v", isLive(a), isLive(b), isLive(c))
	}
	// Two finalizable objects on cycles, reported once each over the four
	// collections.
	if st := h.Stats(); st.FinalizerCycles != 2 {
		t.Errorf("Stats.FinalizerCycles = %d with Debug on after 4 collections, want 2 (each cycle once)", st.FinalizerCycles)
	}
	out := logs.String()
	for _, name := range []string{"reclaim_test.finCycA", "reclaim_test.finCycB", "reclaim_test.finNode"} {
		if !strings.Contains(out, name) {
			t.Errorf("Debug log does not mention %s:\n%s", name, out)
		}
	}
	// And which finalizers: A's, a literal of this test, and C's, a
	// literal of counter's (named after the test where counter is
	// inlined).
	for _, fn := range []string{"TestFinalizerCycleNeverCollected.func1 ", "counter.func", "final_test.go:"} {
		if !strings.Contains(out, fn) {
			t.Errorf("Debug log does not name the finalizer %q:\n%s", fn, out)
		}
	}
	// Break the cycles: the finalizers can now run.
	a.Get(m).b = reclaim.Ref[finCycB]{}
	c.Get(m).next = reclaim.Ref[finNode]{}
	collectDrain(t, m, h)
	if n := runs.Load(); n != 2 {
		t.Fatalf("after breaking the cycles %d finalizers ran, want 2", n)
	}
}

// Debug reports nothing for finalizable objects that are not on a cycle.
func TestFinalizerDebugNoFalseCycles(t *testing.T) {
	logs, logger := newLogBuffer()
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, Debug: true, Logger: logger})
	m := h.Attach()
	defer m.Detach()

	holder := reclaim.New[finHolder](m)
	h.Pin(holder.Object())
	defer h.Unpin(holder.Object())
	var runs atomic.Int32
	// A live finalizable chain (A -> B -> C, both ends finalizable), a dead
	// one, and two finalizable objects pointing to one shared child.
	live := reclaim.New[finNode](m)
	holder.Get(m).obj = live
	prev := live
	for range 2 {
		n := reclaim.New[finNode](m)
		prev.Get(m).next = n
		reclaim.SetFinalizer(m, prev, counter(&runs))
		prev = n
	}
	shared := reclaim.New[finNode](m)
	for range 2 {
		p := reclaim.New[finNode](m)
		p.Get(m).next = shared
		reclaim.SetFinalizer(m, p, counter(&runs))
	}
	for range 2 {
		collectDrain(t, m, h)
	}
	if st := h.Stats(); st.FinalizerCycles != 0 {
		t.Errorf("Stats.FinalizerCycles = %d without any cycle, want 0; log:\n%s", st.FinalizerCycles, logs.String())
	}
	if n := runs.Load(); n != 2 {
		t.Errorf("%d finalizers ran, want 2 (the two sharing a child)", n)
	}
}

// "SetFinalizer(obj, nil) clears any finalizer associated with obj."
func TestSetFinalizerNilClears(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	var cleared, second atomic.Int32
	r := reclaim.New[finNode](m)
	reclaim.SetFinalizer(m, r, counter(&cleared))
	reclaim.SetFinalizer(m, r, nil)
	reclaim.SetFinalizer(m, r, nil) // clearing twice is fine

	// Clearing and setting again is allowed; only the new one runs.
	r2 := reclaim.New[finNode](m)
	reclaim.SetFinalizer(m, r2, counter(&cleared))
	reclaim.SetFinalizer(m, r2, nil)
	reclaim.SetFinalizer(m, r2, counter(&second))

	// Clearing an object that never had one is fine too.
	r3 := reclaim.New[finNode](m)
	reclaim.SetFinalizer(m, r3, nil)

	collectDrain(t, m, h)
	if isLive(r) || isLive(r3) {
		t.Errorf("objects whose finalizer was cleared were not freed: %v %v", isLive(r), isLive(r3))
	}
	collectDrain(t, m, h)
	if cleared.Load() != 0 || second.Load() != 1 {
		t.Fatalf("cleared finalizers ran %d times (want 0), re-set one %d times (want 1)", cleared.Load(), second.Load())
	}
	if st := h.Stats(); st.FinalizersQueued != 1 || st.FinalizersExecuted != 1 {
		t.Errorf("Stats: FinalizersQueued %d, FinalizersExecuted %d; want 1, 1", st.FinalizersQueued, st.FinalizersExecuted)
	}
}

// A second finalizer panics, with a reclaim: message, and leaves the first
// one and the mutator intact.
func TestSetFinalizerTwicePanics(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	var first, second atomic.Int32
	r := reclaim.New[finNode](m)
	reclaim.SetFinalizer(m, r, counter(&first))
	msg := mustPanic(t, func() { reclaim.SetFinalizer(m, r, counter(&second)) })
	if !strings.HasPrefix(msg, "reclaim:") {
		t.Errorf("panic message %q does not start with reclaim:", msg)
	}
	// The mutator is still usable and the first finalizer still set.
	_ = reclaim.New[finNode](m)
	collectDrain(t, m, h)
	if first.Load() != 1 || second.Load() != 0 {
		t.Fatalf("first ran %d times (want 1), second %d (want 0)", first.Load(), second.Load())
	}
}

// "A single goroutine runs all finalizers for a program, sequentially."
func TestFinalizersRunOneAtATime(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, CleanupWorkers: 2})
	m := h.Attach()
	defer m.Detach()

	const n = 300
	var active, highWater, runs atomic.Int32
	fin := func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		cur := active.Add(1)
		for {
			old := highWater.Load()
			if cur <= old || highWater.CompareAndSwap(old, cur) {
				break
			}
		}
		for range 3 {
			runtime.Gosched() // give a second runner every chance to show up
		}
		_ = x.Get(fm).id
		active.Add(-1)
		runs.Add(1)
	}
	var cleanups atomic.Int32
	for i := range n {
		r := reclaim.New[finNode](m)
		r.Get(m).id = i
		reclaim.SetFinalizer(m, r, fin)
		// Cleanups run concurrently with finalizers; they must not change
		// that finalizers run one at a time.
		reclaim.AddCleanup(m, r, func(int) { cleanups.Add(1) }, i)
	}
	collectDrain(t, m, h)
	if runs.Load() != n {
		t.Fatalf("%d finalizers ran, want %d", runs.Load(), n)
	}
	if hw := highWater.Load(); hw != 1 {
		t.Fatalf("up to %d finalizers ran at once, want 1", hw)
	}
	collectDrain(t, m, h)
	if cleanups.Load() != n {
		t.Fatalf("%d cleanups ran, want %d", cleanups.Load(), n)
	}
}

// The finalizer goroutine is created by the first SetFinalizer, sleeps when
// it has no work (seed 001/000: the status word shows "waiting"), and is
// woken for work queued later, every time.
func TestFinalizerGoroutineSleepsAndWakes(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	if s := h.Stats().FinalizerStatus; s != "uninitialized" {
		t.Fatalf("FinalizerStatus of a new heap = %q, want uninitialized", s)
	}
	m := h.Attach()
	defer m.Detach()

	// Collections without finalizers do not create the goroutine.
	_ = reclaim.New[finNode](m)
	collectDrain(t, m, h)
	if s := h.Stats().FinalizerStatus; s != "uninitialized" {
		t.Fatalf("FinalizerStatus after a cycle without finalizers = %q, want uninitialized", s)
	}

	var runs atomic.Int32
	keep := reclaim.New[finNode](m)
	h.Pin(keep.Object())
	defer h.Unpin(keep.Object())
	reclaim.SetFinalizer(m, keep, counter(&runs))
	if s := h.Stats().FinalizerStatus; !strings.HasPrefix(s, "created") {
		t.Fatalf("FinalizerStatus after the first SetFinalizer = %q, want created...", s)
	}
	isWaiting := func() bool {
		s := h.Stats().FinalizerStatus
		return strings.Contains(s, "waiting") && !strings.Contains(s, "running")
	}
	waitUntil(t, "the idle finalizer goroutine waits", isWaiting)

	for round := int32(1); round <= 5; round++ {
		// Work that arrives while the goroutine sleeps is run.
		r := reclaim.New[finNode](m)
		reclaim.SetFinalizer(m, r, counter(&runs))
		collectDrain(t, m, h)
		if n := runs.Load(); n != round {
			t.Fatalf("round %d: %d finalizers ran, want %d", round, n, round)
		}
		waitUntil(t, "the finalizer goroutine goes back to waiting", isWaiting)
	}
}

// A finalizer runs as a mutator: it can read its object, allocate, store
// refs, set finalizers and add cleanups.
func TestFinalizerMutatorIsUsable(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	holder := reclaim.New[finHolder](m)
	h.Pin(holder.Object())

	var childRuns, cleanups atomic.Int32
	var seen atomic.Int64
	r := reclaim.New[finNode](m)
	r.Get(m).id = 5
	reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		seen.Store(int64(x.Get(fm).id))
		// Allocate a small structure from the finalizer.
		child := reclaim.New[finNode](fm)
		child.Get(fm).id = x.Get(fm).id + 100
		grand := reclaim.New[finNode](fm)
		grand.Get(fm).id = x.Get(fm).id + 200
		child.Get(fm).next = grand
		holder.Get(fm).obj = child
		reclaim.SetFinalizer(fm, child, counter(&childRuns))
		reclaim.AddCleanup(fm, grand, func(int) { cleanups.Add(1) }, 0)
		fm.Safepoint() // a finalizer may reach a safepoint of its own
	})
	collectDrain(t, m, h)
	if seen.Load() != 5 {
		t.Fatalf("finalizer read id %d, want 5", seen.Load())
	}
	child := holder.Get(m).obj
	if !isLive(child) || child.Get(m).id != 105 || child.Get(m).next.Get(m).id != 205 {
		t.Fatalf("objects allocated by the finalizer are not intact")
	}
	h.Unpin(holder.Object())
	collectDrain(t, m, h) // holder freed; child's finalizer runs
	if childRuns.Load() != 1 || cleanups.Load() != 0 {
		t.Fatalf("child finalizer ran %d times (want 1), grandchild cleanup %d (want 0)", childRuns.Load(), cleanups.Load())
	}
	collectDrain(t, m, h) // child freed, so grand is unreachable
	if cleanups.Load() != 1 {
		t.Fatalf("cleanup added by a finalizer ran %d times, want 1", cleanups.Load())
	}
}

type panicErr struct{ id int }

func (p panicErr) Error() string { return fmt.Sprintf("finalizer %d failed", p.id) }

// A finalizer that panics is reported through OnPanic with its value and
// stack, and the queue goes on.
func TestFinalizerPanicReported(t *testing.T) {
	var pl panicLog
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, OnPanic: pl.record})
	m := h.Attach()
	defer m.Detach()

	var ran [5]atomic.Int32
	fin := func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		id := x.Get(fm).id
		ran[id].Add(1)
		if id == 2 {
			panic(panicErr{id})
		}
	}
	for i := range ran {
		r := reclaim.New[finNode](m)
		r.Get(m).id = i
		reclaim.SetFinalizer(m, r, fin)
	}
	collectDrain(t, m, h)
	for i := range ran {
		if n := ran[i].Load(); n != 1 {
			t.Errorf("finalizer %d ran %d times, want 1", i, n)
		}
	}
	ps := pl.all()
	if len(ps) != 1 {
		t.Fatalf("%d panics reported, want 1", len(ps))
	}
	p := ps[0]
	if p.Kind != "finalizer" {
		t.Errorf("Kind = %q, want finalizer", p.Kind)
	}
	if p.Value != (panicErr{2}) {
		t.Errorf("Value = %#v, want panicErr{2}", p.Value)
	}
	if len(p.Stack) == 0 || !bytes.Contains(p.Stack, []byte("TestFinalizerPanicReported")) {
		t.Errorf("Stack does not show the finalizer:\n%s", p.Stack)
	}
	if st := h.Stats(); st.Panics != 1 || st.FinalizersExecuted != int64(len(ran)) {
		t.Errorf("Stats: Panics %d, FinalizersExecuted %d; want 1, %d", st.Panics, st.FinalizersExecuted, len(ran))
	}

	// The finalizer goroutine and its mutator still work.
	var later atomic.Int32
	r := reclaim.New[finNode](m)
	reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		_ = reclaim.New[finNode](fm)
		later.Add(1)
	})
	collectDrain(t, m, h)
	if later.Load() != 1 {
		t.Fatalf("finalizer after a panic ran %d times, want 1", later.Load())
	}
}

// Without OnPanic, a finalizer's panic is logged and the queue goes on.
func TestFinalizerPanicLoggedByDefault(t *testing.T) {
	logs, logger := newLogBuffer()
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, Logger: logger})
	m := h.Attach()
	defer m.Detach()

	var runs atomic.Int32
	for i := range 3 {
		r := reclaim.New[finNode](m)
		r.Get(m).id = i
		reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
			runs.Add(1)
			if x.Get(fm).id == 1 {
				panic("finalizer-boom")
			}
		})
	}
	collectDrain(t, m, h)
	if runs.Load() != 3 {
		t.Fatalf("%d finalizers ran, want 3", runs.Load())
	}
	if out := logs.String(); !strings.Contains(out, "finalizer-boom") || !strings.Contains(out, "finalizer") {
		t.Errorf("log does not report the panic:\n%s", out)
	}
	if st := h.Stats(); st.Panics != 1 {
		t.Errorf("Stats.Panics = %d, want 1", st.Panics)
	}
}

// Close runs the finalizers of objects still alive (pinned or never found
// unreachable) and of objects queued, on a usable mutator; like lua_close.
func TestCloseRunsFinalizers(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()

	var runs, allocs atomic.Int32
	fin := func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		_ = x.Get(fm).id
		n := reclaim.New[finNode](fm)
		n.Get(fm).id = 1
		allocs.Add(1)
		runs.Add(1)
	}
	pinned := reclaim.New[finNode](m)
	h.Pin(pinned.Object())
	reclaim.SetFinalizer(m, pinned, fin)
	// Reachable only from a pinned object.
	kid := reclaim.New[finNode](m)
	pinned.Get(m).next = kid
	reclaim.SetFinalizer(m, kid, fin)
	// Unreachable, but no collection will find it.
	for range 3 {
		reclaim.SetFinalizer(m, reclaim.New[finNode](m), fin)
	}
	m.Detach()
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if runs.Load() != 5 || allocs.Load() != 5 {
		t.Fatalf("Close ran %d finalizers (%d allocated), want 5", runs.Load(), allocs.Load())
	}
	if err := h.Close(); err == nil {
		t.Errorf("second Close returned no error")
	}
}

// Close waits for finalizers already queued, and runs the ones they set.
func TestCloseRunsQueuedFinalizers(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()

	started, release := make(chan struct{}), newGate(t)
	var runs, reset atomic.Int32
	fin := func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		if x.Get(fm).id == 0 {
			close(started)
			release.wait()
		}
		runs.Add(1)
	}
	for i := range 4 {
		r := reclaim.New[finNode](m)
		r.Get(m).id = i
		reclaim.SetFinalizer(m, r, fin)
	}
	// One more whose finalizer sets another finalizer: Close runs that too.
	r := reclaim.New[finNode](m)
	r.Get(m).id = 10
	reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		runs.Add(1)
		reclaim.SetFinalizer(fm, x, counter(&reset))
	})
	m.Collect() // queues all five
	m.Detach()
	recvWithin(t, started, "the first finalizer to start")

	closed := make(chan error, 1)
	go func() { closed <- h.Close() }()
	release.open()
	if err := recvWithin(t, closed, "Close"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if runs.Load() != 5 || reset.Load() != 1 {
		t.Fatalf("Close ran %d queued finalizers (want 5) and %d re-set ones (want 1)", runs.Load(), reset.Load())
	}
}

// With FinalizersAtSafepoints and a budget, finalizers left queued when the
// heap closes are run by Close.
func TestCloseRunsFinalizersLeftAtSafepoints(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, FinalizersAtSafepoints: true, FinalizerBudget: 1})
	m := h.Attach()

	var runs atomic.Int32
	for range 4 {
		reclaim.SetFinalizer(m, reclaim.New[finNode](m), counter(&runs))
	}
	m.Collect() // queues four, runs one
	if n := runs.Load(); n != 1 {
		t.Fatalf("Collect ran %d finalizers with a budget of 1", n)
	}
	m.Detach()
	closed := make(chan error, 1)
	go func() { closed <- h.Close() }()
	if err := recvWithin(t, closed, "Close"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := runs.Load(); n != 4 {
		t.Fatalf("%d finalizers ran in all, want 4", n)
	}
}

type slowFinObj struct{ id int }

// A finalizer that keeps a pending collection waiting past
// FinalizerBlockThreshold is reported in Stats and in the log, with its
// type.
func TestFinalizerBlockingCollectionReported(t *testing.T) {
	logs, logger := newLogBuffer()
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, FinalizerBlockThreshold: 5 * time.Millisecond, Logger: logger})
	m := h.Attach()
	defer m.Detach()

	started, release := make(chan struct{}), newGate(t)
	var runs atomic.Int32
	reclaim.SetFinalizer(m, reclaim.New[slowFinObj](m), func(*reclaim.Mutator, reclaim.Ref[slowFinObj]) {
		close(started)
		release.wait()
		runs.Add(1)
	})
	m.Collect()
	recvWithin(t, started, "the finalizer to start")
	if st := h.Stats(); st.SlowFinalizers != 0 {
		t.Fatalf("SlowFinalizers = %d before any collection waited", st.SlowFinalizers)
	}

	// m collects on another goroutine; the test goroutine does not touch m
	// until that Collect has returned.
	collected := make(chan struct{})
	go func() {
		m.Collect()
		close(collected)
	}()
	waitUntil(t, "the blocking finalizer is reported", func() bool { return h.Stats().SlowFinalizers > 0 })
	release.open()
	recvWithin(t, collected, "the waiting Collect")
	drain(t, h)
	if runs.Load() != 1 {
		t.Fatalf("finalizer ran %d times, want 1", runs.Load())
	}
	if st := h.Stats(); st.SlowFinalizers != 1 {
		t.Errorf("SlowFinalizers = %d after one blocked collection, want 1", st.SlowFinalizers)
	}
	if out := logs.String(); !strings.Contains(out, "reclaim_test.slowFinObj") {
		t.Errorf("log does not name the blocking finalizer's type:\n%s", out)
	}
	// And where it is: the finalizer's own frames, the gate it waits on
	// first, its function below.
	out := logs.String()
	if !strings.Contains(out, "stack=") || !strings.Contains(out, "(*gate).wait") || !strings.Contains(out, "TestFinalizerBlockingCollectionReported.func") {
		t.Errorf("log does not say where the blocking finalizer is:\n%s", out)
	}
	if strings.Contains(out, "internal/heap.") {
		t.Errorf("the finalizer's stack goes on into the heap's own frames:\n%s", out)
	}
}

// A finalizer that keeps no collection waiting is never reported, however
// long it runs.
func TestFinalizerBlockingWithoutCollectionNotReported(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, FinalizerBlockThreshold: time.Millisecond})
	m := h.Attach()
	defer m.Detach()

	started, release := make(chan struct{}), newGate(t)
	reclaim.SetFinalizer(m, reclaim.New[slowFinObj](m), func(*reclaim.Mutator, reclaim.Ref[slowFinObj]) {
		close(started)
		release.wait()
	})
	m.Collect()
	recvWithin(t, started, "the finalizer to start")
	// Safepoints and allocation with no collection pending must not report
	// the running finalizer.
	for range 100 {
		_ = reclaim.New[slowFinObj](m)
		m.Safepoint()
	}
	release.open()
	drain(t, h)
	if st := h.Stats(); st.SlowFinalizers != 0 {
		t.Errorf("SlowFinalizers = %d without a waiting collection, want 0", st.SlowFinalizers)
	}
}

// A finalizer may run a collection of its own (as a Go finalizer may call
// runtime.GC). The test's mutator is detached while it waits, so that
// nothing it holds keeps that collection from starting.
func TestFinalizerMayCollect(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()

	var outer, inner atomic.Int32
	var sawSelf atomic.Bool
	// Inner objects are unreachable before the outer finalizer runs; its
	// Collect finds them (and queues their finalizers) while the outer
	// finalizer still runs.
	for range 3 {
		reclaim.SetFinalizer(m, reclaim.New[finNode](m), counter(&inner))
	}
	m.Collect() // queues the three inner ones...
	m.Detach()
	drain(t, h)
	if inner.Load() != 3 {
		t.Fatalf("%d inner finalizers ran, want 3", inner.Load())
	}

	m = h.Attach()
	r := reclaim.New[finNode](m)
	r.Get(m).id = 3
	for range 3 {
		reclaim.SetFinalizer(m, reclaim.New[finNode](m), counter(&inner))
	}
	reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		// The others queued with x are roots until they run, and so is x.
		fm.Collect()
		sawSelf.Store(x.Get(fm).id == 3)
		outer.Add(1)
	})
	m.Collect()
	m.Detach()
	drain(t, h)
	if outer.Load() != 1 || inner.Load() != 6 || !sawSelf.Load() {
		t.Fatalf("outer ran %d (want 1), inner %d (want 6), object intact after its own Collect %v",
			outer.Load(), inner.Load(), sawSelf.Load())
	}
	m = h.Attach()
	defer m.Detach()
	collectDrain(t, m, h)
	if isLive(r) {
		t.Errorf("object still live after its finalizer and a further cycle")
	}
}

// A finalizer may be set again while the previous one is queued and has not
// run yet (the association was cleared when it was queued): the queued one
// runs, and the new one runs after the object is found unreachable again.
func TestSetFinalizerWhileQueued(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	// Two objects share a finalizer whose first call blocks; whichever runs
	// first, the other is then queued and not run.
	started := make(chan reclaim.Ref[finNode], 1)
	release := newGate(t)
	var calls, first, second atomic.Int32
	fin := func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		if calls.Add(1) == 1 {
			started <- x
			release.wait()
		}
		first.Add(1)
	}
	a, b := reclaim.New[finNode](m), reclaim.New[finNode](m)
	reclaim.SetFinalizer(m, a, fin)
	reclaim.SetFinalizer(m, b, fin)
	m.Collect() // queues both
	r := a
	if running := recvWithin(t, started, "the blocking finalizer to start"); running == a {
		r = b
	}
	// r is queued, so it is still alive: the queue is a root.
	if !isLive(r) || calls.Load() != 1 {
		t.Fatalf("queued object: live %v, finalizer calls %d; want true, 1", isLive(r), calls.Load())
	}
	reclaim.SetFinalizer(m, r, counter(&second))
	release.open()
	drain(t, h)
	if first.Load() != 2 || second.Load() != 0 {
		t.Fatalf("after the queue ran: first %d, second %d; want 2, 0", first.Load(), second.Load())
	}
	collectDrain(t, m, h)
	if first.Load() != 2 || second.Load() != 1 {
		t.Fatalf("next cycle: first %d, second %d; want 2, 1", first.Load(), second.Load())
	}
}

// TestMutatorDrainWhileFinalizerCollects: a goroutine with an attached
// mutator drains while the finalizers collect (each stops the world, so it
// waits for every attached mutator that is not at a safepoint). Mutator.Drain
// counts its mutator as stopped while it waits; Heap.Drain here would wait
// for the finalizers while they wait for it.
func TestMutatorDrainWhileFinalizerCollects(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{})
	m := h.Attach()
	defer m.Detach()
	const n = 10
	var ran atomic.Int32
	for range n {
		reclaim.SetFinalizer(m, reclaim.New[finNode](m), func(fm *reclaim.Mutator, _ reclaim.Ref[finNode]) {
			fm.Collect()
			ran.Add(1)
		})
	}
	m.Collect() // queues the n finalizers
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := m.Drain(ctx); err != nil {
		t.Fatalf("Mutator.Drain: %v (finalizers run: %d of %d)", err, ran.Load(), n)
	}
	if got := ran.Load(); got != n {
		t.Fatalf("Drain returned after %d of %d finalizers", got, n)
	}
	// m works after Drain: it allocates and reads.
	r := reclaim.New[finNode](m)
	r.Get(m).id = 7
	if r.Get(m).id != 7 {
		t.Fatal("mutator unusable after Drain")
	}
}

// TestDrainInFinalizerPanics: a finalizer's Mutator.Drain would wait for
// itself.
func TestDrainInFinalizerPanics(t *testing.T) {
	var msg atomic.Value
	h := newTestHeap(t, reclaim.Options{OnPanic: func(p *reclaim.CallbackPanic) { msg.Store(fmt.Sprint(p.Value)) }})
	m := h.Attach()
	defer m.Detach()
	reclaim.SetFinalizer(m, reclaim.New[finNode](m), func(fm *reclaim.Mutator, _ reclaim.Ref[finNode]) {
		_ = fm.Drain(context.Background())
	})
	m.Collect()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := m.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := msg.Load().(string)
	if !strings.Contains(got, "reclaim: Drain called by a finalizer") {
		t.Fatalf("OnPanic got %q, want the Drain-in-finalizer panic", got)
	}
}

// TestFinalizerDelayStats: the queue-delay quantiles are sampled once per
// block of queued finalizers and ordered.
func TestFinalizerDelayStats(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	if st := h.Stats(); st.FinalizerDelaySamples != 0 {
		t.Fatalf("%d delay samples before any finalizer", st.FinalizerDelaySamples)
	}
	var runs atomic.Int32
	const n, block = 1280, 128 // at least ten blocks (internal/heap's finBlockLen)
	for range n {
		reclaim.SetFinalizer(m, reclaim.New[finNode](m), counter(&runs))
	}
	m.Collect()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := m.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if runs.Load() != n {
		t.Fatalf("%d finalizers ran, want %d", runs.Load(), n)
	}
	st := h.Stats()
	if st.FinalizerDelaySamples < n/block || st.FinalizerDelaySamples > n {
		t.Fatalf("%d delay samples for %d finalizers, want one per block (at least %d)", st.FinalizerDelaySamples, n, n/block)
	}
	if st.FinalizerDelayP50 <= 0 || st.FinalizerDelayP50 > st.FinalizerDelayP99 {
		t.Fatalf("delay p50 %v, p99 %v: want 0 < p50 <= p99", st.FinalizerDelayP50, st.FinalizerDelayP99)
	}
}

// atSafepointObj is a type no other test allocates, so that the first New
// of it inside a finalizer takes New's slow path.
type atSafepointObj struct{ v int }

// With FinalizersAtSafepoints, a finalizer runs as the mutator that reached
// the safepoint and may use it: allocate (slow path included), set a
// finalizer, make a weak ref, reach a safepoint and collect. A safepoint
// reached inside a finalizer runs no other finalizer (one at a time), and a
// finalizer that calls Drain gets a reclaim: panic, not a hang.
func TestFinalizersAtSafepointsUseTheirMutator(t *testing.T) {
	var panics []string
	var mu sync.Mutex
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, FinalizersAtSafepoints: true,
		OnPanic: func(p *reclaim.CallbackPanic) {
			mu.Lock()
			panics = append(panics, fmt.Sprint(p.Value))
			mu.Unlock()
		}})
	m := h.Attach()
	defer m.Detach()

	var depth, maxDepth, runs atomic.Int32
	var made []reclaim.Weak[atSafepointObj]
	fin := func(fm *reclaim.Mutator, r reclaim.Ref[finNode]) {
		if fm != m {
			t.Errorf("finalizer ran on %p, want the mutator that reached the safepoint %p", fm, m)
		}
		d := depth.Add(1)
		defer depth.Add(-1)
		if d > maxDepth.Load() {
			maxDepth.Store(d)
		}
		o := reclaim.New[atSafepointObj](fm)
		o.Get(fm).v = r.Get(fm).id
		made = append(made, reclaim.MakeWeak(fm, o))
		reclaim.SetFinalizer(fm, reclaim.New[finNode](fm), func(*reclaim.Mutator, reclaim.Ref[finNode]) {})
		fm.Safepoint()
		if r.Get(fm).id == 0 {
			fm.Collect()
		}
		runs.Add(1)
	}
	for i := range 4 {
		n := reclaim.New[finNode](m)
		n.Get(m).id = i
		reclaim.SetFinalizer(m, n, fin)
	}
	m.Collect() // queues the four, runs them here
	if got := runs.Load(); got != 4 {
		t.Errorf("%d finalizers ran to their end, want 4", got)
	}
	if d := maxDepth.Load(); d != 1 {
		t.Errorf("finalizers ran %d deep; want one at a time", d)
	}
	if len(made) != 4 {
		t.Errorf("finalizers made %d objects, want 4", len(made))
	}

	// Drain from a finalizer would wait for itself.
	n := reclaim.New[finNode](m)
	reclaim.SetFinalizer(m, n, func(fm *reclaim.Mutator, _ reclaim.Ref[finNode]) {
		fm.Drain(context.Background())
	})
	m.Collect()
	mu.Lock()
	defer mu.Unlock()
	if len(panics) != 1 || !strings.Contains(panics[0], "reclaim: Drain called by a finalizer") {
		t.Errorf("panics reported: %q; want one, from Drain", panics)
	}
}
