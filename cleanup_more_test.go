package reclaim_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

// A cleanup that calls runtime.Goexit is reported, every other cleanup of
// its block still runs once, Drain returns and Close works.
func TestCleanupGoexit(t *testing.T) {
	var mu sync.Mutex
	var ps []*reclaim.CallbackPanic
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, CleanupWorkers: 1, OnPanic: func(p *reclaim.CallbackPanic) {
		mu.Lock()
		ps = append(ps, p)
		mu.Unlock()
	}})
	m := h.Attach()
	cs := newCleanupSet()
	const n = 3*cleanupBlockRecords + 7
	for i := range n {
		r := reclaim.New[finNode](m)
		if i%50 == 3 {
			reclaim.AddCleanup(m, r, func(int) { runtime.Goexit() }, i)
		} else {
			reclaim.AddCleanup(m, r, cs.run, i)
		}
	}
	collectDrain(t, m, h)
	exits := (n + 46) / 50
	if got := cs.total(); got != n-exits {
		t.Errorf("%d cleanups ran, want %d", got, n-exits)
	}
	for i := range n {
		if i%50 != 3 && cs.count(i) != 1 {
			t.Errorf("cleanup %d ran %d times", i, cs.count(i))
		}
	}
	mu.Lock()
	if len(ps) != exits {
		t.Errorf("%d reports, want %d", len(ps), exits)
	}
	for _, p := range ps {
		if p.Kind != "cleanup" || !strings.Contains(fmt.Sprint(p.Value), "Goexit") {
			t.Errorf("report %v", p)
		}
	}
	mu.Unlock()
	if st := h.Stats(); st.CleanupsQueued != n || st.CleanupsExecuted != n || st.CleanupGoroutines > 1 {
		t.Errorf("stats %+v", st)
	}
	m.Detach()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

// Stop racing the sweeper: each cleanup runs at most once, and one that is
// stopped before the collection never runs.
func TestCleanupStopRace(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	for round := range 20 {
		var ran [256]atomic.Int32
		var cs [256]reclaim.Cleanup
		for i := range cs {
			r := reclaim.New[finNode](m)
			cs[i] = reclaim.AddCleanup(m, r, func(i int) { ran[i].Add(1) }, i)
		}
		var early [256]bool
		for i := range cs {
			if i%4 == 0 {
				cs[i].Stop()
				early[i] = true
			}
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range cs {
				cs[i].Stop()
			}
		}()
		m.Collect()
		wg.Wait()
		drain(t, h)
		for i := range cs {
			if n := ran[i].Load(); n > 1 || early[i] && n != 0 {
				t.Fatalf("round %d: cleanup %d ran %d times (stopped early %v)", round, i, n, early[i])
			}
		}
	}
}

// bigArg is a cleanup argument that holds Go memory.
type bigArg struct{ buf [1 << 16]byte }

// goCollected reports whether Go's collector frees the object that
// registered done, trying a few collections.
func goCollected(done *atomic.Bool) bool {
	// Go runs its cleanups on a goroutine of its own, after the cycle:
	// collect and give it time until it has run or waitLimit passes (a
	// liveness bound, not a measurement).
	for deadline := time.Now().Add(waitLimit); time.Now().Before(deadline); {
		runtime.GC()
		if done.Load() {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return done.Load()
}

// A stopped cleanup's argument is not kept alive for Go's collector once
// its object died and no Cleanup handle is kept (as with
// runtime.AddCleanup, whose Stop frees the special): the record's slab,
// which the mutator's next AddCleanup will carve, must not hold it.
func TestStoppedCleanupArgNotRetained(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	var freed atomic.Bool
	func() {
		p := new(bigArg)
		runtime.AddCleanup(p, func(*atomic.Bool) { freed.Store(true) }, &freed)
		r := reclaim.New[finNode](m)
		c := reclaim.AddCleanup(m, r, func(*bigArg) { t.Error("stopped cleanup ran") }, p)
		c.Stop()
	}()
	collectDrain(t, m, h) // the object dies; the sweeper drops the stopped record
	if !goCollected(&freed) {
		t.Errorf("a stopped cleanup's argument is still reachable for Go's collector after its object died")
	}
}

// The same when AddCleanup unlinks the stopped record and its mutator keeps
// no more of them (its free list for the type is full): the record goes
// back to Go, but its slab stays.
func TestPrunedCleanupArgNotRetained(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	r := reclaim.New[finNode](m)
	h.Pin(r.Object())
	defer h.Unpin(r.Object())
	noop := func(*bigArg) {}
	var freed atomic.Bool
	func() {
		p := new(bigArg)
		runtime.AddCleanup(p, func(*atomic.Bool) { freed.Store(true) }, &freed)
		cs := []reclaim.Cleanup{reclaim.AddCleanup(m, r, noop, p)}
		// 64 more on top: unlinked first, they fill the mutator's free
		// list for the type, so the record holding p is let go.
		for range 64 {
			cs = append(cs, reclaim.AddCleanup(m, r, noop, nil))
		}
		for _, c := range cs {
			c.Stop()
		}
		reclaim.AddCleanup(m, r, noop, nil) // unlinks the 65 stopped records
	}()
	if !goCollected(&freed) {
		t.Errorf("a stopped and unlinked cleanup's argument is still reachable for Go's collector")
	}
}

// Close with cleanups registered on live objects, some calling
// runtime.Goexit and some panicking, and some still queued from the last
// collection: every one that does not exit runs exactly once, and Close
// returns.
func TestCloseCleanupsGoexit(t *testing.T) {
	var reports atomic.Int64
	h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, CleanupWorkers: 2, OnPanic: func(*reclaim.CallbackPanic) { reports.Add(1) }})
	m := h.Attach()
	cs := newCleanupSet()
	const n = 2*cleanupBlockRecords + 5
	var keep []reclaim.Ref[finNode]
	for i := range n {
		r := reclaim.New[finNode](m)
		switch i % 37 {
		case 1:
			reclaim.AddCleanup(m, r, func(int) { runtime.Goexit() }, i)
		case 2:
			reclaim.AddCleanup(m, r, func(int) { panic("boom") }, i)
		default:
			reclaim.AddCleanup(m, r, cs.run, i)
		}
		if i%2 == 0 {
			h.Pin(r.Object())
			keep = append(keep, r)
		}
	}
	m.Collect() // the unpinned half is queued
	m.Detach()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for i := range n {
		if i%37 == 1 || i%37 == 2 {
			bad++
			continue
		}
		if c := cs.count(i); c != 1 {
			t.Errorf("cleanup %d ran %d times", i, c)
		}
	}
	if got := reports.Load(); got != int64(bad) {
		t.Errorf("%d reports, want %d", got, bad)
	}
	_ = keep
}

