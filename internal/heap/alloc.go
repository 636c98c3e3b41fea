package heap

import (
	"errors"
	"math"
	"math/bits"
	"sync"

	"github.com/reclaimgc/reclaim/internal/cleanupq"
	"github.com/reclaimgc/reclaim/internal/handle"
)

// ErrMemoryLimit is returned when an allocation would take the heap past its
// memory limit.
var ErrMemoryLimit = errors.New("reclaim: memory limit reached")

// central holds one heap's spans of one type that are not cached by a
// mutator, like the runtime's mcentral.
type central struct {
	// mu protects the lists, and the list and cache membership flags of
	// the type's spans (span.inPartial, cached, released).
	mu struct {
		sync.Mutex
		partial []*span // swept spans with free slots; span.inPartial set
		// unswept is this cycle's spans still to sweep, refilled by the
		// flip (world stopped) and popped by takeSpan; it may hold spans
		// already swept by others (skipped).
		unswept []*span
	}
}

// central returns h's central for type t, creating it. The centrals slice
// is copied on growth and published atomically, so lookups take no lock.
func (h *Heap) central(t *Type) *central {
	if cs := h.centrals.Load(); cs != nil && int(t.ID) < len(*cs) {
		if c := (*cs)[t.ID]; c != nil {
			return c
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.centralLocked(t)
}

// REQUIRES: h.mu held.
func (h *Heap) centralLocked(t *Type) *central {
	var cs []*central
	if p := h.centrals.Load(); p != nil {
		cs = *p
	}
	if int(t.ID) < len(cs) && cs[t.ID] != nil {
		return cs[t.ID]
	}
	n := make([]*central, max(len(cs), int(t.ID)+1))
	copy(n, cs)
	c := new(central)
	n[t.ID] = c
	h.centrals.Store(&n)
	return c
}

// noSpan is the cache entry of a type for which a mutator caches no span:
// its allocCache is 0, so AllocFast fails on it without a nil check. It is
// never written.
var noSpan = &span{}

// Alloc allocates a zeroed object of type t.
func (m *Mutator) Alloc(t *Type) (handle.Handle, error) {
	if x, ok := m.AllocFast(t); ok {
		return x, nil
	}
	return m.AllocMore(t)
}

// AllocFast is Alloc's fast path, small enough to inline into the public
// package's allocation: it takes the next free slot of the mutator's cached
// span from its allocCache, and fails (ok false) when there is none; the
// caller then calls AllocMore. It does not count the object: the mutator
// counts a cached span's allocations from its nfree (countAllocs).
func (m *Mutator) AllocFast(t *Type) (handle.Handle, bool) {
	if int(t.ID) >= len(m.cache) {
		return 0, false
	}
	s := m.cache[t.ID]
	if s.allocCache == 0 {
		return 0, false
	}
	// span.nextFreeFast, written out to fit the inlining budget.
	c := s.allocCache
	b := uint32(bits.TrailingZeros64(c))
	i := s.freeIndex + b
	s.allocCache = c >> b >> 1
	s.freeIndex = i + 1
	s.nfree--
	return handle.Handle(s.hv[i].Load()), true
}

// AllocMore is Alloc once AllocFast has failed: it looks further along the
// cached span, else takes another span.
func (m *Mutator) AllocMore(t *Type) (handle.Handle, error) {
	if int(t.ID) < len(m.cache) {
		if s := m.cache[t.ID]; s != noSpan {
			if i, ok := s.nextFreeSlow(); ok {
				return s.handleAt(i), nil
			}
		}
	}
	return m.allocSlow(t)
}

func (m *Mutator) allocSlow(t *Type) (handle.Handle, error) {
	h := m.enter("New")
	defer m.leave()
	if h.cfg.SafepointOnAlloc {
		m.yieldToCollection(h) // may empty the cache
	}
	for int(t.ID) >= len(m.cache) {
		m.cache = append(m.cache, noSpan)
	}
	if s := m.cache[t.ID]; s != noSpan { // full: Alloc's fast path failed on it
		m.cache[t.ID] = noSpan
		m.countAllocs(s)
		h.uncache(s)
	}
	s, err := h.refill(m, t)
	if err == ErrMemoryLimit && h.cfg.SafepointOnAlloc {
		// The refusal made a collection due, and this allocation is a
		// safepoint: run it here and try once more, as Lua collects
		// before it reports an allocation failure. Without this, New
		// failed on a heap of garbage whenever a span did not fit in the
		// goal's headroom (the pacer bounds it at half the limit's share
		// for objects), and the collection ran only at the next
		// allocation.
		m.yieldToCollection(h)
		s, err = h.refill(m, t)
	}
	if err == ErrMemoryLimit {
		h.stats.limitHits.Add(1)
	}
	if err != nil {
		return 0, err
	}
	m.cache[t.ID] = s
	s.nfreeCounted = s.nfree
	i, ok := s.nextFree()
	if !ok {
		panic("reclaim: internal error: refilled span has no free slot")
	}
	return s.handleAt(i), nil
}

// uncache returns a span from a mutator's cache to its central.
func (h *Heap) uncache(s *span) {
	s.syncAllocBits()
	c := h.central(s.typ)
	c.mu.Lock()
	s.cached = false
	if s.nfree > 0 && !s.inPartial {
		s.inPartial = true
		c.mu.partial = append(c.mu.partial, s)
	}
	c.mu.Unlock()
}

// refill finds a span of type t with a free slot for m to cache: a partly
// free swept span, else one it sweeps itself, else a new one.
func (h *Heap) refill(m *Mutator, t *Type) (*span, error) {
	c := h.central(t)
	for tries := 0; ; tries++ {
		if s := h.takeSpan(c, &m.local); s != nil {
			h.addLive(int64(s.nfree) * int64(s.elemSize))
			return s, nil
		}
		h.mu.Lock()
		if h.mu.dead {
			// A mutator left attached at Close: Close emptied its cache
			// and the centrals, so every New of it comes here.
			h.mu.Unlock()
			panic("reclaim: New on a closed heap (a mutator still attached at Close)")
		}
		if !h.fitsLocked(t) {
			h.mu.Unlock()
			if tries == 0 && !h.sweep.done.Load() {
				// Sweeping may still give memory back: finish it and retry.
				h.sweepUntilDone(&m.local)
				continue
			}
			h.gcDue.Store(true)
			return nil, ErrMemoryLimit // counted in limitHits by allocSlow
		}
		s := h.newSpanLocked(t)
		h.mu.Unlock()
		if s == nil {
			h.gcDue.Store(true)
			return nil, errors.New("reclaim: span table full (too many spans in one heap)")
		}
		c.mu.Lock()
		s.cached = true
		c.mu.Unlock()
		h.addLive(int64(s.nfree) * int64(s.elemSize))
		return s, nil
	}
}

// fitsLocked reports whether a new span of type t fits under the memory
// limit, which counts the slabs of the spans in use, their handle words and
// bitmaps (spanMeta), the spares and the external bytes: all the memory the
// heap holds for its objects, as GOMEMLIMIT counts the runtime's metadata
// too. Reusing a spare of type t adds only the new span's bitmaps (its
// slab and handle words are counted already). Before a span is refused,
// the spares of other types are dropped, and type t's too if it has none
// to reuse.
// REQUIRES: h.mu held.
func (h *Heap) fitsLocked(t *Type) bool {
	n := slotsFor(t.Size)
	ext := h.external.Load()
	var inUse, size int64
	var kept []spare
	measure := func() {
		inUse = h.mu.spanBytes + h.mu.metaBytes
		kept = h.mu.spares[t]
		size = int64(n)*int64(t.Size) + spanMeta(n, h.padBitmaps())
		if len(kept) > 0 {
			size = spanBitmaps(n, h.padBitmaps())
		}
	}
	measure()
	if h.mu.pacer.Fits(inUse+h.mu.spareBytes, ext, size) {
		return true
	}
	// Spans that the last sweep found empty are kept for a cycle (on
	// their centrals' partial lists) in case their type grows back; under
	// the limit, another type's allocation needs their memory now. Without
	// this, a heap filled with garbage of one type refused every other type
	// after a Collect, until a second collection released them.
	if h.releaseIdleLocked() {
		// The spans released may have become spares of t itself: measure
		// again, or they are dropped below with their bytes still counted.
		measure()
		if h.mu.pacer.Fits(inUse+h.mu.spareBytes, ext, size) {
			return true
		}
	}
	if h.mu.spareBytes == 0 {
		return false
	}
	delete(h.mu.spares, t) // kept out of the trim, and put back
	h.trimSparesLocked(-1)
	if len(kept) > 0 {
		h.mu.spares[t] = kept
	}
	return h.mu.pacer.Fits(inUse+h.mu.spareBytes, ext, size)
}

// releaseIdleLocked releases the spans that their sweep found empty and
// that nothing has allocated from since (span.wasEmpty, on a partial list,
// not cached), as the next cycle's sweep would, and reports whether it
// released any. Their memory may become spares (keepSpareLocked), which
// fitsLocked drops next if it must. Only spans swept this cycle are on the
// partial lists, and none is swept again before the next flip, which
// cannot run while h.mu is held; the centrals' mu is taken after h.mu, as
// the flip takes it.
// REQUIRES: h.mu held.
func (h *Heap) releaseIdleLocked() bool {
	cs := h.centrals.Load()
	if cs == nil {
		return false
	}
	released := false
	for _, c := range *cs {
		if c == nil {
			continue
		}
		c.mu.Lock()
		kept := c.mu.partial[:0]
		var idle []*span
		for _, s := range c.mu.partial {
			if s.wasEmpty && !s.cached && !s.released && s.nfree == s.nslots && s.sp.n.Load() == 0 {
				s.inPartial = false
				s.released = true
				idle = append(idle, s)
				continue
			}
			kept = append(kept, s)
		}
		clear(c.mu.partial[len(kept):])
		c.mu.partial = kept
		c.mu.Unlock()
		for _, s := range idle {
			h.releaseSpanLocked(s)
			released = true
		}
	}
	return released
}

// takeSpan pops a swept span with free slots from c, sweeping unswept spans
// of c as it goes. The returned span is marked cached.
func (h *Heap) takeSpan(c *central, local *cleanupq.Local) *span {
	for {
		c.mu.Lock()
		if n := len(c.mu.partial); n > 0 {
			s := c.mu.partial[n-1]
			c.mu.partial = c.mu.partial[:n-1]
			s.inPartial = false
			if s.released || s.nfree == 0 {
				c.mu.Unlock()
				continue
			}
			s.cached = true
			s.wasEmpty = false // allocated from: not idle
			c.mu.Unlock()
			return s
		}
		n := len(c.mu.unswept)
		if n == 0 {
			c.mu.Unlock()
			return nil
		}
		s := c.mu.unswept[n-1]
		c.mu.unswept = c.mu.unswept[:n-1]
		c.mu.Unlock()
		h.trySweep(s, local) // a swept span with room goes on partial
	}
}

// addLive accounts bytes handed to a mutator cache and makes a collection
// due when the goal is reached.
func (h *Heap) addLive(n int64) {
	live := h.heapLive.Add(n)
	if g := h.goal.Load(); g >= 0 && pacedLive(live, h.external.Load(), h.extBase.Load()) >= g {
		h.gcDue.Store(true)
	}
}

// pacedLive is what the pacer's goal is compared with: the live bytes plus
// the external bytes added since the last flip (the goal allows for those
// the flip saw), or MaxInt64 where the sum overflows, which AddExternal's
// near its bound would make it do. ext and base are at least 0, so ext-base
// cannot overflow.
func pacedLive(live, ext, base int64) int64 {
	d := ext - base
	if d > 0 && live > math.MaxInt64-d {
		return math.MaxInt64
	}
	return live + d
}
