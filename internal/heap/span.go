package heap

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
	"github.com/reclaimgc/reclaim/internal/layout"
	"github.com/reclaimgc/reclaim/internal/osmem"
)

// spanBytes is the target size of a span's memory. A span holds
// clamp(spanBytes/size, 1, handle.MaxSlots) objects.
const spanBytes = 16 << 10

// Type describes one Go type stored in heaps. Types are global (shared by
// every heap) and registered once, by the public package; every field is
// set before RegisterType publishes the Type and immutable afterwards, so
// any goroutine reads them without synchronization.
type Type struct {
	ID     uint32       // dense index into a heap's centrals; immutable
	Name   string       // the Go type's name, for diagnostics; immutable
	Layout *layout.Type // reference map; immutable
	Size   uintptr      // element size; immutable
	// NewSlab allocates n zeroed elements as a real Go array and returns a
	// pointer to the first; the array is kept alive by that pointer.
	NewSlab func(n int) unsafe.Pointer
	// Clear zeroes one element with typed stores (write barriers), for
	// types that hold Go pointers.
	Clear func(p unsafe.Pointer)
	// FinCall calls a finalizer stored as fn on the object x, from mutator
	// m. Typed: no reflection, no allocation.
	FinCall func(m *Mutator, x handle.Handle, fn unsafe.Pointer)
	// EphEach and EphPrune make the type an ephemeron table
	// (ephemeron.go): EphEach reports every entry's key and value, EphPrune
	// deletes the entries whose key dead reports. Both run with the world
	// stopped. nil for other types.
	EphEach  func(p unsafe.Pointer, f func(key handle.Handle, val unsafe.Pointer, lay *layout.Type))
	EphPrune func(p unsafe.Pointer, dead func(key handle.Handle) bool)
	// EphHeapOff is, for an ephemeron table type, the offset in an
	// element of a uint32 in which the heap keeps its id, in every slot
	// of the type's spans, allocated or free, so that a table knows its
	// heap from its allocation on (and refuses a key of another). The heap
	// writes it when it makes a span (newSpanLocked), before the span is
	// published, and after the sweep zeroes a freed table (clearDead),
	// before the slot can be allocated again; the table reads it. Unused
	// for a type without EphEach.
	EphHeapOff uintptr
}

var types struct {
	sync.Mutex
	all []*Type // protected by the mutex; index = Type.ID
}

// RegisterType assigns t an ID and records it. The public package calls it
// once per Go type.
func RegisterType(t *Type) *Type {
	types.Lock()
	defer types.Unlock()
	t.ID = uint32(len(types.all))
	types.all = append(types.all, t)
	return t
}

