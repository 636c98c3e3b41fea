package reclaim_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

// Stress tests of finalizers and cleanups: many mutators, automatic and
// explicit collections, and an exact count per object at the end.

// stressObj carries the id its finalizer counts under.
type stressObj struct {
	prev reclaim.Ref[stressObj] // sometimes the previous finalizable object: finalization order
	id   int32
	pad  [3]int64
	// Weak references to the object itself, on some finalizable objects:
	// its finalizer checks that the short one is nil and the long one not.
	self     reclaim.Weak[stressObj]
	selfLong reclaim.LongWeak[stressObj]
}

// stressCounts holds one counter per finalizer id and per cleanup id.
type stressCounts struct {
	fin       []atomic.Int32
	hasFin    []bool // written by the owning worker; read after they all ended
	cleanup   []atomic.Int32
	stopped   []bool // likewise
	hasClean  []bool // likewise
	finalizer func(*reclaim.Mutator, reclaim.Ref[stressObj])
	cleanupFn func(int32)
	weakBad   atomic.Int32 // finalizers that found a wrong weak Value
}

func newStressCounts(objects int) *stressCounts {
	c := &stressCounts{
		fin:      make([]atomic.Int32, objects),
		hasFin:   make([]bool, objects),
		cleanup:  make([]atomic.Int32, 2*objects),
		stopped:  make([]bool, 2*objects),
		hasClean: make([]bool, 2*objects),
	}
	// One finalizer and one cleanup function for every object: no
	// per-object closure.
	c.finalizer = func(fm *reclaim.Mutator, x reclaim.Ref[stressObj]) {
		o := x.Get(fm)
		c.fin[o.id].Add(1)
		if o.self != (reclaim.Weak[stressObj]{}) && (!o.self.Value(fm).IsNil() || o.selfLong.Value(fm) != x) {
			c.weakBad.Add(1)
		}
	}
	c.cleanupFn = func(id int32) { c.cleanup[id].Add(1) }
	return c
}

// stressWorker allocates objects [base, base+n) on its own mutator. Per
// object i (counting from 0 in the worker):
//
//	i%2 == 0   finalizer; every 8th also points to the previous finalizable
//	           object allocated since the last safepoint; every 4th (i%4 ==
//	           2) holds a Weak and a LongWeak to itself
//	i%3 == 0   a cleanup (two if i%9 == 0); every 5th cleanup is stopped
//	           before the next safepoint
//
// so some objects have both. Refs never outlive a safepoint interval.
func stressWorker(h *reclaim.Heap, c *stressCounts, base, n int, collectEvery int) {
	m := h.Attach()
	defer m.Detach()
	const window = 64
	var prev reclaim.Ref[stressObj]
	var toStop []reclaim.Cleanup
	ncleanup := 0
	for i := range n {
		id := base + i
		r := reclaim.New[stressObj](m)
		r.Get(m).id = int32(id)
		if i%2 == 0 {
			reclaim.SetFinalizer(m, r, c.finalizer)
			c.hasFin[id] = true
			if i%8 == 0 && !prev.IsNil() {
				r.Get(m).prev = prev
			}
			if i%4 == 2 {
				r.Get(m).self = reclaim.MakeWeak(m, r)
				r.Get(m).selfLong = reclaim.MakeLongWeak(m, r)
			}
			prev = r
		}
		if i%3 == 0 {
			k := 1
			if i%9 == 0 {
				k = 2
			}
			for j := range k {
				cid := 2*id + j
				cl := reclaim.AddCleanup(m, r, c.cleanupFn, int32(cid))
				c.hasClean[cid] = true
				ncleanup++
				if ncleanup%5 == 0 {
					c.stopped[cid] = true
					toStop = append(toStop, cl)
				}
			}
		}
		if i%window == window-1 {
			// Every object of this window is still alive (no safepoint
			// since it was allocated): these Stops cancel for sure.
			for _, cl := range toStop {
				cl.Stop()
			}
			toStop = toStop[:0]
			prev = reclaim.Ref[stressObj]{}
			if collectEvery > 0 && i%collectEvery == window-1 {
				m.Collect()
			} else {
				m.Safepoint()
			}
		}
	}
	for _, cl := range toStop {
		cl.Stop()
	}
}

