package cleanupq

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// idler turns OnIdle into something a test can wait on without polling.
type idler struct {
	q  *Queue
	ch chan struct{} // one pending token at most
}

func newIdler() *idler { return &idler{ch: make(chan struct{}, 1)} }

func (d *idler) onIdle() {
	select {
	case d.ch <- struct{}{}:
	default:
	}
}

// wait returns once Pending is zero. Whenever Pending drops to zero after
// the check, OnIdle leaves a token, so no drop is missed.
func (d *idler) wait() {
	for d.q.Pending() != 0 {
		<-d.ch
	}
}

// newTestQueue builds a queue whose OnIdle feeds an idler and closes it when
// the test ends.
func newTestQueue(t testing.TB, cfg Config) (*Queue, *idler) {
	d := newIdler()
	if cfg.OnIdle != nil {
		panic("newTestQueue sets OnIdle")
	}
	cfg.OnIdle = d.onIdle
	q := New(cfg)
	d.q = q
	t.Cleanup(q.Close)
	return q, d
}

// funcRunner runs f and holds no handles.
type funcRunner func()

func (f funcRunner) Run()                                     { f() }
func (f funcRunner) Scan(buf []handle.Handle) []handle.Handle { return buf }

// tally counts runs per record id.
type tally struct {
	runs []atomic.Uint32
}

// countRec is one record of the exactly-once test.
type countRec struct {
	t  *tally
	id int
}

func (r *countRec) Run()                                     { r.t.runs[r.id].Add(1) }
func (r *countRec) Scan(buf []handle.Handle) []handle.Handle { return buf }

// TestExactlyOnce enqueues records from several goroutines acting as
// sweepers, each with its own Local; the last one to finish flushes all
// Locals. Every record must run exactly once.
func TestExactlyOnce(t *testing.T) {
	for _, workers := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			sweepers, per := 4, 500_000
			if testing.Short() {
				per = 20_000
			}
			total := sweepers * per
			q, idle := newTestQueue(t, Config{MaxWorkers: workers, Labels: []string{"reclaim.worker", "cleanup"}})
			tl := &tally{runs: make([]atomic.Uint32, total)}
			recs := make([]countRec, total)
			locals := make([]*Local, sweepers)
			for i := range locals {
				locals[i] = new(Local)
			}
			var active atomic.Int32
			active.Store(int32(sweepers))
			var wg sync.WaitGroup
			for s := range sweepers {
				wg.Go(func() {
					l := locals[s]
					for i := s * per; i < (s+1)*per; i++ {
						recs[i] = countRec{t: tl, id: i}
						q.Enqueue(l, &recs[i])
					}
					if active.Add(-1) == 0 {
						q.Flush(locals)
					}
				})
			}
			wg.Wait()
			idle.wait()
			for i := range tl.runs {
				if n := tl.runs[i].Load(); n != 1 {
					t.Fatalf("record %d ran %d times", i, n)
				}
			}
			st := q.Stats()
			if st.Queued != uint64(total) || st.Executed != uint64(total) {
				t.Fatalf("Stats = %+v, want Queued = Executed = %d", st, total)
			}
			if st.Workers < 1 || st.Workers > workers {
				t.Fatalf("Workers = %d, want 1..%d", st.Workers, workers)
			}
			for _, l := range locals {
				if l.b != nil {
					t.Fatal("Flush left a local block")
				}
			}
		})
	}
}

// scanRec is a record of the ScanRoots test. Its handle encodes its id.
type scanRec struct {
	st *scanState
	id int
}

// scanState tracks, per block of consecutive ids, how far the worker got.
// Records of one block run in order on one worker, so plain counters that
// only that worker writes are monotone.
type scanState struct {
	started  []atomic.Int32 // per block: 1 + position of the last record started
	finished []atomic.Int32 // per block: number of records whose Run returned
}

func idHandle(id int) handle.Handle {
	return handle.Make(1, uint32(id>>handle.SlotBits), uint32(id&(handle.MaxSlots-1)), 1)
}

func handleID(h handle.Handle) int { return int(h.Span())<<handle.SlotBits | int(h.Slot()) }

func (r *scanRec) Run() {
	blk, pos := r.id/blockRecords, int32(r.id%blockRecords)
	r.st.started[blk].Store(pos + 1)
	runtime.Gosched() // let scans see blocks mid-run
	r.st.finished[blk].Store(pos + 1)
}

