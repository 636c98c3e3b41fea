package reclaim_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

// Tests of the heap's lifecycle: Close, Heap.Drain and Mutator.Drain, with
// Attach and Detach around them and collections beside them.

// closeWithin runs h.Close on another goroutine and returns its error,
// failing t if Close does not return within waitLimit (or its goroutine
// ends without returning, as with runtime.Goexit).
func closeWithin(t *testing.T, h *reclaim.Heap) error {
	t.Helper()
	type result struct {
		err      error
		returned bool
	}
	done := make(chan result, 1)
	go func() {
		returned := false
		var err error
		defer func() { done <- result{err, returned} }()
		err = h.Close()
		returned = true
	}()
	select {
	case r := <-done:
		if !r.returned {
			t.Fatalf("Close's goroutine ended without Close returning (runtime.Goexit or a panic)")
		}
		return r.err
	case <-time.After(waitLimit):
		t.Fatalf("Close did not return within %v", waitLimit)
	}
	return nil
}

// A cleanup that registers another cleanup each time it runs keeps Close
// busy for maxCloseRounds rounds; the docs say Close then returns an error
// ("if finalizers and cleanups kept registering new ones for 100 rounds").
func TestCloseCleanupChainReportsError(t *testing.T) {
	h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, Logger: quietLogger()})
	var ran atomic.Int32
	var chain func(int)
	chain = func(i int) {
		ran.Add(1)
		cm := h.Attach()
		defer cm.Detach()
		reclaim.AddCleanup(cm, reclaim.New[finNode](cm), chain, i+1)
	}
	m := h.Attach()
	reclaim.AddCleanup(m, reclaim.New[finNode](m), chain, 0)
	m.Detach()
	err := closeWithin(t, h)
	t.Logf("cleanups run: %d, Close: %v", ran.Load(), err)
	if err == nil {
		t.Errorf("Close returned nil after cleanups kept registering cleanups for %d rounds (one left unrun)", ran.Load())
	} else if !strings.HasPrefix(err.Error(), "reclaim:") {
		t.Errorf("Close error %q does not start with reclaim:", err)
	}
}

// Same, with a finalizer chain: each finalizer sets a finalizer on a new
// object. Close reports it (this is the documented case).
func TestCloseFinalizerChainReportsError(t *testing.T) {
	h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, Logger: quietLogger()})
	var ran atomic.Int32
	var chain func(*reclaim.Mutator, reclaim.Ref[finNode])
	chain = func(fm *reclaim.Mutator, _ reclaim.Ref[finNode]) {
		ran.Add(1)
		reclaim.SetFinalizer(fm, reclaim.New[finNode](fm), chain)
	}
	m := h.Attach()
	reclaim.SetFinalizer(m, reclaim.New[finNode](m), chain)
	m.Detach()
	err := closeWithin(t, h)
	if err == nil || !strings.HasPrefix(err.Error(), "reclaim:") {
		t.Fatalf("Close: %v after %d chained finalizers; want a reclaim: error", err, ran.Load())
	}
	if n := ran.Load(); n != 100 {
		t.Errorf("%d chained finalizers ran, want 100 (one per round)", n)
	}
}

