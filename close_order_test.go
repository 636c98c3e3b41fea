package reclaim_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/reclaimgc/reclaim"
)

// Tests of the order in which Close runs the finalizers still registered:
// as a collection would, a finalizable object's finalizer runs only once
// no other finalizable object reaches it, so that the finalizer of one
// that reaches it can still use it.

// orderNode is finNode with the state the order tests check: the
// finalizer of a node marks it finalized, and records, for each node it
// reaches on its chain, whether that node was finalized already.
type orderNode struct {
	next      reclaim.Ref[orderNode]
	name      string
	finalized bool
}

// orderLog records the finalizers Close runs, in order.
type orderLog struct {
	mu      sync.Mutex
	ran     []string
	invalid []string // finalizers that found a node they reach finalized
}

// finalizer is the finalizer of every node of the order tests: it walks
// the chain from x (as far as it goes, or until it comes back to a node
// it has seen) and logs each node finalized already, then marks x
// finalized.
func (l *orderLog) finalizer(m *reclaim.Mutator, x reclaim.Ref[orderNode]) {
	n := x.Get(m)
	seen := map[reclaim.Ref[orderNode]]bool{x: true}
	for y := n.next; !y.IsNil() && !seen[y]; y = y.Get(m).next {
		seen[y] = true
		if yn := y.Get(m); yn.finalized {
			l.mu.Lock()
			l.invalid = append(l.invalid, fmt.Sprintf("%s ran after %s's", n.name, yn.name))
			l.mu.Unlock()
		}
	}
	n.finalized = true
	l.mu.Lock()
	l.ran = append(l.ran, n.name)
	l.mu.Unlock()
}

// orderChain allocates one node per name, last first (so that the slot
// order, which Close followed, is the reverse of the chain's), links each
// to the next and returns them in the order of names. A name starting with
// "-" gets no finalizer.
func orderChain(m *reclaim.Mutator, l *orderLog, names ...string) []reclaim.Ref[orderNode] {
	refs := make([]reclaim.Ref[orderNode], len(names))
	for i := len(names) - 1; i >= 0; i-- {
		refs[i] = reclaim.New[orderNode](m)
		refs[i].Get(m).name = names[i]
	}
	for i := range names[:len(names)-1] {
		refs[i].Get(m).next = refs[i+1]
	}
	for i, name := range names {
		if name[0] != '-' {
			reclaim.SetFinalizer(m, refs[i], l.finalizer)
		}
	}
	return refs
}

// orderHeap makes a heap for the order tests (no automatic collection,
// a quiet log) with opts and the log its finalizers write to; checkOrder
// closes it.
func orderHeap(opts reclaim.Options) (*reclaim.Heap, *orderLog) {
	opts.GCPercent = -1
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	return reclaim.NewHeap(opts), new(orderLog)
}

// checkOrder closes h and checks that its finalizers ran in the order
// want, each once, and that none found a node it reaches finalized.
func checkOrder(t *testing.T, h *reclaim.Heap, l *orderLog, want ...string) {
	t.Helper()
	if err := closeWithin(t, h); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !slices.Equal(l.ran, want) {
		t.Errorf("Close ran the finalizers in the order %v, want %v", l.ran, want)
	}
	for i, s := range l.invalid {
		if i == 3 {
			t.Errorf("... and %d more", len(l.invalid)-i)
			break
		}
		t.Errorf("finalizer of %s (a finalizer must run before those of the objects it reaches)", s)
	}
}

// A reaches B, both finalizable: Close runs A's finalizer, then B's, and
// B's has not run when A's does. With B allocated first, the slot order
// alone ran B's first.
func TestCloseRunsReachingFinalizerFirst(t *testing.T) {
	for _, mw := range []int{1, 2} {
		t.Run(fmt.Sprintf("markworkers=%d", mw), func(t *testing.T) {
			h, l := orderHeap(reclaim.Options{MarkWorkers: mw})
			m := h.Attach()
			orderChain(m, l, "A", "B")
			m.Detach()
			checkOrder(t, h, l, "A", "B")
		})
	}
}

