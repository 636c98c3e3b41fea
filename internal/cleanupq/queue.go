// Package cleanupq is reclaim's cleanup queue and the pool of worker
// goroutines that runs it. It follows the Go runtime's cleanup queue
// (runtime/mcleanup.go), with sweeping contexts in the role of Ps: each
// mutator that sweeps lazily and each background sweep worker owns a Local.
//
// # Data structures
//
//   - block (block.go): a fixed array of blockRecords Runner records plus a
//     header. Every block ever allocated lives in the arena and is named by
//     a uint32 index; blocks are recycled, never freed.
//   - Local: a sweeping context's partly filled block. Only its sweeper
//     touches it, so Enqueue's fast path has no synchronization beyond the
//     queued counter.
//   - full: a lock-free stack (lfstack.go) of blocks ready to run, guarded by
//     the workUnits count. free: a lock-free stack of empty blocks.
//   - workers: up to maxWorkers goroutines, created on demand, that pop whole
//     blocks and run them.
//
// # The cycle
//
//  1. A sweeper finds an unreachable object with cleanups and calls Enqueue
//     with its Local. The record goes into the Local's block (taken from the
//     free stack or allocated on first use).
//  2. When the block fills, the sweeper pushes it on full, adds one work unit
//     and calls wake.
//  3. The last sweeper of the cycle calls Flush: it coalesces the partly
//     filled local blocks (block.take), pushes the results on full, recycles
//     the emptied blocks, adds the work units and calls wake. A sweeping
//     context that goes away earlier calls FlushOne.
//  4. A worker takes a work unit (tryTakeWork), which entitles it to pop one
//     block, runs the block's records in order, then resets the block under
//     its mutex and pushes it on free.
//  5. While marking, the heap calls ScanRoots: every record whose Run has not
//     returned keeps the handles its argument holds alive.
//
// # Worker states
//
//	state     entered when                              counted in             leaves to
//	--------  ----------------------------------------  ---------------------  -----------------------------------
//	looking   created by wake; finished a block;        ng                     running: tryTakeWork succeeded
//	          woken                                                            sleeping: re-check found no work
//	                                                                           (never once closing)
//	                                                                           exited: closing and no work
//	running   took a work unit and popped a block       ng, running            looking: block finished
//	sleeping  S3-S5 below, under mu                     ng, asleep,            looking: a waker removed it from
//	                                                    mu.sleeping            mu.sleeping and signalled it
//	exited    under mu: closing and workUnits == 0      (ng decremented)       -
//
// # Sleep and wake protocol
//
// A worker whose tryTakeWork failed goes to sleep so:
//
//	S1. lock mu
//	S2. if mu.closing: if workUnits == 0, ng--, unlock and exit; else unlock
//	    and go back to looking (once closing, a worker never sleeps: Close
//	    has already woken every sleeper and nobody would wake it again)
//	S3. asleep++
//	S4. re-check: if workUnits > 0: asleep--, unlock, go back to looking
//	S5. append itself to mu.sleeping, unlock, block on its wake channel
//
// A producer (Enqueue filling a block, Flush, FlushOne) publishes work so:
//
//	W1. push the blocks on full, then workUnits += k
//	W2. fast check, no lock: if asleep == 0 and ng == maxWorkers, return
//	W3. lock mu; work = workUnits; wake = min(work, len(mu.sleeping));
//	    create = min(work-wake, maxWorkers-ng)
//	W4. remove wake workers from mu.sleeping, asleep -= wake, signal each one;
//	    ng += create and start create goroutines; unlock
//
// Close sets mu.closing under mu, removes and signals every sleeper, sets
// asleep to 0, unlocks, and waits for every worker to exit (S2).
//
// No wake-up is lost. W1 and S3 are atomic writes and W2/S4 atomic reads of
// the other's variable, and Go's atomics are sequentially consistent, so
// either the worker's S4 sees the new unit (it does not sleep), or the
// producer's W2 sees asleep > 0 and goes to W3, which, holding mu, sees the
// worker on mu.sleeping (S5 happens in the same critical section as S3) and
// wakes it. If W2 returns early because asleep == 0 and ng == maxWorkers,
// every worker is awake and will see the unit at its next tryTakeWork or S4.
// Under mu, asleep == len(mu.sleeping) always holds, which is why W3 may use
// either. A woken worker that finds no work (another took it) simply sleeps
// again: spurious wake-ups are harmless. models/cleanup.pml checks this
// protocol with SPIN.
package cleanupq

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"sync/atomic"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// Runner is one queued cleanup call. Implementations are immutable once
// enqueued.
type Runner interface {
	// Run calls the user's cleanup. It may panic; the worker recovers and
	// reports the panic through Config.OnPanic.
	Run()
	// Scan appends the strong handles that the cleanup's argument holds.
	// They are GC roots until Run has returned. Scan is called with the
	// block's mutex held and must not call back into the Queue. It may
	// panic; the panic reaches ScanRoots' caller, the mutex released.
	Scan(buf []handle.Handle) []handle.Handle
}

