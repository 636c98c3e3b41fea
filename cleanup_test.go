package reclaim_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/reclaimgc/reclaim"
)

// Tests of cleanups: each rule of runtime.AddCleanup's documentation and of
// the product brief's "Cleanups" section, with exact counts.

// cleanupBlockRecords is the number of records in one block of the cleanup
// queue (internal/cleanupq.blockRecords). Tests that need several blocks of
// work queue a multiple of it, with a margin.
const cleanupBlockRecords = 126

// cleanupSet counts cleanup calls per argument.
type cleanupSet struct {
	mu  sync.Mutex
	ran map[int]int
}

func newCleanupSet() *cleanupSet { return &cleanupSet{ran: make(map[int]int)} }

func (c *cleanupSet) run(arg int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ran[arg]++
}

func (c *cleanupSet) count(arg int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ran[arg]
}

func (c *cleanupSet) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.ran {
		n += v
	}
	return n
}

func (c *cleanupSet) args() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for k, v := range c.ran {
		for range v {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// "multiple cleanups may be attached to the same pointer": all of them run,
// once each, some time after the object is unreachable; in no particular
// order (the test does not look at the order).
func TestCleanupSeveralPerObjectAllRun(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	cs := newCleanupSet()
	r := reclaim.New[finNode](m)
	for i := range 5 {
		reclaim.AddCleanup(m, r, cs.run, i)
	}
	// A second object with its own.
	r2 := reclaim.New[finNode](m)
	reclaim.AddCleanup(m, r2, cs.run, 10)
	reclaim.AddCleanup(m, r2, cs.run, 11)

	// Reachable: nothing runs.
	h.Pin(r.Object())
	h.Pin(r2.Object())
	collectDrain(t, m, h)
	if n := cs.total(); n != 0 {
		t.Fatalf("%d cleanups ran while their objects were reachable", n)
	}
	h.Unpin(r.Object())
	h.Unpin(r2.Object())

	collectDrain(t, m, h)
	if got, want := cs.args(), []int{0, 1, 2, 3, 4, 10, 11}; !slices.Equal(got, want) {
		t.Fatalf("cleanups ran with args %v, want %v, each once", got, want)
	}
	if isLive(r) || isLive(r2) {
		t.Errorf("objects with cleanups not freed in the cycle that found them unreachable")
	}
	collectDrain(t, m, h)
	if n := cs.total(); n != 7 {
		t.Fatalf("%d cleanups ran in all, want 7", n)
	}
	if st := h.Stats(); st.CleanupsQueued != 7 || st.CleanupsExecuted != 7 {
		t.Errorf("Stats: CleanupsQueued %d, CleanupsExecuted %d; want 7, 7", st.CleanupsQueued, st.CleanupsExecuted)
	}
}

// Stop before the object is found unreachable: the cleanup never runs, and
// the object's other cleanups still do. Stop after the cleanup ran, and a
// second Stop, have no effect and do not panic; so does Stop of the zero
// Cleanup.
func TestCleanupStop(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	cs := newCleanupSet()
	r := reclaim.New[finNode](m)
	c0 := reclaim.AddCleanup(m, r, cs.run, 0)
	c1 := reclaim.AddCleanup(m, r, cs.run, 1)
	c2 := reclaim.AddCleanup(m, r, cs.run, 2)
	c1.Stop()
	c1.Stop() // twice is fine

	// Stop from a goroutine that is not a mutator.
	other := reclaim.New[finNode](m)
	c3 := reclaim.AddCleanup(m, other, cs.run, 3)
	done := make(chan struct{})
	go func() {
		c3.Stop()
		close(done)
	}()
	recvWithin(t, done, "Stop on another goroutine")

	collectDrain(t, m, h)
	if got := cs.args(); !slices.Equal(got, []int{0, 2}) {
		t.Fatalf("cleanups ran with args %v, want [0 2]", got)
	}
	// After they ran: no effect, no panic.
	c0.Stop()
	c0.Stop()
	c2.Stop()
	c1.Stop()
	var zero reclaim.Cleanup
	zero.Stop()
	collectDrain(t, m, h)
	if got := cs.args(); !slices.Equal(got, []int{0, 2}) {
		t.Fatalf("after more cycles cleanups ran with args %v, want [0 2]", got)
	}
	if st := h.Stats(); st.CleanupsQueued != 2 || st.CleanupsExecuted != 2 {
		t.Errorf("Stats: CleanupsQueued %d, CleanupsExecuted %d; want 2, 2", st.CleanupsQueued, st.CleanupsExecuted)
	}
}

// Stopping a cleanup of a freed object does not touch the object that
// reuses its slot.
func TestCleanupStopAfterSlotReuse(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	cs := newCleanupSet()
	var stale []reclaim.Cleanup
	for i := range 50 {
		stale = append(stale, reclaim.AddCleanup(m, reclaim.New[finNode](m), cs.run, i))
	}
	collectDrain(t, m, h)
	if n := cs.total(); n != 50 {
		t.Fatalf("%d cleanups ran, want 50", n)
	}
	// New objects reuse the freed slots, and get cleanups of their own.
	var fresh []reclaim.Ref[finNode]
	for i := range 50 {
		r := reclaim.New[finNode](m)
		fresh = append(fresh, r)
		h.Pin(r.Object())
		reclaim.AddCleanup(m, r, cs.run, 100+i)
	}
	for _, c := range stale {
		c.Stop()
	}
	for _, r := range fresh {
		h.Unpin(r.Object())
	}
	collectDrain(t, m, h)
	if n := cs.total(); n != 100 {
		t.Fatalf("%d cleanups ran in all, want 100: a stale Stop cancelled a new object's cleanup", n)
	}
}

// "If ptr has both a cleanup and a finalizer, the cleanup will only run once
// it has been finalized and becomes unreachable without an associated
// finalizer."
func TestCleanupAfterFinalizer(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	var fins atomic.Int32
	cs := newCleanupSet()

	// Plain: cycle 1 finalizes, cycle 2 cleans up.
	r := reclaim.New[finNode](m)
	reclaim.AddCleanup(m, r, cs.run, 1)
	reclaim.SetFinalizer(m, r, counter(&fins))
	reclaim.AddCleanup(m, r, cs.run, 2)

	collectDrain(t, m, h)
	if fins.Load() != 1 || cs.total() != 0 {
		t.Fatalf("cycle 1: finalizers %d (want 1), cleanups %d (want 0)", fins.Load(), cs.total())
	}
	collectDrain(t, m, h)
	if got := cs.args(); fins.Load() != 1 || !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("cycle 2: finalizers %d (want 1), cleanups %v (want [1 2])", fins.Load(), got)
	}

	// Resurrected: the cleanup waits until the object is unreachable again.
	holder := reclaim.New[finHolder](m)
	h.Pin(holder.Object())
	defer h.Unpin(holder.Object())
	r2 := reclaim.New[finNode](m)
	reclaim.AddCleanup(m, r2, cs.run, 3)
	reclaim.SetFinalizer(m, r2, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		fins.Add(1)
		holder.Get(fm).obj = x
	})
	for range 3 {
		collectDrain(t, m, h)
	}
	if fins.Load() != 2 || cs.count(3) != 0 {
		t.Fatalf("resurrected: finalizers %d (want 2), its cleanup ran %d times (want 0)", fins.Load(), cs.count(3))
	}
	holder.Get(m).obj = reclaim.Ref[finNode]{}
	collectDrain(t, m, h)
	if cs.count(3) != 1 {
		t.Fatalf("dropped: cleanup ran %d times, want 1", cs.count(3))
	}

	// A finalizer set again by the finalizer: the cleanup waits for the
	// second finalizer too.
	r3 := reclaim.New[finNode](m)
	reclaim.AddCleanup(m, r3, cs.run, 4)
	reclaim.SetFinalizer(m, r3, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		fins.Add(1)
		reclaim.SetFinalizer(fm, x, counter(&fins))
	})
	collectDrain(t, m, h)
	if fins.Load() != 3 || cs.count(4) != 0 {
		t.Fatalf("re-set, cycle 1: finalizers %d (want 3), cleanup %d (want 0)", fins.Load(), cs.count(4))
	}
	collectDrain(t, m, h)
	if fins.Load() != 4 || cs.count(4) != 0 {
		t.Fatalf("re-set, cycle 2: finalizers %d (want 4), cleanup %d (want 0)", fins.Load(), cs.count(4))
	}
	collectDrain(t, m, h)
	if fins.Load() != 4 || cs.count(4) != 1 {
		t.Fatalf("re-set, cycle 3: finalizers %d (want 4), cleanup %d (want 1)", fins.Load(), cs.count(4))
	}
}

