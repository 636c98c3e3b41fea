package reclaim_test

// Interleavings between the heap's goroutines that once went wrong: each
// test opens the window (a hook, a child process, or a stress loop) and
// checks that the heap handles it.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

// A cleanup worker may Pin while the world is stopped. The mark reads the
// pins after it scans the cleanup queue's records (eachRoot): read before,
// a cleanup that pinned its argument between the two reads and returned
// before the queue's scan left it neither a pinned root nor a
// cleanup-argument root, and the collection freed a pinned object. The
// embedder's ScanRoots runs between the queue's scan and the old place of
// the pins' read, so it opens that window.
func TestPinFromCleanupDuringMark(t *testing.T) {
	var hook atomic.Pointer[func()]
	var h *reclaim.Heap
	h = newTestHeap(t, reclaim.Options{GCPercent: -1, ScanRoots: func(func(reclaim.Object)) {
		if f := hook.Load(); f != nil {
			(*f)()
		}
	}})
	m := h.Attach()
	defer m.Detach()

	owner := reclaim.New[finNode](m)
	arg := reclaim.New[finNode](m) // reachable only from the cleanup's argument
	started := make(chan struct{})
	release := make(chan struct{})
	pinned := make(chan struct{})
	reclaim.AddCleanup(m, owner, func(o reclaim.Object) {
		close(started)
		<-release
		h.Pin(o) // keep the argument alive after the cleanup returns
		close(pinned)
	}, arg.Object())

	m.Collect() // owner unreachable: its cleanup is queued and starts
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("cleanup did not start")
	}

	// The next mark: after it has read the pins, let the cleanup pin its
	// argument and finish before the mark scans the cleanup queue.
	f := func() {
		hook.Store(nil)
		close(release)
		<-pinned
		deadline := time.Now().Add(10 * time.Second)
		for h.Stats().CleanupsExecuted < 1 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	hook.Store(&f)
	m.Collect()

	if !isLive(arg) {
		t.Errorf("object pinned by a cleanup during the mark was freed")
		return
	}
	h.Unpin(arg.Object())
}

// Close stops the finalizer goroutine (finState.stop) before it runs the
// cleanups still registered. A cleanup run by Close that sets the heap's
// first finalizer must neither start the goroutine (it once did, after
// stop, and its Attach on the heap Close then marked dead panicked on a
// goroutine of the heap's own, ending the process) nor be left unrun:
// Close runs it. Checked in a child process, so that a crash does not take
// the other tests down with it.
func TestCloseCleanupSetsFirstFinalizer(t *testing.T) {
	if os.Getenv("RECLAIM_RACES_CHILD") == "1" {
		closeCleanupSetsFirstFinalizer()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCloseCleanupSetsFirstFinalizer$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RECLAIM_RACES_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child process failed: %v\n%s", err, out)
	}
	if bytes.Contains(out, []byte("LOST")) {
		t.Fatalf("child process:\n%s", out)
	}
}

func closeCleanupSetsFirstFinalizer() {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, Logger: quietLogger()})
	m := h.Attach()
	var finRan atomic.Bool
	owner := reclaim.New[finNode](m)
	reclaim.AddCleanup(m, owner, func(int) {
		cm := h.Attach()
		r := reclaim.New[finNode](cm)
		reclaim.SetFinalizer(cm, r, func(*reclaim.Mutator, reclaim.Ref[finNode]) { finRan.Store(true) })
		cm.Detach()
	}, 0)
	m.Detach()
	if err := h.Close(); err != nil {
		fmt.Println("Close:", err)
	}
	time.Sleep(100 * time.Millisecond) // let the late goroutine run
	if !finRan.Load() {
		fmt.Println("LOST: the finalizer a cleanup set during Close never ran")
	}
}