// Same, with A allocated first: the order holds whatever the slots'.
func TestCloseRunsReachingFinalizerFirstAllocatedFirst(t *testing.T) {
	h, l := orderHeap(reclaim.Options{})
	m := h.Attach()
	a := reclaim.New[orderNode](m) // the lower slot
	b := reclaim.New[orderNode](m)
	a.Get(m).name, b.Get(m).name = "A", "B"
	a.Get(m).next = b
	reclaim.SetFinalizer(m, b, l.finalizer)
	reclaim.SetFinalizer(m, a, l.finalizer)
	m.Detach()
	checkOrder(t, h, l, "A", "B")
}

// A reaches B through C, which has no finalizer: reachability runs
// through any object.
func TestCloseOrderThroughObjectWithoutFinalizer(t *testing.T) {
	h, l := orderHeap(reclaim.Options{})
	m := h.Attach()
	orderChain(m, l, "A", "-C", "B")
	m.Detach()
	checkOrder(t, h, l, "A", "B")
}

// The same chain, with the mutator that built it still attached when
// Close begins: its span is in the mutator's cache, whose allocations the
// span's allocation bits do not show yet. The mark that orders the round
// must still take C for an object, or the chain breaks there and B's
// finalizer runs first.
func TestCloseOrderWithMutatorAttached(t *testing.T) {
	h, l := orderHeap(reclaim.Options{})
	m := h.Attach()
	orderChain(m, l, "A", "-C", "B")
	checkOrder(t, h, l, "A", "B")
}

// Finalizers that Close runs build new chains on the mutator Close gives
// them, in the span it keeps cached from one round to the next: each
// round's mark must see what the previous round's finalizers allocated
// there. A's finalizer builds P -> Q, and P's builds R -> S (each chain
// allocated last first): Q runs after P and S after R.
func TestCloseOrderOfChainsFinalizersBuild(t *testing.T) {
	h, l := orderHeap(reclaim.Options{})
	m := h.Attach()
	build := func(names ...string) func(*reclaim.Mutator, reclaim.Ref[orderNode]) {
		return func(fm *reclaim.Mutator, x reclaim.Ref[orderNode]) {
			l.finalizer(fm, x)
			orderChain(fm, l, names...)
		}
	}
	a := reclaim.New[orderNode](m)
	a.Get(m).name = "A"
	reclaim.SetFinalizer(m, a, func(fm *reclaim.Mutator, x reclaim.Ref[orderNode]) {
		l.finalizer(fm, x)
		pq := orderChain(fm, l, "P", "Q")
		reclaim.SetFinalizer(fm, pq[0], nil)
		reclaim.SetFinalizer(fm, pq[0], build("R", "S"))
	})
	m.Detach()
	if err := closeWithin(t, h); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	pos := map[string]int{}
	for i, n := range l.ran {
		pos[n] = i
	}
	if len(l.ran) != 5 || len(pos) != 5 {
		t.Fatalf("Close ran %v, want A, P, Q, R, S once each", l.ran)
	}
	for _, before := range [][2]string{{"A", "P"}, {"P", "Q"}, {"P", "R"}, {"R", "S"}} {
		if pos[before[0]] > pos[before[1]] {
			t.Errorf("Close ran %v: %s's finalizer after %s's", l.ran, before[0], before[1])
		}
	}
	for _, s := range l.invalid {
		t.Errorf("finalizer of %s (a finalizer must run before those of the objects it reaches)", s)
	}
}

// A chain of finalizable objects runs from its head, one link a round.
func TestCloseOrderChain(t *testing.T) {
	h, l := orderHeap(reclaim.Options{})
	m := h.Attach()
	orderChain(m, l, "A", "B", "C")
	m.Detach()
	checkOrder(t, h, l, "A", "B", "C")
}