// "AddCleanup panics if arg is equal to ptr": for a Ref[T] equal to r and
// for an Object equal to r.Object().
func TestCleanupArgIsObjectPanics(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	r := reclaim.New[finNode](m)
	for name, add := range map[string]func(){
		"Ref":    func() { reclaim.AddCleanup(m, r, func(reclaim.Ref[finNode]) {}, r) },
		"Object": func() { reclaim.AddCleanup(m, r, func(reclaim.Object) {}, r.Object()) },
	} {
		msg := mustPanic(t, add)
		if !strings.HasPrefix(msg, "reclaim:") {
			t.Errorf("%s: panic message %q does not start with reclaim:", name, msg)
		}
	}
	// Nothing was registered; the mutator is still usable; a ref to
	// another object is fine.
	other := reclaim.New[finNode](m)
	cs := newCleanupSet()
	reclaim.AddCleanup(m, r, func(o reclaim.Ref[finNode]) { cs.run(1) }, other)
	reclaim.AddCleanup(m, r, func(reclaim.Ref[finNode]) { cs.run(2) }, reclaim.Ref[finNode]{})
	collectDrain(t, m, h)
	if got := cs.args(); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("cleanups ran with args %v, want [1 2]", got)
	}
	if st := h.Stats(); st.CleanupsQueued != 2 {
		t.Errorf("Stats.CleanupsQueued = %d, want 2 (the panicking calls registered nothing)", st.CleanupsQueued)
	}
}

