package heap

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime/debug"
	"slices"
	"time"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
	"github.com/reclaimgc/reclaim/internal/layout"
)

// Drain waits until the sweep of the last cycle is complete, no finalizer
// is queued or running, and no cleanup is queued or running.
func (h *Heap) Drain(ctx context.Context) error {
	for {
		ch := h.idle.wait()
		if h.drained() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return h.drainError(ctx)
		}
	}
}

// drainError is Drain's error when ctx ends first.
func (h *Heap) drainError(ctx context.Context) error {
	return fmt.Errorf("reclaim: Drain: %w (finalizers queued %d, run %d; cleanups pending %d)",
		ctx.Err(), h.fin.queued.Load(), h.fin.executed.Load(), h.cq.Pending())
}

// Drain is Heap.Drain for m's goroutine: m reaches a safepoint, then counts
// as stopped while it waits (as the finalizer goroutine does while it
// sleeps), so a collection that a finalizer or cleanup starts does not wait
// for it.
func (m *Mutator) Drain(ctx context.Context) error {
	h := m.enter("Drain")
	defer m.leave()
	if m.isFing || m.inFinalizers {
		panic("reclaim: Drain called by a finalizer, which would wait for itself")
	}
	m.yieldToCollection(h)
	if !h.fin.hereMode {
		m.afterSafepoint(h)
		m.block()
		defer m.unblock()
		return h.Drain(ctx)
	}
	// With FinalizersAtSafepoints, finalizers run only at mutators'
	// safepoints, and m may be the only mutator: waiting for them blocked
	// would wait for itself. So m finishes the sweep (the cycle its
	// safepoint led queues its finalizers there), runs what is queued,
	// and blocks only to wait for what others do (cleanups, another
	// mutator's cycle, whose last sweeper broadcasts idle); then again.
	for {
		h.sweepUntilDone(&m.local)
		m.afterSafepoint(h)
		ch := h.idle.wait()
		if h.drained() {
			return nil
		}
		if h.fin.hasQueued() {
			if ctx.Err() != nil {
				return h.drainError(ctx)
			}
			// A budget left some, or a sweep queued more. Each round
			// is a safepoint: a collection another mutator waits for
			// runs here, not once the whole queue has run.
			m.yieldToCollection(h)
			continue
		}
		m.block()
		select {
		case <-ch:
		case <-ctx.Done():
			m.unblock()
			return h.drainError(ctx)
		}
		m.unblock()
		m.yieldToCollection(h)
	}
}

// drained reports whether, at one moment, nothing was left to sweep, no
// finalizer was queued or running and no cleanup was pending. The three
// are read one after another, and work in one can start work in another
// (a cleanup that collects, a finalizer that adds a cleanup): read alone,
// the sweep could be seen done before a cleanup started a cycle, and the
// cleanup seen finished after. So the counters that move whenever any of
// them starts or finishes work (the sweep generation at each flip, the
// queued and executed counts of finalizers and cleanups, each bumped
// before the state it reports becomes visible) are read before and after,
// and a change in between answers false. The caller then waits for the
// idle event it took before the first read: whatever moved a counter ends
// with a broadcast after it, so the wait cannot outlast the work.
func (h *Heap) drained() bool {
	e := h.drainEpoch()
	if !h.sweep.done.Load() || !h.fin.idle() || h.cq.Pending() != 0 {
		return false
	}
	return h.drainEpoch() == e
}

// drainEpoch is the counters drained compares.
type drainEpoch struct {
	sweepgen                   uint32
	finQueued, finExecuted     int64
	cleanQueued, cleanExecuted uint64
}

func (h *Heap) drainEpoch() drainEpoch {
	cq := h.cq.Stats()
	return drainEpoch{
		sweepgen:      h.sweepgen.Load(),
		finQueued:     h.fin.queued.Load(),
		finExecuted:   h.fin.executed.Load(),
		cleanQueued:   cq.Queued,
		cleanExecuted: cq.Executed,
	}
}

// maxCloseRounds bounds how often Close re-runs finalizers that register
// new finalizers.
const maxCloseRounds = 100

// Close runs every finalizer still registered or queued and every cleanup
// still registered or queued, then stops the heap's goroutines. Nothing is
// collected once Close has begun. Attached mutators must not be used
// concurrently with Close, except by the finalizers and cleanups it runs.
func (h *Heap) Close() error {
	h.mu.Lock()
	if h.mu.closed {
		h.mu.Unlock()
		return errors.New("reclaim: Close called twice")
	}
	h.mu.closed = true
	// A cycle that began before Close ends first: no cycle starts from
	// now on (collect checks closed under mu), but one under way would
	// otherwise flip and sweep while Close takes the finalizers from
	// their tables (both running the same ones, or the sweep queueing
	// them after Close's last look) and releases the spans it sweeps. A
	// cycle still waiting for the world to stop gives up (the mutator it
	// waits for may be this goroutine's): wake it.
	h.mu.cond.Broadcast()
	for h.mu.stw {
		h.mu.cond.Wait()
	}
	h.mu.Unlock()

	// Let the sweep finish, so every finalizer and cleanup the last cycle
	// found is queued, and let the queues run.
	h.sweepOwn(h.sweepUntilDone)
	if h.fin.hereMode {
		// Queued finalizers wait for a mutator's safepoint, which may
		// never come now: they are taken and run below. Wait for the
		// cleanups, and for the finalizers mutators have begun.
		h.waitCleanups()
		h.waitFinalizersHere()
	} else {
		_ = h.Drain(context.Background())
	}
	h.fin.stop(h)

	// Then the finalizers and cleanups left (closeRounds), on a mutator
	// of Close's own, and the release.
	m := h.newMutator()
	m.isFing = true // finalizers run on it: a Drain in one panics, a safepoint runs no others
	h.attachClosing(m)
	c := &closing{m: m, found: math.MaxInt}
	h.finishClose(c)
	return c.err
}