// Recycler is a Runner that can be reused once it has run. The worker that
// ran a block retires its records after the last record's Run returned,
// with the block's mutex held (so no ScanRoots is reading them), and then
// drops the block's references to them.
type Recycler interface {
	// RecycleRun retires recs[0], the receiver, and the records that
	// follow it in recs that it knows how to retire with it (records of
	// its own kind, say, retired together for one synchronization), and
	// returns how many it retired: at least 1.
	RecycleRun(recs []Runner) int
}

// Config configures a Queue.
type Config struct {
	// MaxWorkers bounds the worker pool; <= 0 means max(GOMAXPROCS/4, 1).
	MaxWorkers int
	// OnPanic is called, on the worker, after a Run panicked; the worker
	// recovers and goes on with the rest of the block. A Run that calls
	// runtime.Goexit is reported too, with a string value; its worker is
	// replaced. nil ignores panics. OnPanic itself must not panic.
	OnPanic func(value any, stack []byte)
	// Labels are pprof label key/value pairs applied to the worker
	// goroutines (pprof.Do), e.g. {"reclaim.worker", "cleanup"}.
	Labels []string
	// OnIdle is called whenever Pending drops to zero, from a worker, with
	// no locks held. It must not panic.
	OnIdle func()
}

// Stats is a snapshot of the queue's counters.
type Stats struct {
	Queued   uint64 // records ever enqueued
	Executed uint64 // records whose Run returned (or panicked)
	Workers  int    // worker goroutines now
	Running  int    // workers running a block now
	Asleep   int    // workers sleeping now
}

// Local is a sweeping context's partly filled block. The zero value is
// ready. It is owned by one sweeper at a time; Enqueue's fast path does not
// synchronize on it. A Local belongs to the first Queue it is used with.
type Local struct {
	// q is the queue the Local was first used with. Set by own, on first
	// use, by whoever may write b then; read like b.
	q *Queue
	// b is the partly filled block, or nil. Written by the owning sweeper
	// (Enqueue, FlushOne) and by the last sweeper's Flush, which the
	// caller runs only while no sweeper is active, so never while the
	// owner fills it; read by ScanRoots while no sweeper runs.
	b *block
}

