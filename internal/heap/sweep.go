package heap

import (
	"context"
	"math/bits"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/cleanupq"
	"github.com/reclaimgc/reclaim/internal/handle"
)

// Sweeping. See heap.go, steps 6-8, and span.sweepgen for the state table.
//
// Sweepers are mutators sweeping lazily (refill, specials, weak Value),
// the background sweeper, and the leader finishing a sweep with the world
// stopped. activeSweep counts the sweepers at work, as the runtime's does,
// so that the last one out can tell it is last: once the sweep list is
// drained and the count falls to zero, sweeping is complete, and that
// sweeper wakes the finalizer goroutine and flushes the cleanup blocks.

const sweepDrainedMask = 1 << 31

// activeSweep is the runtime's activeSweep: the low bits count active
// sweepers, the top bit says the sweep list is drained.
//
//	state                       meaning
//	n                           n sweepers active, spans may remain
//	drained | n (n > 0)         no span left to claim; n sweepers finishing
//	drained | 0                 sweep complete for this cycle
type activeSweep struct {
	// state is changed only by CAS (begin, end, markDrained) from any
	// sweeper, and stored by the flip (0: world stopped, h.mu held; no
	// sweeper is active then) and by New.
	state atomic.Uint32
}

// begin registers a sweeper; ok is false if the sweep is already drained.
func (a *activeSweep) begin() bool {
	for {
		st := a.state.Load()
		if st&sweepDrainedMask != 0 {
			return false
		}
		if a.state.CompareAndSwap(st, st+1) {
			return true
		}
	}
}

// end deregisters a sweeper and reports whether it was the last one of a
// drained cycle.
func (a *activeSweep) end() (last bool) {
	for {
		st := a.state.Load()
		if st&^sweepDrainedMask == 0 {
			panic("reclaim: internal error: activeSweep end without begin")
		}
		if a.state.CompareAndSwap(st, st-1) {
			return st-1 == sweepDrainedMask
		}
	}
}

// markDrained records that no span is left to claim; true for the caller
// that set it.
func (a *activeSweep) markDrained() bool {
	for {
		st := a.state.Load()
		if st&sweepDrainedMask != 0 {
			return false
		}
		if a.state.CompareAndSwap(st, st|sweepDrainedMask) {
			return true
		}
	}
}

func (a *activeSweep) isDone() bool { return a.state.Load() == sweepDrainedMask }

type sweepState struct {
	active activeSweep
	// next is the index of the next span of list to claim: taken by
	// atomic Add by sweepers (sweepone), reset to 0 by the flip.
	next atomic.Int64
	// list is the cycle's sweep list, a snapshot taken in the flip; read
	// by sweepers without a lock (it is immutable until the next flip).
	list atomic.Pointer[[]*span]
	// done mirrors active.isDone() after the finishing work has been done;
	// set by the last sweeper (sweepDone, after its Flush), cleared by the
	// flip. Read lock-free by sweepUntilDone, Drain, Verify and refill.
	done atomic.Bool
}

// trySweep sweeps s if it still needs sweeping and reports whether this call
// swept it. If another sweeper holds it, trySweep does not wait.
func (h *Heap) trySweep(s *span, local *cleanupq.Local) bool {
	hg := h.sweepgen.Load()
	if s.sweepgen.Load() != hg-2 {
		return false
	}
	if !h.sweep.active.begin() {
		return false
	}
	swept := false
	if s.sweepgen.CompareAndSwap(hg-2, hg-1) {
		h.sweepSpan(s, local)
		swept = true
	}
	if h.sweep.active.end() {
		h.sweepDone()
	}
	return swept
}

// ensureSwept returns once s is swept, sweeping it itself if needed, like
// the runtime's mspan.ensureSwept. Called before a span's specials are
// touched.
func (h *Heap) ensureSwept(s *span, local *cleanupq.Local) {
	hg := h.sweepgen.Load()
	if s.sweepgen.Load() == hg {
		return
	}
	if testHookEnsureSwept != nil {
		testHookEnsureSwept()
	}
	h.trySweep(s, local)
	// Swept in cycle hg or a later one: a caller that is not a running
	// mutator (Pin) does not hold collections off, and a flip and the next
	// cycle's sweep of s may come between two looks, moving s past hg.
	for spins := 0; int32(s.sweepgen.Load()-hg) < 0; spins++ {
		yield(spins) // another sweeper holds it; sweeping a span is short
	}
}

// testHookEnsureSwept, if set, runs in ensureSwept once it has read the
// heap's sweep generation and found the span unswept (a test's window on a
// collection that a caller without a running mutator lets run).
var testHookEnsureSwept func()

