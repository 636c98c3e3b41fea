package heap

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/reclaimgc/reclaim/internal/cleanupq"
	"github.com/reclaimgc/reclaim/internal/handle"
)

// Specials are per-object records kept on the object's span, as the
// runtime's mspan.specials. The runtime keeps one list per span sorted by
// offset and kind; reclaim's objects have slot numbers, so it keeps one
// array per kind indexed by slot (allocated on first use), which is that
// sorted list with O(1) insertion. Per slot the kinds are visited in the
// runtime's order: weak handle, finalizer, then cleanups in the order they
// were added.
//
// specials.mu protects everything below it. The sweeper holds it while it
// processes a span's specials; the mark phase holds it while it reads them
// (Cleanup.Stop may run on a goroutine that is not a mutator, so a stopped
// world does not exclude it).
type specials struct {
	// n counts the span's specials; written with mu held, read without it
	// as a hint ("this span has no specials").
	n atomic.Int32

	mu struct {
		sync.Mutex
		fin      []finSpecial      // by slot; fn == nil means none
		cleanups []*cleanupSpecial // by slot; a list in insertion order
		weak     []uint32          // by slot: weak cell index + 1; 0 means none
		long     []uint32          // by slot: long weak cell index + 1
	}
}

type finSpecial struct {
	fn any // the user's func(*Mutator, Ref[T]); nil means no finalizer
}

type cleanupSpecial struct {
	id   uint64
	r    cleanupq.Runner
	next *cleanupSpecial
}

// SetFinalizer sets (fn != nil) or clears (fn == nil) the finalizer of x.
// Setting a second one panics.
func (m *Mutator) SetFinalizer(x handle.Handle, fn any) {
	h := m.enter("SetFinalizer")
	defer m.leave()
	s := h.check(x, "SetFinalizer")
	h.ensureSwept(s, &m.local)
	if fn != nil {
		h.fin.start(h)
	}
	i := x.Slot()
	s.sp.mu.Lock()
	defer s.sp.mu.Unlock()
	if s.hv[i].Load() != uint64(x) {
		panic(fmt.Sprintf("reclaim: SetFinalizer of a ref to a freed object (%v)", x))
	}
	if s.sp.mu.fin == nil {
		if fn == nil {
			return
		}
		s.sp.mu.fin = make([]finSpecial, s.nslots)
	}
	f := &s.sp.mu.fin[i]
	switch {
	case fn == nil && f.fn != nil:
		f.fn = nil
		s.sp.n.Add(-1)
	case fn != nil && f.fn != nil:
		panic(fmt.Sprintf("reclaim: SetFinalizer called twice on one %s object (clear it with nil first)", s.typ.Name))
	case fn != nil:
		f.fn = fn
		s.sp.n.Add(1)
	}
}

// HasFinalizer reports whether x has a finalizer set.
func (m *Mutator) HasFinalizer(x handle.Handle) bool {
	h := m.heap
	s := h.check(x, "HasFinalizer")
	h.ensureSwept(s, &m.local)
	s.sp.mu.Lock()
	defer s.sp.mu.Unlock()
	return s.sp.mu.fin != nil && s.sp.mu.fin[x.Slot()].fn != nil
}

// AddCleanup attaches a cleanup to x and returns its id.
func (m *Mutator) AddCleanup(x handle.Handle, r cleanupq.Runner) uint64 {
	h := m.enter("AddCleanup")
	defer m.leave()
	s := h.check(x, "AddCleanup")
	h.ensureSwept(s, &m.local)
	id := h.stats.cleanupIDs.Add(1)
	c := &cleanupSpecial{id: id, r: r}
	i := x.Slot()
	s.sp.mu.Lock()
	defer s.sp.mu.Unlock()
	if s.sp.mu.cleanups == nil {
		s.sp.mu.cleanups = make([]*cleanupSpecial, s.nslots)
	}
	p := &s.sp.mu.cleanups[i]
	for *p != nil {
		p = &(*p).next
	}
	*p = c
	s.sp.n.Add(1)
	return id
}

// StopCleanup removes cleanup id from x if it is still registered. It is
// safe from any goroutine; a cleanup already queued or run is unaffected.
func (h *Heap) StopCleanup(x handle.Handle, id uint64) {
	if !h.Valid(x) {
		return // the object is gone: its cleanups were queued or it never had this one
	}
	s := h.spans.get(x.Span())
	if s == nil {
		return
	}
	s.sp.mu.Lock()
	defer s.sp.mu.Unlock()
	if s.hv[x.Slot()].Load() != uint64(x) || s.sp.mu.cleanups == nil {
		return
	}
	for p := &s.sp.mu.cleanups[x.Slot()]; *p != nil; p = &(*p).next {
		if (*p).id == id {
			*p = (*p).next
			s.sp.n.Add(-1)
			return
		}
	}
}

// sweepSpecials processes the specials of s's unmarked objects (heap.go,
// step 7). Objects that get their finalizer queued are marked, so the rest
// of the sweep keeps them.
// REQUIRES: the caller has claimed s for sweeping.
func (h *Heap) sweepSpecials(s *span, local *cleanupq.Local) {
	s.sp.mu.Lock()
	defer s.sp.mu.Unlock()
	sp := &s.sp.mu
	// Counts and finalizer records are gathered and published once per
	// span: one atomic on s.sp.n and one finq lock per span, not per object.
	removed := int32(0)
	var fins []finRec
	defer func() {
		if removed != 0 {
			s.sp.n.Add(-removed)
		}
		if len(fins) > 0 {
			h.fin.queueAll(fins)
		}
	}()
	for i := uint32(0); i < s.nslots; i++ {
		if !s.isAllocated(i) || s.isMarked(i) {
			continue
		}
		x := s.handleAt(i)
		// Weak handles go nil as soon as the object is found unreachable,
		// finalizer or not (Go's rule for weak.Pointer).
		if sp.weak != nil && sp.weak[i] != 0 {
			h.weak.kill(sp.weak[i] - 1)
			sp.weak[i] = 0
			removed++
		}
		revived := false
		if sp.fin != nil && sp.fin[i].fn != nil {
			fins = append(fins, finRec{x: x, typ: s.typ, fn: sp.fin[i].fn})
			sp.fin[i].fn = nil
			removed++
			s.markBits[i/64].Or(1 << (i % 64))
			revived = true
		}
		if revived {
			continue // cleanups wait until the object is unreachable again
		}
		if sp.long != nil && sp.long[i] != 0 {
			h.weak.kill(sp.long[i] - 1)
			sp.long[i] = 0
			removed++
		}
		if sp.cleanups != nil {
			for c := sp.cleanups[i]; c != nil; c = c.next {
				h.cq.Enqueue(local, c.r)
				removed++
			}
			sp.cleanups[i] = nil
		}
	}
}
