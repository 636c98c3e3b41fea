package heap

import (
	"bytes"
	"context"
	"reflect"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// Finalizers (seeds 003, 001, 000, 002).
//
// The sweeper queues a record for every unreachable object with a finalizer
// (special.go) on finq, a list of fixed-size blocks like the runtime's
// finblock. One goroutine, created on the first SetFinalizer, runs every
// record sequentially as a mutator that reaches a safepoint between calls.
// Queued records, and the rest of the block being run, are roots of the next
// mark, so a finalizer always finds its object.
//
// The goroutine's state is one atomic word (seed 000):
//
//	bit                 set by                           cleared by
//	Created             first SetFinalizer (CAS from 0)  never
//	RunningFinalizer    the goroutine, before a run of   the goroutine (And),
//	                    calls                            before it sleeps
//	Wait                the goroutine, holding fin.mu,   wakefing (CAS, together
//	                    when it found finq empty         with Wake)
//	Wake                a sweeper, after queueing (Or)   wakefing (CAS)
//
// No wake-up is lost (seed 001): a record is queued under fin.mu, and the
// goroutine decides to sleep under fin.mu, so either it sees the record or
// Wait is set before the sweeper sets Wake. The wake that guarantees it is
// the last sweeper's (sweep.go, sweepDone), after every sweeper has queued
// what it will queue, and only when both Wait and Wake are set; the hand-off
// is a one-token channel, so a wake that comes before the goroutine parks is
// kept. A sweeper that finds several blocks queued wakes the goroutine
// early too (finWakeEarly). models/fing.pml checks this protocol with SPIN.
//
// The runtime sets RunningFinalizer around each call. reclaim sets it once
// for a run of calls (everything queued when the goroutine woke) and clears
// it before the goroutine sleeps: two locked instructions per call would
// be a third of a finalizer's whole cost here. The bit still means "the
// goroutine is running finalizers, not asleep"; which type's finalizer is
// in a call is f.running, kept for the slow-finalizer report.

const (
	fingUninitialized uint32 = 0
	fingCreated       uint32 = 1 << (iota - 1)
	fingRunningFinalizer
	fingWait
	fingWake
)

// FingStatusName names a status word for Stats.
func FingStatusName(s uint32) string {
	if s == fingUninitialized {
		return "uninitialized"
	}
	out := "created"
	if s&fingRunningFinalizer != 0 {
		out += "|running"
	}
	if s&fingWait != 0 {
		out += "|waiting"
	}
	if s&fingWake != 0 {
		out += "|wake"
	}
	return out
}

// fingStatus is the status word; only these methods change it.
type fingStatus struct{ v atomic.Uint32 }

func (s *fingStatus) load() uint32             { return s.v.Load() }
func (s *fingStatus) or(bit uint32)            { s.v.Or(bit) }
func (s *fingStatus) and(mask uint32)          { s.v.And(mask) }
func (s *fingStatus) cas(old, new uint32) bool { return s.v.CompareAndSwap(old, new) }

// finBlockLen is the number of records in a finBlock. A sweeper fills a
// block for the span it sweeps (finFill), so a power of two divides the
// slot counts of the common spans (512 32-byte slots to a 16 KiB span)
// into full blocks.
const finBlockLen = 128

// finRec is one queued finalizer call; owned like the block that holds it.
type finRec struct {
	x   handle.Handle
	typ *Type
	fn  unsafe.Pointer // the finalizer's funcval
}

// finBlock is a block of queued finalizer calls. next, n and recs are
// owned by whoever holds the block:
//   - the sweeper filling it (finFill), with no lock, until publish links
//     it on fin.mu.q;
//   - fin.mu while it is on q (mutators at safepoints pop records from it
//     in FinalizersAtSafepoints mode; Close takes them) or on the free
//     list; the leader reads the records on q under fin.mu (scanRoots);
//   - the finalizer goroutine once it has taken the list (fin.cur), and
//     the leader, which reads what is left of it with the world stopped
//     (scanRoots) while the goroutine, a mutator, is parked.
type finBlock struct {
	next *finBlock
	n    int
	// queuedAt is when the block got its first record (monotonic ns, see
	// nanotime), for the queue-delay histogram; written by the sweeper
	// that fills the block (queueFinalizers) before it publishes it under
	// fin.mu, read and cleared by the goroutine that took it from finq.
	queuedAt int64
	recs     [finBlockLen]finRec
}

type finState struct {
	status fingStatus // see the table above; changed only by its atomic methods

	mu struct {
		sync.Mutex
		q    *finBlock // queued records, newest block first
		nq   int       // blocks in q; read by a sweeper that links one, for the early wake (finWakeEarly)
		free *finBlock // recycled blocks
		// busy is set while the finalizer goroutine holds records taken
		// from q (fin.cur), and while Close holds the finalizers it takes
		// to run itself (takeQueuedFinalizers, until the last of them has
		// run and the cleanups Close queues next are published:
		// releaseCloseBusy; the goroutine is stopped then). Mutators
		// running finalizers at safepoints do not set it: in that mode
		// idle reads pending too.
		busy bool
		// inflight holds records being run by mutators at safepoints
		// (FinalizersAtSafepoints); roots like q.
		inflight []finRec
		// closing is set by Close before it waits for inflight to empty
		// (waitFinalizersHere): from then on no mutator takes a record
		// from q (Close runs them), and the one that empties inflight
		// wakes Close.
		closing bool
	}

	// cur is the block list the finalizer goroutine is running. Written by
	// the goroutine while it runs; read by the leader with the world
	// stopped (the goroutine is then parked at a safepoint).
	cur *finBlock
	// running is the type of the finalizer being called, for the
	// "a finalizer keeps a collection waiting" report; nil when none is.
	// Stored by the finalizer goroutine when the type changes (runBlock)
	// and cleared when it reaches a safepoint between calls (finSafepoint)
	// or sleeps; with FinalizersAtSafepoints, stored by each mutator before
	// a call and cleared after it by CAS (several may run at once, so it
	// names one of them). Read lock-free by a leader waiting for the world
	// to stop (waitStoppedLocked).
	running atomic.Pointer[Type]

	// queued counts records ever queued: added to by sweepers as they
	// publish a block, before it is linked (publish), and by Close.
	// executed counts the calls made: added to by the finalizer goroutine
	// (flushRan, before it clears fin.mu.busy), by mutators at safepoints
	// (before they lower pending), and by Close. Both atomic. A record is
	// counted queued before anyone can run it, so executed <= queued for
	// a reader that loads executed first (Stats); and each is bumped
	// before the state it reports is visible, which Drain's epoch relies
	// on (drained, models/drain.pml).
	queued   atomic.Int64
	executed atomic.Int64
	// delay samples the queue's delay once per block (delay.go): recorded
	// by the finalizer goroutine, read by Stats; self-synchronized.
	delay delayHist
	// ran counts calls the goroutine made that are not yet in executed;
	// it adds them once per block and before it sleeps. Owned by the
	// goroutine (a replacement after runtime.Goexit starts after the old
	// one's last write).
	ran int64
	// calling is set while the goroutine is inside a finalizer call, so
	// that a runtime.Goexit is told from one in a collection the
	// goroutine leads at its safepoint between calls (runFinqGoroutine).
	// Owned by the goroutine, like ran.
	calling bool
	// hereMode is FinalizersAtSafepoints; set by New before the heap is
	// shared, immutable after.
	hereMode bool
	// pending counts queued records in hereMode; atomic, read at every
	// safepoint and by idle. Added to by sweepers before they link a block
	// (publish), subtracted from by mutators after a call and by Close. No
	// record can be run before it is counted, so pending is never short of
	// the records queued or running: it reaches 0 only when none is left
	// (idle, and so Drain, rely on it).
	pending atomic.Int64

	// m is the goroutine's mutator: set by start, which won the status
	// CAS, before it starts the goroutine; not read after (the goroutine
	// is handed m).
	m *Mutator
	// The channels are made by init, in New, and not changed after.
	wakeC chan struct{} // one token: wakefing -> the goroutine
	stopC chan struct{} // closed by Close
	doneC chan struct{} // closed when the goroutine exits
}

func (f *finState) init() {
	f.wakeC = make(chan struct{}, 1)
	f.stopC = make(chan struct{})
	f.doneC = make(chan struct{})
}

func (f *finState) atSafepoints() bool { return f.hereMode && f.pending.Load() > 0 }

// current returns the name of the type whose finalizer is running, if any.
func (f *finState) current() (string, bool) {
	if t := f.running.Load(); t != nil {
		return t.Name, true
	}
	return "", false
}

// start creates the finalizer goroutine on the first SetFinalizer.
func (f *finState) start(h *Heap) {
	if f.hereMode || f.status.load() != fingUninitialized {
		return
	}
	// Under h.mu, against stop: once Close has begun (h.mu.closed, set
	// before stop), no goroutine is started; Close runs the finalizers
	// set from then on itself. A start that won the CAS before is one
	// stop sees and waits for.
	h.mu.Lock()
	won := !h.mu.closed && f.status.cas(fingUninitialized, fingCreated)
	h.mu.Unlock()
	if !won {
		return
	}
	m := h.newMutator()
	m.isFing = true
	f.m = m
	go func() {
		// Attach here, not in SetFinalizer: a leader may be stopping the
		// world, and SetFinalizer's mutator still counts as running.
		h.Attach(m)
		h.runFinqGoroutine(m)
	}()
}

// finFill is a sweeper's block being filled: taken from finq's free list,
// filled without fin.mu, and linked onto finq whole (publish). Records
// were once gathered on the sweeper's stack and copied into the queue's
// blocks under fin.mu; filling the block in place writes each record once
// and holds the lock for a pointer swap. Owned by one sweeper for the
// span it sweeps; nothing is left in it when the span's sweep ends, so no
// record is outside finq when the world stops for a mark.
type finFill struct{ b *finBlock }

// next publishes fb's block, if any, and gives fb an empty one to fill;
// queueFinalizers calls it when its block is full.
func (f *finState) next(fb *finFill) *finBlock {
	fb.b = f.publish(fb.b, true)
	return fb.b
}

// flush publishes fb's block, if it holds records.
func (f *finState) flush(fb *finFill) {
	if fb.b != nil {
		f.publish(fb.b, false)
		fb.b = nil
	}
}

// publish links b (if non-nil; it holds at least one record) onto finq and,
// if another is wanted, returns an empty block for the sweeper to fill:
// one acquisition of fin.mu for both.
func (f *finState) publish(b *finBlock, another bool) *finBlock {
	var nb *finBlock
	nq, n := 0, int64(0)
	if b != nil {
		// Counted before it is linked: once linked, b is the finalizer
		// goroutine's, which may run its records and count them as
		// executed at once; no snapshot may show more executed than
		// queued (Stats reads executed first).
		// Likewise pending, in FinalizersAtSafepoints mode, which
		// mutators at safepoints decrement as they run records: added
		// after the link, a mutator running another block's last record
		// could bring it to zero with this block queued, and a Drain
		// waiting for idle would return early.
		n = int64(b.n)
		f.queued.Add(n)
		if f.hereMode {
			f.pending.Add(n)
		}
	}
	f.mu.Lock()
	if b != nil {
		b.next = f.mu.q
		f.mu.q = b
		f.mu.nq++
		nq = f.mu.nq
	}
	if another {
		if nb = f.mu.free; nb != nil {
			f.mu.free = nb.next
			nb.next = nil
		}
	}
	f.mu.Unlock()
	if b != nil && testHookFinPublished != nil {
		testHookFinPublished(f)
	}
	if another && nb == nil {
		nb = new(finBlock)
	}
	if b == nil {
		return nb
	}
	if f.hereMode {
		return nb
	}
	f.status.or(fingWake)
	if nq >= finWakeEarly {
		f.wake()
	}
	return nb
}

// testHookFinPublished, if set, runs in publish once a block of records is
// linked where the finalizer goroutine takes them.
var testHookFinPublished func(f *finState)

// finWakeEarly is the number of queued blocks at which a sweeper wakes
// the finalizer goroutine itself, without waiting for the end of the
// sweep. The last sweeper's wake (sweepDone) is the one the protocol
// relies on: it comes after every record of the cycle is queued, so none
// is left waiting (seed 001). But with it alone the goroutine sleeps
// through the whole sweep and runs the cycle's finalizers after it, when
// the sweepers' cores are idle; woken early, it runs them beside the
// sweep. The runtime does the same: its scheduler readies the finalizer
// goroutine whenever it finds Wait and Wake set (findRunnable). Several
// blocks, not one, so that a goroutine that empties the queue faster than
// a sweeper fills it is not woken and parked again for every block.
const finWakeEarly = 4

// wakefing readies the finalizer goroutine if it waits and work was queued.
func (h *Heap) wakefing() { h.fin.wake() }

// wake is wakefing.
func (f *finState) wake() {
	for {
		s := f.status.load()
		if s&(fingWait|fingWake) != fingWait|fingWake {
			return
		}
		if f.status.cas(s, s&^(fingWait|fingWake)) {
			select {
			case f.wakeC <- struct{}{}:
			default:
			}
			return
		}
	}
}

// runFinq is the finalizer goroutine's loop.
func (h *Heap) runFinq(m *Mutator) {
	f := &h.fin
	// Emptied blocks go back to the free list in one batch, when the
	// goroutine next takes fin.mu, not once per block: the sweepers
	// queueing records take the same lock.
	var empty, emptyTail *finBlock
	for {
		if f.cur == nil {
			f.mu.Lock()
			if empty != nil {
				emptyTail.next = f.mu.free
				f.mu.free = empty
				empty, emptyTail = nil, nil
			}
			fb := f.mu.q
			f.mu.q, f.mu.nq = nil, 0
			if fb == nil {
				f.flushRan()
				f.running.Store(nil)
				f.status.and(^fingRunningFinalizer)
				f.mu.busy = false
				f.status.or(fingWait)
				f.mu.Unlock()
				h.idle.broadcast()
				m.block()
				select {
				case <-f.wakeC:
				case <-f.stopC:
					m.unblock()
					return
				}
				m.unblock()
				continue
			}
			f.mu.busy = true
			f.mu.Unlock()
			f.cur = fb
		}
		// Run f.cur's blocks. f.cur is set before the loop, so a
		// goroutine that replaces one lost to runtime.Goexit (see
		// runFinqGoroutine) resumes where it stopped.
		if f.status.load()&fingRunningFinalizer == 0 {
			f.status.or(fingRunningFinalizer)
		}
		var typ *Type // f.running's value, stored only when it changes
		for b := f.cur; b != nil; {
			if b.queuedAt != 0 {
				f.delay.record(nanotime() - b.queuedAt)
				b.queuedAt = 0
			}
			for b.n > 0 {
				if h.runBlock(m, b, &typ) {
					h.finSafepoint(m, &typ) // after a call that panicked
				}
			}
			f.flushRan()
			next := b.next
			f.cur = next
			b.next = empty
			if empty == nil {
				emptyTail = b
			}
			empty = b
			b = next
		}
	}
}

// flushRan adds the goroutine's uncounted calls to executed.
func (f *finState) flushRan() {
	if f.ran != 0 {
		f.executed.Add(f.ran)
		f.ran = 0
	}
}

// finishRecord retires the record whose call ended in runtime.Goexit, the
// last of b's.
func (f *finState) finishRecord(b *finBlock) {
	f.running.Store(nil)
	b.recs[b.n-1] = finRec{}
	b.n--
	f.ran++
	f.flushRan()
}

// runFinqGoroutine is the finalizer goroutine's body. A finalizer that
// calls runtime.Goexit (t.FailNow in a test) ends the goroutine in the
// middle of a call; the deferred function then retires that record, reports
// it like a panic, and starts a replacement on the same mutator, which
// resumes the queue. The cleanup pool does the same for its workers.
func (h *Heap) runFinqGoroutine(m *Mutator) {
	f := &h.fin
	normal := false
	defer func() {
		if normal {
			m.detach()
			close(f.doneC)
			return
		}
		if f.calling {
			f.calling = false
			f.finishRecord(f.cur)
			h.reportPanic("finalizer", "reclaim: finalizer called runtime.Goexit", debug.Stack())
		} else {
			// A collection the goroutine led at a safepoint between calls
			// (finSafepoint) ended in runtime.Goexit in ScanRoots or a
			// Trace method: it was abandoned; no record was being run.
			h.reportPanic("collection", "reclaim: runtime.Goexit in ScanRoots or a Trace method, in a collection the finalizer goroutine led; the collection was abandoned", debug.Stack())
		}
		go h.runFinqGoroutine(m)
	}()
	pprof.Do(context.Background(), pprof.Labels("reclaim.heap", itoa(h.id), "reclaim.worker", "finalizer"), func(context.Context) {
		h.runFinq(m)
	})
	normal = true
}

// runBlock runs b's records, last first, with a safepoint after each
// call, until b is empty or a call panics: the panic is recovered and
// reported, the record retired, and runBlock reports it; the caller goes
// on with the rest. One deferred recover for a run of calls, not one per
// call (callFinalizer): the finalizer goroutine runs every call in turn,
// so its per-call overhead is the queue's throughput. typ is the type
// last stored in f.running, stored again only when it changes.
func (h *Heap) runBlock(m *Mutator, b *finBlock, typ **Type) (panicked bool) {
	f := &h.fin
	calling := false
	defer func() {
		if !calling {
			return // runtime.Goexit in a call (runFinqGoroutine), or none
		}
		v := recover()
		if v == nil {
			return // runtime.Goexit: runFinqGoroutine retires the record
		}
		f.calling = false
		h.reportPanic("finalizer", v, debug.Stack())
		b.recs[b.n-1] = finRec{}
		b.n--
		f.ran++
		panicked = true
	}()
	for b.n > 0 {
		r := &b.recs[b.n-1]
		if r.typ != *typ {
			*typ = r.typ
			f.running.Store(r.typ)
		}
		calling, f.calling = true, true
		r.typ.FinCall(m, r.x, r.fn)
		calling, f.calling = false, false
		b.recs[b.n-1] = finRec{}
		b.n--
		f.ran++
		if m.safepointDue() {
			h.finSafepoint(m, typ)
		}
	}
	return false
}

// finSafepoint is the finalizer goroutine's safepoint between calls. It
// may lead a due collection, which runs the embedder's ScanRoots and Trace
// methods. A panic there abandons the collection (collect) and is reported
// here, with Kind "collection", and the queue goes on; a runtime.Goexit
// ends the goroutine, and runFinqGoroutine starts another, which retires
// no record (f.calling is clear). No finalizer is in a call here, so
// f.running is cleared first (and *typ with it, so that the next call
// stores its type again): a leader that waits for another mutator, or the
// collection the goroutine leads itself, must not blame the finalizer
// that last returned.
func (h *Heap) finSafepoint(m *Mutator, typ **Type) {
	if *typ != nil {
		*typ = nil
		h.fin.running.Store(nil)
	}
	defer func() {
		if v := recover(); v != nil {
			h.reportPanic("collection", v, debug.Stack())
		}
	}()
	m.Safepoint()
}

// callFinalizer runs one record, containing a panic.
func (h *Heap) callFinalizer(m *Mutator, r *finRec) {
	defer func() {
		if v := recover(); v != nil {
			h.reportPanic("finalizer", v, debug.Stack())
		}
	}()
	r.typ.FinCall(m, r.x, r.fn)
}

// runFinalizersHere runs queued finalizers on the embedder's mutator m at a
// safepoint, within the configured budget (FinalizersAtSafepoints).
func (h *Heap) runFinalizersHere(m *Mutator) {
	f := &h.fin
	// A finalizer that calls runtime.Goexit ends m's goroutine, the
	// embedder's, in the middle of its call: retire its record on the way
	// out, or Drain would wait for it for ever.
	var calling *finRec
	defer func() {
		if calling != nil {
			f.running.CompareAndSwap(calling.typ, nil)
			h.retireHere(calling)
			h.reportPanic("finalizer", "reclaim: finalizer called runtime.Goexit", debug.Stack())
		}
	}()
	budget := h.cfg.FinalizerBudget
	deadline := time.Time{}
	if h.cfg.FinalizerTimeBudget > 0 {
		deadline = time.Now().Add(h.cfg.FinalizerTimeBudget)
	}
	for n := 0; budget <= 0 || n < budget; n++ {
		if !deadline.IsZero() && n > 0 && time.Now().After(deadline) {
			return
		}
		f.mu.Lock()
		if f.mu.closing {
			f.mu.Unlock()
			return // Close runs what is queued
		}
		b := f.mu.q
		for b != nil && b.n == 0 {
			f.mu.q = b.next
			f.mu.nq--
			b.next = f.mu.free
			f.mu.free = b
			b = f.mu.q
		}
		if b == nil {
			f.mu.Unlock()
			return
		}
		b.n--
		r := b.recs[b.n]
		b.recs[b.n] = finRec{}
		f.mu.inflight = append(f.mu.inflight, r)
		f.mu.Unlock()

		calling = &r
		// For the slow-finalizer report, as the goroutine does; mutators
		// may run finalizers at once, so only the one that stored a type
		// clears it.
		f.running.Store(r.typ)
		h.callFinalizer(m, &r)
		f.running.CompareAndSwap(r.typ, nil)
		calling = nil
		h.retireHere(&r)
	}
}

// retireHere retires r, a record that runFinalizersHere has run: it is no
// longer in flight, and counts as executed.
func (h *Heap) retireHere(r *finRec) {
	f := &h.fin
	f.mu.Lock()
	for i := range f.mu.inflight {
		if f.mu.inflight[i].x == r.x {
			last := len(f.mu.inflight) - 1
			f.mu.inflight[i] = f.mu.inflight[last]
			f.mu.inflight[last] = finRec{}
			f.mu.inflight = f.mu.inflight[:last]
			break
		}
	}
	closeWaits := f.mu.closing && len(f.mu.inflight) == 0
	f.mu.Unlock()
	f.executed.Add(1)
	f.pending.Add(-1)
	if f.pending.Load() == 0 || closeWaits {
		h.idle.broadcast()
	}
}

// scanRoots appends the objects of queued and running finalizer records.
// REQUIRES: world stopped.
func (f *finState) scanRoots(buf []handle.Handle) []handle.Handle {
	f.mu.Lock()
	defer f.mu.Unlock()
	for b := f.mu.q; b != nil; b = b.next {
		for i := range b.n {
			buf = append(buf, b.recs[i].x)
		}
	}
	for _, r := range f.mu.inflight {
		buf = append(buf, r.x)
	}
	for b := f.cur; b != nil; b = b.next {
		for i := range b.n {
			buf = append(buf, b.recs[i].x)
		}
	}
	return buf
}

// idle reports whether no finalizer is queued or running.
func (f *finState) idle() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.busy {
		return false
	}
	if f.hereMode {
		return f.pending.Load() == 0
	}
	return f.mu.q == nil
}