func (r *scanRec) Scan(buf []handle.Handle) []handle.Handle {
	return append(buf, idHandle(r.id))
}

// TestScanRootsRace calls ScanRoots between enqueues (the sweeper is the
// only one, so no sweeper is active during the scan) while workers run
// blocks. Each scan must report every record that is still unfinished when
// it returns, never report a record twice, and never report a record that
// the block's done index had passed before the scan began: done trails the
// last record started by less than doneEvery. After the queue drains, a
// scan reports nothing.
func TestScanRootsRace(t *testing.T) {
	total, scanEvery := 60_000, 997
	if testing.Short() {
		total = 12_000
	}
	// No Flush until the end, so blocks are runs of consecutive ids.
	q, idle := newTestQueue(t, Config{MaxWorkers: 2})
	nblocks := total/blockRecords + 1
	st := &scanState{started: make([]atomic.Int32, nblocks), finished: make([]atomic.Int32, nblocks)}
	recs := make([]scanRec, total)
	var l Local
	var buf []handle.Handle
	startedBefore := make([]int32, nblocks)
	scans := 0
	for i := range total {
		recs[i] = scanRec{st: st, id: i}
		q.Enqueue(&l, &recs[i])
		if i%scanEvery != 0 {
			continue
		}
		scans++
		enqueued := i + 1
		for b := range nblocks {
			startedBefore[b] = st.started[b].Load()
		}
		buf = q.ScanRoots([]*Local{&l}, buf[:0])
		seen := make(map[int]bool, len(buf))
		for _, h := range buf {
			id := handleID(h)
			if id >= enqueued {
				t.Fatalf("scan %d reported record %d, not enqueued yet", scans, id)
			}
			if seen[id] {
				t.Fatalf("scan %d reported record %d twice", scans, id)
			}
			seen[id] = true
			// Records before the last started one have finished; done
			// has passed every whole doneEvery of them.
			if pos, sb := int32(id%blockRecords), startedBefore[id/blockRecords]; sb > 0 && pos < (sb-1)/doneEvery*doneEvery {
				t.Fatalf("scan %d reported record %d, but record at position %d of its block had started before the scan",
					scans, id, sb-1)
			}
		}
		for b := range (enqueued + blockRecords - 1) / blockRecords {
			fin := int(st.finished[b].Load())
			for id := b*blockRecords + fin; id < min((b+1)*blockRecords, enqueued); id++ {
				if !seen[id] {
					t.Fatalf("scan %d missed unfinished record %d", scans, id)
				}
			}
		}
	}
	q.Flush([]*Local{&l})
	idle.wait()
	if buf = q.ScanRoots(nil, buf[:0]); len(buf) != 0 {
		t.Fatalf("scan after drain reported %d handles", len(buf))
	}
	if got := q.Stats().Executed; got != uint64(total) {
		t.Fatalf("Executed = %d, want %d", got, total)
	}
}

// TestScanRootsLocal checks the quiet case exactly: records in a Local are
// reported, flushed ones that ran are not.
func TestScanRootsLocal(t *testing.T) {
	q, idle := newTestQueue(t, Config{MaxWorkers: 1})
	st := &scanState{started: make([]atomic.Int32, 1), finished: make([]atomic.Int32, 1)}
	var l Local
	recs := make([]scanRec, 10)
	for i := range recs {
		recs[i] = scanRec{st: st, id: i}
		q.Enqueue(&l, &recs[i])
	}
	got := q.ScanRoots([]*Local{&l}, nil)
	if len(got) != 10 {
		t.Fatalf("ScanRoots reported %d handles, want 10", len(got))
	}
	for i, h := range got {
		if handleID(h) != i {
			t.Fatalf("handle %d is record %d", i, handleID(h))
		}
	}
	if p := q.Pending(); p != 0 {
		t.Fatalf("Pending = %d before the Local is flushed, want 0", p)
	}
	q.FlushOne(&l)
	idle.wait()
	if got := q.ScanRoots([]*Local{&l}, nil); len(got) != 0 {
		t.Fatalf("ScanRoots after drain reported %d handles", len(got))
	}
}