// cleanupArg is a cleanup argument holding a ref.
type cleanupArg struct {
	obj reclaim.Ref[finNode]
	tag int
}

// "Refs inside arg stay alive until the cleanup has run"; a cleanup is not a
// mutator and attaches its own to use the heap.
func TestCleanupArgKeepsRefAlive(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	owner := reclaim.New[finNode](m)
	h.Pin(owner.Object())
	res := reclaim.New[finNode](m) // the "resource", referenced only by arg
	res.Get(m).id = 77
	kid := reclaim.New[finNode](m) // reachable from the resource
	kid.Get(m).id = 78
	res.Get(m).next = kid

	var got atomic.Int64
	var runs atomic.Int32
	reclaim.AddCleanup(m, owner, func(a cleanupArg) {
		cm := h.Attach()
		defer cm.Detach()
		got.Store(int64(a.obj.Get(cm).id*1000 + a.obj.Get(cm).next.Get(cm).id))
		n := reclaim.New[finNode](cm) // and allocate, as any mutator
		n.Get(cm).id = a.tag
		runs.Add(1)
	}, cleanupArg{obj: res, tag: 1})

	for range 3 {
		collectDrain(t, m, h)
	}
	if !isLive(res) || !isLive(kid) || runs.Load() != 0 {
		t.Fatalf("before the owner dies: resource live %v, child live %v, runs %d; want true, true, 0",
			isLive(res), isLive(kid), runs.Load())
	}
	h.Unpin(owner.Object())
	collectDrain(t, m, h)
	if runs.Load() != 1 || got.Load() != 77078 {
		t.Fatalf("cleanup ran %d times and read %d; want 1, 77078", runs.Load(), got.Load())
	}
	// The cleanup has run: its argument no longer keeps anything alive.
	collectDrain(t, m, h)
	if isLive(res) || isLive(kid) {
		t.Errorf("after the cleanup ran: resource live %v, child live %v; want both freed", isLive(res), isLive(kid))
	}
}

// A cleanup holding only a weak reference to its own object does not keep
// it alive: it runs, and the weak reference is nil by then.
func TestCleanupArgWeakToObject(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	r := reclaim.New[finNode](m)
	var sawNil, runs atomic.Int32
	reclaim.AddCleanup(m, r, func(w reclaim.Weak[finNode]) {
		cm := h.Attach()
		defer cm.Detach()
		if w.Value(cm).IsNil() {
			sawNil.Add(1)
		}
		runs.Add(1)
	}, reclaim.MakeWeak(m, r))
	collectDrain(t, m, h)
	if runs.Load() != 1 || sawNil.Load() != 1 {
		t.Fatalf("cleanup ran %d times, saw nil weak %d times; want 1, 1", runs.Load(), sawNil.Load())
	}
}

