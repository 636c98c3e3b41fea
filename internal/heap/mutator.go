package heap

import (
	"fmt"
	"runtime/trace"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/cleanupq"
	"github.com/reclaimgc/reclaim/internal/handle"
)

// abandonedMessage is the panic value of a collection abandoned by a panic
// with value v in its mark: a runtime.Goexit in a Trace method on a mark
// worker (goexitInMark), a failed check of reclaim's own ("reclaim:
// internal error"), or else the embedder's ScanRoots or Trace panicking.
func abandonedMessage(v any) string {
	const prefix = "reclaim: collection abandoned, the heap unchanged: "
	if g, ok := v.(goexitInMark); ok {
		return fmt.Sprintf(prefix+"%v", g)
	}
	if msg, ok := v.(string); ok && strings.HasPrefix(msg, "reclaim: internal error") {
		return prefix + strings.TrimPrefix(msg, "reclaim: ")
	}
	return fmt.Sprintf(prefix+"the mark's ScanRoots or a Trace method panicked: %v", v)
}

// Mutator is one goroutine's handle on a heap. See heap.go for its part in
// the cycle.
//
// Stopping the world. The heap counts its attached mutators that are not at
// a safepoint (Heap.mu.running). A cycle's leader sets mu.stw and stwReq and
// waits on mu.cond until running is zero; a mutator that polls stwReq at a
// safepoint decrements running, signals, and waits on mu.cond until mu.stw
// is clear. Detach and the finalizer goroutine's idle wait also leave the
// running count, so they never hold a cycle up. Every transition is made
// with mu held, so no wake-up can be lost: the leader re-checks running
// after every wait, and a parked mutator re-checks mu.stw.
//
//	mutator state   counted in running   may touch the heap
//	running         yes                  yes
//	parked          no                   no (waits for the world to restart)
//	blocked         no                   no (re-enters through unblock)
//	detached        no (not registered)  no
type Mutator struct {
	// heap is nil while detached. Written in Attach (h.mu held) and
	// Detach (after m has left h.mu.mutators) by the goroutine that uses
	// the mutator; read only by that goroutine.
	heap *Heap
	// home is the heap this mutator was attached to; never cleared by
	// Detach. Written in Attach (or attachClosing) with h.mu held, before m
	// is in h.mu.mutators; read by flushCache and flushStats, which the
	// leader also runs on other mutators with the world stopped.
	home *Heap
	// id and tab are heap.id and &heap.spans while attached, 0 and an
	// empty table while detached, written together with heap and owned
	// like it: a lookup through tab that finds a live slot therefore
	// implies heap != nil (Deref, sweptSlot rely on it).
	id  uint32
	tab *spanTable

	// busy catches a mutator used from two goroutines at once: every
	// slow-path entry point sets it with CAS and clears it on return.
	// While Safepoint, Collect or Drain runs queued finalizers on m
	// (afterSafepoint), it is clear, so that a finalizer can use m.
	busy atomic.Int32
	// inFinalizers is set while afterSafepoint runs queued finalizers on
	// m, so that a safepoint a finalizer reaches does not run others
	// inside it (finalizers run one at a time). Owned by the goroutine
	// using m.
	inFinalizers bool

	// cfree keeps stopped cleanup records for reuse, by record type
	// (special.go); owned by the mutator's goroutine.
	cfree [8]cleanupFree

	// cache[t.ID] is the span this mutator allocates objects of type t
	// from. Owned by the goroutine using m while m runs; by the leader
	// (flushCaches) while the world is stopped and m is parked or blocked;
	// by Close once the heap is dead (mutators must not be used then).
	// Verify reads it when the caller guarantees quiescence.
	cache []*span
	// local is this mutator's cleanup block, filled only by m's own sweeps
	// (between activeSweep begin and end) and by Close on its own mutator.
	// Emptied by m's Detach (FlushOne, h.mu held) or by the cycle's last
	// sweeper (sweepDone: Flush, h.mu held), which runs only when no sweep
	// is active, so never while m fills it; read by the mark's ScanRoots
	// with the world stopped.
	local cleanupq.Local

	// nalloc counts objects allocated since the last flush into the
	// heap's statistics, but for those allocated from a cached span since
	// its nfreeCounted was taken (countAllocs adds them). Owned like cache.
	nalloc int64

	isFing bool // the finalizer goroutine's or Close's own mutator; set before Attach, immutable after
}