// waitFinalizersHere waits until no mutator runs a finalizer at a
// safepoint (FinalizersAtSafepoints), and makes them take no more: Close
// runs what is left. A call that began before Close (at the safepoint of a
// Collect that Close waited for, say) reads its object, which Close's
// release would free under it, and may register finalizers and cleanups
// that Close's rounds must see; and the object's cleanups must not run
// before its finalizer has returned. A finalizer that calls Close on the
// mutator running it would wait for itself: once the wait passes
// FinalizerBlockThreshold it is logged, with the type of a finalizer
// running.
func (h *Heap) waitFinalizersHere() {
	f := &h.fin
	start := time.Now()
	reported := false
	for {
		ch := h.idle.wait()
		f.mu.Lock()
		f.mu.closing = true
		n := len(f.mu.inflight)
		f.mu.Unlock()
		if n == 0 {
			return
		}
		if testHookCloseWaitsHere != nil {
			testHookCloseWaitsHere(h)
		}
		if reported {
			<-ch
			continue
		}
		t := time.NewTimer(h.cfg.FinalizerBlockThreshold - time.Since(start))
		select {
		case <-ch:
		case <-t.C:
			reported = true
			name, _ := f.current()
			h.log.Warn("reclaim: Close waits for finalizers that mutators run at their safepoints (a finalizer that calls Close waits for itself)",
				"running", n, "type", name, "waited", time.Since(start).Round(time.Millisecond))
		}
		t.Stop()
	}
}

// testHookCloseWaitsHere, if set, runs each time waitFinalizersHere finds
// a finalizer in flight and is about to wait for it.
var testHookCloseWaitsHere func(h *Heap)

// closing is Close's progress through its rounds, kept so that a goroutine
// of Close's can take over when a finalizer ends the goroutine running
// them (finishClose). Owned by the goroutine running Close's rounds; handed
// over, with the goroutine's end ordered before the next one's start.
type closing struct {
	m *Mutator
	// round counts the rounds that count towards maxCloseRounds: those
	// that found no fewer finalizers and cleanups registered than the
	// round before them (closeRounds). found is how many the last round
	// found; math.MaxInt before the first.
	round int
	found int
	recs  []finRec // this round's finalizers, recs[next:] not run yet; each zeroed once run
	// held are the objects whose cleanups wait for a later round: what
	// a finalizable object whose finalizer waits for a later round
	// reaches, and what the arguments of cleanups that wait reach
	// (walkForClose).
	held    map[handle.Handle]struct{}
	next    int
	taken   bool // recs holds this round's finalizers
	busy    bool // fin.mu.busy is held for this round (takeQueuedFinalizers until releaseCloseBusy)
	calling bool // a finalizer's call is under way
	err     error
}

// finishClose runs the rest of Close from c on the calling goroutine: the
// rounds of finalizers and cleanups, then the release of the heap.
//
// Finalizers run on Close's caller, as lua_close runs __gc on its caller
// (a runtime that keeps its interpreter on a locked OS thread sees them
// there). A panic in one is contained and reported (callFinalizer), but a
// finalizer that calls runtime.Goexit (t.FailNow in a test) ends the
// caller's goroutine. Then the deferred function below reports the call as
// the finalizer goroutine reports it, retires its record, and finishes the
// close on a goroutine of its own, waiting for it before the caller's
// goroutine goes on exiting: Close does not return, as nothing called on a
// goroutine that Goexit ends does, but the heap is closed, every other
// finalizer and cleanup run, and the heap's goroutines stopped.
func (h *Heap) finishClose(c *closing) {
	defer func() {
		if !c.calling {
			// Done, or a panic of the heap's own: it goes on, and Close
			// with it, but busy must not outlive Close's round, or every
			// later Drain would wait until its context ended.
			if c.busy {
				h.releaseCloseBusy(c)
			}
			return
		}
		c.calling = false
		c.recs[c.next] = finRec{}
		c.next++
		h.fin.executed.Add(1)
		h.idle.broadcast()
		h.reportPanic("finalizer", "reclaim: finalizer called runtime.Goexit while Close ran it; Close finished on another goroutine", debug.Stack())
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.finishClose(c)
		}()
		<-done
	}()
	h.closeRounds(c)
	h.closeRelease(c.m)
}

