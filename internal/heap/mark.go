package heap

import (
	"context"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reclaimgc/reclaim/internal/cleanupq"
	"github.com/reclaimgc/reclaim/internal/handle"
)

// The mark phase (heap.go, step 4). The world is stopped; the leader gathers
// the roots, greys them, and MarkWorkers workers drain the grey objects in
// parallel. The runtime's gcWork is the model: each worker keeps a private
// stack of grey handles, spills half of it to a shared pool when others are
// idle and its stack is long, and takes whole buffers from the pool when its
// own runs dry. Termination: a worker that finds the pool empty waits; when
// every worker waits with the pool empty, marking is complete.

var bgctx = context.Background()

// markStats is what one mark found.
type markStats struct {
	objects, bytes int64
	stale          int64 // handles to freed objects found in live ones
	foreign        int64 // handles of another heap found in live ones
	roots          int
	pruned         int // ephemeron entries deleted
	duration       time.Duration
}

// spillLen is the length past which a worker spills half its stack.
const spillLen = 512

// workPool is the shared pool of grey buffers.
type workPool struct {
	mu struct {
		sync.Mutex
		bufs  [][]handle.Handle
		nwait int
		done  bool
	}
	cond     sync.Cond    // on mu; signalled when a buffer arrives or marking ends
	waiting  atomic.Int32 // mirrors mu.nwait, read lock-free as the "others are hungry" hint
	nworkers int          // immutable during a mark
}

func (p *workPool) put(buf []handle.Handle) {
	p.mu.Lock()
	p.mu.bufs = append(p.mu.bufs, buf)
	p.mu.Unlock()
	p.cond.Signal()
}

// get returns a buffer of grey handles, or nil when marking is complete.
func (p *workPool) get() []handle.Handle {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.mu.bufs) == 0 {
		if p.mu.done {
			return nil
		}
		p.mu.nwait++
		p.waiting.Store(int32(p.mu.nwait))
		if p.mu.nwait == p.nworkers {
			p.mu.done = true
			p.cond.Broadcast()
			return nil
		}
		p.cond.Wait()
		p.mu.nwait--
		p.waiting.Store(int32(p.mu.nwait))
	}
	n := len(p.mu.bufs)
	b := p.mu.bufs[n-1]
	p.mu.bufs = p.mu.bufs[:n-1]
	return b
}

type markWorker struct {
	h       *Heap
	pool    *workPool
	stack   []handle.Handle
	scratch []handle.Handle
	// ephq holds ephemeron values whose keys are live, to trace
	// (ephemeron.go); scratchEph is their scan buffer.
	ephq       []ephEntry
	scratchEph []handle.Handle
	st         markStats
}

// grey marks x and pushes it for scanning if it was not marked yet.
func (w *markWorker) grey(x handle.Handle) {
	if x.Heap() != w.h.id {
		w.st.foreign++
		return
	}
	s := w.h.spans.get(x.Span())
	i := x.Slot()
	if s == nil || i >= uint32(len(s.hv)) || s.hv[i].Load() != uint64(x) {
		w.st.stale++
		return
	}
	word := &s.markBits[i/64]
	bit := uint64(1) << (i % 64)
	if word.Load()&bit != 0 || word.Or(bit)&bit != 0 {
		return
	}
	w.st.objects++
	w.st.bytes += int64(s.elemSize)
	if !s.typ.Layout.NoRefs || s.typ.EphEach != nil {
		w.stack = append(w.stack, x)
	}
	if w.h.eph.npending.Load() > 0 {
		if k := s.ephKeys.Load(); k != nil && (*k)[i/64].Load()&bit != 0 {
			w.released(s, i)
		}
	}
}

// scanInto appends the handles held by the live object x to buf.
func (h *Heap) scanInto(x handle.Handle, buf []handle.Handle) []handle.Handle {
	s := h.spans.get(x.Span())
	if s == nil || s.typ.Layout.NoRefs {
		return buf
	}
	return s.typ.Layout.Scan(s.ptr(x.Slot()), buf)
}

