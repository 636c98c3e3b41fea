package reclaim_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

// A collection whose mark runs into a panic of the embedder's code
// (ScanRoots, a Trace method) is abandoned: the panic reaches the caller
// as a reclaim: panic, the world runs again, and the next collection
// works as if the abandoned one had never started.

// abNode is a node of the chains these tests keep alive.
type abNode struct {
	next reclaim.Ref[abNode]
	v    int
}

// abTracer's Trace panics while panicking is set. It serves as an object
// and as a cleanup argument.
type abTracer struct {
	next      reclaim.Ref[abNode]
	panicking *atomic.Bool
}

func (p *abTracer) Trace(visit func(reclaim.Object)) {
	if p.panicking.Load() {
		panic("abTracer: trace failed")
	}
	visit(p.next.Object())
}

// abChain allocates a chain of n nodes with values 0..n-1 and returns its
// head.
func abChain(m *reclaim.Mutator, n int) reclaim.Ref[abNode] {
	var head reclaim.Ref[abNode]
	for i := n - 1; i >= 0; i-- {
		r := reclaim.New[abNode](m)
		p := r.Get(m)
		p.next, p.v = head, i
		head = r
	}
	return head
}

// abCheckChain fails t unless head's chain holds n live nodes 0..n-1.
func abCheckChain(t *testing.T, m *reclaim.Mutator, head reclaim.Ref[abNode], n int) {
	t.Helper()
	r := head
	for i := range n {
		if _, ok := reclaim.As[abNode](r.Object()); !ok || r.IsNil() {
			t.Fatalf("node %d of the chain is gone", i)
		}
		p := r.Get(m)
		if p.v != i {
			t.Fatalf("node %d of the chain holds %d", i, p.v)
		}
		r = p.next
	}
	if !r.IsNil() {
		t.Fatalf("the chain is longer than %d", n)
	}
}

func TestCollectAbandonedWhenScanRootsPanics(t *testing.T) {
	var failing atomic.Bool
	var root reclaim.Ref[abNode]
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, ScanRoots: func(visit func(reclaim.Object)) {
		if failing.Load() {
			panic("roots failed")
		}
		visit(root.Object())
	}})
	m := h.Attach()
	defer m.Detach()
	root = abChain(m, 100)
	abChain(m, 50) // garbage
	m.Collect()
	before := h.Stats()

	failing.Store(true)
	wantPanic(t, m.Collect, "collection abandoned", "roots failed")
	failing.Store(false)
	if st := h.Stats(); st.Cycles != before.Cycles {
		t.Errorf("Stats.Cycles went from %d to %d over an abandoned collection", before.Cycles, st.Cycles)
	}
	abChain(m, 50) // more garbage
	m.Collect()
	abCheckChain(t, m, root, 100)
	if st := h.Stats(); st.HeapObjects != 100 {
		t.Errorf("%d objects after the collection that followed the abandoned one, want the chain's 100", st.HeapObjects)
	}
}

// TestCollectAbandonedWhenTracePanics: with one mark worker the roots are
// marked in the order ScanRoots reports them, so the panicking object's span
// is scanned before the chain's head: the abandoned mark leaves the head
// marked and unscanned. A mark bit left so would make the next mark take the
// head for scanned and free the rest of the chain.
func TestCollectAbandonedWhenTracePanics(t *testing.T) {
	var panicking atomic.Bool
	var tracer reclaim.Ref[abTracer]
	var head reclaim.Ref[abNode]
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: 1, ScanRoots: func(visit func(reclaim.Object)) {
		visit(tracer.Object())
		visit(head.Object())
	}})
	m := h.Attach()
	defer m.Detach()
	tracer = reclaim.New[abTracer](m)
	tracer.Get(m).panicking = &panicking
	tracer.Get(m).next = abChain(m, 10)
	head = abChain(m, 1000)

	panicking.Store(true)
	wantPanic(t, m.Collect, "collection abandoned", "trace failed")
	panicking.Store(false)
	m.Collect()
	abCheckChain(t, m, head, 1000)
	abCheckChain(t, m, tracer.Get(m).next, 10)
	if st := h.Stats(); st.HeapObjects != 1+10+1000 {
		t.Errorf("%d objects after the collections, want %d", st.HeapObjects, 1+10+1000)
	}
}