// closeRounds runs the finalizers of objects still alive, on Close's
// mutator, then every cleanup still registered, and again, until neither
// is left: a finalizer may set another finalizer or add a cleanup, and a
// cleanup may attach a mutator and do either (the finalizer goroutine is
// stopped now, and start will not start it again: Close runs those
// finalizers here). Each round runs the finalizers of the objects that no
// other finalizable object reaches (takeUnreachedFinalizers), so a chain
// of them takes a round a link. It starts where c says, so that it can
// resume a round in its middle.
//
// A round counts towards maxCloseRounds only if it finds no fewer
// finalizers and cleanups registered than the round before it found: the
// callbacks registered as many as ran. Every other round finds fewer than
// the one before, so the rounds end; a chain of finalizable objects,
// which runs a link a round, does not count.
func (h *Heap) closeRounds(c *closing) {
	m := c.m
	for {
		if !c.taken {
			recs, nf, held := h.takeUnreachedFinalizers()
			c.held = held
			nc := h.countRegisteredCleanups()
			if nf+nc >= c.found {
				c.round++
			}
			c.found = nf + nc
			c.recs, c.next, c.taken, c.busy = h.takeQueuedFinalizers(recs), 0, true, true
		}
		if c.round == maxCloseRounds {
			// Cleanups the last round's cleanups registered are left
			// too: a chain of cleanups alone is reported as a chain of
			// finalizers is.
			if nc := h.countRegisteredCleanups(); len(c.recs) > 0 || nc > 0 {
				c.err = fmt.Errorf("reclaim: Close: finalizers and cleanups kept registering more for %d rounds; %d finalizers and %d cleanups left unrun", maxCloseRounds, len(c.recs), nc)
				h.log.Error(c.err.Error())
			}
			h.releaseCloseBusy(c)
			return
		}
		for c.next < len(c.recs) {
			h.fin.queued.Add(1)
			c.calling = true
			h.callFinalizer(m, &c.recs[c.next])
			c.calling = false
			c.recs[c.next] = finRec{} // lets go of the function, as runBlock does
			c.next++
			h.fin.executed.Add(1)
		}
		// One count serves both: the walks register nothing.
		ncl := h.countRegisteredCleanups()
		if c.next > 0 && ncl > 0 {
			// The finalizers may have registered what the walk before
			// them did not see: a finalizer (their own again, say) on
			// an object that reaches one with a cleanup, or a cleanup
			// whose argument does. Those cleanups wait as the walk's do.
			if held, ok := h.closeHeld(); ok {
				c.held = held
			}
		}
		// The round's cleanups run in waves (cleanupLevels): each one
		// before those of the objects its argument reaches.
		var levels map[handle.Handle]int32
		if ncl > 0 {
			levels = h.cleanupLevelsOnOwnGoroutine(c.held)
		}
		waves := h.takeCleanupWaves(c.held, levels)
		n := 0
		for k := range waves {
			if k > 0 {
				h.waitCleanups()
			}
			h.queueCleanupWave(&m.local, &waves[k])
			n += len(waves[k].recs)
			waves[k] = cleanupWave{}
			if k == 0 && testHookCloseCleanupsQueued != nil {
				testHookCloseCleanupsQueued(h)
			}
			h.cq.FlushOne(&m.local)
		}
		if len(waves) == 0 && testHookCloseCleanupsQueued != nil {
			testHookCloseCleanupsQueued(h)
		}
		// The calls moved Drain's counters, and the cleanups taken off
		// their lists count as pending only once published, those of
		// the last wave now: busy, held since takeQueuedFinalizers, ends
		// here, so a Drain beside Close waits for all of them.
		h.releaseCloseBusy(c)
		h.waitCleanups()
		c.taken = false
		if len(c.recs) == 0 && n == 0 {
			if c.held == nil || h.countRegisteredCleanups() == 0 {
				return
			}
			// Nothing ran, and every cleanup left waits for another
			// (each one's argument reaches the other's object, or its
			// own): no round would run them. Run them all, in slot
			// order, as a round runs a cycle of finalizers.
			c.held = nil
			h.queueAllCleanupsNow(c)
		}
	}
}

// queueAllCleanupsNow queues every cleanup left, as a round does, on the
// block of Close's mutator, and waits for them. Close calls it when no
// callback ran in a round and cleanups are still registered, every one
// waiting for another. It holds fin.mu.busy until the last is published,
// as a round does, so that a Drain beside Close waits for them.
func (h *Heap) queueAllCleanupsNow(c *closing) {
	h.fin.mu.Lock()
	h.fin.mu.busy = true // released by releaseCloseBusy, as a round's
	h.fin.mu.Unlock()
	c.busy = true
	for _, w := range h.takeCleanupWaves(nil, nil) { // one wave: no levels
		h.queueCleanupWave(&c.m.local, &w)
	}
	h.cq.FlushOne(&c.m.local)
	h.releaseCloseBusy(c)
	h.waitCleanups()
}