func (w *markWorker) drain() {
	for {
		for n := len(w.stack); n > 0 || len(w.ephq) > 0; n = len(w.stack) {
			if n == 0 {
				w.traceEph()
				continue
			}
			x := w.stack[n-1]
			w.stack = w.stack[:n-1]
			// Only marked, live handles are pushed, so the span exists.
			s := w.h.spans.get(x.Span())
			if s.typ.EphEach != nil {
				w.scanTable(x, s)
			}
			if !s.typ.Layout.NoRefs {
				w.scratch = s.typ.Layout.Scan(s.ptr(x.Slot()), w.scratch[:0])
			} else {
				w.scratch = w.scratch[:0]
			}
			for _, c := range w.scratch {
				w.grey(c)
			}
			if len(w.stack) > spillLen && w.pool.waiting.Load() > 0 {
				half := len(w.stack) / 2
				w.pool.put(slices.Clone(w.stack[half:]))
				w.stack = w.stack[:half]
			}
		}
		b := w.pool.get()
		if b == nil {
			return
		}
		w.stack = append(w.stack, b...)
	}
}

// mark runs the mark phase. REQUIRES: world stopped.
func (h *Heap) mark(ctx context.Context) markStats {
	start := time.Now()
	roots := h.gatherRoots(nil)
	nw := h.cfg.MarkWorkers
	pool := &workPool{nworkers: nw}
	pool.cond.L = &pool.mu.Mutex
	workers := make([]*markWorker, nw)
	for i := range workers {
		workers[i] = &markWorker{h: h, pool: pool}
	}
	w0 := workers[0]
	for _, x := range roots {
		w0.grey(x)
	}
	// Hand the grey roots out so every worker starts with work.
	if nw > 1 && len(w0.stack) > 1 {
		per := (len(w0.stack) + nw - 1) / nw
		for len(w0.stack) > per {
			k := len(w0.stack) - per
			pool.put(slices.Clone(w0.stack[k:]))
			w0.stack = w0.stack[:k]
		}
	}
	var wg sync.WaitGroup
	for _, w := range workers[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pprof.Do(ctx, pprof.Labels("reclaim.worker", "mark"), func(context.Context) { w.drain() })
		}()
	}
	w0.drain()
	wg.Wait()
	ms0 := h.finishEphemerons()
	if remarkCheck != nil { // the invariants build tag: verify_invariants.go
		remarkCheck(h, roots)
	}

	var ms markStats
	for _, w := range workers {
		ms.objects += w.st.objects
		ms.bytes += w.st.bytes
		ms.stale += w.st.stale
		ms.foreign += w.st.foreign
	}
	ms.roots = len(roots)
	ms.pruned = ms0
	ms.duration = time.Since(start)
	if ms.stale > 0 || ms.foreign > 0 {
		h.log.Warn("reclaim: live objects hold refs that name no live object of this heap (refs kept across a safepoint, or stored from another heap)",
			"stale", ms.stale, "foreign", ms.foreign)
	}
	if h.cfg.DebugCycles {
		trace.WithRegion(ctx, "reclaim.debugCycles", h.reportFinalizerCycles)
	}
	return ms
}

// Root kinds, as RetainingPath reports them.
const (
	rootPinned      = "pinned"
	rootScanRoots   = "reported by ScanRoots"
	rootFinQueue    = "queued for finalization"
	rootCleanupArg  = "argument of a cleanup"
	rootFinReferent = "referenced by a finalizable object"
)

// gatherRoots appends every root handle: pinned objects, the embedder's
// roots, queued finalizer records, cleanup arguments (queued and
// registered), and the referents of finalizable objects (seed 003: the
// object is scanned, not marked).
func (h *Heap) gatherRoots(buf []handle.Handle) []handle.Handle {
	h.eachRoot(func(_ string, from, x handle.Handle) { buf = append(buf, x) })
	return buf
}