// TestMaxWorkers fills more than MaxWorkers blocks whose records block until
// released, and checks that exactly MaxWorkers blocks run at once.
func TestMaxWorkers(t *testing.T) {
	for _, max := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("max=%d", max), func(t *testing.T) {
			q, idle := newTestQueue(t, Config{MaxWorkers: max})
			var cur, high atomic.Int32
			gate := make(chan struct{})
			started := make(chan struct{}, 64)
			r := funcRunner(func() {
				n := cur.Add(1)
				for {
					h := high.Load()
					if n <= h || high.CompareAndSwap(h, n) {
						break
					}
				}
				started <- struct{}{}
				<-gate
				cur.Add(-1)
			})
			blocks := max + 2
			var l Local
			for range blocks * blockRecords {
				q.Enqueue(&l, r)
			}
			for range max {
				<-started
			}
			st := q.Stats()
			if st.Running != max || st.Workers != max {
				t.Errorf("with %d blocks blocked: Running = %d, Workers = %d, want %d", max, st.Running, st.Workers, max)
			}
			close(gate)
			for range blocks*blockRecords - max {
				<-started
			}
			idle.wait()
			if h := high.Load(); h != int32(max) {
				t.Fatalf("high-water of concurrent runs = %d, want %d", h, max)
			}
			if w := q.Stats().Workers; w != max {
				t.Fatalf("Workers = %d, want %d", w, max)
			}
		})
	}
}

// TestDefaultMaxWorkers checks the default pool bound.
func TestDefaultMaxWorkers(t *testing.T) {
	q := New(Config{})
	defer q.Close()
	if want := int32(max(runtime.GOMAXPROCS(0)/4, 1)); q.maxWorkers != want {
		t.Fatalf("maxWorkers = %d, want %d", q.maxWorkers, want)
	}
}