// A chain longer than Close's 100 rounds still runs whole, in order, and
// Close returns no error: rounds in which nothing new is registered do
// not count towards the limit.
func TestCloseOrderLongChain(t *testing.T) {
	h, l := orderHeap(reclaim.Options{})
	m := h.Attach()
	const n = 250
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprint("n", i)
	}
	orderChain(m, l, names...)
	m.Detach()
	checkOrder(t, h, l, names...)
}

// A cycle of finalizable objects, which no collection would finalize:
// Close still runs every finalizer on it, each once, in one round (in an
// order not specified), and returns. So it does for an object that
// reaches itself.
func TestCloseRunsFinalizerCycle(t *testing.T) {
	h, l := orderHeap(reclaim.Options{})
	m := h.Attach()
	refs := orderChain(m, l, "A", "B")
	refs[1].Get(m).next = refs[0] // B reaches A again
	self := orderChain(m, l, "S", "-T")
	self[1].Get(m).next = self[0] // S reaches itself through T
	m.Detach()
	if err := closeWithin(t, h); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	got := slices.Clone(l.ran)
	slices.Sort(got)
	if want := []string{"A", "B", "S"}; !slices.Equal(got, want) {
		t.Errorf("Close ran the finalizers %v, want each of %v once", l.ran, want)
	}
}

// A chain that a cycle heads: the cycle's finalizers run in a round of
// their own (none is unreached, so every finalizer still registered runs
// then), and those before it on a chain that leads into it run first.
func TestCloseOrderChainIntoCycle(t *testing.T) {
	h, l := orderHeap(reclaim.Options{})
	m := h.Attach()
	refs := orderChain(m, l, "A", "B", "C")
	refs[2].Get(m).next = refs[1] // C reaches B again: B and C are a cycle
	m.Detach()
	if err := closeWithin(t, h); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ran) != 3 || l.ran[0] != "A" {
		t.Errorf("Close ran the finalizers in the order %v, want A first, then B and C", l.ran)
	}
	got := slices.Clone(l.ran)
	slices.Sort(got)
	if !slices.Equal(got, []string{"A", "B", "C"}) {
		t.Errorf("Close ran the finalizers %v, want each of A, B, C once", l.ran)
	}
}

// A Trace method that panics, or calls runtime.Goexit, while Close walks
// the heap to order a round's finalizers: Close logs it, runs every
// finalizer still registered, each once, and returns.
func TestCloseOrderWalkFails(t *testing.T) {
	for _, mode := range []string{"panic", "goexit"} {
		t.Run(mode, func(t *testing.T) {
			lb, logger := newLogBuffer()
			h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, Logger: logger})
			m := h.Attach()
			var failing atomic.Bool
			var ran atomic.Int32
			for range 3 {
				if mode == "panic" {
					r := reclaim.New[abTracer](m)
					r.Get(m).panicking = &failing
					reclaim.SetFinalizer(m, r, func(*reclaim.Mutator, reclaim.Ref[abTracer]) { ran.Add(1) })
				} else {
					r := reclaim.New[abExiter](m)
					r.Get(m).exiting = &failing
					reclaim.SetFinalizer(m, r, func(*reclaim.Mutator, reclaim.Ref[abExiter]) { ran.Add(1) })
				}
			}
			m.Detach()
			failing.Store(true)
			if err := closeWithin(t, h); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if n := ran.Load(); n != 3 {
				t.Errorf("%d finalizers ran, want 3", n)
			}
			if !strings.Contains(lb.String(), "could not order") {
				t.Errorf("Close logged no failure of its walk; log:\n%s", lb.String())
			}
		})
	}
}

// A registered cleanup's argument keeps what it reaches alive until the
// cleanup has run, as in a collection: a finalizable object it reaches
// has its finalizer run in a later round of Close, after the cleanup.
func TestCloseOrderCleanupArgumentFirst(t *testing.T) {
	h, l := orderHeap(reclaim.Options{})
	m := h.Attach()
	a := orderChain(m, l, "A")[0]
	x := reclaim.New[orderNode](m)
	reclaim.AddCleanup(m, x, func(reclaim.Ref[orderNode]) {
		l.mu.Lock()
		l.ran = append(l.ran, "cleanup")
		l.mu.Unlock()
	}, a)
	m.Detach()
	checkOrder(t, h, l, "cleanup", "A")
}