// sweepone claims and sweeps the next span of the sweep list. It returns
// false once the list is drained.
func (h *Heap) sweepone(local *cleanupq.Local) bool {
	if !h.sweep.active.begin() {
		return false
	}
	list := h.sweep.list.Load()
	hg := h.sweepgen.Load()
	more := false
	for {
		i := h.sweep.next.Add(1) - 1
		if list == nil || i >= int64(len(*list)) {
			h.sweep.active.markDrained()
			break
		}
		s := (*list)[i]
		if s.sweepgen.Load() == hg-2 && s.sweepgen.CompareAndSwap(hg-2, hg-1) {
			h.sweepSpan(s, local)
			more = true
			break
		}
	}
	if h.sweep.active.end() {
		h.sweepDone()
	}
	return more
}

// sweepUntilDone helps sweep until the cycle's sweep is complete.
func (h *Heap) sweepUntilDone(local *cleanupq.Local) {
	for h.sweepone(local) {
	}
	for spins := 0; !h.sweep.done.Load(); spins++ {
		yield(spins) // the last sweepers are finishing their spans
	}
}

// sweepOwn runs sweep, which sweeps into a cleanup block of the calling
// goroutine, one that is not a mutator (Pin, Verify, Close), then
// publishes the block. The block is registered with the heap while sweep
// runs, so that if one of its sweeps is the cycle's last, sweepDone
// publishes it with the others before it says the sweep is done: flushed
// only after, its cleanups would be neither pending nor run when Drain
// found the sweep done, and Drain would return without them.
func (h *Heap) sweepOwn(sweep func(local *cleanupq.Local)) {
	var local cleanupq.Local
	h.mu.Lock()
	h.mu.locals[&local] = struct{}{}
	h.mu.Unlock()
	sweep(&local)
	// Under mu, as sweepDone's Flush: whichever comes first publishes.
	h.mu.Lock()
	delete(h.mu.locals, &local)
	h.cq.FlushOne(&local)
	h.mu.Unlock()
}

// testHookPinSwept, if set, runs in Pin between its sweep and the
// publishing of its cleanup block (a test's window on sweepOwn).
var testHookPinSwept func()

// finishSweep sweeps whatever the previous cycle left, with the world
// stopped, like the runtime's finishsweep_m.
func (h *Heap) finishSweep() {
	h.sweepUntilDone(&h.stwLocal)
}

// sweepDone is run by the last sweeper of a cycle (seed 001, seed 004):
// nothing is being swept and nothing is left, so every finalizer and
// cleanup this cycle queues is queued.
func (h *Heap) sweepDone() {
	h.mu.Lock()
	locals := make([]*cleanupq.Local, 0, len(h.mu.mutators)+len(h.mu.locals)+2)
	for m := range h.mu.mutators {
		locals = append(locals, &m.local)
	}
	for l := range h.mu.locals {
		locals = append(locals, l)
	}
	locals = append(locals, &h.bg.local, &h.stwLocal)
	h.cq.Flush(locals)
	h.mu.Unlock()
	h.wakefing()
	h.sweep.done.Store(true)
	h.idle.broadcast()
}

// sweepSpan sweeps a span its caller has claimed (sweepgen hg-1).
func (h *Heap) sweepSpan(s *span, local *cleanupq.Local) {
	hg := h.sweepgen.Load()
	if s.sp.any() {
		h.sweepSpecials(s, local)
	}

	// Free every allocated, unmarked slot: advance its generation (a stale
	// handle never matches again), then zero its memory. Bits are handled a
	// word (64 slots) at a time: dead = alloc &^ mark. The generation stores
	// (storeFreedGen: published by the sweepgen store below) all come first
	// and the zeroing after, one clear per run of dead slots.
	// The runtime's sweeper needs none of this per-object work (it swaps
	// allocBits for gcmarkBits); generations are what make reclaim's
	// handles safe to keep.
	var deadBits [handle.MaxSlots / 64]uint64
	freed, live := 0, 0
	for w := range s.allocBits {
		marked := s.markBits[w].Load()
		mark := marked
		dead := s.allocBits[w] &^ mark
		if s.retired != nil {
			dead &^= s.retired[w]
			mark |= s.retired[w]
		}
		for d := dead; d != 0; d &= d - 1 {
			b := bits.TrailingZeros64(d)
			i := uint32(w*64 + b)
			g := s.gen(i) + 1
			// The word moves to g even for a slot retired below, so that
			// the freed object's handles stop matching it at once.
			x := handle.Pack(h.id, s.idx, i, g)
			storeFreedGen(&s.hv[i], uint64(x))
			s.markTags[i] = markTag(x)
			if g >= handle.MaxGen {
				// Generation exhausted: retire the slot (kept allocated,
				// never handed out again) rather than let a handle ever
				// alias a new object.
				if s.retired == nil {
					s.retired = make([]uint64, len(s.allocBits))
				}
				s.retired[w] |= 1 << b
				mark |= 1 << b
				s.markTags[i] = 0 // kept allocated, never handed out again
			}
		}
		deadBits[w] = dead
		freed += bits.OnesCount64(dead)
		live += bits.OnesCount64(mark)
		s.allocBits[w] = mark
		if marked != 0 {
			s.markBits[w].Store(0)
		}
	}
	if freed > 0 {
		h.clearDead(s, deadBits[:len(s.allocBits)])
		h.stats.freed.Add(int64(freed))
	}
	s.resetAlloc()
	s.nfree = s.nslots - uint32(live)

	empty := live == 0 && s.sp.n.Load() == 0
	release := empty && s.wasEmpty
	s.wasEmpty = empty
	s.sweepgen.Store(hg)

	c := h.central(s.typ)
	c.mu.Lock()
	if release && !s.cached && !s.inPartial {
		s.released = true
		c.mu.Unlock()
		h.mu.Lock()
		h.releaseSpanLocked(s)
		h.mu.Unlock()
		return
	}
	if s.nfree > 0 && !s.cached && !s.inPartial {
		s.inPartial = true
		c.mu.partial = append(c.mu.partial, s)
	}
	c.mu.Unlock()
}