// TestPanics checks that panicking records are reported with a stack and
// that the rest of their block still runs.
func TestPanics(t *testing.T) {
	var mu sync.Mutex
	var values []any
	q, idle := newTestQueue(t, Config{MaxWorkers: 2, OnPanic: func(v any, stack []byte) {
		if len(stack) == 0 {
			t.Error("OnPanic got an empty stack")
		}
		mu.Lock()
		values = append(values, v)
		mu.Unlock()
	}})
	const total = 3*blockRecords + 7
	var ran atomic.Int32
	var l Local
	wantPanics, wantGoexits := 0, 0
	for i := range total {
		switch i % 5 {
		case 0:
			wantPanics++
			q.Enqueue(&l, funcRunner(func() { panic(i) }))
		case 3:
			wantGoexits++
			q.Enqueue(&l, funcRunner(func() { runtime.Goexit() }))
		default:
			q.Enqueue(&l, funcRunner(func() { ran.Add(1) }))
		}
	}
	q.FlushOne(&l)
	idle.wait()
	if got, want := int(ran.Load()), total-wantPanics-wantGoexits; got != want {
		t.Fatalf("%d non-panicking records ran, want %d", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(values) != wantPanics+wantGoexits {
		t.Fatalf("OnPanic called %d times, want %d", len(values), wantPanics+wantGoexits)
	}
	goexits, seen := 0, map[int]bool{}
	for _, v := range values {
		switch v := v.(type) {
		case int:
			if v%5 != 0 || seen[v] {
				t.Fatalf("unexpected panic value %d", v)
			}
			seen[v] = true
		case string:
			if v != "reclaim: cleanup called runtime.Goexit" {
				t.Fatalf("unexpected panic value %q", v)
			}
			goexits++
		default:
			t.Fatalf("unexpected panic value %#v", v)
		}
	}
	if goexits != wantGoexits || len(seen) != wantPanics {
		t.Fatalf("%d Goexit reports, %d panics; want %d, %d", goexits, len(seen), wantGoexits, wantPanics)
	}
	if st := q.Stats(); st.Executed != total || st.Workers > 2 {
		t.Fatalf("Stats = %+v, want Executed = %d, Workers <= 2", st, total)
	}
}

// TestClose checks that Close runs every full block, stops the workers, and
// that the queue then rejects new records.
func TestClose(t *testing.T) {
	t.Run("runs queued blocks", func(t *testing.T) {
		q := New(Config{MaxWorkers: 2})
		var ran atomic.Int32
		locals := []*Local{new(Local), new(Local)}
		const per = 5*blockRecords + 3
		for _, l := range locals {
			for range per {
				q.Enqueue(l, funcRunner(func() { ran.Add(1) }))
			}
		}
		q.Flush(locals)
		q.Close()
		if got := ran.Load(); got != 2*per {
			t.Fatalf("after Close, %d records ran, want %d", got, 2*per)
		}
		if st := q.Stats(); st.Workers != 0 || st.Running != 0 || st.Asleep != 0 || st.Executed != 2*per {
			t.Fatalf("after Close, Stats = %+v", st)
		}
		if p := q.Pending(); p != 0 {
			t.Fatalf("after Close, Pending = %d", p)
		}
		q.Close() // a second Close is harmless
		q.FlushOne(locals[0])
		q.Flush(locals)
		wantPanic(t, "reclaim: cleanup queue used after Close", func() { q.Enqueue(locals[0], funcRunner(func() {})) })
	})
	t.Run("repeated", func(t *testing.T) {
		// Close right after the last push, many times, so that Close
		// meets workers at every stage of taking the last units.
		rounds := 2000
		if testing.Short() {
			rounds = 200
		}
		for range rounds {
			q := New(Config{MaxWorkers: 2})
			var ran atomic.Int32
			var l Local
			for range 3*blockRecords + 1 {
				q.Enqueue(&l, funcRunner(func() { ran.Add(1) }))
			}
			q.FlushOne(&l)
			q.Close()
			if got := ran.Load(); got != 3*blockRecords+1 {
				t.Fatalf("after Close, %d records ran, want %d", got, 3*blockRecords+1)
			}
		}
	})
	t.Run("sleeping workers", func(t *testing.T) {
		q, idle := newTestQueue(t, Config{MaxWorkers: 2})
		var l Local
		for range 4 * blockRecords {
			q.Enqueue(&l, funcRunner(func() {}))
		}
		idle.wait()
		q.Close()
		if st := q.Stats(); st.Workers != 0 || st.Asleep != 0 {
			t.Fatalf("after Close, Stats = %+v", st)
		}
	})
	t.Run("never used", func(t *testing.T) {
		q := New(Config{})
		q.Close()
		if st := q.Stats(); st != (Stats{}) {
			t.Fatalf("Stats = %+v", st)
		}
	})
	t.Run("local not flushed", func(t *testing.T) {
		q := New(Config{})
		var l Local
		q.Enqueue(&l, funcRunner(func() { t.Error("unflushed record ran") }))
		q.Close()
		if p := q.Pending(); p != 0 {
			t.Fatalf("Pending = %d, want 0 (the record was never published)", p)
		}
		wantPanic(t, "reclaim: cleanup queue used after Close", func() { q.FlushOne(&l) })
	})
}

// TestMisuse checks the misuse panics.
func TestMisuse(t *testing.T) {
	q1, q2 := New(Config{}), New(Config{})
	defer q1.Close()
	defer q2.Close()
	var l Local
	wantPanic(t, "reclaim: nil cleanup Runner", func() { q1.Enqueue(&l, nil) })
	q1.Enqueue(&l, funcRunner(func() {}))
	q1.FlushOne(&l)
	wantPanic(t, "reclaim: cleanup Local used with two queues", func() { q2.Enqueue(&l, funcRunner(func() {})) })
	wantPanic(t, "reclaim: cleanup worker labels must be key/value pairs, got 1 strings", func() { New(Config{Labels: []string{"k"}}) })
}

func wantPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		if v := recover(); v != want {
			t.Fatalf("panic = %v, want %q", v, want)
		}
	}()
	f()
}

// TestFlushCoalesces checks that Flush packs partly filled blocks: five
// Locals of 50 records make two blocks (126 + 124) and three free ones.
func TestFlushCoalesces(t *testing.T) {
	q, idle := newTestQueue(t, Config{MaxWorkers: 1})
	gate := make(chan struct{})
	started := make(chan struct{})
	var first atomic.Bool
	var ran atomic.Int32
	r := funcRunner(func() {
		if first.CompareAndSwap(false, true) {
			close(started)
			<-gate
		}
		ran.Add(1)
	})
	locals := make([]*Local, 5)
	for i := range locals {
		locals[i] = new(Local)
		for range 50 {
			q.Enqueue(locals[i], r)
		}
	}
	q.Flush(locals)
	<-started
	// The only worker holds one block; the other is still queued.
	if wu := q.workUnits.Load(); wu != 1 {
		t.Errorf("workUnits = %d, want 1", wu)
	}
	if n := stackLen(&q.free, &q.arena); n != 3 {
		t.Errorf("free blocks = %d, want 3", n)
	}
	close(gate)
	idle.wait()
	if got := ran.Load(); got != 250 {
		t.Fatalf("%d records ran, want 250", got)
	}
}

