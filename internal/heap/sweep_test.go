package heap

import (
	"errors"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
	"github.com/reclaimgc/reclaim/internal/osmem"
)

// allocGarbage allocates n vnodes and drops them.
func allocGarbage(t *testing.T, m *Mutator, n int) {
	t.Helper()
	for range n {
		if _, err := m.Alloc(vnodeType); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReusedSpansStay checks that spans which empty out in every cycle but
// are allocated from again in between are kept, not released and made anew
// (binary-trees' pattern: every cycle's trees die by the next).
func TestReusedSpansStay(t *testing.T) {
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
	n := 4 * int(slotsFor(vnodeType.Size))
	allocGarbage(t, m, n)
	m.Collect()
	first := h.Stats()
	for range 5 {
		allocGarbage(t, m, n)
		m.Collect()
	}
	st := h.Stats()
	if st.SpansReleased != 0 || st.SpansAllocated != first.SpansAllocated {
		t.Errorf("spans allocated %d -> %d, released %d: spans reused every cycle were released and made anew",
			first.SpansAllocated, st.SpansAllocated, st.SpansReleased)
	}
}

// TestIdleSpansReleased checks that a span that stays empty for a whole
// cycle is released.
func TestIdleSpansReleased(t *testing.T) {
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
	allocGarbage(t, m, 4*int(slotsFor(vnodeType.Size)))
	m.Collect() // the spans empty out: kept for a cycle
	if st := h.Stats(); st.SpanBytes == 0 {
		t.Fatalf("span bytes 0 right after the first collection; want the emptied spans kept for a cycle")
	}
	m.Collect() // still empty: released
	if st := h.Stats(); st.SpanBytes != 0 || st.SpansReleased != st.SpansAllocated {
		t.Errorf("after two collections with nothing live: span bytes %d, spans allocated %d, released %d",
			st.SpanBytes, st.SpansAllocated, st.SpansReleased)
	}
}

// randomSpan returns a span of nslots slots, about a third of them
// allocated, chosen by an xorshift generator seeded with seed.
func randomSpan(nslots uint32, seed uint64) *span {
	s := &span{nslots: nslots, allocBits: make([]uint64, (nslots+63)/64)}
	x := seed * 0x9e3779b97f4a7c15
	for i := range nslots {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		if x%3 == 0 {
			s.allocBits[i/64] |= 1 << (i % 64)
		} else {
			s.nfree++
		}
	}
	return s
}

// TestNextFree checks nextFree and its allocCache against a plain scan of
// the allocation bits, for spans whose slot count is and is not a multiple
// of 64.
func TestNextFree(t *testing.T) {
	for _, nslots := range []uint32{1, 63, 64, 100, 1024} {
		for seed := uint64(1); seed < 40; seed++ {
			s := randomSpan(nslots, seed)
			var want []uint32
			for i := range nslots {
				if !s.isAllocated(i) {
					want = append(want, i)
				}
			}
			s.resetAlloc()
			var got []uint32
			for {
				i, ok := s.nextFree()
				if !ok {
					break
				}
				got = append(got, i)
			}
			if len(got) != len(want) || s.nfree != 0 {
				t.Fatalf("nslots %d seed %d: got %d slots %v, want %v (nfree left %d)", nslots, seed, len(got), got, want, s.nfree)
			}
			for k := range got {
				if got[k] != want[k] {
					t.Fatalf("nslots %d seed %d: slot %d is %d, want %d", nslots, seed, k, got[k], want[k])
				}
			}
			for i := range nslots {
				if !s.isAllocated(i) {
					t.Fatalf("nslots %d seed %d: slot %d not allocated after the span filled", nslots, seed, i)
				}
			}
			s.syncAllocBits()
			for w, a := range s.allocBits {
				want := ^uint64(0)
				if n := nslots - uint32(w)*64; n < 64 {
					want = 1<<n - 1
				}
				if a != want {
					t.Fatalf("nslots %d seed %d: full span's allocation word %d after sync is %#x, want %#x", nslots, seed, w, a, want)
				}
			}
		}
	}
}

// TestSyncAllocBits allocates part of a span from its allocCache, which
// leaves allocBits behind, and checks that isAllocated and allocWord see the
// new objects and that syncAllocBits writes exactly their bits.
func TestSyncAllocBits(t *testing.T) {
	for _, nslots := range []uint32{1, 63, 64, 100, 1024} {
		for seed := uint64(1); seed < 40; seed++ {
			s := randomSpan(nslots, seed)
			want := slices.Clone(s.allocBits)
			s.resetAlloc()
			for range uint32(seed) % (s.nfree + 1) {
				i, ok := s.nextFree()
				if !ok {
					t.Fatalf("nslots %d seed %d: span full early", nslots, seed)
				}
				if !s.isAllocated(i) {
					t.Fatalf("nslots %d seed %d: slot %d just allocated is not allocated", nslots, seed, i)
				}
				want[i/64] |= 1 << (i % 64)
			}
			for w := range want {
				if got := s.allocWord(uint32(w)); got != want[w] {
					t.Fatalf("nslots %d seed %d: allocWord(%d) = %#x, want %#x", nslots, seed, w, got, want[w])
				}
			}
			for i := range nslots {
				if s.isAllocated(i) != (want[i/64]&(1<<(i%64)) != 0) {
					t.Fatalf("nslots %d seed %d: isAllocated(%d) = %v", nslots, seed, i, s.isAllocated(i))
				}
			}
			s.syncAllocBits()
			if !slices.Equal(s.allocBits, want) {
				t.Fatalf("nslots %d seed %d: allocBits after sync %#x, want %#x", nslots, seed, s.allocBits, want)
			}
		}
	}
}

// TestSparesReused checks that the memory of released spans is kept, within
// the heap's goal, and that new spans of the type take it, with every slot
// zero again.
func TestSparesReused(t *testing.T) {
	h, m := testHeap(t, Config{MarkWorkers: 1})
	per := int(slotsFor(vnodeType.Size))
	for i := range 4 * per {
		x, err := m.Alloc(vnodeType)
		if err != nil {
			t.Fatal(err)
		}
		(*vnode)(m.Deref(x)).val = int64(i + 1) // dirty the slab
	}
	m.Collect()
	m.Collect() // empty for a whole cycle: released
	st := h.Stats()
	perSpan := int64(per) * (int64(vnodeType.Size) + 8) // slab and handle words
	if st.SpansReleased != 4 || st.SpareBytes != 4*perSpan {
		t.Fatalf("after the spans emptied: released %d, spare bytes %d; want 4 and 4 spans' memory (%d) kept",
			st.SpansReleased, st.SpareBytes, 4*perSpan)
	}
	if st.SpanBytes+st.SpareBytes > st.HeapGoal {
		t.Errorf("span bytes %d + spares %d exceed the goal %d", st.SpanBytes, st.SpareBytes, st.HeapGoal)
	}
	for range 2 * per {
		x, err := m.Alloc(vnodeType)
		if err != nil {
			t.Fatal(err)
		}
		if v := *(*vnode)(m.Deref(x)); v != (vnode{}) {
			t.Fatalf("new object %v in a reused slab is %+v, want zero", x, v)
		}
	}
	if got := h.Stats().SpareBytes; got != 2*perSpan {
		t.Errorf("spare bytes %d after two spans' allocations, want two spans' slabs left", got)
	}
}

type wide struct{ a, b, c, d int64 }

var wideType = newTestType[wide]()

// TestSparesCountTowardLimit checks that spares count toward the memory
// limit, and are dropped before a span of another type is refused.
func TestSparesCountTowardLimit(t *testing.T) {
	// The limit holds six spans of wideType, slabs and metadata.
	const spans = 6
	wn := slotsFor(wideType.Size)
	limit := spans * (int64(wn)*int64(wideType.Size) + spanMeta(wn, false))
	h, m := testHeap(t, Config{MarkWorkers: 1, MemoryLimit: limit})
	allocGarbage(t, m, 4*int(slotsFor(vnodeType.Size)))
	m.Collect()
	m.Collect()
	if st := h.Stats(); st.SpareBytes == 0 {
		t.Fatalf("no spares kept (goal %d, limit %d)", st.HeapGoal, limit)
	}
	var kept []handle.Handle
	for range spans * int(slotsFor(wideType.Size)) {
		x, err := m.Alloc(wideType)
		if err != nil {
			st := h.Stats()
			t.Fatalf("allocation %d of %d refused (%v) with span bytes %d, metadata %d and spares %d under a limit of %d",
				len(kept), spans*int(slotsFor(wideType.Size)), err, st.SpanBytes, st.MetaBytes, st.SpareBytes, limit)
		}
		kept = append(kept, x)
	}
	st := h.Stats()
	if st.SpanBytes+st.MetaBytes+st.SpareBytes > limit {
		t.Errorf("span bytes %d + metadata %d + spares %d exceed the limit %d", st.SpanBytes, st.MetaBytes, st.SpareBytes, limit)
	}
	if _, err := m.Alloc(wideType); !errors.Is(err, ErrMemoryLimit) {
		t.Errorf("allocation past the limit: err %v, want ErrMemoryLimit", err)
	}
	runtime.KeepAlive(kept)
}

// TestSpareReusedAfterDroppingOthers: when the bitmaps of a spare of the
// wanted type do not fit, the spares of other types are dropped to make
// room before the allocation is refused.
func TestSpareReusedAfterDroppingOthers(t *testing.T) {
	const limit = 1 << 20
	h, m := testHeap(t, Config{MarkWorkers: 1, MemoryLimit: limit})
	allocGarbage(t, m, 4*int(slotsFor(vnodeType.Size)))
	for range 2 * slotsFor(wideType.Size) {
		if _, err := m.Alloc(wideType); err != nil {
			t.Fatal(err)
		}
	}
	m.Collect()
	m.Collect() // empty for a whole cycle: released, kept as spares
	wn := slotsFor(wideType.Size)
	h.mu.Lock()
	nw, nv := len(h.mu.spares[wideType]), len(h.mu.spares[vnodeType])
	var vsp int64
	for _, sp := range h.mu.spares[vnodeType] {
		vsp += sp.bytes(vnodeType)
	}
	held := h.mu.spanBytes + h.mu.metaBytes + h.mu.spareBytes
	h.mu.Unlock()
	if nw == 0 || nv == 0 {
		t.Fatalf("spares: %d of wide, %d of vnode; want some of each", nw, nv)
	}
	bitmaps := spanBitmaps(wn, h.padBitmaps())
	// External bytes that leave room for the wide spare's bitmaps only if
	// the vnode spares (vsp bytes) are dropped.
	ext := limit - (held + bitmaps) + 1
	h.AddExternal(ext)
	if _, err := m.Alloc(wideType); err != nil {
		st := h.Stats()
		t.Fatalf("allocation refused (%v) with %d bytes of droppable vnode spares: slabs %d, metadata %d, spares %d, external %d, limit %d (needs %d bytes of bitmaps)",
			err, vsp, st.SpanBytes, st.MetaBytes, st.SpareBytes, st.External, limit, bitmaps)
	}
	h.AddExternal(-ext)
}

type withPointer struct{ p *int }

var withPointerType = newTestType[withPointer]()

// TestPointerFreeSpansOutsideGoHeap checks that spans of a type without Go
// pointers take their memory outside the Go heap and give it back when the
// heap closes, and that spans of a type with Go pointers keep their slabs
// on it (their handle words, pointer-free, go outside too).
func TestPointerFreeSpansOutsideGoHeap(t *testing.T) {
	if !osmem.Enabled {
		t.Skip("memory outside the Go heap is not used in this build (race detector, or not Linux)")
	}
	slabs0, _, _ := osmem.Slabs.Usage()
	words0, _, _ := osmem.Words.Usage()
	h := New(Config{MarkWorkers: 1})
	m := NewMutator()
	h.Attach(m)
	per := int(slotsFor(vnodeType.Size))
	allocGarbage(t, m, 4*per)
	for range slotsFor(withPointerType.Size) * 2 {
		if _, err := m.Alloc(withPointerType); err != nil {
			t.Fatal(err)
		}
	}
	slabs, _, _ := osmem.Slabs.Usage()
	words, _, _ := osmem.Words.Usage()
	if want := uintptr(4 * spanBytes); slabs-slabs0 != want {
		t.Errorf("slab memory outside the Go heap grew by %d, want %d (four spans of a pointer-free type, none of the other)", slabs-slabs0, want)
	}
	if want := uintptr(4*per+2*int(slotsFor(withPointerType.Size))) * 8; words-words0 != want {
		t.Errorf("handle-word memory outside the Go heap grew by %d, want %d (the handle words of all six spans)", words-words0, want)
	}
	// Spans of one 16 KiB object: the slab comes from outside the Go
	// heap, the one handle word from the Go heap (outside, it would hold
	// a whole page).
	big := newTestType[obj16k]()
	for range 3 {
		if _, err := m.Alloc(big); err != nil {
			t.Fatal(err)
		}
	}
	slabs2, _, _ := osmem.Slabs.Usage()
	words2, _, _ := osmem.Words.Usage()
	if slabs2-slabs != 3*16<<10 || words2 != words {
		t.Errorf("three spans of one 16 KiB object: slab memory outside the Go heap grew by %d, want %d; handle-word memory by %d, want 0",
			slabs2-slabs, 3*16<<10, words2-words)
	}
	m.Detach()
	h.Close()
	slabs, _, _ = osmem.Slabs.Usage()
	words, _, _ = osmem.Words.Usage()
	if slabs != slabs0 || words != words0 {
		t.Errorf("after Close: %d slab and %d handle-word bytes outside the Go heap, want %d and %d", slabs, words, slabs0, words0)
	}
}

type zeroSized struct{}

var zeroSizedType = newTestType[zeroSized]()

// TestZeroSizeSparesBounded checks that spares of a zero-size type, whose
// slabs have no bytes, are bounded by the goal like any other: their
// handle words count.
func TestZeroSizeSparesBounded(t *testing.T) {
	h, m := testHeap(t, Config{MarkWorkers: 1, MinHeap: 64 << 10})
	const spans = 200
	for range spans * int(slotsFor(0)) {
		if _, err := m.Alloc(zeroSizedType); err != nil {
			t.Fatal(err)
		}
	}
	m.Collect()
	m.Collect() // empty a whole cycle: released
	h.mu.Lock()
	kept := int64(len(h.mu.spares[zeroSizedType]))
	h.mu.Unlock()
	st := h.Stats()
	words := kept * int64(slotsFor(0)) * 8
	if st.SpareBytes != words || st.SpanBytes+st.SpareBytes > st.HeapGoal {
		t.Errorf("%d spares of a zero-size type hold %d bytes of handle words; Stats.SpareBytes %d, span bytes %d, goal %d: want the words counted and within the goal",
			kept, words, st.SpareBytes, st.SpanBytes, st.HeapGoal)
	}
}

type (
	obj48  [6]uint64
	obj128 [16]uint64
	obj512 [64]uint64
	obj16k [2048]uint64
)

// TestMarkBitmapsOwnLines checks that with several mark workers no cache
// line holds the mark or scan bits of two spans (markBitmaps): the workers
// write them with plain stores, each for its own spans, and a line two
// spans share moves between the cores at every mark. Objects of 128 bytes
// and more have bitmaps of 16 bytes or less, which Go's allocator packs
// several to a line. It also checks that the heap's metadata count is
// what Verify recomputes with the same layout.
func TestMarkBitmapsOwnLines(t *testing.T) {
	types := []*Type{vnodeType, newTestType[obj48](), newTestType[obj128](), newTestType[obj512](), newTestType[obj16k]()}
	for _, workers := range []int{1, 2} {
		h, m := testHeap(t, Config{MarkWorkers: workers, GCPercent: -1})
		// Spans of the types made in turn, so that their bitmaps are
		// made one after another.
		for range 8 {
			for _, ty := range types {
				for range slotsFor(ty.Size) {
					if _, err := m.Alloc(ty); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		h.mu.Lock()
		spans := h.spansLocked()
		h.mu.Unlock()
		if len(spans) < 8*len(types) {
			t.Fatalf("%d spans, want at least %d", len(spans), 8*len(types))
		}
		owner := make(map[uintptr]*span) // cache line -> the span whose bits are in it
		shared := 0
		for _, s := range spans {
			for _, bits := range [][]atomic.Uint64{s.markBits, s.scanBits} {
				if len(bits) != bitmapWords(s.nslots) || cap(bits) != len(bits) {
					t.Fatalf("MarkWorkers %d: %v: bitmap of len %d, cap %d; want len and cap %d", workers, s, len(bits), cap(bits), bitmapWords(s.nslots))
				}
				for i := range bits {
					line := uintptr(unsafe.Pointer(&bits[i])) &^ 63
					if o := owner[line]; o != nil && o != s {
						shared++
						if workers > 1 {
							t.Errorf("MarkWorkers %d: %v and %v have mark or scan bits in one cache line", workers, o, s)
						}
					}
					owner[line] = s
				}
			}
		}
		if workers == 1 && shared == 0 {
			// Not an error, but then this test cannot fail with two
			// workers on this allocator either: say so.
			t.Logf("MarkWorkers 1: no line is shared; the packed layout did not pack")
		}
		if err := h.Verify(); err != nil {
			t.Fatalf("MarkWorkers %d: %v", workers, err)
		}
	}
}

// TestSpanTableLookup: Deref's lookup (spanTable.span) finds the span a
// handle names for every span index, as the table's get does, whatever
// the size of a pointer: with 8 bytes an entry assumed, a 32-bit build
// read the entry of span 2i for span i, and every Get of span 1 failed.
func TestSpanTableLookup(t *testing.T) {
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
	var xs []handle.Handle
	for len(xs) == 0 || xs[len(xs)-1].Span() < 5 {
		x, err := m.Alloc(vnodeType)
		if err != nil {
			t.Fatal(err)
		}
		xs = append(xs, x)
	}
	for _, x := range xs {
		if got, want := h.spans.span(x), h.spans.get(x.Span()); got != want {
			t.Fatalf("span lookup of %v found %p, want %p", x, got, want)
		}
		_ = m.Deref(x)
	}
}