// span is a slab of objects of one type.
//
// Sweep generations, after the runtime's mspan.sweepgen. With hg the heap's
// sweepgen (advanced by 2 in each flip, with the world stopped):
//
//	s.sweepgen == hg-2   the span needs sweeping
//	s.sweepgen == hg-1   the span is being swept (claimed by CAS hg-2 -> hg-1)
//	s.sweepgen == hg     the span is swept and ready to use
//
// A span cached by a mutator is always swept (it is swept before it is
// cached, and caches are emptied with the world stopped before the flip), so
// the runtime's hg+1 and hg+3 states are not needed.
//
// Ownership of the allocation state (allocBits, freeIndex,
// allocCache, cacheEnd, nfree): the
// sweeper that claimed the span while it sweeps; otherwise the mutator that
// caches it; otherwise its central, under central.mu; with the world stopped,
// the leader.
type span struct {
	idx      uint32         // index in the span table; immutable
	typ      *Type          // immutable
	base     unsafe.Pointer // first element; immutable while in use (cleared by releaseSpanLocked, h.mu held)
	elemSize uintptr        // immutable
	hvBytes  uintptr        // len(hv) * 8, Deref's bound; immutable
	nslots   uint32         // immutable
	// slabOS and wordsOS say that base and hv are outside the Go heap
	// (newSpare); immutable.
	slabOS, wordsOS bool

	// hv[i] is the handle of slot i: of the object in it, or of the next
	// object if it is free. The sweeper advances its generation when it
	// frees the slot; Deref and everything that checks a handle read it
	// lock-free and compare the whole word, so heap id, span, slot and
	// generation are checked at once. The sweeper's store is plain on
	// amd64 and arm64 (storeFreedGen), published by its sweepgen store;
	// only a Deref through a ref to the dead object races with it.
	hv []atomic.Uint64

	sweepgen atomic.Uint32 // see the table above

	// allocBits has slot i's bit set if the slot holds an object, except
	// that a cached span's allocations from allocCache are written to it
	// only when the span leaves the cache (syncAllocBits): the slots below
	// freeIndex are allocated whatever their bits say (allocWord,
	// isAllocated). Uncached spans' bits are exact; the sweeper and the
	// specials read them only then. Owned as described above.
	allocBits []uint64
	retired   []uint64 // slots never reused again (generation exhausted); nil if none; owned like allocBits
	freeIndex uint32   // owned like allocBits; slots below it are allocated
	nfree     uint32   // owned like allocBits
	// nfreeCounted is nfree when the caching mutator last counted the
	// objects allocated from the span (Mutator.countAllocs); owned like
	// that mutator's cache (by the mutator, or by the leader with the world
	// stopped), meaningful only while the span is cached.
	nfreeCounted uint32
	// allocCache holds the free bits of slots [freeIndex, cacheEnd): bit k
	// set means slot freeIndex+k is free. cacheEnd is a multiple of 64 (or
	// 0: nothing cached), and bits for slots past nslots are never set.
	// The runtime's mspan.allocCache; owned like allocBits.
	allocCache uint64
	cacheEnd   uint32

	// markBits is set during mark (world stopped) by mark workers, with
	// atomic Or, or with plain stores where one worker alone touches the
	// span's mark state (markWorker.solo, markWorker.ownPlain; mark.go);
	// read lock-free during the mark by workers and the leader. The
	// span's sweeper reads it, sets the bits of the objects it revives for
	// their finalizer (sweepSpecials, atomic Or) and clears it; the leader
	// clears it when a mark is abandoned (abandonMark). Close's rounds use
	// it as the visited set of their walk (closeOrder), on a goroutine of
	// Close's with no sweep left to run, and clear it before any callback
	// runs. With several mark
	// workers it shares its cache lines with scanBits only (markBitmaps):
	// the span's owner writes both with plain stores, and a line holding
	// another span's bits would move between the workers' cores.
	markBits []atomic.Uint64

	// markTags[i] is slot i's mark tag: markTag(hv[i]), the low byte of
	// its generation, or 0 for a retired slot. What the mark checks a
	// handle against, with the slot's allocation bit: a byte a slot,
	// where hv is eight. Written
	// where hv[i] is (newSpanLocked, and the sweeper that frees or retires
	// the slot), owned like hv's words; read by the mark workers, plainly,
	// with the world stopped.
	markTags []uint8

	// ephKeys marks slots that are keys of ephemeron entries waiting in
	// this mark (ephemeron.go); nil outside a mark with such entries. The
	// pointer is stored, and the bits are set (atomic Or), with eph.mu
	// held by the worker that registers an entry; read lock-free by the
	// workers that mark the span's objects (releaseWaiting). Cleared with
	// eph.mu held by the leader when the mark ends (resetEphemerons).
	ephKeys atomic.Pointer[[]atomic.Uint64]
	// ephHeads[i] is index+1 of the first entry waiting on slot i, in
	// eph.mu.nodes; 0 if none. Protected by eph.mu; nil with ephKeys.
	ephHeads []int32

	// Span-batched marking (mark.go), after the runtime's green tea
	// spanInlineMarkBits. Marking an object sets its markBits bit; the
	// span's grey objects are those marked and not yet scanned
	// (markBits &^ scanBits), and the span, not the object, is what mark
	// workers queue. Both fields are used only during a mark, with the
	// world stopped.
	//
	// noScan is immutable: the span's objects hold no refs and are no
	// ephemeron tables, so marking one never queues the span.
	noScan bool
	// scanBits has slot i's bit set once a worker has taken the object in
	// it for scanning in this mark (the runtime's spanInlineMarkBits.scans).
	// Set by atomic Or from the workers that scan the span (several may
	// scan it at once: the Or's old value tells each one which objects are
	// its own), or with plain stores where one worker alone scans it
	// (markWorker.solo, or ownPlain on an owned span not shared); cleared
	// by the leader when a mark begins, and when one is abandoned. In
	// markBits' lines with several mark workers (markBitmaps).
	scanBits []atomic.Uint64

	// Whether the span is queued is the mark's own state (markSpan.queued,
	// mark.go), next to what checking a handle reads.

	// sp holds the specials; see special.go.
	sp specials

	// Membership in the central's lists: protected by the central's mu.
	inPartial bool
	cached    bool // held in some mutator's cache
	// released: the memory is given back and the span is no longer in the
	// table. Set by the sweeper that releases the span, under the
	// central's mu (and again by releaseSpanLocked, with h.mu held only:
	// the span is then in no cache and on no partial list, so no reader
	// under the central's mu reaches it), or by Close under h.mu. Read
	// under the central's mu (takeSpan), and without it only where no
	// sweeper can run: by the leader with the world stopped after
	// finishSweep (Debug, flip), by Close, by Verify.
	released bool
	// wasEmpty: the span's last sweep found it empty and nothing has been
	// allocated from it since (it stayed idle). Set by its sweeper; cleared
	// by takeSpan, under the central's mu, when a mutator caches the span.
	// The two never overlap: a swept span is swept again only after the
	// next flip, and takeSpan hands out swept spans only. A span found
	// empty while wasEmpty is set is released (sweepSpan).
	wasEmpty bool
}

