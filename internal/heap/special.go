package heap

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

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
// Finalizers are kept apart from the other kinds, in a table of one word
// per slot, read and written without a lock or an atomic: SetFinalizer is
// a hot path (the runtime's BenchmarkFinalizer), and a locked instruction
// costs more here than the rest of the call. A slot's finalizer word is
// owned like the object's own memory, and its users are ordered by the
// protocols that already order accesses to that memory:
//   - mutators (SetFinalizer, HasFinalizer) read and write it, only after
//     the span is swept in the current cycle (ensureSwept); the sweeper's
//     sweepgen store happens before their sweepgen load. Two mutators that
//     set or clear finalizers of one object at the same time must
//     synchronize, as they must to write its fields (the race detector
//     reports it if they do not); on different objects they never share a
//     word.
//   - the sweeper that claimed the span (sweepSpecials) reads and clears
//     it before it publishes sweepgen; no mutator touches the span's words
//     until then.
//   - the leader with the world stopped (mark roots, Debug, Verify, the
//     ephemeron fixpoint) reads it; stopping the world orders it after
//     every mutator's writes.
//   - Close takes what is left, once no mutator may run concurrently.
//
// The runtime instead locks mspan.speciallock for every SetFinalizer; it
// must, since any goroutine may call it on any object at any time.
//
// specials.mu protects the other kinds. The sweeper holds it while it
// processes a span's specials; the mark phase holds it while it reads them
// (Cleanup.Stop may run on a goroutine that is not a mutator, so a stopped
// world does not exclude it).
type specials struct {
	// n counts the span's weak, long weak and cleanup specials (not
	// finalizers); written with mu held, read without it as a hint ("this
	// span has none of those").
	n atomic.Int32

	// fin is the span's finalizer table, installed by CAS on the span's
	// first SetFinalizer (two mutators may race to install it) and never
	// replaced or removed while the span lives.
	fin atomic.Pointer[finTable]

	mu struct {
		sync.Mutex
		cleanups []*cleanupSpecial // by slot; a list in insertion order
		weak     []uint32          // by slot: weak cell index + 1; 0 means none
		long     []uint32          // by slot: long weak cell index + 1
	}
}

// any reports whether the span may have specials the sweeper must visit.
func (sp *specials) any() bool { return sp.n.Load() != 0 || sp.fin.Load() != nil }

// funcval is what a Go func value points to (the runtime's funcval: code
// pointer first, captured variables after). A finalizer is kept as that one
// pointer, so a slot's finalizer is a single word; FinCall turns it back
// into the typed func.
type funcval struct{ fn uintptr }

// finTable holds a span's finalizers: fn[slot] is the finalizer of the
// object in slot, nil if none. See specials for who may touch the words.
type finTable struct {
	fn []*funcval
}

// finAt returns the finalizer of slot i, nil if none.
func (sp *specials) finAt(i uint32) *funcval {
	if t := sp.fin.Load(); t != nil {
		return t.fn[i]
	}
	return nil
}

type cleanupSpecial struct {
	id   uint64
	r    cleanupq.Runner
	next *cleanupSpecial
}

// SetFinalizer sets (fn != nil) or clears (fn == nil) the finalizer of x;
// fn is a func value's funcval pointer (see funcval). Setting a second one
// panics.
//
// The fast path is a span lookup as in Deref, the sweepgen check of
// ensureSwept, and a plain write of the slot's word (see specials): no
// lock, no locked instruction, nothing shared with other objects. Everything else (a detached mutator, a bad ref, a span
// not yet swept, the first finalizer of the span or of the heap) takes the
// slow path, which also reports misuse.
func (m *Mutator) SetFinalizer(x handle.Handle, fn unsafe.Pointer) {
	if h := m.heap; h != nil {
		s := (*span)((*spanChunk)(m.tab.dir[x>>54].p)[uint32(x>>44)&(1<<spanChunkBits-1)].p)
		i := uint32(x>>34) & (handle.MaxSlots - 1)
		if i < uint32(len(s.hv)) && s.hv[i].Load() == uint64(x) && s.sweepgen.Load() == h.sweepgen.Load() {
			if t := s.sp.fin.Load(); t != nil {
				w := &t.fn[i]
				if fn == nil {
					*w = nil
					return
				}
				if *w == nil && h.fin.status.load() != fingUninitialized {
					*w = (*funcval)(fn)
					return
				}
			}
		}
	}
	m.setFinalizerSlow(x, fn)
}