// Finalizers that panic while Close runs them are reported through
// OnPanic, each once, and every other finalizer and cleanup still runs
// exactly once: registered ones, queued ones, and those they register.
func TestClosePanickingFinalizersAllRun(t *testing.T) {
	var panics panicLog
	h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, Logger: quietLogger(), OnPanic: panics.record, CleanupWorkers: 4})
	m := h.Attach()
	const n = 300
	var runs [2 * n]atomic.Int32
	var cleanups [2 * n]atomic.Int32
	fin := func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		id := x.Get(fm).id
		runs[id].Add(1)
		if id < n {
			// Registered during Close: another finalizer and a cleanup.
			r := reclaim.New[finNode](fm)
			r.Get(fm).id = id + n
			reclaim.SetFinalizer(fm, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
				runs[x.Get(fm).id].Add(1)
				panic(fmt.Sprint("late-", x.Get(fm).id))
			})
			reclaim.AddCleanup(fm, r, func(i int) {
				cleanups[i].Add(1)
				if i%7 == 0 {
					panic("cleanup-boom")
				}
			}, id+n)
		}
		if id%3 == 0 {
			panic(fmt.Sprint("boom-", id))
		}
	}
	holder := reclaim.New[finNode](m)
	h.Pin(holder.Object())
	for i := range n {
		r := reclaim.New[finNode](m)
		r.Get(m).id = i
		reclaim.SetFinalizer(m, r, fin)
		reclaim.AddCleanup(m, r, func(i int) { cleanups[i].Add(1) }, i)
		if i%2 == 0 {
			// Half stay reachable (registered at Close), half are queued by
			// the collection below.
			r.Get(m).next = holder.Get(m).next
			holder.Get(m).next = r
		}
	}
	m.Collect()
	m.Detach()
	if err := closeWithin(t, h); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i := range 2 * n {
		if got := runs[i].Load(); got != 1 {
			t.Errorf("finalizer %d ran %d times, want 1", i, got)
		}
		if got := cleanups[i].Load(); got != 1 {
			t.Errorf("cleanup %d ran %d times, want 1", i, got)
		}
	}
	ps := panics.all()
	fins, cls := 0, 0
	for _, p := range ps {
		switch p.Kind {
		case "finalizer":
			fins++
		case "cleanup":
			cls++
		}
	}
	wantFins := 0
	for i := range n {
		if i%3 == 0 {
			wantFins++
		}
	}
	wantFins += n
	wantCls := 0
	for i := n; i < 2*n; i++ {
		if i%7 == 0 {
			wantCls++
		}
	}
	if fins != wantFins || cls != wantCls {
		t.Errorf("OnPanic saw %d finalizer and %d cleanup panics, want %d and %d", fins, cls, wantFins, wantCls)
	}
}

// MISUSE.md: "Mutator.Drain called by a finalizer ... panic". That holds on
// the finalizer goroutine; check it for the finalizers Close runs too.
func TestDrainInFinalizerRunByClose(t *testing.T) {
	for _, here := range []bool{false, true} {
		t.Run(fmt.Sprint("atSafepoints=", here), func(t *testing.T) {
			var msg atomic.Value
			h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, FinalizersAtSafepoints: here, Logger: quietLogger(),
				OnPanic: func(p *reclaim.CallbackPanic) { msg.Store(fmt.Sprint(p.Value)) }})
			m := h.Attach()
			r := reclaim.New[finNode](m)
			h.Pin(r.Object())
			var drainErr atomic.Value
			reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, _ reclaim.Ref[finNode]) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				drainErr.Store(fmt.Sprint(fm.Drain(ctx)))
			})
			m.Detach()
			if err := closeWithin(t, h); err != nil {
				t.Fatalf("Close: %v", err)
			}
			got, _ := msg.Load().(string)
			if !strings.Contains(got, "reclaim: Drain called by a finalizer") {
				t.Errorf("a finalizer run by Close called Mutator.Drain: returned %v, OnPanic got %q; MISUSE.md says it panics", drainErr.Load(), got)
			}
		})
	}
}