// Queue is a cleanup queue and its worker pool. See the package comment.
type Queue struct {
	// Configuration, immutable after New.
	maxWorkers int32
	onPanic    func(any, []byte)
	onIdle     func()
	labels     pprof.LabelSet
	hasLabels  bool

	// full is the stack of blocks ready to run. Lock-free.
	full lfstack
	// workUnits is the number of blocks on full that no worker has claimed:
	// incremented after a push to full, decremented (by CAS, never below 0)
	// before a pop from full, so a worker that took a unit always finds a
	// block. Atomic, read and written by anyone.
	workUnits atomic.Int64
	// free is the stack of empty blocks. Lock-free.
	free lfstack
	// arena holds every block. See arena.
	arena arena

	// queued counts records ever published: a block's records are added
	// when it goes on the full stack, before any of them can run. Records
	// still in a sweeping context's block are not counted: Enqueue touches
	// no shared word, and two sweepers on two cores do not fight over this
	// one for every record. The last sweeper of a cycle publishes them all
	// (Flush). Atomic.
	queued atomic.Uint64
	_      [56]byte // queued and executed are written on different cores
	// executed counts records whose Run has returned or panicked; added to
	// by a worker once per block (and when it goes idle), so executed <=
	// queued always. Atomic.
	executed atomic.Uint64
	_        [56]byte
	// running is the number of workers running a block. Atomic, written by
	// workers.
	running atomic.Int32
	// closed is set at the start of Close; checked by Enqueue, Flush and
	// FlushOne. Atomic.
	closed atomic.Bool

	// ng is the number of worker goroutines (created and not exited).
	// Read without the lock, written only with mu held.
	ng atomic.Int32
	// asleep is the number of sleeping workers. Read without the lock,
	// written only with mu held; whoever holds mu sees
	// asleep == len(mu.sleeping).
	asleep atomic.Int32

	mu struct {
		sync.Mutex
		// sleeping holds the sleeping workers, each exactly once; a worker
		// is removed only by the waker that signals it.
		sleeping []*worker
		// closing is set by Close; workers then exit once no work is left.
		closing bool
	}

	// wg counts worker goroutines: Add under mu when one is started, and
	// without mu by a worker that replaces itself after runtime.Goexit
	// (main), before its own Done, so the count never drops to zero in
	// between; Close waits on it.
	wg sync.WaitGroup
}

// worker is one worker goroutine's state.
type worker struct {
	q *Queue
	// wake carries one token per removal from q.mu.sleeping. Capacity 1:
	// a worker is on mu.sleeping at most once and consumes the token before
	// it can be put there again, so a send never blocks.
	wake chan struct{}
	// cur and next are the block being run and the index of the next record
	// to run in it; ran counts the records of cur run and not yet added to
	// executed. Owned by the worker goroutine, and handed to its
	// replacement if a Run calls runtime.Goexit.
	cur  *block
	next int32
	ran  int32
	// returned is set when the worker's loop returns normally (it exits
	// because the queue closed). Owned by the worker goroutine.
	returned bool
}

// maxWorkersLimit caps Config.MaxWorkers so that counts fit an int32.
const maxWorkersLimit = 1 << 20

// New returns an empty queue. No worker runs until work arrives.
func New(cfg Config) *Queue {
	q := &Queue{
		onPanic: cfg.OnPanic,
		onIdle:  cfg.OnIdle,
	}
	if cfg.MaxWorkers <= 0 {
		q.maxWorkers = int32(max(runtime.GOMAXPROCS(0)/4, 1))
	} else {
		q.maxWorkers = int32(min(cfg.MaxWorkers, maxWorkersLimit))
	}
	if len(cfg.Labels) > 0 {
		if len(cfg.Labels)%2 != 0 {
			panic(fmt.Sprintf("reclaim: cleanup worker labels must be key/value pairs, got %d strings", len(cfg.Labels)))
		}
		q.labels = pprof.Labels(cfg.Labels...)
		q.hasLabels = true
	}
	return q
}

// Enqueue queues r on the sweeping context l. Called only by the sweeper that
// owns l. When l's block fills, it goes on the full stack and workers are
// woken or created.
func (q *Queue) Enqueue(l *Local, r Runner) {
	if q.closed.Load() {
		panic("reclaim: cleanup queue used after Close")
	}
	if r == nil {
		panic("reclaim: nil cleanup Runner")
	}
	b := l.b
	if b == nil {
		q.own(l)
		b = q.getBlock()
		l.b = b
	}
	b.records[b.n] = r
	b.n++
	if b.full() {
		l.b = nil
		q.publish(b)
		q.addWork(1)
	}
}