// testHookCloseCleanupsQueued, if set, runs in each round of Close once
// it has queued the cleanups left, before it publishes the last of them
// (those in its own block).
var testHookCloseCleanupsQueued func(h *Heap)

// closeRelease ends Close: it stops the cleanup pool and the background
// sweeper, detaches Close's mutator m and releases every span.
func (h *Heap) closeRelease(m *Mutator) {
	h.cq.Close()
	m.detach()
	h.bg.stop()
	h.mu.Lock()
	attached := len(h.mu.mutators)
	h.mu.Unlock()
	if attached != 0 { // logged without mu: the handler may call Stats
		h.log.Warn("reclaim: heap closed with mutators still attached", "mutators", attached)
	}
	// Release every span, so that a closed heap that stays referenced (a
	// Heap kept in a long-lived structure) holds none of its objects'
	// memory; handles into it then fail as handles to freed objects do.
	// The caches of mutators still attached go first: they must not be
	// used any more (see above).
	h.mu.Lock()
	h.mu.dead = true
	h.mu.Unlock()
	h.flushCaches()
	if cs := h.centrals.Load(); cs != nil {
		for _, c := range *cs {
			if c == nil {
				continue
			}
			c.mu.Lock()
			for _, s := range c.mu.partial {
				s.inPartial = false
			}
			c.mu.partial, c.mu.unswept = nil, nil
			c.mu.Unlock()
		}
	}
	h.mu.Lock()
	freed := int64(0)
	for _, s := range h.mu.allspans {
		if s.released {
			continue
		}
		for w, a := range s.allocBits {
			if s.retired != nil {
				a &^= s.retired[w]
			}
			freed += int64(bits.OnesCount64(a))
		}
		s.released = true
		h.releaseSpanLocked(s)
	}
	h.mu.allspans = nil
	// Every index's floor is now past every generation issued there:
	// releaseSpanLocked has moved it on and put the index on freeIdx,
	// unless the index retired, having issued every generation. The id's
	// next heap starts past the highest (heapIDs).
	next := h.genBase
	for _, f := range h.mu.idxFloor {
		next = max(next, f)
	}
	if len(h.mu.freeIdx) < len(h.mu.idxFloor) {
		next = handle.MaxGen // an index retired: it issued every generation
	}
	h.trimSparesLocked(-1)
	clear(h.mu.pins) // pins name objects that are gone now
	// Nothing is live now: the pacer's count, which no flip resets any
	// more, would otherwise show the bytes of the last cycle's marked
	// objects and of the spans handed out since, in a heap that holds
	// none. No mutator adds to it after this (refill panics on a dead
	// heap first; the caches are empty).
	h.heapLive.Store(0)
	h.mu.Unlock()
	h.stats.freed.Add(freed) // the objects still alive at Close go with their spans
	freeHeapID(h.id, next)
}

// waitCleanups waits until no cleanup is queued or running.
func (h *Heap) waitCleanups() {
	for {
		ch := h.idle.wait()
		if h.cq.Pending() == 0 {
			return
		}
		<-ch
	}
}

// attachClosing attaches m to a closing heap.
func (h *Heap) attachClosing(m *Mutator) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m.heap, m.home = h, h
	m.id, m.tab = h.id, h.spans
	h.mu.mutators[m] = struct{}{}
	h.mu.running++
}

// takeAllFinalizers removes every registered finalizer and returns it as
// a record to run, in slot order.
// As the sweep does when it queues a finalizer (sweepSpecials), it first
// clears the object's short weak handle: a Weak of the object is nil in
// its finalizer, and after; a LongWeak stays.
func (h *Heap) takeAllFinalizers() []finRec {
	var recs []finRec
	spans := h.spanSnapshot()
	for _, s := range spans {
		t := s.sp.fin.Load()
		if s.released || t == nil {
			continue
		}
		s.sp.mu.Lock()
		for w := 0; w*64 < len(t.fn); w++ {
			var taken uint64
			for i := w * 64; i < min(len(t.fn), (w+1)*64); i++ {
				if fn := t.fn[i]; fn != nil {
					t.fn[i] = nil
					taken |= 1 << (i % 64)
					recs = append(recs, finRec{x: s.handleAt(uint32(i)), typ: s.typ, fn: unsafe.Pointer(fn)})
				}
			}
			h.dropWeak(s, s.sp.mu.weak, w, taken)
		}
		s.sp.mu.Unlock()
	}
	return recs
}

// takeFinalizersOf is takeAllFinalizers for the objects xs, in their order:
// the finalizer of each, which it must have.
func (h *Heap) takeFinalizersOf(xs []handle.Handle) []finRec {
	recs := make([]finRec, 0, len(xs))
	for _, x := range xs {
		s, i := h.spans.get(x.Span()), x.Slot()
		t := s.sp.fin.Load()
		s.sp.mu.Lock()
		recs = append(recs, finRec{x: x, typ: s.typ, fn: unsafe.Pointer(t.fn[i])})
		t.fn[i] = nil
		h.dropWeak(s, s.sp.mu.weak, int(i/64), 1<<(i%64))
		s.sp.mu.Unlock()
	}
	return recs
}