// With FinalizersAtSafepoints, Mutator.Drain on the heap's only mutator
// runs the finalizers itself, including those of a cycle its own safepoint
// led, whose sweep queues them after the safepoint: it once ran what was
// queued, blocked and waited for itself until its context ended.
func TestMutatorDrainAtSafepointsRunsItsFinalizers(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{FinalizersAtSafepoints: true})
	m := h.Attach()
	defer m.Detach()
	var ran atomic.Int64
	const n = 20000
	for range n {
		r := reclaim.New[finNode](m)
		reclaim.SetFinalizer(m, r, func(*reclaim.Mutator, reclaim.Ref[finNode]) { ran.Add(1) })
	}
	h.AddExternal(1 << 30) // a collection is due: Drain's safepoint leads it
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := m.Drain(ctx)
	h.AddExternal(-(1 << 30))
	if err != nil {
		t.Errorf("Mutator.Drain on the heap's only mutator: %v (finalizers run %d of %d)", err, ran.Load(), n)
	}
	for ran.Load() < n { // let the end-of-test Drain finish
		m.Safepoint()
	}
}

// The finalizer goroutine reaches a safepoint after each call
// (finSafepoint) and may lead a due collection there. If the embedder's
// ScanRoots calls runtime.Goexit in it, the collection is abandoned and the
// goroutine replaced; no record may be dropped (the handler once took the
// Goexit for a finalizer's and retired the next record, unrun), every
// finalizer runs, and the report says what happened (Kind "collection").
func TestGoexitInCollectionLedByFinalizerGoroutine(t *testing.T) {
	var hook atomic.Pointer[func()]
	var reports atomic.Int64
	var kinds atomic.Pointer[string]
	h := newTestHeap(t, reclaim.Options{Logger: quietLogger(),
		ScanRoots: func(func(reclaim.Object)) {
			if f := hook.Swap(nil); f != nil {
				(*f)()
			}
		},
		OnPanic: func(p *reclaim.CallbackPanic) { reports.Add(1); kinds.Store(&p.Kind) },
	})
	m := h.Attach()
	var ran atomic.Int64
	goexit := func() { runtime.Goexit() }
	for range 2 {
		r := reclaim.New[finNode](m)
		reclaim.SetFinalizer(m, r, func(*reclaim.Mutator, reclaim.Ref[finNode]) {
			if ran.Add(1) == 1 {
				// Make a collection due: the goroutine leads it at the
				// safepoint after this call, and ScanRoots ends it.
				hook.Store(&goexit)
				h.AddExternal(1 << 30)
			}
		})
	}
	m.Collect() // both queued in one block
	m.Detach()  // the finalizer goroutine is the only mutator left
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	h.AddExternal(-(1 << 30))
	st := h.Stats()
	if ran.Load() != 2 || st.FinalizersExecuted != 2 {
		t.Errorf("finalizers run %d of 2 (stats: queued %d, executed %d)", ran.Load(), st.FinalizersQueued, st.FinalizersExecuted)
	}
	if k := kinds.Load(); k == nil || *k != "collection" || reports.Load() != 1 {
		t.Errorf("%d reports, the last of kind %v; want one, of kind \"collection\"", reports.Load(), k)
	}
}

// As above, but ScanRoots panics: the collection is abandoned, and the
// finalizer goroutine, which has no caller to panic to, reports it (Kind
// "collection") and goes on; nothing recovered it once, and the process
// died. Checked in a child process.
func TestPanicInCollectionLedByFinalizerGoroutine(t *testing.T) {
	if os.Getenv("RECLAIM_RACES_CHILD") == "2" {
		panicInCollectionLedByFinalizerGoroutine()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPanicInCollectionLedByFinalizerGoroutine$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RECLAIM_RACES_CHILD=2")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child process failed: %v\n%s", err, out)
	}
	if bytes.Contains(out, []byte("LOST")) {
		t.Fatalf("child process:\n%s", out)
	}
}

func panicInCollectionLedByFinalizerGoroutine() {
	var armed atomic.Bool
	var ran atomic.Int64
	var reports []string
	var mu sync.Mutex
	h := reclaim.NewHeap(reclaim.Options{Logger: quietLogger(),
		ScanRoots: func(func(reclaim.Object)) {
			if armed.Swap(false) {
				panic("embedder's ScanRoots failed")
			}
		},
		OnPanic: func(p *reclaim.CallbackPanic) {
			mu.Lock()
			reports = append(reports, p.Kind+": "+fmt.Sprint(p.Value))
			mu.Unlock()
		},
	})
	m := h.Attach()
	for range 2 {
		r := reclaim.New[finNode](m)
		reclaim.SetFinalizer(m, r, func(*reclaim.Mutator, reclaim.Ref[finNode]) {
			if ran.Add(1) == 1 {
				armed.Store(true)
				h.AddExternal(1 << 30)
			}
		})
	}
	m.Collect()
	m.Detach()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Drain(ctx); err != nil {
		fmt.Println("LOST: Drain:", err)
	}
	h.AddExternal(-(1 << 30))
	mu.Lock()
	defer mu.Unlock()
	if n := ran.Load(); n != 2 {
		fmt.Println("LOST:", n, "of 2 finalizers ran")
	}
	if len(reports) != 1 || !strings.HasPrefix(reports[0], "collection: reclaim: collection abandoned") || !strings.Contains(reports[0], "embedder's ScanRoots failed") {
		fmt.Printf("LOST: reports %q, want one of kind collection with the panic\n", reports)
	}
}