// Drain with a context that ends while a finalizer or cleanup is blocked
// returns the context's error promptly, and the heap stays usable: the
// work finishes and a later Drain returns nil.
func TestDrainContextEnds(t *testing.T) {
	type drainer struct {
		name  string
		here  bool
		viaM  bool
		fin   bool // block a finalizer (else a cleanup)
		timed bool // a deadline (else cancel)
	}
	var cases []drainer
	for _, here := range []bool{false, true} {
		for _, viaM := range []bool{false, true} {
			for _, fin := range []bool{false, true} {
				if here && fin {
					continue // at safepoints the finalizer runs on the drainer itself
				}
				for _, timed := range []bool{false, true} {
					cases = append(cases, drainer{fmt.Sprintf("here=%v/mutator=%v/fin=%v/deadline=%v", here, viaM, fin, timed), here, viaM, fin, timed})
				}
			}
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newTestHeap(t, reclaim.Options{GCPercent: -1, FinalizersAtSafepoints: c.here})
			started, release := make(chan struct{}), newGate(t)
			var once sync.Once
			block := func() {
				once.Do(func() { close(started) })
				release.wait()
			}
			m := h.Attach()
			if c.fin {
				reclaim.SetFinalizer(m, reclaim.New[finNode](m), func(*reclaim.Mutator, reclaim.Ref[finNode]) { block() })
			} else {
				reclaim.AddCleanup(m, reclaim.New[finNode](m), func(int) { block() }, 0)
			}
			m.Collect()
			recvWithin(t, started, "the callback to start")

			var ctx context.Context
			var cancel context.CancelFunc
			if c.timed {
				ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
			} else {
				ctx, cancel = context.WithCancel(context.Background())
				time.AfterFunc(20*time.Millisecond, cancel)
			}
			defer cancel()
			want := context.Canceled
			if c.timed {
				want = context.DeadlineExceeded
			}
			errc := make(chan error, 1)
			begin := time.Now()
			if c.viaM {
				go func() { errc <- m.Drain(ctx) }()
			} else {
				m.Detach()
				go func() { errc <- h.Drain(ctx) }()
			}
			err := recvWithin(t, errc, "Drain to return after its context ended")
			if el := time.Since(begin); el > 5*time.Second {
				t.Errorf("Drain returned %v after its context ended", el)
			}
			if !errors.Is(err, want) || !strings.HasPrefix(err.Error(), "reclaim:") {
				t.Errorf("Drain: %v, want a reclaim: error wrapping %v", err, want)
			}
			// Usable after: the work finishes, a new cycle queues more,
			// and a later Drain waits for all of it.
			release.open()
			if !c.viaM {
				m = h.Attach()
			}
			var ran atomic.Int32
			reclaim.SetFinalizer(m, reclaim.New[finNode](m), counter(&ran))
			m.Collect()
			ctx2, cancel2 := context.WithTimeout(context.Background(), waitLimit)
			defer cancel2()
			if err := m.Drain(ctx2); err != nil {
				t.Fatalf("Drain after the work was released: %v", err)
			}
			if ran.Load() != 1 {
				t.Errorf("finalizer after the cancelled Drain ran %d times, want 1", ran.Load())
			}
			m.Detach()
		})
	}
}

// Several goroutines close one heap at once: exactly one Close runs the
// finalizers, each once; the others get "reclaim: Close called twice".
func TestConcurrentClose(t *testing.T) {
	for range 10 {
		h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, Logger: quietLogger()})
		m := h.Attach()
		var ran atomic.Int32
		for range 200 {
			reclaim.SetFinalizer(m, reclaim.New[finNode](m), counter(&ran))
		}
		m.Collect() // queues them: the finalizer goroutine runs them as Close starts
		for range 50 {
			reclaim.SetFinalizer(m, reclaim.New[finNode](m), counter(&ran))
		}
		m.Detach()
		const k = 4
		errs := make(chan error, k)
		var start sync.WaitGroup
		start.Add(1)
		for range k {
			go func() {
				start.Wait()
				errs <- h.Close()
			}()
		}
		start.Done()
		nils := 0
		for range k {
			err := recvWithin(t, errs, "a Close")
			if err == nil {
				nils++
			} else if err.Error() != "reclaim: Close called twice" {
				t.Errorf("Close: %v", err)
			}
		}
		if nils != 1 {
			t.Fatalf("%d Closes returned nil, want 1", nils)
		}
		// The winner has returned by now.
		if n := ran.Load(); n != 250 {
			t.Fatalf("%d finalizers ran, want 250", n)
		}
	}
}