func TestStressFinalizersAndCleanups(t *testing.T) {
	const workers = 4
	perWorker := 600_000 // 2.4 million objects in all
	if testing.Short() {
		perWorker = 12_500 // 50k
	}
	total := workers * perWorker
	c := newStressCounts(total)
	// Automatic collection on (the default pacing: a cycle every few MiB of
	// allocation), plus explicit Collects by two workers.
	h := newTestHeap(t, reclaim.Options{CleanupWorkers: 2})

	var wg sync.WaitGroup
	for w := range workers {
		collectEvery := 0
		if w < 2 {
			collectEvery = 64 * 97
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			stressWorker(h, c, w*perWorker, perWorker, collectEvery)
		}()
	}
	wg.Wait()

	wantFin, wantClean := 0, 0
	for id := range total {
		if c.hasFin[id] {
			wantFin++
		}
	}
	nstopped := 0
	for cid := range c.cleanup {
		if c.hasClean[cid] && !c.stopped[cid] {
			wantClean++
		}
		if c.stopped[cid] {
			nstopped++
		}
	}

	// Every object is unreachable now. Finalizable chains need one cycle
	// per link; collect until everything ran, and no more than that.
	m := h.Attach()
	for round := 0; ; round++ {
		m.Collect()
		// Drain with no mutator attached on this goroutine: nothing here
		// can then keep a collection a finalizer asks for from starting.
		m.Detach()
		drain(t, h)
		m = h.Attach()
		st := h.Stats()
		if st.FinalizersExecuted == int64(wantFin) && st.CleanupsExecuted == int64(wantClean) {
			break
		}
		if round == 20 {
			t.Fatalf("after %d extra cycles: finalizers %d of %d, cleanups %d of %d",
				round, st.FinalizersExecuted, wantFin, st.CleanupsExecuted, wantClean)
		}
	}
	m.Detach()

	bad := 0
	for id := range total {
		want := int32(0)
		if c.hasFin[id] {
			want = 1
		}
		if got := c.fin[id].Load(); got != want && bad < 10 {
			bad++
			t.Errorf("object %d: finalizer ran %d times, want %d", id, got, want)
		}
	}
	for cid := range c.cleanup {
		want := int32(0)
		if c.hasClean[cid] && !c.stopped[cid] {
			want = 1
		}
		if got := c.cleanup[cid].Load(); got != want && bad < 20 {
			bad++
			t.Errorf("cleanup %d (stopped %v): ran %d times, want %d", cid, c.stopped[cid], got, want)
		}
	}
	st := h.Stats()
	if st.FinalizersQueued != int64(wantFin) || st.CleanupsQueued != int64(wantClean) {
		t.Errorf("Stats: FinalizersQueued %d (want %d), CleanupsQueued %d (want %d)",
			st.FinalizersQueued, wantFin, st.CleanupsQueued, wantClean)
	}
	if n := c.weakBad.Load(); n != 0 {
		t.Errorf("%d finalizers saw their object's Weak not nil or its LongWeak not the object", n)
	}
	if st.StaleRefsInMark != 0 || st.Panics != 0 {
		t.Errorf("Stats: StaleRefsInMark %d, Panics %d; want 0, 0", st.StaleRefsInMark, st.Panics)
	}
	if st.HeapObjects != 0 {
		t.Errorf("Stats.HeapObjects = %d after everything was collected, want 0", st.HeapObjects)
	}
	t.Logf("%d objects, %d finalizers, %d cleanups run, %d stopped, %d cycles",
		total, wantFin, wantClean, nstopped, st.Cycles)
}

