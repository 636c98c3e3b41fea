// Package pacer decides when a reclaim heap's next collection is due and
// whether a new span fits under the memory limit.
//
// It is a pure value: every input is an explicit argument and nothing here
// reads a clock or the heap. The heap calls it under its own lock (see
// internal/heap, DESIGN.md "Pacing").
//
// The math, after the Go runtime's gcControllerState.heapGoal:
//
//	goal     = max(marked + (marked+external) * GCPercent/100, MinHeap)
//	goal     = max(min(goal, share - headroom), 0)     when a limit is set
//	share    = (MemoryLimit - external) * slab/(slab+meta)
//	headroom = min(share * 3% + span, share/2)
//	due      = live + external >= goal + external      (i.e. live >= goal)
//
// where marked is what the last mark found live, live is what the heap holds
// now (marked plus what was allocated since), and external is memory held
// outside the heap on its objects' behalf (Heap.AddExternal). External bytes
// count toward the goal's growth and toward the limit, as a C buffer owned by
// a script object is the script's memory. The limit also counts the spans'
// metadata (handle words and bitmaps, meta bytes for slab bytes of slabs in
// the spans in use), which the goal, like GOGC's, does not: so that a
// collection is due before an allocation is refused, the cap on the goal is
// share, the part of the limit left for objects, in the heap's present
// proportion of metadata to slabs (EndCycle, and Spans as spans come and
// go), less a headroom. The headroom has two parts. span is the largest
// span the heap has made, slab and metadata (SpanMade): the allocation
// that takes live past the goal may take a new span, and that span must
// still fit under the limit, or the allocation is refused before any
// collection was due. The 3% (the runtime's
// memoryLimitHeapGoalHeadroomPercent) is for what the mutators allocate
// between the collection's becoming due and their next safepoints. The
// headroom is at most half the share, so that a heap whose spans are
// nearly as large as the limit keeps a goal above 0 (with 0, a collection
// would be due at every safepoint, whatever was allocated). Subtracting span, bytes
// of slab and metadata, from the share for objects leaves at least span
// bytes of memory free, whatever the proportion.
//
// A negative GCPercent turns the growth rule off. With no memory limit,
// automatic collection is then off (the goal is -1). With one, the cap alone
// sets the goal, as GOGC=off with GOMEMLIMIT collects only near the limit:
// a heap that makes garbage under a limit collects before its allocations
// are refused. Either way allocation past the limit fails, and a limit hit
// makes a collection due.
package pacer

import "math"

// limitHeadroomPercent is the part of the memory limit's share for objects
// that the goal leaves free, besides the largest span, so that a
// collection is due while the mutators still have room to reach a
// safepoint (the runtime's memoryLimitHeapGoalHeadroomPercent).
const limitHeadroomPercent = 3

// DefaultMinHeap is the goal floor, like the Go runtime's 4 MB heapMinimum.
const DefaultMinHeap = 4 << 20

// Config is the pacer's fixed input.
type Config struct {
	GCPercent   int   // 0 means 100; negative turns pacing off
	MemoryLimit int64 // bytes of span memory (slabs, metadata and spares) plus external; 0 means none
	MinHeap     int64 // goal floor; 0 means DefaultMinHeap
}

// Pacer holds the goal computed at the end of the last mark. It has no
// synchronization of its own: its owner serializes every call (the heap
// keeps it in Heap.mu and calls it with that lock held).
type Pacer struct {
	cfg Config // defaults applied by New; changed only by SetGCPercent
	// grown is the goal before the limit's cap, and external the external
	// bytes, as of the last EndCycle (New: the floor, and 0).
	grown, external int64
	goal            int64 // grown, capped by the limit: set by New, EndCycle and Spans
	span            int64 // the largest span's bytes, slab and metadata, the heap has made (SpanMade)
}

// New returns a pacer for a heap that has not collected yet: the goal is the
// floor.
func New(cfg Config) Pacer {
	if cfg.GCPercent == 0 {
		cfg.GCPercent = 100
	}
	if cfg.MinHeap <= 0 {
		cfg.MinHeap = DefaultMinHeap
	}
	p := Pacer{cfg: cfg}
	p.EndCycle(0, 0, 0, 0)
	return p
}