// eachRoot calls add for every root, with its kind and, for the referents
// of finalizable objects, the finalizable object.
// REQUIRES: world stopped.
func (h *Heap) eachRoot(add func(kind string, from, x handle.Handle)) {
	h.mu.Lock()
	for x := range h.mu.pins {
		add(rootPinned, 0, x)
	}
	spans := h.spansLocked()
	locals := h.cleanupLocalsLocked()
	h.mu.Unlock()
	if h.cfg.ScanRoots != nil {
		h.cfg.ScanRoots(func(x handle.Handle) {
			if x != 0 {
				add(rootScanRoots, 0, x)
			}
		})
	}
	var buf []handle.Handle
	buf = h.fin.scanRoots(buf[:0])
	for _, x := range buf {
		add(rootFinQueue, 0, x)
	}
	buf = h.cq.ScanRoots(locals, buf[:0])
	for _, x := range buf {
		add(rootCleanupArg, 0, x)
	}
	for _, s := range spans {
		if !s.sp.any() {
			continue
		}
		if fin := s.sp.fin.Load(); fin != nil && !s.typ.Layout.NoRefs {
			for i := range fin.fn {
				if fin.fn[i] != nil {
					buf = s.typ.Layout.Scan(s.ptr(uint32(i)), buf[:0])
					if len(buf) == 0 {
						continue // no referents: skip the slot's handle word too
					}
					from := s.handleAt(uint32(i))
					for _, x := range buf {
						add(rootFinReferent, from, x)
					}
				}
			}
		}
		if cl := s.sp.cl.Load(); cl != nil {
			for i := range cl.head {
				for c := cl.head[i]; c != nil; c = c.next {
					if !c.registered() {
						continue // stopped: its argument is not kept alive
					}
					buf = c.r.Scan(buf[:0])
					for _, x := range buf {
						add(rootCleanupArg, 0, x)
					}
				}
			}
		}
	}
}

// REQUIRES: h.mu held.
func (h *Heap) cleanupLocalsLocked() []*cleanupq.Local {
	locals := make([]*cleanupq.Local, 0, len(h.mu.mutators)+2)
	for m := range h.mu.mutators {
		locals = append(locals, &m.local)
	}
	return append(locals, &h.bg.local, &h.stwLocal)
}

// flip ends the mark: every span now needs sweeping (heap.go, step 5).
// REQUIRES: world stopped.
func (h *Heap) flip(ms markStats) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweepgen.Add(2)
	live := h.mu.allspans[:0]
	for _, s := range h.mu.allspans {
		if !s.released {
			live = append(live, s)
		}
	}
	clear(h.mu.allspans[len(live):])
	h.mu.allspans = live
	list := slices.Clone(live)
	var cs []*central
	if p := h.centrals.Load(); p != nil {
		cs = *p
	}
	for _, c := range cs {
		if c == nil {
			continue
		}
		c.mu.Lock()
		for _, s := range c.mu.partial {
			s.inPartial = false
		}
		c.mu.partial = c.mu.partial[:0]
		c.mu.unswept = c.mu.unswept[:0]
		c.mu.Unlock()
	}
	for _, s := range list {
		c := cs[s.typ.ID]
		c.mu.Lock()
		c.mu.unswept = append(c.mu.unswept, s)
		c.mu.Unlock()
	}
	h.sweep.next.Store(0)
	h.sweep.list.Store(&list)
	h.sweep.done.Store(false)
	h.sweep.active.state.Store(0)

	ext := h.external.Load()
	h.mu.pacer.EndCycle(ms.bytes, ext)
	h.extBase.Store(ext)
	h.goal.Store(h.mu.pacer.Goal())
	h.heapLive.Store(ms.bytes)
	h.stats.endCycle(ms)
}