// spanMeta is the memory a span of n slots holds besides its slab: a
// handle word per slot and its bitmaps (spanBitmaps; pad as there).
// MemoryLimit counts it (Heap.fitsLocked).
func spanMeta(n uint32, pad bool) int64 { return int64(n)*8 + spanBitmaps(n, pad) }

// padBitmaps reports whether the heap's spans have their mark and scan
// bitmaps in cache lines of their own (markBitmaps).
func (h *Heap) padBitmaps() bool { return h.cfg.MarkWorkers > 1 }

// spanBitmaps is the memory of the bitmaps of a span of n slots (allocBits,
// and markBits and scanBits as markBitmaps makes them with pad), in whole
// words, and of its mark tags (a byte a slot): all of its metadata that a
// spare does not keep.
func spanBitmaps(n uint32, pad bool) int64 {
	w := bitmapWords(n)
	if pad {
		return 8*int64(w+paddedLen(w)) + int64(n)
	}
	return 3*8*int64(w) + int64(n)
}

// bitmapWords is the length of a bitmap of n slots.
func bitmapWords(n uint32) int { return int(n+63) / 64 }

// markBitmaps makes the mark and scan bitmaps of a span of n slots. With
// several mark workers (pad), the two share cache lines of their own that
// hold nothing else: the span's owner in the mark (mark.go, ownShift)
// writes its bits, with plain stores (markWorker.ownPlain), and the small
// bitmaps of neighbouring spans, packed into lines by Go's allocator, made
// those lines move between the cores at every mark: two workers marked a
// graph of 128-byte objects no faster than one, and 1.17-1.27x as fast
// with the lines their own, in the same minutes (mark-wide,
// docs/BENCHMARKS.md).
// With one worker nothing is shared, and packed bitmaps take less cache.
func markBitmaps(n uint32, pad bool) (mark, scan []atomic.Uint64) {
	w := bitmapWords(n)
	if !pad {
		return make([]atomic.Uint64, w), make([]atomic.Uint64, w)
	}
	b := make([]atomic.Uint64, paddedLen(w))
	off := int((-uintptr(unsafe.Pointer(&b[0])) & 63) / 8) // words to the first line boundary
	return b[off : off+w : off+w], b[off+w : off+2*w : off+2*w]
}

// paddedLen is the length of the array markBitmaps makes with pad for
// bitmaps of w words: both, in whole lines, and 7 words more to start them
// on a line boundary. (Go's allocator puts arrays of these sizes, 120 to
// 312 bytes, in size classes whose objects start on one already; the
// offset does not rely on it.)
func paddedLen(w int) int { return (2*w+7)&^7 + 7 }