// NewMutator returns a detached mutator, ready for Attach.
func NewMutator() *Mutator {
	m := new(Mutator)
	m.Init()
	return m
}

// Init readies a zero Mutator (one embedded in another type) for Attach.
func (m *Mutator) Init() { m.tab = emptyTable }

// newMutator allocates a mutator for the heap's own use.
func (h *Heap) newMutator() *Mutator {
	if h.cfg.NewMutator != nil {
		return h.cfg.NewMutator()
	}
	return NewMutator()
}

// Attach registers m as a mutator of h. It waits while a collection holds
// the world stopped.
func (h *Heap) Attach(m *Mutator) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.mu.stw && !h.mu.dead {
		h.mu.cond.Wait()
	}
	// Checked after the wait: Close may have finished meanwhile.
	if h.mu.dead {
		panic("reclaim: Attach on a closed heap")
	}
	m.heap = h
	m.home = h
	m.id, m.tab = h.id, h.spans
	h.mu.mutators[m] = struct{}{}
	h.mu.running++
}

// Detach unregisters m. Its span cache goes back to the centrals and its
// cleanup block to the queue. The heap's own mutators (the finalizer
// goroutine's, Close's) are detached by the heap alone (detach): a
// finalizer's Detach of the mutator it was given panics, as a misuse, so
// that the goroutine running it goes on with the mutator still attached.
func (m *Mutator) Detach() {
	if m.isFing && m.heap != nil {
		panic("reclaim: Detach of the mutator a finalizer was given (the heap's own, which the heap detaches)")
	}
	m.detach()
}

// detach is Detach without the check of the heap's own mutators.
func (m *Mutator) detach() {
	h := m.enter("Detach")
	m.flushCache()
	m.flushStats()
	h.mu.Lock()
	h.cq.FlushOne(&m.local)
	delete(h.mu.mutators, m)
	h.mu.running--
	h.mu.cond.Broadcast()
	h.mu.Unlock()
	m.heap = nil
	m.id, m.tab = 0, emptyTable
	m.busy.Store(0)
}

// emptyTable is what a detached mutator's Deref reads.
var emptyTable = newSpanTable()

// Heap returns the heap m is attached to, or nil.
func (m *Mutator) Heap() *Heap { return m.heap }

// enter marks the start of a slow-path operation on m and returns its heap.
// It panics if m is detached or in use by another goroutine.
func (m *Mutator) enter(op string) *Heap {
	h := m.heap
	if h == nil {
		panic("reclaim: " + op + " on a detached mutator")
	}
	if !m.busy.CompareAndSwap(0, 1) {
		panic("reclaim: mutator used from two goroutines at once (in " + op + ")")
	}
	return h
}

func (m *Mutator) leave() { m.busy.Store(0) }

// busyElsewhere reports whether another goroutine holds m in a slow path:
// the specials' fast paths (SetFinalizer, AddCleanup), which do not enter,
// then take the slow path, whose enter panics. One load, no CAS: two fast
// paths at once are not caught (as two Gets are not), but a fast path
// beside a Collect, which wrote the tables the mark reads, is.
func (m *Mutator) busyElsewhere() bool { return m.busy.Load() != 0 }

// Deref returns the address of the object x names. It is Ref.Get's fast
// path, small enough to be inlined: two table loads and one compare of the
// whole handle word against the slot's current handle (heap id, span, slot
// and generation at once). A detached mutator reads an empty table, and no
// slot's handle is zero, so both fail. sweptSlot makes the same check
// for the specials' fast paths, written out for the same budget.
func (m *Mutator) Deref(x handle.Handle) unsafe.Pointer {
	s := m.tab.span(x) // plain loads; see spanTable.span and spanPtr
	if off := uintptr(x>>31) & ((handle.MaxSlots - 1) << 3); off < s.hvBytes && loadHV(s, off) == uint64(x) {
		return unsafe.Add(s.base, off*s.elemSize>>3)
	}
	// A panic with a plain value keeps Deref inlinable; the message is
	// built by DerefError.Error.
	panic(DerefError{m.id, x})
}