// Flush pushes every partly filled block of locals to the full stack and
// wakes workers. Called by the last sweeper of a sweep cycle, when no other
// sweeper is active and the next mark has not started. Like the runtime's
// flush, it first coalesces the blocks, so that the number of work units
// reflects the real demand.
func (q *Queue) Flush(locals []*Local) {
	var cb *block
	flushed := 0
	for _, l := range locals {
		if l == nil || l.b == nil {
			continue
		}
		q.checkOpen()
		q.own(l)
		b := l.b
		l.b = nil
		if cb == nil {
			cb = b
			continue
		}
		// After take, cb is full, b is empty, or both.
		cb.take(b)
		if cb.full() {
			q.publish(cb)
			flushed++
			cb, b = b, nil
		}
		if b != nil && b.empty() {
			q.free.push(b.idx, &b.next)
		}
	}
	if cb != nil {
		if cb.empty() {
			q.free.push(cb.idx, &cb.next)
		} else {
			q.publish(cb)
			flushed++
		}
	}
	if flushed > 0 {
		q.addWork(flushed)
	}
}

// FlushOne pushes l's partly filled block, if any, to the full stack. Called
// when the sweeping context that owns l goes away (a mutator detaches).
func (q *Queue) FlushOne(l *Local) {
	b := l.b
	if b == nil {
		return
	}
	q.checkOpen()
	q.own(l)
	l.b = nil
	if b.empty() {
		q.free.push(b.idx, &b.next)
		return
	}
	q.publish(b)
	q.addWork(1)
}

// ScanRoots appends the handles of every record whose Run has not returned:
// in local blocks, in full blocks and in blocks being run, including the
// record whose Run is in progress. The caller guarantees that no sweeper is
// active and no Enqueue or Flush runs; workers keep running, and so may a
// FlushOne of a block no sweeper fills any more (it only pushes the block,
// which this reads under the block's mutex, wherever it is). locals are the
// sweeping contexts' Locals; their blocks are in the arena, so they are only
// checked to belong to q.
func (q *Queue) ScanRoots(locals []*Local, buf []handle.Handle) []handle.Handle {
	for _, l := range locals {
		if l != nil && l.b != nil && l.q != q {
			panic("reclaim: cleanup Local scanned with a queue it does not belong to")
		}
	}
	for _, b := range q.arena.all() {
		buf = b.scan(buf)
	}
	return buf
}

// scan appends the handles of b's records whose Run has not returned,
// under b's mutex. A Scan may panic (a cleanup argument's Trace method):
// the panic goes on to ScanRoots' caller, which abandons the mark, with
// the mutex released, or the next ScanRoots and the worker that recycles
// b would wait for it for ever.
func (b *block) scan(buf []handle.Handle) []handle.Handle {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := b.done.Load(); i < b.n; i++ {
		buf = b.records[i].Scan(buf)
	}
	return buf
}

// Pending returns the number of records published (Enqueue's full blocks,
// Flush, FlushOne) whose Run has not returned yet. Records still in a
// Local's block are not counted until it is flushed.
func (q *Queue) Pending() int64 {
	// Load executed first: queued only grows and never trails executed, so
	// the difference cannot be negative.
	e := q.executed.Load()
	return int64(q.queued.Load() - e)
}

// Stats returns a snapshot of the queue's counters. The fields are read one
// at a time, so a snapshot taken while the queue works may be inconsistent
// across fields; Executed <= Queued holds.
func (q *Queue) Stats() Stats {
	e := q.executed.Load()
	return Stats{
		Queued:   q.queued.Load(),
		Executed: e,
		Workers:  int(q.ng.Load()),
		Running:  int(q.running.Load()),
		Asleep:   int(q.asleep.Load()),
	}
}