// accountSpanLocked adds a span of n slots of size bytes to the heap's
// span memory (sign 1, when it is made) or takes it away (sign -1, when
// it is released): its slab to spanBytes, its metadata to metaBytes. A
// span made is reported to the pacer (pacer.SpanMade), whose headroom
// under the limit's cap is at least the largest span made, so that the
// allocation that passes the goal fits under the limit. Under a memory
// limit it then caps the goal again for the new proportion of metadata to
// slabs and that headroom (pacer.Spans):
// before the first cycle ends, the goal of a heap of small objects would
// otherwise pass the limit. An allocator that made the span checks the
// new goal when it accounts for the span (refill's addLive).
// REQUIRES: h.mu held.
func (h *Heap) accountSpanLocked(n uint32, size uintptr, sign int64) {
	slab, meta := int64(n)*int64(size), spanMeta(n, h.padBitmaps())
	h.mu.spanBytes += sign * slab
	h.mu.metaBytes += sign * meta
	if sign > 0 {
		h.mu.pacer.SpanMade(slab + meta)
	}
	if h.mu.pacer.Spans(h.mu.spanBytes, h.mu.metaBytes) {
		h.goal.Store(h.mu.pacer.Goal())
	}
}

func slotsFor(size uintptr) uint32 {
	if size == 0 {
		return handle.MaxSlots
	}
	n := spanBytes / size
	return uint32(max(1, min(n, handle.MaxSlots)))
}

func (s *span) String() string {
	return fmt.Sprintf("span %d (%s, %d slots of %d bytes)", s.idx, s.typ.Name, s.nslots, s.elemSize)
}

// ptr returns the address of slot i.
func (s *span) ptr(i uint32) unsafe.Pointer {
	return unsafe.Add(s.base, uintptr(i)*s.elemSize)
}

// setEphHeap writes h's id into slot i of s, a span of an ephemeron table
// type (Type.EphHeapOff). REQUIRES: slot i free, and s not yet published
// or its slot i just zeroed by the sweeper that claimed s.
func (h *Heap) setEphHeap(s *span, i uint32) {
	*(*uint32)(unsafe.Add(s.ptr(i), s.typ.EphHeapOff)) = h.id
}

// handleAt returns the handle of slot i's current (or next) object.
func (s *span) handleAt(i uint32) handle.Handle { return handle.Handle(s.hv[i].Load()) }

// gen returns slot i's generation.
func (s *span) gen(i uint32) uint32 { return s.handleAt(i).Gen() }

// nextFree allocates the next free slot: the lowest free slot at or past
// freeIndex.
// REQUIRES: the caller owns the span's allocation state.
func (s *span) nextFree() (uint32, bool) {
	if i, ok := s.nextFreeFast(); ok {
		return i, true
	}
	return s.nextFreeSlow()
}

// nextFreeFast is nextFree from allocCache alone, small enough to inline
// into Alloc (the runtime's nextFreeFast). It fails when the cache is used
// up; nextFreeSlow then loads the next word of allocBits.
func (s *span) nextFreeFast() (uint32, bool) {
	c := s.allocCache
	if c == 0 {
		return 0, false
	}
	b := uint32(bits.TrailingZeros64(c))
	i := s.freeIndex + b
	s.allocCache = c >> (b + 1) // b+1 may be 64: the shift then gives 0
	s.freeIndex = i + 1
	s.nfree--
	// No write to allocBits: slot i is below freeIndex now, which says it
	// is allocated; syncAllocBits writes the bit when the span leaves the
	// cache.
	return i, true
}

// syncAllocBits sets the allocBits bits of every slot below freeIndex,
// the slots allocated from allocCache since the span was cached, so that
// the bits are exact again. Called when a span leaves a mutator's cache.
// REQUIRES: the caller owns the span's allocation state.
func (s *span) syncAllocBits() {
	for w := range (s.freeIndex + 63) / 64 {
		s.allocBits[w] = s.allocWord(w)
	}
}