func (m *Mutator) setFinalizerSlow(x handle.Handle, fn unsafe.Pointer) {
	h := m.enter("SetFinalizer")
	defer m.leave()
	s := h.check(x, "SetFinalizer")
	h.ensureSwept(s, &m.local)
	t := s.sp.fin.Load()
	if fn == nil {
		if t != nil {
			t.fn[x.Slot()] = nil
		}
		return
	}
	h.fin.start(h)
	if t == nil {
		t = &finTable{fn: make([]*funcval, s.nslots)}
		if !s.sp.fin.CompareAndSwap(nil, t) {
			t = s.sp.fin.Load() // another mutator installed one first
		}
	}
	if t.fn[x.Slot()] != nil {
		panic(fmt.Sprintf("reclaim: SetFinalizer called twice on one %s object (clear it with nil first)", s.typ.Name))
	}
	t.fn[x.Slot()] = (*funcval)(fn)
}

// HasFinalizer reports whether x has a finalizer set.
func (m *Mutator) HasFinalizer(x handle.Handle) bool {
	h := m.heap
	s := h.check(x, "HasFinalizer")
	h.ensureSwept(s, &m.local)
	return s.sp.finAt(x.Slot()) != nil
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
	// Counts and finalizer records are gathered and published in batches:
	// one atomic on s.sp.n per span, one finq lock per len(buf) records,
	// and no allocation.
	removed := int32(0)
	var buf [finBlockLen]finRec
	fins := buf[:0]
	fin := s.sp.fin.Load()
	defer func() {
		if removed != 0 {
			s.sp.n.Add(-removed)
		}
		if len(fins) > 0 {
			h.fin.queueAll(fins)
		}
	}()
	// Visit the unmarked allocated slots a bitmap word at a time; the
	// objects revived for their finalizer are marked with one Or per word.
	for w := range s.allocBits {
		dead := s.allocBits[w] &^ s.markBits[w].Load()
		if dead == 0 {
			continue
		}
		revived := uint64(0)
		for d := dead; d != 0; d &= d - 1 {
			i := uint32(w*64 + bits.TrailingZeros64(d))
			if h.sweepSpecial(s, i, fin, &fins, &removed, local) {
				revived |= 1 << (i % 64)
			}
		}
		if revived != 0 {
			s.markBits[w].Or(revived)
		}
	}
}

// sweepSpecial processes the specials of the unmarked object in slot i,
// and reports whether it was revived for its finalizer.
// REQUIRES: s.sp.mu held; the caller has claimed s for sweeping.
func (h *Heap) sweepSpecial(s *span, i uint32, fin *finTable, fins *[]finRec, removed *int32, local *cleanupq.Local) bool {
	sp := &s.sp.mu
	x := s.handleAt(i)
	// Weak handles go nil as soon as the object is found unreachable,
	// finalizer or not (Go's rule for weak.Pointer).
	if sp.weak != nil && sp.weak[i] != 0 {
		h.weak.kill(sp.weak[i] - 1)
		sp.weak[i] = 0
		*removed++
	}
	if fin != nil {
		if fn := fin.fn[i]; fn != nil {
			if len(*fins) == cap(*fins) {
				h.fin.queueAll(*fins)
				*fins = (*fins)[:0]
			}
			*fins = append(*fins, finRec{x: x, typ: s.typ, fn: unsafe.Pointer(fn)})
			fin.fn[i] = nil
			return true // cleanups wait until the object is unreachable again
		}
	}
	if sp.long != nil && sp.long[i] != 0 {
		h.weak.kill(sp.long[i] - 1)
		sp.long[i] = 0
		*removed++
	}
	if sp.cleanups != nil {
		for c := sp.cleanups[i]; c != nil; c = c.next {
			h.cq.Enqueue(local, c.r)
			*removed++
		}
		sp.cleanups[i] = nil
	}
	return false
}
