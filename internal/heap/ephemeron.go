package heap

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
	"github.com/reclaimgc/reclaim/internal/layout"
)

// Ephemerons (weak-key tables: JavaScript's WeakMap, Lua's weak-key tables).
//
// An ephemeron table is an object whose Type has EphEach and EphPrune. Its
// entries are not traced when the table is scanned. Instead, during mark:
//
//  1. When a worker scans a table, it registers each entry. An entry whose
//     key is marked has its value traced at once. Otherwise the entry
//     waits on its key: it goes into pending[key], and the key's slot gets
//     a bit in its span's ephKeys bitmap.
//  2. When grey marks an object whose ephKeys bit is set, it releases the
//     entries waiting on it and traces their values.
//  3. When a phase of the mark ends, a key that entries still wait on and
//     that has a finalizer is doomed (doomKeys): nothing but, perhaps, the
//     values of its own entries could reach it, and the mark has not
//     reached it. Its finalizer is queued there and then, as the sweep
//     would queue it, and the key is greyed as a root: its entries' values
//     are traced (Lua 5.4 §2.5.4: a key being finalized keeps its entries
//     until it is freed, so its finalizer can read them), and the mark
//     runs again, until no finalizable key is left with entries waiting.
//     A value that leads back to its key marks it, but its finalizer is
//     queued already: such a key is not on a reference cycle, as it would
//     be if its entries counted as its referents, which a finalizable
//     object's fields do (seed 003).
//
// Each entry is thus handled a constant number of times, so reaching the
// fixpoint (a value making another entry's key reachable, to any depth)
// costs time linear in the number of entries, not quadratic as rescanning
// every table until nothing changes would.
//
// The race between registering an entry and marking its key is closed the
// way Dekker's algorithm closes it: the registrar counts the entry in
// npending and sets the key's ephKeys bit, then re-reads the key's mark
// bit; the marker sets the mark bit (an atomic Or), then reads npending
// and, if an entry waits anywhere, the key's ephKeys bit. With
// sequentially consistent atomics one of the two sees the other, and both
// paths take eph.mu before touching the waiting lists. The count must come
// before the re-read: counted after it, a marker that sets the mark bit
// between the two and reads npending as 0 skips the key, and the entry
// waits on a marked key for ever (its value is never traced, and is freed
// under a live entry). models/ephemeron.pml verifies the order and that
// the other one fails. Marking with plain stores (markWorker.ownPlain)
// would break the argument; it is off when the heap has ephemeron tables.
//
// At mark termination (world still stopped) every registered table is
// pruned: entries whose key will be freed this cycle are deleted. An entry
// whose value holds no refs is never registered, so its key is not doomed;
// if the key has a finalizer, the sweep queues it, and the entry is kept
// (keyLive) until the key is freed.

type ephEntry struct {
	val unsafe.Pointer // the entry's value, stable while the world is stopped
	lay *layout.Type
}

type ephNode struct {
	ephEntry
	next int32 // index+1 of the next node waiting on the same key; 0 ends
}

type ephState struct {
	// npending counts entries waiting on keys. Written with mu held:
	// incremented by scanTable before its re-read of the key's mark bit
	// (and decremented again if the key is marked), decremented by
	// released, stored 0 by the leader (resetEphemerons). Read lock-free
	// by markers (markRun, greyPlain) as a fast "nothing waits" check
	// before they read ephKeys; the order is what makes that check safe
	// (see the top of the file).
	npending atomic.Int64

	// mu protects the fields grouped in it and, for every span, ephHeads
	// and the stores to ephKeys. Taken by mark workers (scanTable,
	// released) and by the leader once they have ended.
	mu struct {
		sync.Mutex
		// nodes holds the waiting entries as linked lists, one per key:
		// a key's list starts at its span's ephHeads[slot]-1 and follows
		// next-1. No map: a chain of a million entries costs a million
		// slice appends, not a million hash-table probes.
		nodes  []ephNode
		tables []handle.Handle // tables scanned this mark
		spans  []*span         // spans whose ephKeys were set this mark
	}
}

// scanTable registers the entries of the table x (heap.go step 4, above).
func (w *markWorker) scanTable(x handle.Handle, s *span) {
	h := w.h
	e := &h.eph
	e.mu.Lock()
	e.mu.tables = append(e.mu.tables, x)
	e.mu.Unlock()
	s.typ.EphEach(s.ptr(x.Slot()), func(key handle.Handle, val unsafe.Pointer, lay *layout.Type) {
		if lay.NoRefs {
			return
		}
		ks := h.spans.get(key.Span())
		if ks == nil || !h.Valid(key) {
			return // a dead key: pruned at termination
		}
		i := key.Slot()
		if ks.isMarked(i) {
			w.ephq = append(w.ephq, ephEntry{val, lay})
			return
		}
		e.mu.Lock()
		bits := ks.ephKeys.Load()
		if bits == nil {
			b := make([]atomic.Uint64, len(ks.markBits))
			bits = &b
			ks.ephHeads = make([]int32, ks.nslots)
			ks.ephKeys.Store(bits)
			e.mu.spans = append(e.mu.spans, ks)
		}
		// Counted, then the key's bit, then the re-read: see the top of
		// the file.
		e.npending.Add(1)
		(*bits)[i/64].Or(1 << (i % 64))
		if ks.isMarked(i) { // marked since the first read: the marker may have missed the bit
			e.npending.Add(-1)
			e.mu.Unlock()
			w.ephq = append(w.ephq, ephEntry{val, lay})
			return
		}
		e.mu.nodes = append(e.mu.nodes, ephNode{ephEntry{val, lay}, ks.ephHeads[i]})
		ks.ephHeads[i] = int32(len(e.mu.nodes))
		e.mu.Unlock()
	})
}