// Close begins while another goroutine's Collect has the world stopped (its
// mark is running). "No collection runs once Close has begun": the cycle
// already under way must end before Close goes on, or the two run at once
// (Close taking finalizers from tables the cycle's sweep is queueing, and
// releasing spans under it). Every finalizer and cleanup must run exactly
// once.
func TestCloseRacesCollect(t *testing.T) {
	for _, here := range []bool{false, true} {
		t.Run(fmt.Sprint("atSafepoints=", here), func(t *testing.T) { closeRacesCollect(t, here) })
	}
}

func closeRacesCollect(t *testing.T, here bool) {
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	for round := range rounds {
		var armed atomic.Bool
		inMark := make(chan struct{})
		var h *reclaim.Heap
		var closedSeen atomic.Bool
		var panics panicLog
		h = reclaim.NewHeap(reclaim.Options{GCPercent: -1, Logger: quietLogger(), CleanupWorkers: 2, OnPanic: panics.record,
			FinalizersAtSafepoints: here, FinalizerBudget: 50,
			ScanRoots: func(func(reclaim.Object)) {
				if !armed.Swap(false) {
					return
				}
				close(inMark)
				deadline := time.Now().Add(waitLimit)
				for !h.Closed() {
					if time.Now().After(deadline) {
						return
					}
					runtime.Gosched()
				}
				closedSeen.Store(true)
			}})
		m := h.Attach()
		const n = 2000
		var fins, cls [n]atomic.Int32
		holder := reclaim.New[finNode](m)
		h.Pin(holder.Object())
		for i := range n {
			r := reclaim.New[finNode](m)
			r.Get(m).id = i
			reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) { fins[x.Get(fm).id].Add(1) })
			reclaim.AddCleanup(m, r, func(i int) { cls[i].Add(1) }, i)
			if i%4 == 0 { // some stay reachable: Close runs theirs
				r.Get(m).next = holder.Get(m).next
				holder.Get(m).next = r
			}
		}
		armed.Store(true)
		collected := make(chan struct{})
		go func() {
			defer close(collected)
			m.Collect()
		}()
		recvWithin(t, inMark, "the mark to start")
		err := closeWithin(t, h)
		recvWithin(t, collected, "the Collect")
		m.Detach()
		if err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
		if !closedSeen.Load() {
			t.Fatalf("round %d: the mark did not see Close begin", round)
		}
		bad := 0
		for i := range n {
			if fins[i].Load() != 1 || cls[i].Load() != 1 {
				if bad < 5 {
					t.Errorf("round %d: object %d: finalizer ran %d times, cleanup %d times; want 1 and 1", round, i, fins[i].Load(), cls[i].Load())
				}
				bad++
			}
		}
		if ps := panics.all(); len(ps) > 0 {
			t.Errorf("round %d: %d callbacks panicked, first: %s %v", round, len(ps), ps[0].Kind, ps[0].Value)
		}
		if bad > 0 {
			t.Fatalf("round %d: %d objects' callbacks did not run exactly once", round, bad)
		}
		if err := h.Verify(); err != nil {
			t.Fatalf("round %d: Verify after Close: %v", round, err)
		}
	}
}