// zeroObj has size zero. Every zero-size object is its own object in a
// reclaim heap, so its cleanups and finalizer run (the Go runtime does not
// promise that).
type zeroObj struct{}

func TestCleanupZeroSizeObject(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	cs := newCleanupSet()
	var fins atomic.Int32
	a, b := reclaim.New[zeroObj](m), reclaim.New[zeroObj](m)
	if a == b {
		t.Fatalf("two zero-size objects have the same ref")
	}
	h.Pin(b.Object())
	reclaim.AddCleanup(m, a, cs.run, 1)
	reclaim.AddCleanup(m, b, cs.run, 2)
	c := reclaim.New[zeroObj](m)
	reclaim.SetFinalizer(m, c, func(*reclaim.Mutator, reclaim.Ref[zeroObj]) { fins.Add(1) })
	reclaim.AddCleanup(m, c, cs.run, 3)

	collectDrain(t, m, h)
	if got := cs.args(); !slices.Equal(got, []int{1}) || fins.Load() != 1 {
		t.Fatalf("cycle 1: cleanups %v (want [1]), finalizers %d (want 1)", got, fins.Load())
	}
	if isLive(a) || !isLive(b) {
		t.Errorf("cycle 1: a live %v (want false), b live %v (want true)", isLive(a), isLive(b))
	}
	h.Unpin(b.Object())
	collectDrain(t, m, h)
	if got := cs.args(); !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("cycle 2: cleanups %v, want [1 2 3]", got)
	}
}

// CleanupWorkers bounds the pool, and the pool grows to the bound when there
// is enough work: with many blocks of cleanups that block until the bound is
// reached, exactly N run at once.
func TestCleanupWorkersBound(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			h := newTestHeap(t, reclaim.Options{GCPercent: -1, CleanupWorkers: n})
			m := h.Attach()
			defer m.Detach()
			if g := h.Stats().CleanupGoroutines; g != 0 {
				t.Fatalf("%d cleanup goroutines before any cleanup ran", g)
			}

			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			reached := make(chan struct{})
			var once sync.Once
			var running, highWater, ran, timedOut atomic.Int32
			cleanup := func(int) {
				cur := running.Add(1)
				for {
					old := highWater.Load()
					if cur <= old || highWater.CompareAndSwap(old, cur) {
						break
					}
				}
				if cur >= int32(n) {
					once.Do(func() { close(reached) })
				}
				// Hold this worker until N run at once. Every block is
				// queued before the first runs, so the pool has every
				// reason to grow to N.
				select {
				case <-reached:
				case <-ctx.Done():
					timedOut.Add(1)
				}
				running.Add(-1)
				ran.Add(1)
			}
			total := (n+3)*cleanupBlockRecords + 17
			for i := range total {
				reclaim.AddCleanup(m, reclaim.New[finNode](m), cleanup, i)
			}
			collectDrain(t, m, h)
			if got := ran.Load(); got != int32(total) {
				t.Fatalf("%d cleanups ran, want %d", got, total)
			}
			if timedOut.Load() != 0 {
				t.Fatalf("the pool never ran %d cleanups at once (high-water mark %d)", n, highWater.Load())
			}
			if hw := highWater.Load(); hw != int32(n) {
				t.Fatalf("up to %d cleanups ran at once, want exactly %d", hw, n)
			}
			if g := h.Stats().CleanupGoroutines; g > n {
				t.Errorf("%d cleanup goroutines, want at most %d", g, n)
			}
		})
	}
}