// DerefError is the panic value of a failed Get: the mutator was detached,
// or the ref was nil, from another heap, or to a freed object.
type DerefError struct {
	heapID uint32 // the mutator's heap id when Get failed; 0 if it was detached
	x      handle.Handle
}

// Error describes what was wrong.
func (e DerefError) Error() string {
	heapID := e.heapID
	switch {
	case heapID == 0:
		return "reclaim: Get on a detached mutator"
	case e.x == 0:
		return "reclaim: Get of a nil ref"
	case e.x.Heap() != heapID:
		return fmt.Sprintf("reclaim: Get of a ref from another heap (ref heap %d, mutator's heap %d)", e.x.Heap(), heapID)
	default:
		return fmt.Sprintf("reclaim: Get of a ref to a freed object (%v)", e.x)
	}
}

// Check panics unless x names a live object of m's heap, and returns the
// object's type.
func (m *Mutator) Check(x handle.Handle, op string) *Type {
	h := m.heap
	if h == nil {
		panic("reclaim: " + op + " on a detached mutator")
	}
	return h.check(x, op).typ
}

// Safepoint lets a pending collection run. If none is pending it costs two
// atomic loads.
func (m *Mutator) Safepoint() {
	h := m.heap
	if h == nil {
		panic("reclaim: Safepoint on a detached mutator")
	}
	if !m.safepointDue() {
		return
	}
	m.safepointSlow()
}

// safepointDue reports whether Safepoint has work: a collection due or
// under way, or finalizers to run here. REQUIRES: m attached.
func (m *Mutator) safepointDue() bool {
	h := m.heap
	return h.stwReq.Load() || h.gcDue.Load() || h.fin.atSafepoints()
}

func (m *Mutator) safepointSlow() {
	h := m.enter("Safepoint")
	defer m.leave()
	m.yieldToCollection(h)
	m.afterSafepoint(h)
}

// afterSafepoint ends a safepoint (Safepoint, Collect, Drain): m's
// allocation count goes to the heap's, and with FinalizersAtSafepoints the
// queued finalizers run here, as m: busy is cleared while they run, so
// that a finalizer may allocate, set finalizers, make weak refs, reach
// safepoints and collect through the mutator it was given. A safepoint
// reached by one of them runs no finalizers (one at a time).
// REQUIRES: m entered (busy held); busy is held again on return.
func (m *Mutator) afterSafepoint(h *Heap) {
	m.flushStats()
	if !h.fin.atSafepoints() || m.isFing || m.inFinalizers {
		return
	}
	m.inFinalizers = true
	m.leave()
	defer func() {
		m.inFinalizers = false
		if m.heap == nil {
			panic("reclaim: a finalizer run at a safepoint detached the mutator it ran on")
		}
		if !m.busy.CompareAndSwap(0, 1) {
			panic("reclaim: mutator used from two goroutines at once (while finalizers ran on it at a safepoint)")
		}
	}()
	h.runFinalizersHere(m)
}

// yieldToCollection is the safepoint proper: lead a due collection, or park
// while another holds the world stopped. Shared by Safepoint and, with
// SafepointOnAlloc, allocation.
// REQUIRES: m entered (busy held).
func (m *Mutator) yieldToCollection(h *Heap) {
	if h.gcDue.Load() {
		h.collect(m, false)
	} else if h.stwReq.Load() {
		h.mu.Lock()
		h.parkLocked(m)
		h.mu.Unlock()
	} else {
		return
	}
	m.flushStats()
}

// Collect runs a full cycle, sweep included, like runtime.GC.
func (m *Mutator) Collect() {
	h := m.enter("Collect")
	defer m.leave()
	h.collect(m, true)
	m.afterSafepoint(h)
}

// parkLocked waits at a safepoint while the world is stopped.
// REQUIRES: h.mu held; m is running.
func (h *Heap) parkLocked(m *Mutator) {
	if !h.mu.stw {
		return
	}
	h.mu.running--
	h.mu.cond.Broadcast()
	for h.mu.stw {
		h.mu.cond.Wait()
	}
	h.mu.running++
}

// block takes m out of the running count for a wait that must not hold a
// collection up (the finalizer goroutine idling). unblock brings it back,
// waiting out a stopped world.
func (m *Mutator) block() {
	h := m.heap
	h.mu.Lock()
	h.mu.running--
	h.mu.cond.Broadcast()
	h.mu.Unlock()
}