// Heap.Drain on other goroutines while Close runs finalizers and cleanups:
// every Drain returns (its context is long), and a Drain after Close
// returns nil at once.
func TestDrainDuringClose(t *testing.T) {
	rounds := 10
	if testing.Short() {
		rounds = 3
	}
	for round := range rounds {
		h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, Logger: quietLogger(), CleanupWorkers: 2})
		m := h.Attach()
		var fins, cls atomic.Int32
		const n = 3000
		holder := reclaim.New[finNode](m)
		h.Pin(holder.Object())
		for i := range n {
			r := reclaim.New[finNode](m)
			reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
				fins.Add(1)
				if x.Get(fm).id%64 == 0 {
					reclaim.AddCleanup(fm, reclaim.New[finNode](fm), func(int) { cls.Add(1) }, 0)
				}
			})
			r.Get(m).id = i
			if i%2 == 0 {
				r.Get(m).next = holder.Get(m).next
				holder.Get(m).next = r
			}
		}
		m.Collect() // half queued, half registered
		m.Detach()
		var hung atomic.Int32
		stop := repeatUntilStopped(t, 3, "the Drains beside Close", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := h.Drain(ctx); err != nil {
				hung.Add(1)
				return false
			}
			return true
		})
		err := closeWithin(t, h)
		stop()
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
		if hung.Load() > 0 {
			t.Fatalf("round %d: %d Drains running beside Close waited until their context ended", round, hung.Load())
		}
		if fins.Load() != n || cls.Load() != (n+63)/64 {
			t.Fatalf("round %d: %d finalizers and %d cleanups ran, want %d and %d", round, fins.Load(), cls.Load(), n, (n+63)/64)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := h.Drain(ctx); err != nil {
			t.Fatalf("Drain after Close: %v", err)
		}
		cancel()
	}
}

// During Close, cleanups on several workers at once attach mutators and
// register finalizers and cleanups (on new objects, pinned or not), and
// finalizers resurrect their objects (pin them) and set their finalizer
// again once. Each callback runs exactly as often as registered.
func TestCloseCallbacksRegisterConcurrently(t *testing.T) {
	var panics panicLog
	h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, Logger: quietLogger(), CleanupWorkers: 4, OnPanic: panics.record})
	const n = 400
	var fin1, fin2, cl1, cl2 [n]atomic.Int32
	var lw sync.Map // id -> LongWeak made by the cleanup
	var second func(fm *reclaim.Mutator, x reclaim.Ref[finNode])
	second = func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		fin2[x.Get(fm).id].Add(1)
	}
	first := func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
		id := x.Get(fm).id
		fin1[id].Add(1)
		h.Pin(x.Object()) // resurrect
		reclaim.SetFinalizer(fm, x, second)
		reclaim.AddCleanup(fm, reclaim.New[finNode](fm), func(i int) { cl2[i].Add(1) }, id)
	}
	cleanup := func(id int) {
		cl1[id].Add(1)
		cm := h.Attach()
		defer cm.Detach()
		r := reclaim.New[finNode](cm)
		r.Get(cm).id = id
		if id%2 == 0 {
			h.Pin(r.Object())
		}
		reclaim.SetFinalizer(cm, r, first)
		lw.Store(id, reclaim.MakeLongWeak(cm, r))
		cm.Safepoint()
		cm.Collect() // no collection once Close has begun: returns
	}
	m := h.Attach()
	for i := range n {
		reclaim.AddCleanup(m, reclaim.New[finNode](m), cleanup, i)
	}
	m.Collect() // half the cleanups queued now; the rest Close queues (the objects are not reachable, but no further cycle runs)
	m.Detach()
	if err := closeWithin(t, h); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i := range n {
		if cl1[i].Load() != 1 || fin1[i].Load() != 1 || fin2[i].Load() != 1 || cl2[i].Load() != 1 {
			t.Fatalf("object %d: cleanup %d, first finalizer %d, second %d, its cleanup %d; want 1 each",
				i, cl1[i].Load(), fin1[i].Load(), fin2[i].Load(), cl2[i].Load())
		}
	}
	if ps := panics.all(); len(ps) > 0 {
		t.Fatalf("%d callbacks panicked; first: %v", len(ps), ps[0].Value)
	}
	if err := h.Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