// A cleanup that panics is reported through OnPanic (Kind "cleanup") and the
// other cleanups still run.
func TestCleanupPanicReported(t *testing.T) {
	var pl panicLog
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, OnPanic: pl.record})
	m := h.Attach()
	defer m.Detach()

	cs := newCleanupSet()
	for i := range 10 {
		reclaim.AddCleanup(m, reclaim.New[finNode](m), func(arg int) {
			cs.run(arg)
			if arg == 4 {
				panic(fmt.Sprintf("cleanup-boom-%d", arg))
			}
		}, i)
	}
	collectDrain(t, m, h)
	if n := cs.total(); n != 10 {
		t.Fatalf("%d cleanups ran, want 10", n)
	}
	ps := pl.all()
	if len(ps) != 1 {
		t.Fatalf("%d panics reported, want 1", len(ps))
	}
	if p := ps[0]; p.Kind != "cleanup" || p.Value != "cleanup-boom-4" || len(p.Stack) == 0 ||
		!bytes.Contains(p.Stack, []byte("TestCleanupPanicReported")) {
		t.Errorf("reported panic: Kind %q, Value %#v, stack:\n%s", p.Kind, p.Value, p.Stack)
	}
	if st := h.Stats(); st.Panics != 1 || st.CleanupsExecuted != 10 {
		t.Errorf("Stats: Panics %d, CleanupsExecuted %d; want 1, 10", st.Panics, st.CleanupsExecuted)
	}
	// The pool still works.
	reclaim.AddCleanup(m, reclaim.New[finNode](m), cs.run, 20)
	collectDrain(t, m, h)
	if cs.count(20) != 1 {
		t.Fatalf("cleanup after a panic ran %d times, want 1", cs.count(20))
	}
}

// Close runs the cleanups of objects still alive, after their finalizers,
// and cleanups that Close's finalizers add.
func TestCloseRunsCleanups(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()

	var mu sync.Mutex
	var events []string
	event := func(s string) {
		mu.Lock()
		events = append(events, s)
		mu.Unlock()
	}
	pinned := reclaim.New[finNode](m)
	h.Pin(pinned.Object())
	reclaim.AddCleanup(m, pinned, func(s string) { event(s) }, "pinned-1")
	reclaim.AddCleanup(m, pinned, func(s string) { event(s) }, "pinned-2")
	stopped := reclaim.AddCleanup(m, pinned, func(s string) { event(s) }, "stopped")
	stopped.Stop()
	both := reclaim.New[finNode](m)
	reclaim.AddCleanup(m, both, func(s string) { event(s) }, "both-cleanup")
	reclaim.SetFinalizer(m, both, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		event("both-finalizer")
		// A cleanup added while closing runs too.
		reclaim.AddCleanup(fm, reclaim.New[finNode](fm), func(s string) { event(s) }, "added-by-finalizer")
	})
	m.Detach()
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	mu.Lock()
	got := slices.Clone(events)
	mu.Unlock()
	fi := slices.Index(got, "both-finalizer")
	ci := slices.Index(got, "both-cleanup")
	if fi < 0 || ci < 0 || ci < fi {
		t.Errorf("Close ran %v: the finalizer must run, and before the same object's cleanup", got)
	}
	slices.Sort(got)
	want := []string{"added-by-finalizer", "both-cleanup", "both-finalizer", "pinned-1", "pinned-2"}
	if !slices.Equal(got, want) {
		t.Fatalf("Close ran %v, want %v, each once", got, want)
	}
}

type cleanupBack struct {
	owner reclaim.Ref[finNode]
}

// Debug reports a cleanup whose argument leads back to its object: it can
// never run.
func TestCleanupUnrunnableReported(t *testing.T) {
	logs, logger := newLogBuffer()
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, Debug: true, Logger: logger})
	m := h.Attach()
	defer m.Detach()

	cs := newCleanupSet()
	owner := reclaim.New[finNode](m)
	back := reclaim.New[cleanupBack](m)
	back.Get(m).owner = owner
	reclaim.AddCleanup(m, owner, func(reclaim.Ref[cleanupBack]) { cs.run(1) }, back)
	// A runnable one alongside, on another object.
	reclaim.AddCleanup(m, reclaim.New[finNode](m), cs.run, 2)

	for range 3 {
		collectDrain(t, m, h)
	}
	if got := cs.args(); !slices.Equal(got, []int{2}) {
		t.Fatalf("cleanups ran with %v, want [2] (the unrunnable one never runs)", got)
	}
	if !isLive(owner) || !isLive(back) {
		t.Fatalf("objects kept by the unrunnable cleanup were freed")
	}
	if st := h.Stats(); st.UnrunnableCleanups != 1 {
		t.Errorf("Stats.UnrunnableCleanups = %d with Debug on after 3 collections, want 1 (reported once)", st.UnrunnableCleanups)
	}
	out := logs.String()
	for _, name := range []string{"reclaim_test.finNode", "reclaim_test.cleanupBack"} {
		if !strings.Contains(out, name) {
			t.Errorf("Debug log does not mention %s:\n%s", name, out)
		}
	}
}