// orderTable holds a WeakMap, as a finalizable object's field.
type orderTable struct {
	tab reclaim.Ref[reclaim.WeakMap[orderNode, reclaim.Ref[orderNode]]]
}

// A WeakMap's entry is followed as the mark follows it: F, finalizable,
// holds a table whose entry under K, a finalizable key nothing else
// reaches, holds B. A collection dooms K (its finalizer queued, its
// entries' values traced for it) and keeps B, so Close runs F's and K's
// finalizers first and B's after them.
func TestCloseOrderThroughWeakMapEntry(t *testing.T) {
	h, l := orderHeap(reclaim.Options{})
	m := h.Attach()
	b := orderChain(m, l, "B")[0] // the lowest slot of its type
	k := orderChain(m, l, "K")[0]
	f := reclaim.New[orderTable](m)
	f.Get(m).tab = reclaim.New[reclaim.WeakMap[orderNode, reclaim.Ref[orderNode]]](m)
	f.Get(m).tab.Get(m).Set(k, b)
	reclaim.SetFinalizer(m, f, func(*reclaim.Mutator, reclaim.Ref[orderTable]) {
		l.mu.Lock()
		l.ran = append(l.ran, "F")
		l.mu.Unlock()
	})
	m.Detach()
	if err := closeWithin(t, h); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	got := slices.Clone(l.ran[:min(2, len(l.ran))])
	slices.Sort(got)
	if len(l.ran) != 3 || !slices.Equal(got, []string{"F", "K"}) || l.ran[2] != "B" {
		t.Errorf("Close ran the finalizers in the order %v, want F and K, then B", l.ran)
	}
}

// A cleanup of an object that a finalizable object reaches runs only
// after that finalizer, as in a collection, even when the finalizer waits
// for a later round of Close: D's cleanup's argument reaches A, so A's
// finalizer runs in the round after D's cleanup; A reaches C, whose
// cleanup must wait for A's finalizer, which may still use C.
func TestCloseOrderCleanupAfterReachingFinalizer(t *testing.T) {
	h, l := orderHeap(reclaim.Options{})
	log := func(s string) {
		l.mu.Lock()
		l.ran = append(l.ran, s)
		l.mu.Unlock()
	}
	m := h.Attach()
	refs := orderChain(m, l, "A", "-C")
	reclaim.AddCleanup(m, refs[1], func(int) { log("C's cleanup") }, 0)
	d := reclaim.New[orderNode](m)
	reclaim.AddCleanup(m, d, func(reclaim.Ref[orderNode]) { log("D's cleanup") }, refs[0])
	m.Detach()
	checkOrder(t, h, l, "D's cleanup", "A", "C's cleanup")
}

// A reaches C, and C's cleanup's argument reaches A: each waits for the
// other, and Close still runs both.
func TestCloseOrderCleanupCycleThroughFinalizer(t *testing.T) {
	h, l := orderHeap(reclaim.Options{})
	m := h.Attach()
	refs := orderChain(m, l, "A", "-C")
	reclaim.AddCleanup(m, refs[1], func(reclaim.Ref[orderNode]) {
		l.mu.Lock()
		l.ran = append(l.ran, "C's cleanup")
		l.mu.Unlock()
	}, refs[0])
	m.Detach()
	if err := closeWithin(t, h); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if got := slices.Sorted(slices.Values(l.ran)); !slices.Equal(got, []string{"A", "C's cleanup"}) {
		t.Errorf("Close ran %v, want A's finalizer and C's cleanup", l.ran)
	}
}