// Close waits until every block on the full stack has run, then stops the
// workers and waits for them to exit. Records still in local blocks are not
// run: callers flush the Locals first. Enqueue after Close panics; so do
// Flush and FlushOne if they have a record to push. Close may be called more
// than once.
//
// REQUIRES: no Enqueue, Flush or FlushOne runs concurrently with Close. One
// that passed its closed check before Close began could publish a block
// after the workers have gone, and its records would be neither run nor
// refused. The heap's Close calls Close once no sweep can run (the sweep
// is finished and no cycle starts once it has begun), and only sweeps and
// Close itself queue cleanups.
func (q *Queue) Close() {
	q.closed.Store(true)
	q.mu.Lock()
	q.mu.closing = true
	for _, w := range q.mu.sleeping {
		w.wake <- struct{}{}
	}
	clear(q.mu.sleeping)
	q.mu.sleeping = q.mu.sleeping[:0]
	q.asleep.Store(0)
	q.mu.Unlock()
	q.wg.Wait()
}

func (q *Queue) checkOpen() {
	if q.closed.Load() {
		panic("reclaim: cleanup queue used after Close")
	}
}

// own binds l to q on first use and rejects use with another queue.
func (q *Queue) own(l *Local) {
	if l.q == nil {
		l.q = q
	} else if l.q != q {
		panic("reclaim: cleanup Local used with two queues")
	}
}

// getBlock returns an empty block from the free stack or a new one.
func (q *Queue) getBlock() *block {
	if i, ok := q.free.pop(&q.arena); ok {
		return q.arena.at(i)
	}
	return q.arena.alloc()
}

// publish pushes a non-empty block on the full stack. The caller adds the
// work unit afterwards (addWork).
func (q *Queue) publish(b *block) {
	q.queued.Add(uint64(b.n))
	q.full.push(b.idx, &b.next)
}

// addWork announces n blocks just pushed on full and wakes workers (W1-W4).
func (q *Queue) addWork(n int) {
	q.workUnits.Add(int64(n))
	q.wake()
}

// tryTakeWork claims one work unit, if any, never taking workUnits below 0.
func (q *Queue) tryTakeWork() bool {
	for {
		wu := q.workUnits.Load()
		if wu <= 0 {
			return false
		}
		if q.workUnits.CompareAndSwap(wu, wu-1) {
			return true
		}
	}
}