// allocWord returns word w of the allocation bits as they stand: allocBits
// with the slots below freeIndex set.
func (s *span) allocWord(w uint32) uint64 {
	a := s.allocBits[w]
	if start := w * 64; s.freeIndex >= start+64 {
		a = ^uint64(0)
		if n := s.nslots - start; n < 64 {
			a = 1<<n - 1 // no bit past the last slot
		}
	} else if s.freeIndex > start {
		a |= 1<<(s.freeIndex-start) - 1
	}
	return a
}

// nextFreeSlow refills allocCache from the next word of allocBits with a
// free slot and allocates from it. Like the runtime's refillAllocCache and
// nextFreeIndex.
func (s *span) nextFreeSlow() (uint32, bool) {
	for s.cacheEnd < s.nslots {
		w := s.cacheEnd / 64
		free := ^s.allocBits[w]
		if n := s.nslots - s.cacheEnd; n < 64 {
			free &= 1<<n - 1
		}
		s.freeIndex = s.cacheEnd
		s.cacheEnd += 64
		if free != 0 {
			s.allocCache = free
			return s.nextFreeFast()
		}
	}
	s.freeIndex = s.nslots
	s.allocCache = 0
	return 0, false
}

// resetAlloc restarts allocation from slot 0 (after a sweep).
// REQUIRES: the caller owns the span's allocation state.
func (s *span) resetAlloc() {
	s.freeIndex = 0
	s.allocCache = 0
	s.cacheEnd = 0
}

func (s *span) isAllocated(i uint32) bool {
	return i < s.freeIndex || s.allocBits[i/64]&(1<<(i%64)) != 0
}

func (s *span) isMarked(i uint32) bool { return s.markBits[i/64].Load()&(1<<(i%64)) != 0 }

// spanTable maps span indexes to spans: a two-level table of atomic
// pointers. Entries are written with Heap.mu held and read without a lock.
// A released span's entry is cleared, so a stale handle finds nil or a span
// whose generations are all newer than the handle's.
type spanTable struct {
	dir [handle.MaxSpans >> spanChunkBits]chunkPtr
}

// spanChunkBits is the log2 of a chunk's span count: 11, so that the
// directory has 512 entries and its entries lie within 4 KiB of its start.
// A zero Mutator (never Init'ed) has a nil table, and Deref's load of a
// directory entry then reads below address 4096, a nil dereference the Go
// runtime turns into a panic; with 1024 entries, a handle of a span index
// of 512K or more sent it past the zero page, a fault that kills the
// process. (Built with checkptr, as under -race, the lookup itself stops
// the process for a span index of 2048 or more: it computes a pointer
// into the zero page.)
const spanChunkBits = 11

type spanChunk [1 << spanChunkBits]spanPtr

// emptyChunk is the chunk every unused directory entry names, and emptySpan
// the span every unused chunk entry names, so that Deref's fast path needs
// no nil checks: emptySpan has no slots, so every handle fails against it.
// Neither is ever written after init.
var (
	emptySpan  = &span{}
	emptyChunk = newChunk()
)

func newChunk() *spanChunk {
	c := new(spanChunk)
	for i := range c {
		c[i].Store(emptySpan)
	}
	return c
}

// newSpanTable returns a table with every entry empty.
func newSpanTable() *spanTable {
	t := new(spanTable)
	for i := range t.dir {
		t.dir[i].Store(emptyChunk)
	}
	return t
}

// get returns the span at index i, or nil.
func (t *spanTable) get(i uint32) *span {
	s := t.dir[(i>>spanChunkBits)&(handle.MaxSpans>>spanChunkBits-1)].Load()[i&(1<<spanChunkBits-1)].Load()
	if s == emptySpan {
		return nil
	}
	return s
}

// REQUIRES: Heap.mu held.
func (t *spanTable) setLocked(i uint32, s *span) {
	d := &t.dir[i>>spanChunkBits]
	c := d.Load()
	if c == emptyChunk {
		c = newChunk()
		d.Store(c)
	}
	if s == nil {
		s = emptySpan
	}
	c[i&(1<<spanChunkBits-1)].Store(s)
}