// Config returns the configuration in force (defaults applied).
func (p *Pacer) Config() Config { return p.cfg }

// SetGCPercent changes GCPercent; the new value takes effect at the next
// EndCycle. 0 means 100.
func (p *Pacer) SetGCPercent(pct int) {
	if pct == 0 {
		pct = 100
	}
	p.cfg.GCPercent = pct
}

// EndCycle records what a mark found live and sets the goal for the next
// cycle. slab and meta are the bytes of the spans' slabs and of their
// metadata now; with a memory limit, they set its share left for objects.
func (p *Pacer) EndCycle(marked, external, slab, meta int64) {
	p.grown, p.external = -1, external
	if p.cfg.GCPercent >= 0 {
		p.grown = max(addSat(marked, mulDivSat(addSat(marked, external), int64(p.cfg.GCPercent), 100)), p.cfg.MinHeap)
	}
	p.goal = p.capped(slab, meta)
}

// mulDivSat is a*b/c for a, b >= 0 and c > 0, math.MaxInt64 where a*b
// overflows: a huge GCPercent or external total means a huge goal, not a
// wrapped one that falls to the floor.
func mulDivSat(a, b, c int64) int64 {
	if b != 0 && a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b / c
}

// addSat is a+b for a, b >= 0, math.MaxInt64 where it overflows.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Spans caps the goal again for the spans' slab and meta bytes now, and
// reports whether it moved. With a memory limit, the heap calls it as its
// spans come and go, so that the cap follows the proportion of metadata
// to slabs from the first span on, not only from the first cycle's end.
func (p *Pacer) Spans(slab, meta int64) bool {
	if p.cfg.MemoryLimit <= 0 {
		return false
	}
	g := p.capped(slab, meta)
	moved := g != p.goal
	p.goal = g
	return moved
}

// SpanMade records that the heap made a span of bytes bytes (its slab and
// its metadata). The headroom under the limit's cap includes the largest
// span made over the heap's life (see the package comment), so that the
// allocation that passes the goal, which may make such a span, still fits
// under the limit. It does not move the goal: the heap calls Spans next,
// which caps it again.
func (p *Pacer) SpanMade(bytes int64) { p.span = max(p.span, bytes) }

// headroom is what the cap leaves free of lim (> 0), the limit's share for
// objects: 3% of it plus the largest span made, at most half of it.
func (p *Pacer) headroom(lim int64) int64 {
	hr := addSat(lim/100*limitHeadroomPercent, p.span) // lim*3/100 overflows past MaxInt64/3
	return min(hr, lim/2)
}

// capped is grown capped by the limit's share for objects, less the
// headroom; with GCPercent negative (grown -1), that share alone.
func (p *Pacer) capped(slab, meta int64) int64 {
	if p.cfg.MemoryLimit <= 0 {
		return p.grown
	}
	grown := p.grown
	if grown < 0 {
		grown = math.MaxInt64
	}
	lim := p.cfg.MemoryLimit - p.external
	if slab > 0 && meta > 0 {
		lim = int64(float64(lim) * float64(slab) / float64(slab+meta))
	}
	if lim > 0 {
		lim -= p.headroom(lim)
	}
	// Never negative (external bytes past the limit): a negative goal
	// would mean automatic collection off.
	return max(min(grown, lim), 0)
}

// Goal returns the live-heap size at which the next collection is due, or -1
// when automatic collection is off.
func (p *Pacer) Goal() int64 { return p.goal }

// Due reports whether a collection is due with live bytes in the heap.
func (p *Pacer) Due(live int64) bool { return p.goal >= 0 && live >= p.goal }

// Fits reports whether size more bytes of span memory (slabs and metadata)
// fit under the memory limit, given the span memory in use now and the
// external bytes.
func (p *Pacer) Fits(inUse, external, size int64) bool {
	return p.cfg.MemoryLimit <= 0 || addSat(addSat(inUse, external), size) <= p.cfg.MemoryLimit
}