type raceBig struct {
	_ [8192]byte // one object to a span
}

// Weak.Value loads the cell's handle, then makes sure the object's span is
// swept, then loads the cell again. It once loaded it again only when it
// swept the span itself: a sweeper that swept it in between (killing the
// cell of an object the last mark found dead, kept for its finalizer, its
// handle unchanged) went unseen, Value returned the object, and a second
// Value with no safepoint in between returned nil. A stress test, bounded
// at 10 s (the old code failed it within 0.06–6 s).
func TestWeakValueDuringSweep(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, Logger: quietLogger()})
	m := h.Attach()
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := h.Attach()
		defer c.Detach()
		for !stop.Load() {
			c.Collect()
		}
	}()
	d := 10 * time.Second
	if testing.Short() {
		d = 2 * time.Second
	}
	deadline := time.Now().Add(d)
	bad, tries := 0, 0
	for time.Now().Before(deadline) && bad == 0 {
		ws := make([]reclaim.Weak[raceBig], 0, 64)
		for range 64 {
			r := reclaim.New[raceBig](m)
			reclaim.SetFinalizer(m, r, func(*reclaim.Mutator, reclaim.Ref[raceBig]) {})
			ws = append(ws, reclaim.MakeWeak(m, r))
		}
		for spins := 0; spins < 50; spins++ {
			m.Safepoint()
			for _, w := range ws {
				if v := w.Value(m); !v.IsNil() {
					tries++
					if w.Value(m).IsNil() {
						bad++
					}
				}
			}
		}
	}
	stop.Store(true)
	m.Detach() // the collector's last Collect waits for every attached mutator
	wg.Wait()
	if bad > 0 {
		t.Errorf("Weak.Value returned an object, then nil with no safepoint in between (%d times in %d non-nil reads)", bad, tries)
	}
}

// TestDrainWaitsForWorkThatWorkStarts runs cleanups that each start a
// collection which queues a finalizer, and checks after every Drain that
// nothing it should have waited for is left: Drain read the sweep, the
// finalizers and the cleanups one after another, and once saw the sweep
// done before a cleanup started a cycle and the cleanup done after.
func TestDrainWaitsForWorkThatWorkStarts(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, CleanupWorkers: 2})
	defer h.Close()
	var fins atomic.Int64
	fin := func(*reclaim.Mutator, reclaim.Ref[finNode]) { fins.Add(1) }
	cleanup := func(int) {
		cm := h.Attach()
		defer cm.Detach()
		reclaim.SetFinalizer(cm, reclaim.New[finNode](cm), fin)
		cm.Collect()
	}
	m := h.Attach()
	defer m.Detach()
	rounds := 300
	if testing.Short() {
		rounds = 60
	}
	for round := range rounds {
		for i := range 4 {
			reclaim.AddCleanup(m, reclaim.New[finNode](m), cleanup, i)
		}
		m.Collect()
		if err := m.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		st := h.Stats()
		if st.CleanupsExecuted != st.CleanupsQueued || st.FinalizersExecuted != st.FinalizersQueued {
			t.Fatalf("round %d: Drain returned with cleanups %d of %d run, finalizers %d of %d run",
				round, st.CleanupsExecuted, st.CleanupsQueued, st.FinalizersExecuted, st.FinalizersQueued)
		}
	}
	// Every cleanup's finalizable object died in a later collection:
	// each round's own, or the next cleanup's. The last round's wait for
	// one more.
	m.Collect()
	if err := m.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := fins.Load(), int64(4*rounds); got != want {
		t.Errorf("%d finalizers ran, want %d", got, want)
	}
}