// TestCollectAbandonedWithWorkers: with several mark workers the Trace
// panic happens on whichever worker scans a panicking object first, the
// leader or another; either way the collection ends, and the next one
// keeps everything reachable.
func TestCollectAbandonedWithWorkers(t *testing.T) {
	for _, workers := range []int{2, 3} {
		var panicking atomic.Bool
		var roots []reclaim.Object
		h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: workers, ScanRoots: func(visit func(reclaim.Object)) {
			for _, o := range roots {
				visit(o)
			}
		}})
		m := h.Attach()
		var heads []reclaim.Ref[abNode]
		for i := range 64 {
			heads = append(heads, abChain(m, 200))
			roots = append(roots, heads[i].Object())
			if i%8 == 0 {
				tr := reclaim.New[abTracer](m)
				tr.Get(m).panicking = &panicking
				roots = append(roots, tr.Object())
			}
		}
		// A hang (a worker left waiting, the world left stopped) fails
		// the test by go test's timeout.
		for round := range 10 {
			panicking.Store(true)
			wantPanic(t, m.Collect, "collection abandoned", "trace failed")
			panicking.Store(false)
			m.Collect()
			for _, hd := range heads {
				abCheckChain(t, m, hd, 200)
			}
			if t.Failed() {
				t.Fatalf("%d workers, round %d", workers, round)
			}
		}
		m.Detach()
	}
}

// TestCollectGoexitInScanRoots: ScanRoots that calls runtime.Goexit (as
// t.FailNow does) ends the goroutine that leads the collection, after the
// collection is abandoned and the world restarted: the goroutine's
// deferred Detach runs, and the heap goes on working.
func TestCollectGoexitInScanRoots(t *testing.T) {
	var exiting atomic.Bool
	var root reclaim.Ref[abNode]
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, ScanRoots: func(visit func(reclaim.Object)) {
		if exiting.Load() {
			runtime.Goexit()
		}
		visit(root.Object())
	}})
	m := h.Attach()
	root = abChain(m, 100)
	m.Collect()
	before := h.Stats()
	m.Detach() // a collection waits for every attached mutator

	exiting.Store(true)
	returned, done := false, make(chan struct{})
	go func() {
		defer close(done)
		m2 := h.Attach()
		defer m2.Detach()
		m2.Collect()
		returned = true
	}()
	<-done
	exiting.Store(false)
	m = h.Attach()
	defer m.Detach()
	if returned {
		t.Fatal("Collect returned; want its goroutine ended by ScanRoots' runtime.Goexit")
	}
	if st := h.Stats(); st.Cycles != before.Cycles {
		t.Errorf("Stats.Cycles went from %d to %d over an abandoned collection", before.Cycles, st.Cycles)
	}
	abChain(m, 50) // garbage
	m.Collect()    // a hang here (the world left stopped, m2 attached) fails by go test's timeout
	abCheckChain(t, m, root, 100)
	if st := h.Stats(); st.HeapObjects != 100 {
		t.Errorf("%d objects after the collection that followed the abandoned one, want the chain's 100", st.HeapObjects)
	}
}

// abExiter's Trace calls runtime.Goexit while exiting is set.
type abExiter struct {
	next    reclaim.Ref[abNode]
	exiting *atomic.Bool
}

func (p *abExiter) Trace(visit func(reclaim.Object)) {
	if p.exiting.Load() {
		runtime.Goexit()
	}
	visit(p.next.Object())
}

// TestCollectGoexitInTrace: a Trace method that calls runtime.Goexit ends
// the collection whichever worker runs it. On another worker, the
// collecting goroutine gets a reclaim: panic that says so; on the leader,
// its goroutine ends (with one worker, always). Either way the next
// collection keeps everything reachable.
func TestCollectGoexitInTrace(t *testing.T) {
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			outcomes := goexitInTrace(t, workers, 20)
			t.Logf("outcomes: %v", outcomes)
			if workers == 1 && outcomes["goroutine ended"] != 20 {
				t.Errorf("outcomes %v, want every collecting goroutine ended", outcomes)
			}
			if outcomes["goroutine ended"]+outcomes["panic"] != 20 {
				t.Errorf("outcomes %v, want 20 abandoned collections", outcomes)
			}
		})
	}
}

