package heap

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// Heap consistency checks, for tests (bbolt's tx.Check is the model): the
// public package's test helper runs Verify after every test.

// maxVerifyProblems bounds how many problems one Verify reports.
const maxVerifyProblems = 10

// verifier collects the problems Verify finds.
type verifier struct {
	problems []string
	more     int // problems found past maxVerifyProblems
}

func (v *verifier) fail(format string, args ...any) {
	if len(v.problems) == maxVerifyProblems {
		v.more++
		return
	}
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

func (v *verifier) err() error {
	if len(v.problems) == 0 {
		return nil
	}
	msg := "reclaim: heap inconsistent:\n\t" + strings.Join(v.problems, "\n\t")
	if v.more > 0 {
		msg += fmt.Sprintf("\n\t(and %d more)", v.more)
	}
	return errors.New(msg)
}

// Verify checks the heap's consistency and returns an error describing the
// first problems found, or nil. The heap must be quiescent: every attached
// mutator at a safepoint or idle, owned by the caller's goroutine or
// synchronized with it (call Drain first), and no collection running.
// Verify finishes the current sweep first, which may queue finalizers and
// cleanups.
//
// For every span in use it checks: the span is swept; its free count
// matches its allocation bits; no mark bit is set; the span table names it;
// every free slot's memory is zero; specials sit only on allocated slots and
// their count matches; weak cells name their objects; the central partial
// lists hold exactly the swept, uncached spans with free slots that say so;
// mutator caches hold exactly the spans marked cached. For the heap: span
// bytes add up, pinned objects are live, and the objects counted by the
// allocation bits equal the objects allocated (including what mutators
// have not flushed yet) minus the objects freed.
func (h *Heap) Verify() error {
	if !h.sweep.done.Load() {
		h.sweepOwn(h.sweepUntilDone)
	}
	var v verifier

	h.mu.Lock()
	if h.mu.stw {
		h.mu.Unlock()
		return errors.New("reclaim: Verify called while a collection holds the world stopped")
	}
	spans := h.spansLocked()
	spanBytesLocked, metaBytesLocked := h.mu.spanBytes, h.mu.metaBytes
	pins := make([]handle.Handle, 0, len(h.mu.pins))
	for x, n := range h.mu.pins {
		if n <= 0 {
			v.fail("pin count of %v is %d", x, n)
		}
		pins = append(pins, x)
	}
	mutators := make([]*Mutator, 0, len(h.mu.mutators))
	for m := range h.mu.mutators {
		mutators = append(mutators, m)
	}
	floors := slices.Clone(h.mu.idxFloor)
	h.mu.Unlock()

	hg := h.sweepgen.Load()

	// Which spans mutator caches hold, and what they have not flushed.
	cachedBy := make(map[*span]*Mutator)
	var unflushed int64
	for _, m := range mutators {
		unflushed += m.unflushedAllocs()
		for tid, s := range m.cache {
			if s == noSpan {
				continue
			}
			if other, dup := cachedBy[s]; dup {
				v.fail("%v is cached by two mutators (%p and %p)", s, other, m)
			}
			cachedBy[s] = m
			if int(s.typ.ID) != tid {
				v.fail("%v is cached under type id %d, its type has id %d", s, tid, s.typ.ID)
			}
		}
	}

	// The central lists.
	inPartial := make(map[*span]bool)
	if cs := h.centrals.Load(); cs != nil {
		for tid, c := range *cs {
			if c == nil {
				continue
			}
			c.mu.Lock()
			for _, s := range c.mu.partial {
				switch {
				case inPartial[s]:
					v.fail("%v is twice on a partial list", s)
				case int(s.typ.ID) != tid:
					v.fail("%v is on the partial list of type id %d", s, tid)
				case !s.inPartial:
					v.fail("%v is on a partial list but inPartial is false", s)
				case s.released:
					v.fail("%v is on a partial list but released", s)
				case s.cached:
					v.fail("%v is on a partial list and cached", s)
				case s.nfree == 0:
					v.fail("%v is on a partial list with no free slot", s)
				}
				inPartial[s] = true
			}
			c.mu.Unlock()
		}
	}

	var liveBytes, liveObjects, metaBytes int64
	seen := make(map[*span]bool, len(spans))
	seenIdx := make(map[uint32]*span, len(spans))
	for _, s := range spans {
		if seen[s] {
			v.fail("%v is twice in allspans", s)
			continue
		}
		seen[s] = true
		if s.released {
			if h.spans.get(s.idx) == s {
				v.fail("released %v is still in the span table", s)
			}
			if cachedBy[s] != nil || inPartial[s] {
				v.fail("released %v is cached or on a partial list", s)
			}
			continue
		}
		if o := seenIdx[s.idx]; o != nil {
			v.fail("%v and %v share a span index", s, o)
		}
		seenIdx[s.idx] = s
		liveBytes += int64(s.nslots) * int64(s.elemSize)
		metaBytes += spanMeta(s.nslots, h.padBitmaps())
		liveObjects += h.verifySpan(&v, s, hg, floors)

		_, cached := cachedBy[s]
		c := h.central(s.typ)
		c.mu.Lock()
		sc, sp, nfree := s.cached, s.inPartial, s.nfree
		c.mu.Unlock()
		if sc != cached {
			v.fail("%v: cached flag %v, but held by a mutator cache: %v", s, sc, cached)
		}
		if sp != inPartial[s] {
			v.fail("%v: inPartial flag %v, but on a partial list: %v", s, sp, inPartial[s])
		}
		if !sc && !sp && nfree > 0 {
			v.fail("%v has %d free slots but is neither cached nor on a partial list", s, nfree)
		}
	}
	for s := range cachedBy {
		if !seen[s] {
			v.fail("%v is cached by a mutator but not in allspans", s)
		}
	}

	if liveBytes != spanBytesLocked {
		v.fail("span bytes: heap counts %d, spans in use hold %d", spanBytesLocked, liveBytes)
	}
	if metaBytes != metaBytesLocked {
		v.fail("span metadata bytes: heap counts %d, spans in use hold %d", metaBytesLocked, metaBytes)
	}
	for _, x := range pins {
		if !h.Valid(x) {
			v.fail("pinned %v is not a live object", x)
		}
	}
	allocated := h.stats.allocated.Load() + unflushed
	freed := h.stats.freed.Load()
	if allocated-freed != liveObjects {
		v.fail("objects: %d allocated (%d not yet flushed) - %d freed = %d, but allocation bits count %d",
			allocated, unflushed, freed, allocated-freed, liveObjects)
	}
	if ext := h.external.Load(); ext < 0 {
		v.fail("external bytes negative: %d", ext)
	}
	return v.err()
}

// verifySpan checks one span in use and returns the number of objects it
// holds (allocated slots that are not retired).
func (h *Heap) verifySpan(v *verifier, s *span, hg uint32, floors []uint32) int64 {
	if g := s.sweepgen.Load(); g != hg {
		v.fail("%v: sweepgen %d, heap sweepgen %d (not swept)", s, g, hg)
	}
	if t := h.spans.get(s.idx); t != s {
		v.fail("%v: the span table names %v at its index", s, t)
	}
	if s.base == nil {
		v.fail("%v: in use with no memory", s)
		return 0
	}
	isRetired := func(i uint32) bool { return s.retired != nil && s.retired[i/64]&(1<<(i%64)) != 0 }
	if int(s.idx) < len(floors) {
		for i := range s.hv {
			x := s.handleAt(uint32(i))
			if x.Heap() != h.id || x.Span() != s.idx || x.Slot() != uint32(i) {
				v.fail("%v: slot %d's handle word is %v", s, i, x)
				break
			}
			// Only a retired slot holds the last generation: the sweep that
			// retired it moved its word there, and no handle is ever issued
			// at it.
			if g := x.Gen(); g < floors[s.idx] || g == handle.MaxGen && !isRetired(uint32(i)) {
				v.fail("%v: slot %d has generation %d (floor %d; the last, %d, on retired slots only)", s, i, g, floors[s.idx], handle.MaxGen)
				break
			}
		}
	} else {
		v.fail("%v: index past the heap's index floors (%d)", s, len(floors))
	}
	alloc := 0
	for w := range s.allocBits {
		word := s.allocWord(uint32(w)) // a cached span's bits lag; see allocBits
		if m := s.markBits[w].Load(); m != 0 {
			v.fail("%v: mark bits %#x set in word %d after the sweep", s, m, w)
		}
		if w == len(s.allocBits)-1 && s.nslots%64 != 0 {
			if extra := word >> (s.nslots % 64); extra != 0 {
				v.fail("%v: allocation bits set past the last slot", s)
			}
		}
		alloc += bits.OnesCount64(word)
	}
	if want := s.nslots - uint32(alloc); s.nfree != want {
		v.fail("%v: nfree %d, allocation bits say %d", s, s.nfree, want)
	}
	if s.freeIndex > s.nslots {
		v.fail("%v: freeIndex %d past nslots", s, s.freeIndex)
	}
	// Each slot's mark tag is its handle word's (a retired slot's 0).
	for i := range s.nslots {
		want := markTag(s.handleAt(i))
		if isRetired(i) {
			want = 0
		}
		if s.markTags[i] != want {
			v.fail("%v: slot %d's mark tag is %d, want %d", s, i, s.markTags[i], want)
			break
		}
	}
	retired := 0
	for w := range s.retired {
		if s.retired[w]&^s.allocWord(uint32(w)) != 0 {
			v.fail("%v: retired slots not marked allocated in word %d", s, w)
		}
		retired += bits.OnesCount64(s.retired[w])
	}

	// Free slots hold zeroed memory.
	if s.elemSize > 0 {
		for i := uint32(0); i < s.nslots; i++ {
			if s.isAllocated(i) {
				continue
			}
			if what := h.notFree(s.typ, s.ptr(i)); what != "" {
				v.fail("%v: free slot %d %s", s, i, what)
			}
		}
	}

	// Specials sit on live slots, and their count matches.
	live := func(i uint32) bool { return s.isAllocated(i) && !isRetired(i) }
	if t := s.sp.fin.Load(); t != nil {
		if len(t.fn) != int(s.nslots) {
			v.fail("%v: finalizer table has %d slots, span %d", s, len(t.fn), s.nslots)
		}
		for i := range t.fn {
			if t.fn[i] != nil && !live(uint32(i)) {
				v.fail("%v: finalizer on free slot %d", s, i)
			}
		}
	}
	if cl := s.sp.cl.Load(); cl != nil {
		for i := range cl.head {
			want := uint32(0)
			for c := cl.head[i]; c != nil; c = c.next {
				want++
			}
			for c := cl.head[i]; c != nil; c = c.next {
				if !live(uint32(i)) {
					v.fail("%v: cleanup on free slot %d", s, i)
				}
				if c.n != want {
					v.fail("%v: cleanup list of slot %d: a record counts %d records from it, found %d", s, i, c.n, want)
				}
				want--
			}
		}
	}
	s.sp.mu.Lock()
	n := 0
	sp := &s.sp.mu
	for kind, arr := range [2][]uint32{sp.weak, sp.long} {
		for i, cell := range arr {
			if cell == 0 {
				continue
			}
			n++
			if !live(uint32(i)) {
				v.fail("%v: weak cell (kind %d) on free slot %d", s, kind, i)
				continue
			}
			want := s.handleAt(uint32(i))
			if c := h.weak.cell(cell - 1); c == nil || handle.Handle(c.x.Load()) != want {
				v.fail("%v: weak cell %d (kind %d) of slot %d does not name %v", s, cell-1, kind, i, want)
			}
		}
	}
	s.sp.mu.Unlock()
	if got := s.sp.n.Load(); int(got) != n {
		v.fail("%v: specials count %d, found %d", s, got, n)
	}
	return int64(alloc - retired)
}

// remarkCheck, when set, is called by mark once marking is complete, with
// the world still stopped, the roots the mark started from (the referents
// of finalizable objects among them) and the finalizable ephemeron tables,
// whose entries are traced as a reachable table's are. The
// invariants build tag sets it to the re-mark verifier
// (verify_invariants.go); otherwise it is nil. Set before any heap exists.
var remarkCheck func(h *Heap, roots, finTables []handle.Handle)

// notFree says what is wrong with a free slot of type t at p, or "" if it
// holds what a free slot holds: zeros, but for an ephemeron table's heap
// id (Type.EphHeapOff), which must be h's. Verify checks free slots with
// it, and the invariants build the slabs of spares (takeSpareLocked).
func (h *Heap) notFree(t *Type, p unsafe.Pointer) string {
	mem := unsafe.Slice((*byte)(p), t.Size)
	if t.EphEach != nil {
		off := t.EphHeapOff
		if id := *(*uint32)(unsafe.Add(p, off)); id != h.id {
			return fmt.Sprintf("holds heap id %d, want %d", id, h.id)
		}
		mem = slices.Clone(mem)
		clear(mem[off : off+4])
	}
	if j := slices.IndexFunc(mem, func(b byte) bool { return b != 0 }); j >= 0 {
		return fmt.Sprintf("is not zeroed (byte %d is %#x)", j, mem[j])
	}
	return ""
}

// markTarget returns the handle word of the slot that the mark's check
// (greyPlain) takes x for, or 0 if it refuses x: a slot of this heap in
// range, allocated, whose mark tag is x's. The invariants build's re-mark
// and TestMarkMatchesTagModel walk the heap with it.
func (h *Heap) markTarget(x handle.Handle) handle.Handle {
	if x == 0 || x.Heap() != h.id {
		return 0
	}
	s := h.spans.get(x.Span())
	if s == nil || x.Slot() >= s.nslots || !s.isAllocated(x.Slot()) || s.markTags[x.Slot()] != markTag(x) {
		return 0
	}
	return s.handleAt(x.Slot())
}