// hasQueued reports whether records wait on the queue (not counting those
// being run).
func (f *finState) hasQueued() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for b := f.mu.q; b != nil; b = b.next {
		if b.n > 0 {
			return true
		}
	}
	return false
}

// stop ends the finalizer goroutine, if it was started, and waits for it.
// REQUIRES: h.mu.closed set (Close), so that start starts none after.
func (f *finState) stop(h *Heap) {
	close(f.stopC)
	h.mu.Lock()
	started := f.status.load() != fingUninitialized
	h.mu.Unlock()
	if started && !f.hereMode {
		<-f.doneC
	}
}

// modulePath is the path of reclaim's module: the frames of its packages
// (the public one's adapters, the heap's) end a finalizer's own stack.
var modulePath = strings.TrimSuffix(reflect.TypeFor[Heap]().PkgPath(), "/internal/heap")

// finalizerStack returns where h's finalizer goroutine is: the frames of
// its stack above reclaim's own (the finalizer and what it called), one
// "function file:line" a line, as the goroutine profile shows them; the
// goroutine is the one whose pprof labels name h and "finalizer" and that
// is in runBlock. It returns "" when there is none (finalizers run at mutators' safepoints,
// or the goroutine is between calls). It profiles every goroutine, so it
// runs only for the report of a finalizer that keeps a collection
// waiting, at most once per collection.
func (h *Heap) finalizerStack() string {
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
		return ""
	}
	heapLabel := `"reclaim.heap":"` + itoa(h.id) + `"`
	for _, rec := range strings.Split(b.String(), "\n\n") {
		// The goroutine that calls finalizers (runBlock) has the labels,
		// and so has the one that started it and waits for it to end
		// (runFinqGoroutine): the caller is the one wanted.
		if !strings.Contains(rec, heapLabel) || !strings.Contains(rec, `"reclaim.worker":"finalizer"`) ||
			!strings.Contains(rec, "(*Heap).runBlock") {
			continue
		}
		// Its frames, innermost first: "#\t0xPC\tfunction+0xOFF\tfile:line".
		var fns, frames []string
		for _, l := range strings.Split(rec, "\n") {
			f := strings.Fields(strings.TrimPrefix(l, "#"))
			if !strings.HasPrefix(l, "#\t") || len(f) < 3 {
				continue
			}
			fn, _, _ := strings.Cut(f[1], "+0x")
			fns, frames = append(fns, fn), append(frames, fn+" "+f[2])
		}
		// The finalizer's frames are those above the typed adapter
		// (reclaim's own package) that runBlock called; a finalizer
		// inside a call of reclaim's (Collect, Drain) has some of the
		// heap's frames among its own. Anything else above runBlock (its
		// safepoint between calls) means the finalizer has returned.
		for k := 1; k < len(fns); k++ {
			if strings.HasSuffix(fns[k], "/internal/heap.(*Heap).runBlock") {
				if strings.HasPrefix(fns[k-1], modulePath+".") {
					return strings.Join(frames[:k-1], "\n")
				}
				return ""
			}
		}
		return ""
	}
	return ""
}