// goexitInTrace runs rounds collections in which a Trace method calls
// runtime.Goexit, each led by a new goroutine, and after each checks that
// the next collection keeps every chain. It returns how the collections
// ended: "goroutine ended" or "panic".
func goexitInTrace(t *testing.T, workers, rounds int) map[string]int {
	var exiting atomic.Bool
	var roots []reclaim.Object
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: workers, ScanRoots: func(visit func(reclaim.Object)) {
		for _, o := range roots {
			visit(o)
		}
	}})
	m := h.Attach()
	var heads []reclaim.Ref[abNode]
	for i := range 32 {
		heads = append(heads, abChain(m, 100))
		roots = append(roots, heads[i].Object())
		if i%4 == 0 {
			ex := reclaim.New[abExiter](m)
			ex.Get(m).exiting = &exiting
			roots = append(roots, ex.Object())
		}
	}
	m.Detach() // a collection waits for every attached mutator
	outcomes := map[string]int{}
	for range rounds {
		exiting.Store(true)
		returned, done := false, make(chan struct{})
		go func() {
			defer close(done)
			m2 := h.Attach()
			defer m2.Detach()
			wantPanic(t, m2.Collect, "collection abandoned", "runtime.Goexit", "mark worker")
			returned = true
		}()
		<-done
		exiting.Store(false)
		if returned {
			outcomes["panic"]++
		} else {
			outcomes["goroutine ended"]++ // Goexit on the leader, which wantPanic's recover cannot stop
		}
		m := h.Attach()
		m.Collect()
		for _, hd := range heads {
			abCheckChain(t, m, hd, 100)
		}
		m.Detach()
		if t.Failed() {
			t.FailNow()
		}
	}
	return outcomes
}

// TestCollectAbandonedInFinalizerPhase: a Trace method that panics while
// the mark scans an unreached finalizable object as a root (the mark's
// second phase, after the other roots are traced) abandons the collection
// like one in the first phase; the next collection queues the object's
// finalizer and keeps what the object reaches, and the rest of the heap
// is intact.
func TestCollectAbandonedInFinalizerPhase(t *testing.T) {
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			var panicking atomic.Bool
			h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: workers})
			m := h.Attach()
			defer m.Detach()
			head := abChain(m, 500)
			h.Pin(head.Object())
			var ran atomic.Int64
			var reached reclaim.Ref[abNode]
			tr := reclaim.New[abTracer](m)
			tr.Get(m).panicking = &panicking
			tr.Get(m).next = abChain(m, 20)
			reclaim.SetFinalizer(m, tr, func(fm *reclaim.Mutator, r reclaim.Ref[abTracer]) {
				reached = r.Get(fm).next
				ran.Add(1)
			})
			tr = reclaim.Ref[abTracer]{}

			panicking.Store(true)
			wantPanic(t, m.Collect, "collection abandoned", "trace failed")
			panicking.Store(false)
			collectDrain(t, m, h)
			if n := ran.Load(); n != 1 {
				t.Fatalf("the finalizer ran %d times, want once", n)
			}
			abCheckChain(t, m, head, 500)
			abCheckChain(t, m, reached, 20)
			if got := h.FinalizerRoots(); got != 1 {
				t.Errorf("the mark scanned %d finalizable objects as roots, want 1", got)
			}
			h.Unpin(head.Object())
		})
	}
}