// newSpanLocked makes a swept, empty span of type t and enters it in the
// table. It returns nil if the span table is full.
// REQUIRES: h.mu held.
func (h *Heap) newSpanLocked(t *Type) *span {
	var idx uint32
	if n := len(h.mu.freeIdx); n > 0 {
		idx = h.mu.freeIdx[n-1]
		h.mu.freeIdx = h.mu.freeIdx[:n-1]
	} else {
		if h.mu.nextIdx >= handle.MaxSpans {
			return nil
		}
		idx = h.mu.nextIdx
		h.mu.nextIdx++
		h.mu.idxFloor = append(h.mu.idxFloor, h.genBase)
	}
	n := slotsFor(t.Size)
	sp, reused := h.takeSpareLocked(t)
	if !reused {
		sp = newSpare(t, n)
	}
	s := &span{
		idx:       idx,
		typ:       t,
		base:      sp.base,
		elemSize:  t.Size,
		nslots:    n,
		hv:        sp.hv,
		hvBytes:   uintptr(n) * 8,
		slabOS:    sp.slabOS,
		wordsOS:   sp.wordsOS,
		allocBits: make([]uint64, bitmapWords(n)),
		noScan:    t.Layout.NoRefs && t.EphEach == nil,
		nfree:     n,
	}
	s.markBits, s.scanBits = markBitmaps(n, h.padBitmaps())
	s.markTags = make([]uint8, n)
	// The words are published with the span (h.spans.setLocked below);
	// the one reader that can race with these stores is a Get through a
	// stale ref that loaded a released span whose words these were (a
	// spare's), which fails its compare whatever it reads. So they are
	// plain stores where storeFreedGen's are (1024 locked instructions
	// a span otherwise).
	floor := h.mu.idxFloor[idx]
	for i := range s.hv {
		x := handle.Pack(h.id, idx, uint32(i), floor)
		storeFreedGen(&s.hv[i], uint64(x))
		s.markTags[i] = markTag(x)
	}
	if t.EphEach != nil {
		// Every slot, a spare's too: its slots have the id already
		// (spares are the heap's own), but nothing else says so.
		for i := range n {
			h.setEphHeap(s, i)
		}
	}
	s.sweepgen.Store(h.sweepgen.Load())
	h.spans.setLocked(idx, s)
	h.mu.allspans = append(h.mu.allspans, s)
	h.accountSpanLocked(n, t.Size, 1)
	h.stats.spansAllocated.Add(1)
	return s
}

// spansLocked returns a snapshot of the spans in use (released ones may
// still appear until the next flip compacts the list; callers skip them).
// REQUIRES: h.mu held.
func (h *Heap) spansLocked() []*span { return append([]*span(nil), h.mu.allspans...) }

// spanSnapshot returns spansLocked's snapshot, taking h.mu.
func (h *Heap) spanSnapshot() []*span {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.spansLocked()
}

// releaseSpanLocked gives an empty span's memory back and frees its index.
// The index's floor generation moves past every generation the span issued,
// so handles into the old span never match a new one.
// REQUIRES: h.mu held; the span is swept, holds no object and no special,
// and is in no central list and no cache.
func (h *Heap) releaseSpanLocked(s *span) {
	maxGen := uint32(0)
	for i := range s.hv {
		maxGen = max(maxGen, s.gen(uint32(i)))
	}
	h.spans.setLocked(s.idx, nil)
	s.released = true
	base := s.base
	s.base = nil
	if maxGen+1 < handle.MaxGen {
		h.mu.idxFloor[s.idx] = maxGen + 1
		h.mu.freeIdx = append(h.mu.freeIdx, s.idx)
	} // else the index is retired for good
	h.accountSpanLocked(s.nslots, s.elemSize, -1)
	h.stats.spansReleased.Add(1)
	if sp := (spare{base, s.hv, s.slabOS, s.wordsOS}); !h.keepSpareLocked(s.typ, sp) {
		sp.free(s.typ)
	}
}