// stackLen counts the nodes on a stack nobody else pops or pushes.
func stackLen(s *lfstack, a *arena) int {
	n := 0
	for i := uint32(s.head.Load() & lfTopMask); i != 0; i = a.link(i - 1).Load() {
		n++
	}
	return n
}

// TestTake checks block.take in both cases.
func TestTake(t *testing.T) {
	fill := func(n int, base int) *block {
		b := new(block)
		for i := range n {
			b.records[i] = &countRec{id: base + i}
		}
		b.n = int32(n)
		return b
	}
	ids := func(b *block) []int {
		var s []int
		for _, r := range b.records[:b.n] {
			s = append(s, r.(*countRec).id)
		}
		return s
	}
	a, b := fill(100, 0), fill(20, 1000)
	a.take(b)
	if a.n != 120 || b.n != 0 || ids(a)[100] != 1000 || ids(a)[119] != 1019 {
		t.Fatalf("take all: a.n = %d, b.n = %d", a.n, b.n)
	}
	a, b = fill(100, 0), fill(40, 1000)
	a.take(b)
	if a.n != blockRecords || b.n != 14 || ids(a)[100] != 1014 || ids(b)[13] != 1013 {
		t.Fatalf("partial take: a.n = %d, b.n = %d", a.n, b.n)
	}
	for _, r := range b.records[b.n:] {
		if r != nil {
			t.Fatal("take left a moved record behind")
		}
	}
}

// TestOnIdle checks Pending and OnIdle across a blocked block.
func TestOnIdle(t *testing.T) {
	var idles atomic.Int32
	idleCh := make(chan struct{}, 1)
	q := New(Config{MaxWorkers: 1, OnIdle: func() {
		idles.Add(1)
		idleCh <- struct{}{}
	}})
	defer q.Close()
	gate := make(chan struct{})
	var l Local
	for range 10 {
		q.Enqueue(&l, funcRunner(func() { <-gate }))
	}
	if p := q.Pending(); p != 0 {
		t.Fatalf("Pending = %d before FlushOne, want 0", p)
	}
	q.FlushOne(&l)
	if p := q.Pending(); p != 10 {
		t.Fatalf("Pending = %d after FlushOne, want 10", p)
	}
	close(gate)
	<-idleCh
	if p, n := q.Pending(), idles.Load(); p != 0 || n != 1 {
		t.Fatalf("Pending = %d, OnIdle calls = %d", p, n)
	}
	// A second round fires again.
	for range 3 {
		q.Enqueue(&l, funcRunner(func() {}))
	}
	q.FlushOne(&l)
	<-idleCh
	if n := idles.Load(); n != 2 {
		t.Fatalf("OnIdle calls = %d, want 2", n)
	}
}

// BenchmarkEnqueueRun measures enqueue plus run per record, with trivial
// records.
func BenchmarkEnqueueRun(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			q, idle := newTestQueue(b, Config{MaxWorkers: workers})
			var n atomic.Int64
			r := funcRunner(func() { n.Add(1) })
			var l Local
			b.ResetTimer()
			for range b.N {
				q.Enqueue(&l, r)
			}
			q.FlushOne(&l)
			idle.wait()
		})
	}
}

// spinsPerMicro calibrates busy for about one microsecond of work, taking
// the fastest of several timings so that warm-up does not count.
var spinsPerMicro = sync.OnceValue(func() int {
	const n = 1 << 20
	best := time.Duration(1 << 62)
	for range 8 {
		start := time.Now()
		busy(n)
		best = min(best, time.Since(start))
	}
	return max(int(n*int64(time.Microsecond)/int64(max(best, 1))), 1)
})

var busySink atomic.Uint64

func busy(n int) {
	x := uint64(1)
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	busySink.Store(x)
}

// BenchmarkBurst1us measures a burst of records that each do about 1µs of
// work. With two cores, MaxWorkers=2 should approach half the ns/op of
// MaxWorkers=1.
func BenchmarkBurst1us(b *testing.B) {
	spins := spinsPerMicro()
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			q, idle := newTestQueue(b, Config{MaxWorkers: workers})
			r := funcRunner(func() { busy(spins) })
			var l Local
			b.ResetTimer()
			for range b.N {
				q.Enqueue(&l, r)
			}
			q.FlushOne(&l)
			idle.wait()
		})
	}
}