// Many short rounds of {allocate finalizable objects, Collect, Drain}:
// a lost wake-up of the finalizer goroutine or of the cleanup pool shows up
// as a Drain that times out. A second mutator, attached for a burst of
// allocation after each Collect, races with the Collect's sweep, so that it,
// too, sweeps lazily and is sometimes the last sweeper of a cycle (the one
// that wakes the finalizer goroutine and flushes the cleanup blocks).
func TestStressFinalizerWakeups(t *testing.T) {
	rounds := 2000
	if testing.Short() {
		rounds = 300
	}
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, CleanupWorkers: 2})

	var bgRuns atomic.Int64
	tick := make(chan struct{}, 1)
	stop := make(chan struct{})
	bgDone := make(chan struct{})
	go func() {
		defer close(bgDone)
		fin := func(*reclaim.Mutator, reclaim.Ref[finNode]) { bgRuns.Add(1) }
		for {
			select {
			case <-stop:
				return
			case <-tick:
			}
			// Attached only for the burst: a mutator blocked on a channel
			// would keep every collection from starting.
			bm := h.Attach()
			for range 4 {
				for range 4 {
					reclaim.SetFinalizer(bm, reclaim.New[finNode](bm), fin)
				}
				bm.Safepoint()
			}
			bm.Detach()
		}
	}()

	m := h.Attach()
	var fins, cleanups atomic.Int64
	fin := func(*reclaim.Mutator, reclaim.Ref[finNode]) { fins.Add(1) }
	clean := func(int) { cleanups.Add(1) }
	want := int64(0)
	for round := 1; round <= rounds; round++ {
		// Every fifth round queues enough blocks of records for a
		// sweeper to wake the goroutine early (several blocks of 128),
		// so that it runs blocks while the sweepers link more.
		n := 3
		if round%5 == 1 {
			n = 1200
		}
		for range n {
			reclaim.SetFinalizer(m, reclaim.New[finNode](m), fin)
		}
		want += int64(n)
		reclaim.AddCleanup(m, reclaim.New[finNode](m), clean, round)
		m.Collect()
		select {
		case tick <- struct{}{}:
		default:
		}
		if round%4 == 0 {
			// Let the queue build up over several cycles now and then.
			continue
		}
		// Drain attached, mostly, and now and then detached (Detach
		// flushes m's cleanup block).
		detach := round%3 == 0
		if detach {
			m.Detach()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := h.Drain(ctx)
		cancel()
		if err != nil {
			close(stop)
			<-bgDone
			t.Fatalf("round %d: Drain: %v (status %s)", round, err, h.Stats().FinalizerStatus)
		}
		if detach {
			m = h.Attach()
		}
		if got := fins.Load(); got != want {
			t.Fatalf("round %d: %d finalizers ran, want %d", round, got, want)
		}
		if got, want := cleanups.Load(), int64(round); got != want {
			t.Fatalf("round %d: %d cleanups ran, want %d", round, got, want)
		}
	}
	m.Detach()
	close(stop)
	<-bgDone
}

// churnCell is pointer-free: on Linux its spans live outside the Go heap.
type churnCell struct {
	Next  reclaim.Ref[churnCell]
	Owner uint64
	Seq   uint64
}

// TestStressHeapChurn makes and closes heaps on several goroutines at once,
// each building, cutting and checking a chain of pointer-free objects, so
// that span memory goes back and forth between heaps through the pools
// outside the Go heap (and their scavenger) while other heaps use it: every
// object must keep what its heap wrote, and a new object must be zero.
func TestStressHeapChurn(t *testing.T) {
	goroutines, heaps, n := 4, 12, 20000
	if testing.Short() {
		heaps, n = 4, 5000
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range heaps {
				owner := uint64(g)<<32 | uint64(k)
				h := reclaim.NewHeap(reclaim.Options{MarkWorkers: 1})
				m := h.Attach()
				var head reclaim.Ref[churnCell]
				dirty := 0
				for i := range n {
					c := reclaim.New[churnCell](m)
					p := c.Get(m)
					if *p != (churnCell{}) && dirty == 0 {
						dirty++
						t.Errorf("heap %x: new object %d holds %+v", owner, i, *p)
					}
					p.Next, p.Owner, p.Seq = head, owner, uint64(i)
					head = c
				}
				h.Pin(head.Object())
				m.Collect()
				// Cut the chain in half: the tail becomes garbage.
				r := head
				for range n/2 - 1 {
					r = r.Get(m).Next
				}
				r.Get(m).Next = reclaim.Ref[churnCell]{}
				m.Collect()
				m.Collect()
				seq, count := uint64(n-1), 0
				for r := head; !r.IsNil(); r = r.Get(m).Next {
					if p := r.Get(m); p.Owner != owner || p.Seq != seq {
						t.Errorf("heap %x: object %d holds owner %x seq %d", owner, count, p.Owner, p.Seq)
						break
					}
					seq--
					count++
				}
				if count != n/2 {
					t.Errorf("heap %x: chain of %d after the cut, want %d", owner, count, n/2)
				}
				h.Unpin(head.Object())
				m.Detach()
				if err := h.Close(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
}