// Debug reports nothing for cleanups whose arguments do not lead back.
func TestCleanupDebugNoFalseReports(t *testing.T) {
	logs, logger := newLogBuffer()
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, Debug: true, Logger: logger})
	m := h.Attach()
	defer m.Detach()

	cs := newCleanupSet()
	shared := reclaim.New[finNode](m)
	for i := range 3 {
		owner := reclaim.New[finNode](m)
		owner.Get(m).next = shared // the owner points to the arg: fine
		reclaim.AddCleanup(m, owner, func(a cleanupArg) { cs.run(a.tag) }, cleanupArg{obj: shared, tag: i})
	}
	collectDrain(t, m, h)
	if st := h.Stats(); st.UnrunnableCleanups != 0 {
		t.Errorf("Stats.UnrunnableCleanups = %d, want 0; log:\n%s", st.UnrunnableCleanups, logs.String())
	}
	if n := cs.total(); n != 3 {
		t.Errorf("%d cleanups ran, want 3", n)
	}
}

// Stop after the object's finalizer was queued, but before the object became
// unreachable again: the cleanup was not queued yet, so it never runs.
func TestCleanupStopAfterFinalizerQueued(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	cs := newCleanupSet()
	var fins atomic.Int32
	r := reclaim.New[finNode](m)
	c := reclaim.AddCleanup(m, r, cs.run, 1)
	reclaim.AddCleanup(m, r, cs.run, 2)
	reclaim.SetFinalizer(m, r, counter(&fins))
	collectDrain(t, m, h)
	if fins.Load() != 1 || cs.total() != 0 {
		t.Fatalf("cycle 1: finalizers %d, cleanups %d; want 1, 0", fins.Load(), cs.total())
	}
	c.Stop()
	collectDrain(t, m, h)
	if got := cs.args(); !slices.Equal(got, []int{2}) {
		t.Fatalf("cycle 2: cleanups ran with %v, want [2]", got)
	}
}

// Records of cleanups that ran are reused, by type, for new cleanups: a
// worker retires a block's records a run of one type at a time, and the
// mutator takes them back in batches. Over rounds of cleanups whose
// argument types alternate within a block, every cleanup runs once with
// its own argument, and Stop through a handle of an earlier round (whose
// record may now carry a new cleanup) stops nothing.
func TestCleanupRecordReuseMixedTypes(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()

	type pair struct{ a, b int }
	const n = 3*cleanupBlockRecords + 7
	var ints, strs, pairs atomic.Int64 // sums of the arguments seen
	var old []reclaim.Cleanup
	for round := range 4 {
		var want int64
		var handles []reclaim.Cleanup
		for i := range n {
			r := reclaim.New[finNode](m)
			v := round*n + i
			want += int64(v)
			switch i % 3 {
			case 0:
				handles = append(handles, reclaim.AddCleanup(m, r, func(x int) { ints.Add(int64(x)) }, v))
			case 1:
				handles = append(handles, reclaim.AddCleanup(m, r, func(s string) {
					var x int
					fmt.Sscan(s, &x)
					strs.Add(int64(x))
				}, fmt.Sprint(v)))
			case 2:
				handles = append(handles, reclaim.AddCleanup(m, r, func(p pair) { pairs.Add(int64(p.a - p.b)) }, pair{v + 1, 1}))
			}
		}
		for _, c := range old {
			c.Stop() // their records ran; some carry this round's cleanups now
		}
		ints.Store(0)
		strs.Store(0)
		pairs.Store(0)
		collectDrain(t, m, h)
		if got := ints.Load() + strs.Load() + pairs.Load(); got != want {
			t.Fatalf("round %d: cleanups' arguments sum to %d, want %d (ints %d, strings %d, pairs %d)",
				round, got, want, ints.Load(), strs.Load(), pairs.Load())
		}
		old = handles
	}
	if st := h.Stats(); st.CleanupsQueued != 4*n || st.CleanupsExecuted != 4*n {
		t.Errorf("Stats: CleanupsQueued %d, CleanupsExecuted %d; want %d each", st.CleanupsQueued, st.CleanupsExecuted, 4*n)
	}
}