// countRegisteredFinalizers counts the objects that have a finalizer.
// Close calls it when no callback runs.
func (h *Heap) countRegisteredFinalizers() int {
	n := 0
	for _, s := range h.spanSnapshot() {
		if t := s.sp.fin.Load(); t != nil && !s.released {
			for _, fn := range t.fn {
				if fn != nil {
					n++
				}
			}
		}
	}
	return n
}

// takeUnreachedFinalizers takes the registered finalizers that a round of
// Close runs, in the order it runs them, and returns them with the number
// of finalizers registered when it began. A round runs the finalizer of
// every object that has one but for those that a queued finalizer's
// object reaches (its finalizer runs this round too, and may use what it
// reaches) or a registered cleanup's argument (it runs after this round's
// finalizers), and orders them as collections would run them: if A
// reaches B and both have a finalizer, A's runs first, since A's
// finalizer may still use B (a collection runs A's, and B's only once A
// has been found unreachable after it). The order is closeOrder's.
//
// Objects on a cycle of finalizable objects (A reaching B reaching A, or A
// reaching itself through its fields), which no collection would
// finalize, run too, after the finalizers of what reaches the cycle and
// in no particular order among themselves: one may find another's object
// finalized. A round that finds finalizers registered but every one of
// them excluded, and nothing else to run (no queued finalizer, no
// cleanup it would queue: a cleanup whose argument reaches its own
// object, say), takes all of them, in slot order (of the spans, as they
// were made, then of the slots). If the walk fails (a Trace method
// panicked, or called runtime.Goexit), the round takes all of them too,
// and the failure is logged.
//
// held is what the finalizable objects left for a later round reach
// (closeOrder): their cleanups wait for those finalizers, as in a
// collection, which marks the referents of finalizable objects.
func (h *Heap) takeUnreachedFinalizers() ([]finRec, int, map[handle.Handle]struct{}) {
	n := h.countRegisteredFinalizers()
	if n == 0 && h.countRegisteredCleanups() == 0 {
		return nil, 0, nil
	}
	order, held, ok := h.closeOrder()
	if !ok {
		return h.takeAllFinalizers(), n, nil
	}
	if n == 0 {
		return nil, 0, held // cleanups alone: held says which wait
	}
	recs := h.takeFinalizersOf(order)
	if len(recs) > 0 || h.fin.hasQueued() || h.anyCleanupsToQueue(held) {
		// The round runs something, after which what it reached may be
		// unreached: queued finalizers, or cleanups whose arguments
		// reach finalizable objects.
		return recs, n, held
	}
	return h.takeAllFinalizers(), n, nil
}

// anyCleanupsToQueue reports whether a registered cleanup's object has no
// finalizer and is not in held: takeCleanupWaves would take it. Close
// calls it when no callback runs.
func (h *Heap) anyCleanupsToQueue(held map[handle.Handle]struct{}) bool {
	found := false
	h.eachCleanupTable(func(s *span, cl *cleanupTable) {
		fin := s.sp.fin.Load()
		for i := range cl.head {
			if found {
				return
			}
			if cleanupsWait(fin, held, s, i) {
				continue
			}
			found = hasRegisteredCleanup(cl, i)
		}
	})
	return found
}

// cleanupsWait reports whether the cleanups of slot i of s, whose
// finalizer table is fin, wait for a later round: the object has a
// finalizer (its cleanups run after it), or is in held.
func cleanupsWait(fin *finTable, held map[handle.Handle]struct{}, s *span, i int) bool {
	return fin != nil && fin.fn[i] != nil || isHeld(held, s, i)
}

// isHeld reports whether slot i of s holds an object in held.
func isHeld(held map[handle.Handle]struct{}, s *span, i int) bool {
	if len(held) == 0 {
		return false
	}
	_, ok := held[s.handleAt(uint32(i))]
	return ok
}