func (m *Mutator) unblock() {
	h := m.heap
	h.mu.Lock()
	for h.mu.stw {
		h.mu.cond.Wait()
	}
	h.mu.running++
	h.mu.Unlock()
}

// collect runs one cycle with m as its leader. If another cycle is under
// way, m parks until it ends; then, if full is set (Collect), it runs a cycle
// of its own, and otherwise it returns (the cycle it waited for served the
// pacer). With full set it also finishes the sweep before returning.
func (h *Heap) collect(m *Mutator, full bool) {
	h.mu.Lock()
	if h.mu.stw {
		h.parkLocked(m)
		if !full {
			h.mu.Unlock()
			return
		}
		// A cycle ran while we waited; Collect promises one that started
		// after the call, so run another.
	}
	if h.mu.closed {
		h.mu.Unlock()
		return // no collection once Close has begun
	}
	ctx, task := trace.NewTask(bgctx, "reclaim.cycle")
	// The region reclaim.stopTheWorld spans the stop-the-world phase, from
	// the request to stop to the restart: the wait for the mutators to
	// reach a safepoint, then finishSweep, the mark and the flip.
	stw := trace.StartRegion(ctx, "reclaim.stopTheWorld")
	start := time.Now()
	if !h.stopTheWorldLocked(start, true) {
		h.mu.Unlock()
		stw.End()
		task.End()
		return // Close began while the world was stopping
	}
	h.mu.Unlock()
	h.gcDue.Store(false)
	// The mark runs the embedder's code (ScanRoots, Trace methods). If it
	// panics, the mark is abandoned (mark bits cleared: mark.go), the world
	// restarted and the cycle counted as not run, and the panic goes on to
	// this mutator's caller with what happened said first.
	running := true
	defer func() {
		if !running {
			return
		}
		v := recover()
		h.startTheWorld()
		stw.End()
		task.End()
		if v == nil {
			return // runtime.Goexit in ScanRoots or a Trace method on this goroutine: let it go on
		}
		panic(abandonedMessage(v))
	}()

	// The world is stopped: no mutator runs until mu.stw is cleared. The
	// leader works without holding mu, so that goroutines that are not
	// mutators (cleanup workers) can still Pin, Unpin and AddExternal.
	trace.WithRegion(ctx, "reclaim.finishSweep", func() { h.finishSweep() })
	h.flushCaches()
	var ms markStats
	trace.WithRegion(ctx, "reclaim.mark", func() { ms = h.mark(ctx) })
	h.flip(ms)

	// The pause runs from the request to stop, as the runtime's pause
	// times do (stopTheWorldWithSema's startedStopping): the wait for the
	// mutators to reach a safepoint is time they did not run.
	pause := time.Since(start)
	h.stats.recordPause(pause)
	running = false
	h.startTheWorld()
	stw.End()
	h.bg.wake()
	h.log.Debug("reclaim: cycle", "cycle", h.stats.cycles.Load(), "marked_objects", ms.objects, "marked_bytes", ms.bytes, "finalizer_roots", ms.finRoots, "pause", pause)
	if full {
		trace.WithRegion(ctx, "reclaim.sweep", func() { h.sweepUntilDone(&m.local) })
	}
	task.End() // after Collect's sweep, whose region is the task's
}

// stopTheWorldLocked stops the world with the calling mutator (at a
// safepoint) as the leader. With forCycle set, it gives up if Close begins
// while it waits (no cycle starts once Close has begun, and Close waits
// for a stopped world to restart: the mutator a cycle waits for may be
// the one of Close's caller), restarts the world and reports false.
// REQUIRES: h.mu held, !h.mu.stw; the caller is an attached, running
// mutator.
func (h *Heap) stopTheWorldLocked(start time.Time, forCycle bool) bool {
	h.mu.stw = true
	h.stwReq.Store(true)
	h.mu.running-- // the leader is at a safepoint
	if h.waitStoppedLocked(start, forCycle) {
		return true
	}
	h.mu.stw = false
	h.stwReq.Store(false)
	h.mu.running++
	h.mu.cond.Broadcast()
	return false
}