// Several goroutines attach, register finalizers and cleanups, collect,
// drain (Mutator.Drain, or Heap.Drain after Detach) and detach, over and
// over, beside each other: every Drain returns nil before its deadline,
// having waited for at least what was queued when it was called; then
// Close runs the rest, each callback once in all.
func TestDrainAttachDetachChurn(t *testing.T) {
	for _, here := range []bool{false, true} {
		t.Run(fmt.Sprint("atSafepoints=", here), func(t *testing.T) {
			h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, Logger: quietLogger(), CleanupWorkers: 2,
				FinalizersAtSafepoints: here, FinalizerBudget: 3})
			const workers, iters, per = 3, 30, 20
			var fins, cls atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for it := range iters {
						m := h.Attach()
						for range per {
							r := reclaim.New[finNode](m)
							reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
								fins.Add(1)
								reclaim.AddCleanup(fm, reclaim.New[finNode](fm), func(int) { cls.Add(1) }, 0)
							})
						}
						m.Collect()
						st := h.Stats()
						ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
						var err error
						if (w+it)%2 == 0 || here {
							err = m.Drain(ctx)
							m.Detach()
						} else {
							m.Detach()
							err = h.Drain(ctx)
						}
						cancel()
						if err != nil {
							errs <- fmt.Errorf("worker %d iteration %d: Drain: %w", w, it, err)
							return
						}
						after := h.Stats()
						if after.FinalizersExecuted < st.FinalizersQueued || after.CleanupsExecuted < st.CleanupsQueued {
							errs <- fmt.Errorf("worker %d iteration %d: Drain returned with %d finalizers run of %d queued before it, %d cleanups of %d",
								w, it, after.FinalizersExecuted, st.FinalizersQueued, after.CleanupsExecuted, st.CleanupsQueued)
							return
						}
					}
				}()
			}
			waitTimeout(t, &wg, waitLimit, "the workers")
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if err := closeWithin(t, h); err != nil {
				t.Fatalf("Close: %v", err)
			}
			total := int64(workers * iters * per)
			if fins.Load() != total || cls.Load() != total {
				t.Fatalf("%d finalizers and %d cleanups ran, want %d each", fins.Load(), cls.Load(), total)
			}
		})
	}
}

// Close is called by a goroutine whose mutator is still attached (Close
// allows it: it warns), while another goroutine's Collect waits for that
// mutator to reach a safepoint, which it never will now. Close must
// return, and the waiting Collect must not run a cycle on the closed heap
// (or the heap's spans are marked after Close released them).
func TestCloseWhileCollectWaitsForCallersMutator(t *testing.T) {
	var panics panicLog
	h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, Logger: quietLogger(), OnPanic: panics.record})
	m1 := h.Attach()
	var ran atomic.Int32
	for range 10 {
		reclaim.SetFinalizer(m1, reclaim.New[finNode](m1), counter(&ran))
	}
	stats0 := h.Stats()
	attached := make(chan *reclaim.Mutator)
	collected := make(chan struct{})
	go func() {
		m2 := h.Attach()
		attached <- m2
		m2.Collect() // waits for m1
		close(collected)
	}()
	m2 := recvWithin(t, attached, "the second mutator")
	waitUntil(t, "the Collect to wait for the world to stop", h.StopRequested)
	err := closeWithin(t, h)
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := ran.Load(); n != 10 {
		t.Errorf("%d finalizers ran, want 10", n)
	}
	m1.Detach()
	recvWithin(t, collected, "the waiting Collect")
	m2.Detach()
	if st := h.Stats(); st.Cycles != stats0.Cycles {
		t.Errorf("a cycle ran on the closed heap (%d cycles, %d before Close)", st.Cycles, stats0.Cycles)
	}
	if ps := panics.all(); len(ps) > 0 {
		t.Errorf("%d panics; first %v", len(ps), ps[0].Value)
	}
}