// clearDead zeroes the freed objects of s whose slots dead (a bitmap, one
// bit per slot) names. Objects of types without Go pointers are zeroed one
// run of consecutive slots at a time, with one clear (memclr) per run;
// objects holding Go pointers with typed stores, one by one, so that Go's
// collector can release what they referenced. An ephemeron table (which
// holds Go pointers: a WeakMap's map), zeroed, gets its heap's id back
// (Type.EphHeapOff) before its slot can be allocated again.
func (h *Heap) clearDead(s *span, dead []uint64) {
	if s.elemSize == 0 {
		return
	}
	if s.typ.Layout.HasPointers {
		for w, d := range dead {
			for ; d != 0; d &= d - 1 {
				i := uint32(w*64 + bits.TrailingZeros64(d))
				s.typ.Clear(s.ptr(i))
				if s.typ.EphEach != nil {
					h.setEphHeap(s, i)
				}
			}
		}
		return
	}
	n := uint32(len(dead) * 64)
	for i := uint32(0); i < n; {
		// Skip to the next dead slot, then to the end of its run.
		w := i / 64
		d := dead[w] >> (i % 64)
		if d == 0 {
			i = (w + 1) * 64
			continue
		}
		i += uint32(bits.TrailingZeros64(d))
		j := i
		for j < n {
			w := j / 64
			alive := ^dead[w] >> (j % 64)
			if alive != 0 {
				j += uint32(bits.TrailingZeros64(alive))
				break
			}
			j = (w + 1) * 64
		}
		j = min(j, s.nslots)
		clear(unsafe.Slice((*byte)(s.ptr(i)), uintptr(j-i)*s.elemSize))
		i = j
	}
}

// bgSweeper is the heap's background sweeper goroutine.
type bgSweeper struct {
	// local is filled by the background sweeper's sweeps; emptied by the
	// cycle's last sweeper (sweepDone, h.mu held, no sweep active); read
	// by the mark's ScanRoots.
	local cleanupq.Local
	// The channels are made by start, in New, and not changed after.
	wakeC chan struct{} // token: a flip happened
	stopC chan struct{} // closed by stop (Close), once
	doneC chan struct{} // closed when the goroutine exits
	once  sync.Once     // guards close(stopC): stop may be called again
}

func (b *bgSweeper) start(h *Heap) {
	b.wakeC = make(chan struct{}, 1)
	b.stopC = make(chan struct{})
	b.doneC = make(chan struct{})
	go pprof.Do(context.Background(), pprof.Labels("reclaim.heap", itoa(h.id), "reclaim.worker", "sweep"), func(ctx context.Context) {
		defer close(b.doneC)
		for {
			select {
			case <-b.wakeC:
			case <-b.stopC:
				return
			}
			// One region per wake: the spans it sweeps after a flip.
			trace.WithRegion(ctx, "reclaim.backgroundSweep", func() {
				for h.sweepone(&b.local) {
				}
			})
		}
	})
}

func (b *bgSweeper) wake() {
	select {
	case b.wakeC <- struct{}{}:
	default:
	}
}

// stop ends the goroutine for good and returns once it has exited: no
// sweep of it is running then, and none starts after. It may be called more
// than once (Close calls it, and tests that need spans left unswept call it
// before Close). A wake after stop leaves a token nobody takes, which is
// harmless: wakeC has room for one and wake never blocks. What it would
// have swept is then left to the other sweepers: mutators (lazy sweeps,
// Collect, Mutator.Drain) and the next cycle's finishSweep.
func (b *bgSweeper) stop() {
	b.once.Do(func() { close(b.stopC) })
	<-b.doneC
}