// spare is the memory of a released span, kept for the next span of its
// type: its slab (every slot zero: a span is released only when it holds
// no object, and the sweeper zeroes what it frees) and its handle words
// (rewritten by newSpanLocked).
//
// The released span's struct may still be read by a goroutine that loaded
// it from the span table before the release: a Get through a stale ref
// reads s.hv[i] and compares it with the ref. That read stays sound when
// the words belong to a new span, as they do here: every word the new span
// writes names the new span's index, so the comparison fails, as it must,
// and nothing reads the slab before the comparison succeeds.
//
// This is the Go runtime's free page heap in miniature: a collection that
// frees many spans would otherwise hand their slabs to Go's collector, and
// the heap, growing back to its goal, would make new ones at once; the
// freed slabs would then stay resident until Go's next collection, which
// its own pacing puts off until Go's heap has doubled.
type spare struct {
	base            unsafe.Pointer
	hv              []atomic.Uint64
	slabOS, wordsOS bool // base, hv are outside the Go heap (newSpare)
}

// newSpare allocates the memory of a span of n slots of type t. The handle
// words, which hold no Go pointer whatever t is, are taken outside the Go
// heap (internal/osmem) where that is enabled; the slab too for a type
// without Go pointers. Either only if it fills at least half of its pages
// (osmem.Worth). The two come from separate pools, so that neither
// is ever reused as the other. What osmem refuses comes from the Go heap.
func newSpare(t *Type, n uint32) spare {
	var sp spare
	if osmem.Enabled {
		if hv := allocWords(n); hv != nil {
			sp.hv, sp.wordsOS = unsafe.Slice((*atomic.Uint64)(hv), n), true
		}
		if !t.Layout.HasPointers && osmem.Worth(uintptr(n)*t.Size) {
			if base := osmem.Slabs.Alloc(uintptr(n) * t.Size); base != nil {
				sp.base, sp.slabOS = base, true
			}
		}
	}
	if !sp.wordsOS {
		sp.hv = make([]atomic.Uint64, n)
	}
	if !sp.slabOS {
		sp.base = t.NewSlab(int(n))
	}
	return sp
}

// allocWords returns n handle words outside the Go heap, or nil if the Pool
// refuses them or they would fill less than half of their pages (spans of
// fewer than 256 slots, objects of more than 64 bytes).
func allocWords(n uint32) unsafe.Pointer {
	if !osmem.Worth(uintptr(n) * 8) {
		return nil
	}
	return osmem.Words.Alloc(uintptr(n) * 8)
}

// free gives the memory of a spare of type t outside the Go heap back to
// the OS; Go's collector takes the rest. Nothing may read sp's slab after,
// and only a handle check racing through a released span's struct reads
// its handle words (they read as zeros, or as another span's, and fail).
func (sp spare) free(t *Type) {
	if sp.slabOS {
		osmem.Slabs.Free(sp.base, uintptr(len(sp.hv))*t.Size)
	}
	if sp.wordsOS {
		osmem.Words.Free(unsafe.Pointer(unsafe.SliceData(sp.hv)), uintptr(len(sp.hv))*8)
	}
}

// keepSpareLocked keeps sp, the memory of a span of type t just released,
// and reports true, if span memory in use plus spares (their handle words
// included: spare.bytes) stays within the heap's goal: memory the heap will
// use again before its next collection is due. Spares count toward
// MemoryLimit (refill).
// REQUIRES: h.mu held.
func (h *Heap) keepSpareLocked(t *Type, sp spare) bool {
	if h.mu.closed || sp.base == nil {
		return false
	}
	sz := sp.bytes(t)
	if goal := h.mu.pacer.Goal(); goal < 0 || h.mu.spanBytes+h.mu.spareBytes+sz > goal {
		return false
	}
	if h.mu.spares == nil {
		h.mu.spares = make(map[*Type][]spare)
	}
	h.mu.spares[t] = append(h.mu.spares[t], sp)
	h.addSpareBytesLocked(sz)
	return true
}

// addSpareBytesLocked adds d to spareBytes.
// REQUIRES: h.mu held.
func (h *Heap) addSpareBytesLocked(d int64) {
	h.mu.spareBytes += d
}

// bytes is the memory sp holds for type t: its slab and its handle words.
// The words count too, so that a spare of a zero-size type, whose slab has
// no bytes, still counts toward the goal and the limit.
func (sp spare) bytes(t *Type) int64 { return int64(len(sp.hv)) * (int64(t.Size) + 8) }