// closeOrder returns the objects with a finalizer that a round of Close
// runs, in the order it runs them (takeUnreachedFinalizers), from one walk
// of the heap. It first visits everything the heap's own roots other than
// the finalizable objects reach: queued finalizer records and the
// arguments of cleanups (not the embedder's roots, ScanRoots and pins:
// Close runs every finalizer, whatever they hold); a finalizable object
// visited then waits for a later round. Then, from each finalizable object
// not visited yet, in slot order, it walks depth first over what the
// object reaches and lists the finalizable objects in the order the walk
// leaves them (postorder). Reversed, that order puts A before B whenever
// A reaches B and B does not reach A: the walk leaves B before A, whether
// it came to B from A or had left B before it came to A. (On a cycle,
// each reaches the other, and either may come first.) It is one walk per
// round, so a chain of finalizable objects runs in one round, where a
// mark per round (a collection's rule, the heads first) ran one link a
// round and a mark of the whole heap for each.
//
// The edges are the mark's, but for WeakMaps, where they are
// conservative: an entry's value is reached from its table and from its
// key, whatever else holds the two (the mark traces a value only once both
// are reached), so a finalizable value runs after a finalizable key or
// table holding it. The visited set is the spans' mark bits, clear since
// the last sweep, and cleared again before closeOrder returns.
//
// held is everything the queued finalizers' objects and the finalizable
// objects visited from the roots (those that wait for a later round)
// reach, closed over the arguments of the cleanups that wait
// (walkForClose): the cleanups of those objects wait for these callbacks.
// What only the arguments of cleanups that run this round reach is not
// held: the round runs its cleanups after theirs (cleanupLevels).
//
// It walks on a goroutine of its own, which it waits for: the walk runs
// the embedder's Trace methods, and a panic or a runtime.Goexit there ends
// that goroutine only. ok is false then, and the failure logged.
//
// Close gives the walk what a stopped world provides: no collection runs
// once Close has begun, and the last one's sweep is done; the finalizer
// goroutine is stopped, and mutators run no finalizers at their
// safepoints any more (waitFinalizersHere); no cleanup is queued or
// running (Close waits for them before each round); and no attached
// mutator may be used beside Close but by the callbacks it runs, none of
// which runs during the walk.
func (h *Heap) closeOrder() (order []handle.Handle, held map[handle.Handle]struct{}, ok bool) {
	return h.walkOnOwnGoroutine(false)
}

// closeHeld is closeOrder's held alone, for a round whose finalizers have
// run: what the queued finalizers' objects and every object that has a
// finalizer now (one waiting for a later round, or one the round's
// finalizers set) reach, closed over the arguments of the cleanups that
// wait (walkForClose). Those objects' cleanups wait. ok is false if the
// walk failed (logged, as closeOrder logs it).
func (h *Heap) closeHeld() (held map[handle.Handle]struct{}, ok bool) {
	_, held, ok = h.walkOnOwnGoroutine(true)
	return held, ok
}

// walkOnOwnGoroutine runs walkForClose on a goroutine of its own, which it
// waits for (closeOrder).
func (h *Heap) walkOnOwnGoroutine(heldOnly bool) (order []handle.Handle, held map[handle.Handle]struct{}, ok bool) {
	spans := h.spanSnapshot()
	failure := onOwnGoroutine(func() {
		defer clearVisited(spans)
		order, held = h.walkForClose(spans, heldOnly)
	})
	ok = failure == nil
	if !ok && heldOnly {
		h.log.Error("reclaim: Close could not find which cleanups this round's finalizers left waiting (the walk failed: a Trace method panicked or called runtime.Goexit): it queues them as it found them before the finalizers ran",
			"failure", fmt.Sprint(failure))
		return nil, nil, false
	}
	if !ok {
		h.log.Error("reclaim: Close could not order this round's finalizers (the walk that orders them failed: a Trace method panicked or called runtime.Goexit): it runs every finalizer still registered, in slot order",
			"failure", fmt.Sprint(failure))
		return nil, nil, false
	}
	return order, held, true
}

// onOwnGoroutine runs f, which runs the embedder's Trace methods, on a
// goroutine of its own and waits for it: a panic there, or a
// runtime.Goexit, ends that goroutine only. It returns nil if f returned,
// else the panic's value, or "runtime.Goexit". What f writes (and the
// failure) the caller reads after the close of done, which orders it.
func onOwnGoroutine(f func()) (failure any) {
	failure = "runtime.Goexit"
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if v := recover(); v != nil {
				failure = v
			}
		}()
		f()
		failure = nil
	}()
	<-done
	return failure
}

// closeGraph is the graph Close's walks follow: an object's fields, and,
// for a WeakMap, its entries' values, and, for a key, the values of its
// entries (conservative, see closeOrder). Owned by the goroutine walking.
type closeGraph struct {
	h *Heap
	// byKey holds, for each key of a WeakMap entry, the handles the
	// entry's value holds: edges from the key.
	byKey map[handle.Handle][]handle.Handle
	pf    []uintptr // readAhead's addresses
}

func (h *Heap) newCloseGraph(spans []*span) *closeGraph {
	g := &closeGraph{h: h, byKey: make(map[handle.Handle][]handle.Handle)}
	for _, s := range spans {
		if s.released || s.typ.EphEach == nil {
			continue
		}
		for i := range s.nslots {
			s.typ.EphEach(s.ptr(i), func(key handle.Handle, val unsafe.Pointer, lay *layout.Type) {
				if !lay.NoRefs {
					g.byKey[key] = lay.Scan(val, g.byKey[key])
				}
			})
		}
	}
	return g
}

