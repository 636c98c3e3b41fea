// Package handle defines the 8-byte reference word that names an object in a
// reclaim heap, and the weak-cell word that names a weak handle.
//
// A Handle packs four fields into one uint64:
//
//	63             44 43      34 33              12 11        0
//	+----------------+----------+------------------+-----------+
//	|   span index   |   slot   |    generation    |  heap id  |
//	|    20 bits     |  10 bits |     22 bits      |  12 bits  |
//	+----------------+----------+------------------+-----------+
//
// The span index sits on top so that the span table's directory index is a
// bare shift (x>>55) on Deref's fast path.
//
// The zero Handle is nil: heap ids start at 1, so no valid handle is zero.
// The generation is the slot's allocation count. Freeing a slot advances it,
// so a handle kept past its object's death never matches the slot again; a
// slot whose generation would wrap is retired instead of reused, and a span
// index that is reused starts its slots above every generation it issued
// before (see internal/heap, span.go). A stale handle is therefore always
// detected, never aliased to a newer object.
//
// The collector finds handles inside objects by type: every field of type
// Handle is a strong reference (internal/layout). Weak references use the
// distinct type Weak so that they are never traced.
package handle

import "fmt"

// Handle is a strong reference word. See the package comment for its layout.
type Handle uint64

// Weak names a weak cell; it is never traced by the collector. Its layout is
// the same as Handle's, with the span index and slot replaced by a 30-bit cell
// index.
type Weak uint64

// The widths of a handle's fields (see the package comment), the largest
// value or count each allows, and a weak cell index's width and count (a
// span index and a slot, side by side).
const (
	GenBits  = 22
	SlotBits = 10
	SpanBits = 20
	HeapBits = 12

	MaxGen   = 1<<GenBits - 1
	MaxSlots = 1 << SlotBits
	MaxSpans = 1 << SpanBits
	MaxHeaps = 1<<HeapBits - 1 // id 0 is never used

	genShift  = HeapBits
	slotShift = HeapBits + GenBits
	spanShift = HeapBits + GenBits + SlotBits

	CellBits = SlotBits + SpanBits
	MaxCells = 1 << CellBits
)

// Make packs a handle. It panics if a field is out of range, since that is a
// bug in the heap, not in its user.
func Make(heap uint32, span uint32, slot uint32, gen uint32) Handle {
	if heap == 0 || heap > MaxHeaps || span >= MaxSpans || slot >= MaxSlots || gen > MaxGen {
		panic(fmt.Sprintf("reclaim: internal error: handle fields out of range (heap %d span %d slot %d gen %d)", heap, span, slot, gen))
	}
	return Handle(uint64(span)<<spanShift | uint64(slot)<<slotShift | uint64(gen)<<genShift | uint64(heap))
}

// Pack is Make without range checks, for the allocation fast path; the
// caller guarantees every field is in range.
func Pack(heap uint32, span uint32, slot uint32, gen uint32) Handle {
	return Handle(uint64(span)<<spanShift | uint64(slot)<<slotShift | uint64(gen)<<genShift | uint64(heap))
}

// Heap returns the id of the heap the handle belongs to.
func (h Handle) Heap() uint32 { return uint32(h) & MaxHeaps }

// Span returns the span index.
func (h Handle) Span() uint32 { return uint32(h >> spanShift) }

// Slot returns the slot within the span.
func (h Handle) Slot() uint32 { return uint32(h>>slotShift) & (MaxSlots - 1) }

// Gen returns the generation.
func (h Handle) Gen() uint32 { return uint32(h>>genShift) & MaxGen }

// String formats the handle for panics and diagnostics.
func (h Handle) String() string {
	if h == 0 {
		return "nil"
	}
	return fmt.Sprintf("heap %d span %d slot %d gen %d", h.Heap(), h.Span(), h.Slot(), h.Gen())
}

// MakeWeak packs a weak-cell word.
func MakeWeak(heap uint32, cell uint32, gen uint32) Weak {
	if heap == 0 || heap > MaxHeaps || cell >= MaxCells || gen > MaxGen {
		panic(fmt.Sprintf("reclaim: internal error: weak fields out of range (heap %d cell %d gen %d)", heap, cell, gen))
	}
	return Weak(uint64(cell)<<slotShift | uint64(gen)<<genShift | uint64(heap))
}

// Heap returns the id of the heap the weak word belongs to.
func (w Weak) Heap() uint32 { return uint32(w) & MaxHeaps }

// Cell returns the cell index.
func (w Weak) Cell() uint32 { return uint32(w >> slotShift) }

// Gen returns the cell generation.
func (w Weak) Gen() uint32 { return uint32(w>>genShift) & MaxGen }