// TestCollectAbandonedWhenCleanupArgTracePanics: the Trace method of a
// queued cleanup's argument panics while the mark scans the cleanup queue
// (the cleanup is running: its argument is a root until it returns). The
// collection is abandoned like one whose object Trace panicked, and the
// heap goes on: the cleanup finishes, and the next collections run. The
// queue's scan left the block's mutex locked, so the next mark waited for
// it for ever with the world stopped.
func TestCollectAbandonedWhenCleanupArgTracePanics(t *testing.T) {
	var panicking atomic.Bool
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: 1, CleanupWorkers: 1})
	m := h.Attach()
	defer m.Detach()
	x := reclaim.New[abNode](m)
	held := abChain(m, 10)
	var reached reclaim.Ref[abNode]
	var liveInCleanup atomic.Bool
	started, release := make(chan struct{}), make(chan struct{})
	reclaim.AddCleanup(m, x, func(a abTracer) {
		close(started)
		<-release
		// Read here, while the cleanup runs: once it has returned, the
		// argument is garbage, and a collection may free it at once.
		liveInCleanup.Store(isLive(a.next))
		reached = a.next
	}, abTracer{held, &panicking})
	x, held = reclaim.Ref[abNode]{}, reclaim.Ref[abNode]{}
	m.Collect() // x dies: its cleanup is queued and starts
	<-started

	panicking.Store(true)
	wantPanic(t, m.Collect, "collection abandoned", "trace failed")
	panicking.Store(false)
	m.Collect() // the cleanup still runs: its argument is a root
	close(release)
	collectDrain(t, m, h)
	if st := h.Stats(); st.CleanupsExecuted != 1 {
		t.Fatalf("%d cleanups executed, want 1", st.CleanupsExecuted)
	}
	if !liveInCleanup.Load() {
		t.Fatal("the cleanup's argument was freed before the cleanup returned")
	}
	collectDrain(t, m, h)
	if isLive(reached) {
		t.Error("the cleanup's argument outlived the cleanup")
	}
}

// abBarrier's Trace, while failing is set, waits until two goroutines
// are in it (or a second has passed), then panics: two mark workers fail
// in one mark.
type abBarrier struct {
	failing *atomic.Bool
	entered *atomic.Int32
}

func (p *abBarrier) Trace(func(reclaim.Object)) {
	if !p.failing.Load() {
		return
	}
	n := p.entered.Add(1)
	for deadline := time.Now().Add(time.Second); p.entered.Load() < 2 && time.Now().Before(deadline); {
		runtime.Gosched()
	}
	panic(fmt.Sprintf("abBarrier: trace %d failed", n))
}

// TestCollectAbandonedTwoWorkersPanic: when both mark workers' Trace
// methods panic in one mark, the collection re-panics with one of the two
// panics and logs the other.
func TestCollectAbandonedTwoWorkersPanic(t *testing.T) {
	lb, logger := newLogBuffer()
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: 2, Logger: logger})
	m := h.Attach()
	defer m.Detach()
	var failing atomic.Bool
	var entered atomic.Int32
	failing.Store(true)
	// Objects in spans of both parities: with this few spans, worker k
	// owns the spans whose index is k mod 2 (mark.go, ownShift), and the
	// leader hands each root to its span's owner.
	var roots [2]reclaim.Ref[abBarrier]
	found := 0
	for found < 2 {
		r := reclaim.New[abBarrier](m)
		p := r.Get(m)
		p.failing, p.entered = &failing, &entered
		span, _, _ := reclaim.HandleFields(r.Object())
		if roots[span%2].IsNil() {
			roots[span%2] = r
			h.Pin(r.Object())
			found++
		}
	}
	v := func() (v any) {
		defer func() { v = recover() }()
		m.Collect()
		return nil
	}()
	if v == nil || !strings.Contains(fmt.Sprint(v), "abBarrier: trace") {
		t.Fatalf("Collect: panic %v, want one of abBarrier's", v)
	}
	if got := entered.Load(); got != 2 {
		t.Fatalf("%d Trace calls, want 2 (one a worker)", got)
	}
	log := lb.String()
	if n := strings.Count(log, "in a mark that an earlier one already abandons"); n != 1 {
		t.Fatalf("the later panic logged %d times, want once; log:\n%s", n, log)
	}
	// The logged panic is the one the collection did not re-panic with.
	other := "abBarrier: trace 1 failed"
	if strings.Contains(fmt.Sprint(v), other) {
		other = "abBarrier: trace 2 failed"
	}
	if !strings.Contains(log, other) {
		t.Fatalf("log lacks %q:\n%s", other, log)
	}
	// The heap works on: the next collection marks both roots.
	failing.Store(false)
	m.Collect()
	if got := h.Stats().ObjectsMarked; got < 2 {
		t.Fatalf("the collection after marked %d objects, want both roots", got)
	}
	for _, r := range roots {
		h.Unpin(r.Object())
	}
}
