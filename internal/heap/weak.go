package heap

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// Weak handles. Every object has at most one weak cell (and at most one
// long weak cell), found through its span's specials, so every Weak made
// from one object names the same cell and compares equal, as the runtime's
// weak handles do. A cell holds the object's handle until the sweeper kills
// it: a short cell as soon as the object is found unreachable (before its
// finalizer is queued), a long cell only when the object is freed.
//
// A killed cell's generation advances before the cell is reused, so an old
// Weak never reads a new object: Value reads the generation, the handle, and
// the generation again, and trusts the handle only if both reads match.

const weakChunkBits = 10

// weakCell is read lock-free by Value (load: gen, x, gen again). A cell in
// use is written by make (MakeWeak, which holds the object's span's
// specials.mu and weakTable.mu) and by kill (the span's sweeper, holding
// specials.mu), so its writers never overlap; a killed cell passes to its
// next make through weakTable.mu.free.
type weakCell struct {
	x   atomic.Uint64 // the object's handle; 0 once killed
	gen atomic.Uint32 // advanced when the cell is killed (kill loads, adds 1 and stores: it is the only writer then)
}

type weakChunk [1 << weakChunkBits]weakCell

type weakTable struct {
	// dir is the list of chunks, replaced (copied on growth) with mu held
	// and read lock-free; a chunk never moves once added. It starts empty,
	// so a heap that never makes a weak ref pays nothing for the table.
	dir atomic.Pointer[[]*weakChunk]
	// mu protects free and next, and serializes dir's growth.
	mu struct {
		sync.Mutex
		free []uint32 // killed cells ready for reuse
		next uint32   // next never-used cell
	}
}

func (t *weakTable) cell(i uint32) *weakCell {
	d := t.dir.Load()
	if d == nil || int(i>>weakChunkBits) >= len(*d) {
		return nil
	}
	return &(*d)[i>>weakChunkBits][i&(1<<weakChunkBits-1)]
}

// make returns a new cell holding x.
func (t *weakTable) make(x handle.Handle) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var i uint32
	if n := len(t.mu.free); n > 0 {
		i = t.mu.free[n-1]
		t.mu.free = t.mu.free[:n-1]
	} else {
		if t.mu.next >= handle.MaxCells {
			panic(fmt.Sprintf("reclaim: more than %d weak handles in one heap", handle.MaxCells))
		}
		i = t.mu.next
		t.mu.next++
		var d []*weakChunk
		if p := t.dir.Load(); p != nil {
			d = *p
		}
		if int(i>>weakChunkBits) >= len(d) {
			nd := append(d[:len(d):len(d)], new(weakChunk))
			t.dir.Store(&nd)
		}
	}
	c := t.cell(i)
	if c.gen.Load() == 0 {
		c.gen.Store(1)
	}
	c.x.Store(uint64(x))
	return i
}

// kill clears cell i and frees it. Called by the sweeper.
func (t *weakTable) kill(i uint32) {
	c := t.cell(i)
	c.x.Store(0)
	g := c.gen.Load() + 1
	c.gen.Store(g)
	if g >= handle.MaxGen {
		return // generation exhausted: the cell is retired
	}
	t.mu.Lock()
	t.mu.free = append(t.mu.free, i)
	t.mu.Unlock()
}

// load returns the handle in the cell w names, or 0.
func (t *weakTable) load(w handle.Weak) handle.Handle {
	c := t.cell(w.Cell())
	if c == nil {
		return 0
	}
	g1 := c.gen.Load()
	x := c.x.Load()
	g2 := c.gen.Load()
	if g1 != w.Gen() || g2 != g1 {
		return 0
	}
	return handle.Handle(x)
}

// MakeWeak returns the weak word of x's weak cell (long: its long weak
// cell), creating the cell on first use.
func (m *Mutator) MakeWeak(x handle.Handle, long bool) handle.Weak {
	h := m.enter("MakeWeak")
	defer m.leave()
	s := h.check(x, "MakeWeak")
	h.ensureSwept(s, &m.local)
	i := x.Slot()
	s.sp.mu.Lock()
	defer s.sp.mu.Unlock()
	if s.hv[i].Load() != uint64(x) {
		panic(fmt.Sprintf("reclaim: MakeWeak of a ref to a freed object (%v)", x))
	}
	arr := &s.sp.mu.weak
	if long {
		arr = &s.sp.mu.long
	}
	if *arr == nil {
		*arr = make([]uint32, s.nslots)
	}
	if (*arr)[i] == 0 {
		(*arr)[i] = h.weak.make(x) + 1
		s.sp.n.Add(1)
	}
	cell := (*arr)[i] - 1
	return handle.MakeWeak(h.id, cell, h.weak.cell(cell).gen.Load())
}

// WeakValue returns the object w names, or 0 once it was found unreachable
// (short) or freed (long). The object's span is swept first, so an object
// found dead by the last mark is never handed out again.
func (m *Mutator) WeakValue(w handle.Weak) handle.Handle {
	h := m.heap
	if h == nil {
		panic("reclaim: Weak.Value on a detached mutator")
	}
	if w == 0 {
		return 0
	}
	if w.Heap() != h.id {
		panic(fmt.Sprintf("reclaim: Weak.Value of a weak ref from another heap (weak heap %d, mutator's heap %d)", w.Heap(), h.id))
	}
	x := h.weak.load(w)
	if x == 0 {
		return 0
	}
	s := h.spans.get(x.Span())
	if s == nil {
		return 0
	}
	if s.sweepgen.Load() != h.sweepgen.Load() {
		// Sweeping writes m's cleanup block, which only the goroutine
		// using m may touch: a slow path, checked as the others are.
		m.weakValueSweep(h, s)
	}
	// The span is swept now; load the cell again, whoever swept it: a
	// sweeper may have killed the cell since the first load (the object
	// found dead, and kept for its finalizer with its handle unchanged, so
	// Valid would still hold). Its sweepgen store, which the check above
	// read, orders the kill before this load.
	if x = h.weak.load(w); x == 0 {
		return 0
	}
	if !h.Valid(x) {
		return 0
	}
	return x
}

// weakValueSweep is WeakValue's sweep of s, entered as a slow path: a
// mutator used from two goroutines at once panics here instead of sweeping
// into its cleanup block beside the other goroutine.
func (m *Mutator) weakValueSweep(h *Heap, s *span) {
	m.enter("Weak.Value")
	defer m.leave()
	h.ensureSwept(s, &m.local)
}