// A finalizer that Close runs calls runtime.Goexit (t.FailNow in a test).
// It ends Close's caller, as it would end any goroutine, but the heap is
// closed all the same: the call is reported, every other finalizer runs,
// and Attach then panics.
func TestCloseFinalizerGoexit(t *testing.T) {
	var panics panicLog
	h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, Logger: quietLogger(), OnPanic: panics.record})
	m := h.Attach()
	var ran atomic.Int32
	for i := range 4 {
		r := reclaim.New[finNode](m)
		h.Pin(r.Object())
		r.Get(m).id = i
		reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, x reclaim.Ref[finNode]) {
			ran.Add(1)
			if x.Get(fm).id == 2 {
				runtime.Goexit()
			}
		})
	}
	var cleaned atomic.Int32
	reclaim.AddCleanup(m, reclaim.New[finNode](m), func(int) { cleaned.Add(1) }, 0)
	m.Detach()
	ended := make(chan bool, 1)
	go func() {
		returned := false
		defer func() { ended <- returned }()
		_ = h.Close()
		returned = true
	}()
	if recvWithin(t, ended, "Close's goroutine to end") {
		t.Fatalf("Close returned on a goroutine that a finalizer ended with runtime.Goexit")
	}
	if n := ran.Load(); n != 4 {
		t.Errorf("%d finalizers ran, want 4", n)
	}
	if n := cleaned.Load(); n != 1 {
		t.Errorf("the cleanup ran %d times, want 1", n)
	}
	ps := panics.all()
	if len(ps) != 1 || ps[0].Kind != "finalizer" || !strings.Contains(fmt.Sprint(ps[0].Value), "Goexit") {
		t.Errorf("reports %v, want one finalizer report naming Goexit", ps)
	}
	if st := h.Stats(); st.SpanBytes != 0 || st.FinalizersQueued != st.FinalizersExecuted {
		t.Errorf("after Close: %d span bytes, finalizers queued %d and run %d; want none held and all run", st.SpanBytes, st.FinalizersQueued, st.FinalizersExecuted)
	}
	wantPanic(t, func() { h.Attach() }, "closed heap")
}

// TestCloseFinalizerStateNotRetained: once Close has run a finalizer, the
// Go memory the finalizer function holds is Go's to collect, while Close
// goes on with the round's cleanups: the finalizer goroutine drops each
// record as its call returns, and so must Close, for the records it took
// from the queue (at safepoints, left there by the budget) and from the
// finalizer tables.
func TestCloseFinalizerStateNotRetained(t *testing.T) {
	for _, queued := range []bool{false, true} {
		name := "registered"
		if queued {
			name = "queued"
		}
		t.Run(name, func(t *testing.T) {
			h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, FinalizersAtSafepoints: queued, FinalizerBudget: 1, Logger: quietLogger()})
			m := h.Attach()
			var freed atomic.Bool
			var calls atomic.Int32
			func() {
				p := new(bigArg)
				runtime.AddCleanup(p, func(*atomic.Bool) { freed.Store(true) }, &freed)
				fin := func(*reclaim.Mutator, reclaim.Ref[finNode]) { calls.Add(1); p.buf[0]++ }
				if queued {
					queueTwoRunOne(t, m, fin, &calls)
				} else {
					r := reclaim.New[finNode](m)
					h.Pin(r.Object()) // still registered when Close runs it
					reclaim.SetFinalizer(m, r, fin)
				}
			}()
			// A cleanup of the same round of Close, after the finalizers:
			// it looks while Close still holds the round's records.
			holder := reclaim.New[finNode](m)
			h.Pin(holder.Object())
			var collected, ran atomic.Bool
			reclaim.AddCleanup(m, holder, func(*atomic.Bool) {
				collected.Store(goCollected(&freed))
				ran.Store(true)
			}, &freed)
			m.Detach()
			if err := h.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if n, want := calls.Load(), map[bool]int32{false: 1, true: 2}[queued]; n != want {
				t.Fatalf("%d finalizer calls, want %d", n, want)
			}
			if !ran.Load() {
				t.Fatal("the cleanup did not run")
			}
			if !collected.Load() {
				t.Error("a finalizer's function (and what it holds) is still reachable for Go's collector after Close ran it")
			}
		})
	}
}