// wake hands one wake-up to a sleeping worker per work unit and starts new
// workers for the units left over, up to maxWorkers (W2-W4).
func (q *Queue) wake() {
	if q.asleep.Load() == 0 && q.ng.Load() >= q.maxWorkers {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	work := q.workUnits.Load()
	if work <= 0 {
		return
	}
	nwake := min(work, int64(len(q.mu.sleeping)))
	create := min(work-nwake, int64(q.maxWorkers-q.ng.Load()))
	for range nwake {
		last := len(q.mu.sleeping) - 1
		w := q.mu.sleeping[last]
		q.mu.sleeping[last] = nil
		q.mu.sleeping = q.mu.sleeping[:last]
		w.wake <- struct{}{}
	}
	q.asleep.Add(-int32(nwake))
	for range create {
		q.startWorkerLocked(&worker{q: q, wake: make(chan struct{}, 1)})
	}
}

// startWorkerLocked counts and starts a worker goroutine for w.
//
// REQUIRES: q.mu held.
func (q *Queue) startWorkerLocked(w *worker) {
	q.ng.Add(1)
	q.wg.Add(1)
	go w.main()
}

// main is a worker goroutine's body.
func (w *worker) main() {
	q := w.q
	defer func() {
		if !w.returned {
			// A Run called runtime.Goexit (panics are recovered in
			// runOne). Keep the accounting: a replacement goroutine
			// takes over w, its block and its place in ng.
			q.wg.Add(1)
			go w.main()
		}
		q.wg.Done()
	}()
	if q.hasLabels {
		pprof.Do(context.Background(), q.labels, func(context.Context) { w.loop() })
	} else {
		w.loop()
	}
	w.returned = true
}

// loop runs blocks until the queue closes and runs dry.
func (w *worker) loop() {
	q := w.q
	for {
		if w.cur != nil {
			w.runBlock()
			continue
		}
		if q.tryTakeWork() {
			i, ok := q.full.pop(&q.arena)
			if !ok {
				panic("reclaim: internal error: cleanup work unit without a block")
			}
			w.cur, w.next = q.arena.at(i), 0
			q.running.Add(1)
			continue
		}
		if !w.sleep() {
			return
		}
	}
}

// sleep is S1-S5. It returns false if the worker must exit.
func (w *worker) sleep() bool {
	q := w.q
	q.mu.Lock()
	if q.mu.closing {
		// Close has already woken every sleeper, so nobody would wake
		// this worker again: it never sleeps once closing. If a unit is
		// left, go take it; the re-check can loop only while another
		// worker is taking that unit.
		if q.workUnits.Load() == 0 {
			q.ng.Add(-1)
			q.mu.Unlock()
			return false
		}
		q.mu.Unlock()
		return true
	}
	q.asleep.Add(1)
	if q.workUnits.Load() > 0 {
		q.asleep.Add(-1)
		q.mu.Unlock()
		return true
	}
	q.mu.sleeping = append(q.mu.sleeping, w)
	q.mu.Unlock()
	<-w.wake
	return true
}

// runBlock runs the rest of w.cur, then recycles it.
func (w *worker) runBlock() {
	q, b := w.q, w.cur
	for w.next < b.n {
		w.runFrom(b)
	}
	w.account()
	q.running.Add(-1)
	w.cur = nil
	b.mu.Lock()
	for recs := b.records[:b.n]; len(recs) > 0; {
		if rc, ok := recs[0].(Recycler); ok {
			recs = recs[rc.RecycleRun(recs):]
		} else {
			recs = recs[1:]
		}
	}
	clear(b.records[:b.n])
	b.n = 0
	b.done.Store(0)
	b.mu.Unlock()
	q.free.push(b.idx, &b.next)
}

// doneEvery is how many records a worker runs between stores of its
// block's done count. ScanRoots scans the records from done on, so a
// coarser count only keeps a record's argument a root for a little longer
// (records are not retired before the whole block has run); a store per
// record would be a locked instruction per call.
const doneEvery = 16

// runFrom runs the records of b from w.next on, counting them in w.ran,
// until the block ends or a Run panics; the panic is recovered and
// reported, and the record counts as run. One deferred recover per run of
// calls, not per call: runBlock calls runFrom again after a panic.
func (w *worker) runFrom(b *block) {
	q := w.q
	normal := false
	defer func() {
		if !normal {
			v := recover()
			if v == nil {
				v = "reclaim: cleanup called runtime.Goexit"
			}
			if q.onPanic != nil {
				q.onPanic(v, debug.Stack())
			}
			w.ran++ // the record that panicked
			b.done.Store(w.next)
		}
	}()
	for w.next < b.n {
		i := w.next
		w.next++
		b.records[i].Run()
		w.ran++
		if i%doneEvery == doneEvery-1 {
			b.done.Store(i + 1)
		}
	}
	b.done.Store(b.n)
	normal = true
}

// account adds the records w ran to executed, once per block, and reports
// the queue idle when that brings executed up to queued.
func (w *worker) account() {
	q := w.q
	if w.ran == 0 {
		return
	}
	e := q.executed.Add(uint64(w.ran))
	w.ran = 0
	if e == q.queued.Load() && q.onIdle != nil {
		// queued only grows and executed never passes it, so at the
		// moment of the load Pending was exactly zero.
		q.onIdle()
	}
}