// children appends what x, in s, holds: its fields, and, for a WeakMap,
// its entries' values, and, for a key, the values of its entries. It
// starts reading what the walk will read of them (readAhead).
func (g *closeGraph) children(x handle.Handle, s *span, buf []handle.Handle) []handle.Handle {
	n0 := len(buf)
	buf = g.h.scanInto(x, buf)
	if s.typ.EphEach != nil {
		s.typ.EphEach(s.ptr(x.Slot()), func(_ handle.Handle, val unsafe.Pointer, lay *layout.Type) {
			if !lay.NoRefs {
				buf = lay.Scan(val, buf)
			}
		})
	}
	buf = append(buf, g.byKey[x]...)
	g.readAhead(buf[n0:])
	return buf
}

// readAhead asks for the lines a walk reads of the objects xs name when
// it comes to them: the handle word that visit checks, the object's first
// and last lines (its fields) and its finalizer table entry. A walk over
// a graph larger than the caches reads those at random, and depth first
// it waits for each in turn; asked for together as an object's children
// are found, their misses overlap (the mark reads ahead the same way,
// prefetchGrey). A handle that names no live span is skipped; a stale one
// only costs a useless prefetch.
func (g *closeGraph) readAhead(xs []handle.Handle) {
	addrs := g.pf[:0]
	for _, x := range xs {
		s := g.h.spans.get(x.Span())
		i := x.Slot()
		if s == nil || i >= uint32(len(s.hv)) {
			continue
		}
		p := uintptr(s.ptr(i))
		addrs = append(addrs, uintptr(unsafe.Pointer(&s.hv[i])), p, p+s.elemSize-1)
		if fin := s.sp.fin.Load(); fin != nil && int(i) < len(fin.fn) {
			addrs = append(addrs, uintptr(unsafe.Pointer(&fin.fn[i])))
		}
	}
	prefetch(addrs)
	g.pf = addrs
}

// visit marks x visited and returns its span, or nil if x names no live
// object or was visited already.
func (g *closeGraph) visit(x handle.Handle) *span {
	s := g.h.liveSpan(x)
	if s == nil {
		return nil
	}
	mw, bit := &s.markBits[x.Slot()/64], uint64(1)<<(x.Slot()%64)
	if old := mw.Load(); old&bit == 0 {
		mw.Store(old | bit)
		return s
	}
	return nil
}

// cleanupArgs appends what the arguments of slot i's registered cleanups
// hold, as eachRoot scans them.
func cleanupArgs(s *span, i uint32, buf []handle.Handle) []handle.Handle {
	cl := s.sp.cl.Load()
	if cl == nil || !cl.argRefs.Load() || int(i) >= len(cl.head) {
		return buf
	}
	for c := cl.head[i]; c != nil; c = c.next {
		if c.registered() {
			buf = c.r.Scan(buf)
		}
	}
	return buf
}

// hasRegisteredCleanup reports whether slot i of s has a registered
// cleanup (neither stopped nor queued).
func hasRegisteredCleanup(cl *cleanupTable, i int) bool {
	for c := cl.head[i]; c != nil; c = c.next {
		if c.registered() {
			return true
		}
	}
	return false
}