// Debug reports each unrunnable cleanup once: a second one, registered on
// another object with the record of a first one that was reported and then
// stopped (AddCleanup reuses stopped records), is reported too.
func TestUnrunnableReportedAfterRecordReuse(t *testing.T) {
	logs, logger := newLogBuffer()
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, Debug: true, Logger: logger})
	m := h.Attach()
	defer m.Detach()

	fn := func(reclaim.Ref[cleanupBack]) {} // Close runs it
	owner1 := reclaim.New[finNode](m)
	back1 := reclaim.New[cleanupBack](m)
	back1.Get(m).owner = owner1
	c1 := reclaim.AddCleanup(m, owner1, fn, back1)
	h.Pin(owner1.Object())
	m.Collect()
	if st := h.Stats(); st.UnrunnableCleanups != 1 {
		t.Fatalf("Stats.UnrunnableCleanups = %d, want 1", st.UnrunnableCleanups)
	}
	// The report names the cleanup function, a literal of this test.
	if out := logs.String(); !strings.Contains(out, "cleanup=\"github.com/reclaimgc/reclaim_test.TestUnrunnableReportedAfterRecordReuse.func1 ") {
		t.Errorf("the report does not name the cleanup function:\n%s", out)
	}
	c1.Stop()
	// Unlinks the stopped record for reuse; its own argument is nil.
	reclaim.AddCleanup(m, owner1, func(reclaim.Ref[cleanupBack]) {}, reclaim.Ref[cleanupBack]{})
	owner2 := reclaim.New[finNode](m)
	back2 := reclaim.New[cleanupBack](m)
	back2.Get(m).owner = owner2
	reclaim.AddCleanup(m, owner2, fn, back2) // a new unrunnable cleanup
	m.Collect()
	m.Collect()
	if st := h.Stats(); st.UnrunnableCleanups != 2 {
		t.Errorf("Stats.UnrunnableCleanups = %d after a second unrunnable cleanup, want 2", st.UnrunnableCleanups)
	}
	h.Unpin(owner1.Object())
}

// tracedArg keeps its refs in a Go map, where reflection does not look:
// its Trace method reports them.
type tracedArg struct {
	refs map[int]reclaim.Ref[Key]
}

func (a *tracedArg) Trace(visit func(reclaim.Object)) {
	for _, r := range a.refs {
		visit(r.Object())
	}
}

// A cleanup argument whose type implements Tracer is scanned by its Trace
// method, as an object of that type is: the refs it reports stay alive
// until the cleanup has run (by reflection, the map hid them).
func TestCleanupArgTracer(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	obj := newKey(m, 0)
	h.Pin(obj.Object())
	held := newKey(m, 7)
	var sawLive atomic.Bool
	reclaim.AddCleanup(m, obj, func(a tracedArg) {
		r := a.refs[1]
		k, ok := reclaim.As[Key](r.Object())
		sawLive.Store(ok && !k.IsNil() && isLive(r))
	}, tracedArg{refs: map[int]reclaim.Ref[Key]{1: held}})
	for range 2 {
		collectDrain(t, m, h)
		if !isLive(held) {
			t.Fatal("a ref reported only by the cleanup argument's Trace method was freed before the cleanup ran")
		}
	}
	h.Unpin(obj.Object())
	collectDrain(t, m, h)
	if !sawLive.Load() {
		t.Fatal("the cleanup did not run, or found the ref its argument traces freed")
	}
	collectDrain(t, m, h)
	if isLive(held) {
		t.Error("the ref outlived the cleanup that held it")
	}
}