// released is called by grey for a newly marked object whose ephKeys bit
// is set: the values waiting on it go on the worker's ephemeron queue,
// which drain traces like its grey stack (not here: a chain of entries
// would recurse as deep as it is long).
func (w *markWorker) released(s *span, i uint32) {
	e := &w.h.eph
	e.mu.Lock()
	n := 0
	for j := s.ephHeads[i]; j != 0; j = e.mu.nodes[j-1].next {
		w.ephq = append(w.ephq, e.mu.nodes[j-1].ephEntry)
		n++
	}
	s.ephHeads[i] = 0
	e.npending.Add(-int64(n))
	e.mu.Unlock()
}

// traceEph greys the refs of the values on the worker's ephemeron queue.
func (w *markWorker) traceEph() {
	for n := len(w.ephq); n > 0; n = len(w.ephq) {
		en := w.ephq[n-1]
		w.ephq = w.ephq[:n-1]
		w.scratchEph = en.lay.Scan(en.val, w.scratchEph[:0])
		for _, c := range w.scratchEph {
			w.grey(c) // may append to ephq
		}
	}
}

// resetEphemerons drops the mark's ephemeron state (the waiting entries,
// the keys' bitmaps) and returns the tables it registered.
// REQUIRES: world stopped, no worker running.
func (h *Heap) resetEphemerons() []handle.Handle {
	e := &h.eph
	e.mu.Lock()
	defer e.mu.Unlock()
	tables := e.mu.tables
	e.mu.tables = nil
	for _, s := range e.mu.spans {
		s.ephKeys.Store(nil)
		s.ephHeads = nil
	}
	e.mu.spans = nil
	clear(e.mu.nodes) // drop the value pointers
	e.mu.nodes = e.mu.nodes[:0]
	e.npending.Store(0)
	return tables
}

// doomKeys queues the finalizers of the keys that ephemeron entries wait on
// (step 3 at the top of the file) and that have a finalizer, and appends
// them to buf: the caller greys them as roots of another phase. The short
// weak handles of a doomed key are cleared first, as the sweep clears them
// before it queues a finalizer (sweepSpecials); long ones stay.
// REQUIRES: world stopped, no worker running (a phase has ended).
func (h *Heap) doomKeys(buf []handle.Handle) []handle.Handle {
	e := &h.eph
	e.mu.Lock()
	spans := e.mu.spans
	e.mu.Unlock()
	var fins finFill
	for _, s := range spans {
		fin := s.sp.fin.Load()
		if fin == nil {
			continue
		}
		keys := *s.ephKeys.Load()
		for wi := range keys {
			var doom uint64
			for k := keys[wi].Load() &^ s.markBits[wi].Load(); k != 0; k &= k - 1 {
				if i := wi*64 + bits.TrailingZeros64(k); s.ephHeads[i] != 0 && fin.fn[i] != nil {
					doom |= 1 << (i % 64)
				}
			}
			if doom == 0 {
				continue
			}
			s.sp.mu.Lock()
			h.dropWeak(s, s.sp.mu.weak, wi, doom)
			h.queueFinalizers(s, wi, doom, fin, &fins)
			s.sp.mu.Unlock()
			for d := doom; d != 0; d &= d - 1 {
				buf = append(buf, s.handleAt(uint32(wi*64+bits.TrailingZeros64(d))))
			}
		}
	}
	h.fin.flush(&fins)
	return buf
}

// keyLive reports whether key survives this cycle: it is marked, or it has
// a finalizer (it is kept for the finalizer and freed only later). Once the
// mark has ended, a finalizable key that is not marked has no entry whose
// value holds refs in a table the mark reached (doomKeys marked those), so
// keeping its entries keeps nothing the mark did not trace.
func (h *Heap) keyLive(key handle.Handle) bool {
	s := h.spans.get(key.Span())
	if s == nil || !h.Valid(key) {
		return false
	}
	i := key.Slot()
	if s.isMarked(i) {
		return true
	}
	return s.sp.finAt(i) != nil
}

// checkEphemerons panics if an entry still waits on a key that is marked:
// a wake-up the registration protocol lost (see the top of the file). The
// invariants build runs it at the end of every mark.
// REQUIRES: world stopped, marking complete.
func (h *Heap) checkEphemerons() {
	e := &h.eph
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.mu.spans {
		keys := s.ephKeys.Load()
		for wi := range *keys {
			for k := (*keys)[wi].Load() & s.markBits[wi].Load(); k != 0; k &= k - 1 {
				if i := uint32(wi*64 + bits.TrailingZeros64(k)); s.ephHeads[i] != 0 {
					panic(fmt.Sprintf("reclaim: internal error: ephemeron entries wait on %v, which is marked: a lost wake-up", s.handleAt(i)))
				}
			}
		}
	}
}

// finishEphemerons prunes the tables found this mark and resets the state.
// It counts the keys of another heap among the entries it deletes: a
// misuse (the first Set of a table the program zeroed cannot tell the
// table's heap), reported as a foreign ref in a live object is, not a
// silent loss of the entry.
// REQUIRES: world stopped, marking complete.
func (h *Heap) finishEphemerons() (pruned int, foreign int64) {
	tables := h.resetEphemerons()
	for _, x := range tables {
		s := h.spans.get(x.Span())
		s.typ.EphPrune(s.ptr(x.Slot()), func(key handle.Handle) bool {
			if h.keyLive(key) {
				return false
			}
			pruned++
			if key.Heap() != h.id {
				foreign++
			}
			return true
		})
	}
	return pruned, foreign
}