// walkForClose is closeOrder's walk. REQUIRES: what closeOrder says.
// With heldOnly (closeHeld), what every finalizable object reaches is held,
// and the walk returns no order.
//
// held is what waits for a later round: the objects that a queued
// finalizer's object or a finalizable object whose finalizer waits (one a
// registered cleanup's argument or a queued finalizer's object reaches;
// with heldOnly, every finalizable object) reaches; and, closing that
// over cleanups, what the arguments of the registered cleanups of those
// objects and of finalizable objects reach (a cleanup that does not run
// this round keeps what its argument reaches alive). An object that only
// the arguments of cleanups that may run this round reach is not held:
// the round runs its cleanups after theirs (cleanupLevels).
func (h *Heap) walkForClose(spans []*span, heldOnly bool) ([]handle.Handle, map[handle.Handle]struct{}) {
	g := h.newCloseGraph(spans)
	var buf []handle.Handle
	// The heap's own roots: the queued finalizers' objects, and the
	// arguments of cleanups.
	var finRoots, argRoots []handle.Handle
	h.eachRoot(false, false, func(kind string, _, x handle.Handle) {
		if kind == rootFinQueue {
			finRoots = append(finRoots, x)
		} else {
			argRoots = append(argRoots, x)
		}
	})
	// walk visits, depth first, what stack reaches; with args, through
	// registered cleanups' arguments too.
	walk := func(stack []handle.Handle, args bool) {
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if s := g.visit(x); s != nil {
				buf = g.children(x, s, buf[:0])
				if args {
					buf = cleanupArgs(s, x.Slot(), buf)
				}
				stack = append(stack, buf...)
			}
		}
	}
	// finalizable lists the objects that have a finalizer.
	var finalizable []handle.Handle
	for _, s := range spans {
		if fin := s.sp.fin.Load(); fin != nil && !s.released {
			for i, fn := range fin.fn {
				if fn != nil {
					finalizable = append(finalizable, s.handleAt(uint32(i)))
				}
			}
		}
	}
	var post []handle.Handle
	// waiting are the finalizable objects whose finalizers wait for a
	// later round: every one with heldOnly, else those the heap's own
	// roots reach.
	waiting := finalizable
	if !heldOnly && len(finalizable) > 0 {
		// What the heap's own roots reach, finalizable objects aside: a
		// finalizable object visited waits for a later round.
		walk(append(slices.Clone(finRoots), argRoots...), false)
		waiting = nil
		for _, x := range finalizable {
			if s := h.spans.get(x.Span()); s.isMarked(x.Slot()) {
				waiting = append(waiting, x)
			}
		}
		// Depth first from each finalizable object not visited, in
		// slot order. A frame is a handle, with post set once its
		// children are pushed: popped again, the walk leaves it.
		type frame struct {
			x    handle.Handle
			post bool
		}
		var frames []frame
		for _, x := range finalizable {
			frames = append(frames[:0], frame{x: x})
			for len(frames) > 0 {
				f := frames[len(frames)-1]
				frames = frames[:len(frames)-1]
				if f.post {
					if h.finalizable(f.x) {
						post = append(post, f.x)
					}
					continue
				}
				ys := g.visit(f.x)
				if ys == nil {
					continue
				}
				frames = append(frames, frame{x: f.x, post: true})
				buf = g.children(f.x, ys, buf[:0])
				for _, c := range buf {
					frames = append(frames, frame{x: c})
				}
			}
		}
		slices.Reverse(post)
		clearVisited(spans)
	}
	// The cleanups of what a queued finalizer's object or a waiting
	// finalizable object reaches wait: that callback may still use them
	// (a collection keeps them alive until it has run; it marks the
	// referents of finalizable objects). So do those of what the
	// arguments of cleanups that do not run this round reach: those of
	// the objects just found, and those of finalizable objects (an
	// object's cleanups run after its finalizer).
	roots := append(slices.Clone(finRoots), waiting...)
	for _, x := range finalizable {
		if s := h.liveSpan(x); s != nil {
			roots = cleanupArgs(s, x.Slot(), roots)
		}
	}
	walk(roots, true)
	var held map[handle.Handle]struct{}
	for _, s := range spans {
		cl := s.sp.cl.Load()
		if s.released || cl == nil {
			continue
		}
		for i, c := range cl.head {
			if c != nil && s.isMarked(uint32(i)) {
				if held == nil {
					held = make(map[handle.Handle]struct{})
				}
				held[s.handleAt(uint32(i))] = struct{}{}
			}
		}
	}
	if heldOnly {
		return nil, held
	}
	return post, held
}

// clearVisited clears the mark bits closeOrder's walk set.
func clearVisited(spans []*span) {
	for _, s := range spans {
		for w := range s.markBits {
			if s.markBits[w].Load() != 0 {
				s.markBits[w].Store(0)
			}
		}
	}
}

// takeQueuedFinalizers appends the queued finalizers to recs, the
// registered ones takeUnreachedFinalizers took, and returns the records for
// Close to run. fin.mu.busy holds from here until releaseCloseBusy, so
// that a Drain beside Close waits for them: taken off the queue (and, with
// FinalizersAtSafepoints, off pending), they are queued or running still.
// It holds on while Close queues the round's cleanups, until the last of
// them is published: before, those in Close's own block are counted
// nowhere (cleanupq.Queue.Pending counts published records only).
func (h *Heap) takeQueuedFinalizers(recs []finRec) []finRec {
	f := &h.fin
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.busy = true
	for b := f.mu.q; b != nil; b = b.next {
		recs = append(recs, b.recs[:b.n]...)
		f.queued.Add(-int64(b.n)) // counted again when run
		if f.hereMode {
			f.pending.Add(-int64(b.n))
		}
		b.n = 0
	}
	f.mu.q, f.mu.nq = nil, 0
	return recs
}

// releaseCloseBusy ends the busy of takeQueuedFinalizers, once Close has
// run the round's finalizers (each counted executed first) and published
// the cleanups it queued (counted queued by the publish), and wakes Drain.
// finishClose calls it too if a panic of the heap's own ends a round.
func (h *Heap) releaseCloseBusy(c *closing) {
	f := &h.fin
	f.mu.Lock()
	f.mu.busy = false
	f.mu.Unlock()
	c.busy = false
	h.idle.broadcast()
}

// countRegisteredCleanups counts the cleanups still registered (neither
// stopped nor queued). Close calls it when no cleanup runs; it reads the
// lists as takeCleanupWaves does.
func (h *Heap) countRegisteredCleanups() int {
	n := 0
	h.eachCleanupTable(func(_ *span, cl *cleanupTable) {
		for _, c := range cl.head {
			for ; c != nil; c = c.next {
				if c.registered() {
					n++
				}
			}
		}
	})
	return n
}

// eachCleanupTable calls f with the cleanup table of every span in use
// that has one.
func (h *Heap) eachCleanupTable(f func(s *span, cl *cleanupTable)) {
	for _, s := range h.spanSnapshot() {
		if cl := s.sp.cl.Load(); cl != nil && !s.released {
			f(s, cl)
		}
	}
}