// takeSpareLocked returns a spare of type t, if there is one. Its slab is
// zero already: a span is released only when it holds no object, and the
// sweeper zeroed every object it freed (clearDead), so it is not cleared
// again here, with h.mu held; the invariants build checks it. An
// ephemeron table's slots hold the heap's id too (Type.EphHeapOff),
// written back by the sweep after it zeroed them.
// REQUIRES: h.mu held.
func (h *Heap) takeSpareLocked(t *Type) (spare, bool) {
	l := h.mu.spares[t]
	if len(l) == 0 {
		return spare{}, false
	}
	sp := l[len(l)-1]
	l[len(l)-1] = spare{}
	h.mu.spares[t] = l[:len(l)-1]
	h.addSpareBytesLocked(-sp.bytes(t))
	if invariantsBuild && t.Size > 0 {
		for i := range uintptr(len(sp.hv)) {
			if what := h.notFree(t, unsafe.Add(sp.base, i*t.Size)); what != "" {
				panic(fmt.Sprintf("reclaim: internal error: slot %d of a spare slab of %s %s", i, t.Name, what))
			}
		}
	}
	return sp, true
}

// trimSparesLocked drops spares until span memory plus spares is within
// limit bytes (all of them for a negative limit), giving their memory
// back (spare.free).
// REQUIRES: h.mu held.
func (h *Heap) trimSparesLocked(limit int64) {
	for t, l := range h.mu.spares {
		for len(l) > 0 && (limit < 0 || h.mu.spanBytes+h.mu.spareBytes > limit) {
			h.addSpareBytesLocked(-l[len(l)-1].bytes(t))
			l[len(l)-1].free(t)
			l[len(l)-1] = spare{}
			l = l[:len(l)-1]
		}
		if len(l) == 0 {
			delete(h.mu.spares, t)
		} else {
			h.mu.spares[t] = l
		}
	}
}

// span returns the span x names, by plain loads (see spanPtr): Deref's
// lookup, shared with the specials' fast paths. Directory entries are never
// nil (unused ones name emptyChunk) and chunk entries never nil (unused ones
// name emptySpan, which has no slots), so it needs no check; the shifts are
// handle.Handle's layout.
func (t *spanTable) span(x handle.Handle) *span {
	// Both levels are addressed by unsafe.Add, the directory's entry at
	// (x>>55) and the chunk's at (x>>44)&(1<<spanChunkBits-1), a pointer
	// (1<<ptrShift bytes) apart: indexing t.dir or a *spanChunk costs an
	// explicit nil check on every Get (a load from an index register may
	// fault far from the zero page); the load from the sum needs none. t is
	// emptyTable for a detached mutator, and nil only for a zero Mutator,
	// whose load of a directory entry then stays in the zero page (see
	// spanChunkBits). The offsets are
	// left as uint64 (unsafe.Add takes any integer), which keeps Deref
	// within the inlining budget.
	return *(**span)(unsafe.Add(*(*unsafe.Pointer)(unsafe.Add(unsafe.Pointer(t), x>>(64-handle.SpanBits+spanChunkBits)<<ptrShift)),
		x>>(44-ptrShift)&((1<<spanChunkBits-1)<<ptrShift)))
}

// ptrShift is log2 of a pointer's size: 3, or 2 on 32-bit platforms.
const ptrShift = 2 + ^uintptr(0)>>63

// spanPtr and chunkPtr are pointer cells written atomically and read either
// atomically or, on Deref's fast path, plainly. The plain reads are sound:
// an entry is written (with Heap.mu held) before any handle naming its span
// exists, and rewritten only when the span is released, when no live handle
// names it; a mutator reads an entry only through a handle it obtained
// after the write.
type spanPtr struct{ p unsafe.Pointer }

func (c *spanPtr) Load() *span   { return (*span)(atomic.LoadPointer(&c.p)) }
func (c *spanPtr) Store(s *span) { atomic.StorePointer(&c.p, unsafe.Pointer(s)) }

type chunkPtr struct{ p unsafe.Pointer }

func (c *chunkPtr) Load() *spanChunk   { return (*spanChunk)(atomic.LoadPointer(&c.p)) }
func (c *chunkPtr) Store(s *spanChunk) { atomic.StorePointer(&c.p, unsafe.Pointer(s)) }