// startTheWorld restarts the mutators parked by stopTheWorldLocked.
func (h *Heap) startTheWorld() {
	h.mu.Lock()
	h.mu.stw = false
	h.stwReq.Store(false)
	h.mu.running++
	h.mu.cond.Broadcast()
	h.mu.Unlock()
}

// waitStoppedLocked waits until no attached mutator runs. While it waits, a
// finalizer that keeps the world from stopping longer than the configured
// threshold is reported, once per call.
// With forCycle set, it returns false as soon as Close has begun.
// REQUIRES: h.mu held.
func (h *Heap) waitStoppedLocked(start time.Time, forCycle bool) bool {
	if h.mu.running == 0 {
		return true
	}
	reported, reportedWait := false, false
	timer := time.AfterFunc(h.cfg.FinalizerBlockThreshold, func() {
		h.mu.Lock()
		h.mu.cond.Broadcast()
		h.mu.Unlock()
	})
	defer timer.Stop()
	for h.mu.running > 0 {
		if forCycle && h.mu.closed {
			return false
		}
		h.mu.cond.Wait()
		if !reported && time.Since(start) >= h.cfg.FinalizerBlockThreshold {
			if name, ok := h.fin.current(); ok {
				reported = true
				// Logged without mu: the embedder's handler may call
				// Stats, which takes it. The loop looks again after.
				// Counted once logged, so that a program that sees the
				// count sees the report whole.
				h.mu.Unlock()
				attrs := []any{"type", name, "waited", time.Since(start).Round(time.Millisecond)}
				if where := h.finalizerStack(); where != "" {
					attrs = append(attrs, "stack", where)
				}
				h.log.Warn("reclaim: a finalizer keeps a pending collection waiting", attrs...)
				h.stats.slowFinalizers.Add(1)
				h.mu.Lock()
			} else if !reportedWait {
				// No finalizer to blame: a mutator that does not reach
				// a safepoint, or a goroutine blocked in Attach (or in a
				// wait of its own) while a mutator it runs is not at one,
				// which never ends. Said once per wait.
				reportedWait = true
				n := h.mu.running
				h.mu.Unlock()
				h.log.Warn("reclaim: a pending collection waits for mutators to reach a safepoint (Safepoint, New, Collect, Drain); a goroutine must not wait, in Attach or elsewhere, while a mutator it runs is not at one",
					"mutators", n, "waited", time.Since(start).Round(time.Millisecond))
				h.mu.Lock()
			}
		}
	}
	return true
}

// flushCaches returns every mutator's cached spans to their centrals.
// REQUIRES: world stopped.
func (h *Heap) flushCaches() {
	h.mu.Lock()
	ms := make([]*Mutator, 0, len(h.mu.mutators))
	for m := range h.mu.mutators {
		ms = append(ms, m)
	}
	h.mu.Unlock()
	for _, m := range ms {
		m.flushCache()
		m.flushStats()
	}
}

// flushCache uncaches m's spans. Called by m itself, or by the leader with
// the world stopped.
func (m *Mutator) flushCache() {
	h := m.home
	for i, s := range m.cache {
		if s != noSpan {
			m.cache[i] = noSpan
			m.countAllocs(s)
			h.heapLive.Add(-int64(s.nfree) * int64(s.elemSize))
			h.uncache(s)
		}
	}
}

// countAllocs adds to nalloc the objects allocated from s, a span m caches
// or has just taken out of its cache, since the last count: allocation
// itself counts nothing, so that AllocFast stays small.
func (m *Mutator) countAllocs(s *span) {
	m.nalloc += int64(s.nfreeCounted - s.nfree)
	s.nfreeCounted = s.nfree
}

// unflushedAllocs returns what flushStats would add to the heap's count.
func (m *Mutator) unflushedAllocs() int64 {
	n := m.nalloc
	for _, s := range m.cache {
		n += int64(s.nfreeCounted - s.nfree) // 0 for noSpan
	}
	return n
}

func (m *Mutator) flushStats() {
	for _, s := range m.cache {
		if s != noSpan {
			m.countAllocs(s)
		}
	}
	if m.nalloc != 0 {
		m.home.stats.allocated.Add(m.nalloc)
		m.nalloc = 0
	}
}