// A registered cleanup's argument keeps the objects it reaches alive until
// the cleanup has run, their cleanups too, as in a collection: Close runs
// the cleanup of X, whose argument is Y, before Y's own cleanup. Both ran
// in one round, Y's first (Y's object is the lower slot).
func TestCloseOrderCleanupBeforeCleanupItReaches(t *testing.T) {
	h, l := orderHeap(reclaim.Options{})
	m := h.Attach()
	y := reclaim.New[orderNode](m)
	x := reclaim.New[orderNode](m)
	record := func(name string) func(reclaim.Ref[orderNode]) {
		return func(reclaim.Ref[orderNode]) {
			l.mu.Lock()
			l.ran = append(l.ran, name)
			l.mu.Unlock()
		}
	}
	reclaim.AddCleanup(m, y, record("Y"), reclaim.Ref[orderNode]{})
	reclaim.AddCleanup(m, x, record("X"), y)
	m.Detach()
	checkOrder(t, h, l, "X", "Y")
}

// Two cleanups, each one's argument the other's object: no collection runs
// either, but Close runs both, once each, and returns.
func TestCloseRunsCleanupCycle(t *testing.T) {
	h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, Logger: quietLogger()})
	var ran atomic.Int32
	m := h.Attach()
	x := reclaim.New[orderNode](m)
	y := reclaim.New[orderNode](m)
	count := func(reclaim.Ref[orderNode]) { ran.Add(1) }
	reclaim.AddCleanup(m, x, count, y)
	reclaim.AddCleanup(m, y, count, x)
	m.Detach()
	if err := closeWithin(t, h); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := ran.Load(); n != 2 {
		t.Errorf("%d cleanups ran, want 2", n)
	}
}

// A finalizer that registers again, as a finalizer of a collection may
// (the object resurrected, to be finalized again), keeps what its object
// reaches alive until it has run again: A reaches C, and A's first
// finalizer sets A's finalizer again, so C's cleanup runs after A's second
// finalizer, which may still use C. Close queued C's cleanup in the round
// of A's first finalizer, from what it found before that finalizer ran.
func TestCloseOrderCleanupAfterFinalizerSetAgain(t *testing.T) {
	h, l := orderHeap(reclaim.Options{})
	m := h.Attach()
	refs := orderChain(m, l, "-A", "-C")
	refs[0].Get(m).name = "A"
	reclaim.AddCleanup(m, refs[1], func(int) {
		l.mu.Lock()
		l.ran = append(l.ran, "C's cleanup")
		l.mu.Unlock()
	}, 0)
	again := true
	var fin func(*reclaim.Mutator, reclaim.Ref[orderNode])
	fin = func(fm *reclaim.Mutator, x reclaim.Ref[orderNode]) {
		l.finalizer(fm, x)
		x.Get(fm).finalized = false
		if again {
			again = false
			reclaim.SetFinalizer(fm, x, fin)
		}
	}
	reclaim.SetFinalizer(m, refs[0], fin)
	m.Detach()
	checkOrder(t, h, l, "A", "A", "C's cleanup")
}

// A cleanup that a finalizer registers keeps what its argument reaches
// alive until it has run, as one registered before Close does: A's
// finalizer adds a cleanup to D whose argument is C, which has a cleanup
// of its own; D's runs first. Close queued both in the round of A's
// finalizer, from what it found before that finalizer ran (C's first: C's
// object is the lower slot).
func TestCloseOrderCleanupAFinalizerAdds(t *testing.T) {
	h, l := orderHeap(reclaim.Options{})
	log := func(s string) {
		l.mu.Lock()
		l.ran = append(l.ran, s)
		l.mu.Unlock()
	}
	m := h.Attach()
	c := reclaim.New[orderNode](m) // the lower slot
	d := reclaim.New[orderNode](m)
	a := reclaim.New[orderNode](m)
	a.Get(m).next = d
	reclaim.AddCleanup(m, c, func(int) { log("C's cleanup") }, 0)
	reclaim.SetFinalizer(m, a, func(fm *reclaim.Mutator, x reclaim.Ref[orderNode]) {
		log("A")
		reclaim.AddCleanup(fm, x.Get(fm).next, func(reclaim.Ref[orderNode]) { log("D's cleanup") }, c)
	})
	m.Detach()
	checkOrder(t, h, l, "A", "D's cleanup", "C's cleanup")
}
