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

// queueCleanups queues the registered cleanups of slot i and empties its
// list. Called by the sweeper that claimed the span (Close takes them
// with takeCleanups, then queues them).
func (h *Heap) queueCleanups(t *cleanupTable, i uint32, local *cleanupq.Local) int {
	return takeCleanups(t, i, func(r cleanupq.Runner) { h.cq.Enqueue(local, r) })
}

// takeCleanups empties slot i's cleanup list: it moves each registered
// cleanup to queued and passes its record to f, and drops each stopped
// one. It returns how many it passed to f.
func takeCleanups(t *cleanupTable, i uint32, f func(cleanupq.Runner)) int {
	n := 0
	for c := t.head[i]; c != nil; {
		// Read the link first: once queued, the record may run and be
		// reused (Recycle) before the loop would read it.
		next := c.next
		if c.take() {
			f(c.r)
			n++
		} else {
			// Stopped: dropped here, but its record may stay in memory
			// (a Cleanup handle, the rest of its slab): let its function
			// and argument go.
			c.r.Zero()
		}
		c = next
	}
	t.head[i] = nil
	return n
}

// Specials are per-object records kept on the object's span, as the
// runtime's mspan.specials. The runtime keeps one list per span sorted by
// offset and kind; reclaim's objects have slot numbers, so it keeps one
// array per kind indexed by slot (allocated on first use), which is that
// sorted list with O(1) insertion. Per slot the kinds are visited in the
// runtime's order: weak handle, finalizer, then cleanups.
//
// Finalizers and cleanups, the hot kinds (the runtime's BenchmarkFinalizer
// and BenchmarkAddCleanupAndStop), are kept in tables of one word per slot
// (a finalizer; the head of a list of cleanup records), read and written
// without a lock or an atomic: a locked instruction costs more here than
// the rest of the call. A slot's words are owned like the object's own
// memory, and their users are ordered by the protocols that already order
// accesses to that memory:
//   - mutators (SetFinalizer, AddCleanup) read and write
//     them, only after the span is swept in the current cycle
//     (ensureSwept); the sweeper's sweepgen store happens before their
//     sweepgen load. Two mutators that set finalizers or add cleanups on
//     one object at the same time must synchronize, as they must to write
//     its fields (the race detector reports it if they do not); on
//     different objects they never share a word.
//   - the sweeper that claimed the span (sweepSpecials) reads and clears
//     them before it publishes sweepgen; no mutator touches the span's
//     words until then.
//   - the leader with the world stopped (mark roots, Debug, Verify, the
//     ephemeron fixpoint) reads them, and clears the finalizers of the
//     WeakMap keys it dooms (doomKeys, between phases of the mark, as the
//     sweeper would); stopping the world orders it after every mutator's
//     writes, and no sweeper runs during a mark.
//   - Close takes what is left, once no mutator may run concurrently.
//
// Cleanup.Stop, which any goroutine may call at any time, touches none of
// them: it CASes the record's own state word (see CleanupSpecial).
//
// The runtime instead locks mspan.speciallock for every SetFinalizer and
// AddCleanup, and every Stop; it must, since any goroutine may call them
// on any object at any time.
//
// specials.mu protects the weak kinds. The sweeper holds it while it
// processes a span's specials; MakeWeak holds it to install a cell.
type specials struct {
	// n counts the span's weak and long weak specials; written with mu
	// held (MakeWeak, sweepSpecials). Read without it as a hint ("this
	// span has none": any), and by the span's sweeper to decide that the
	// span is empty (sweepSpan): exact then, since MakeWeak adds only on a
	// swept span and the sweeper's own writes come before.
	n atomic.Int32

	// fin is the span's finalizer table, installed by CAS on the span's
	// first SetFinalizer (two mutators may race to install it) and never
	// replaced or removed while the span lives.
	fin atomic.Pointer[finTable]

	// cl is the span's cleanup table, installed and owned like fin.
	// Cleanup.Stop, from any goroutine, never touches it: it changes the
	// record's state word only.
	cl atomic.Pointer[cleanupTable]

	// mu protects the weak kinds' arrays: MakeWeak (a mutator, on a swept
	// span) and the span's sweeper (killWeak) hold it; Verify too.
	mu struct {
		sync.Mutex
		weak []uint32 // by slot: weak cell index + 1; 0 means none
		long []uint32 // by slot: long weak cell index + 1
	}
}

// any reports whether the span may have specials the sweeper must visit.
func (sp *specials) any() bool {
	return sp.n.Load() != 0 || sp.fin.Load() != nil || sp.cl.Load() != nil
}

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

// install sets *p to t unless another mutator installed a table first, and
// returns the table that is installed.
func install[T any](p *atomic.Pointer[T], t *T) *T {
	if p.CompareAndSwap(nil, t) {
		return t
	}
	return p.Load()
}

// sweptSlot returns x's span and slot (nil, 0 otherwise) when m is attached, x names a live
// object of m's heap, and its span is swept in the current cycle: the
// precondition of the specials' fast paths, which may then touch the
// slot's words (see specials). The lookup is Deref's. The fast paths
// also require m not busy (busyElsewhere): a goroutine inside one of m's
// slow paths (Collect, say) holds it.
//
// REQUIRES: m.tab != nil (m is not a zero Mutator; see SetFinalizer).
func (m *Mutator) sweptSlot(x handle.Handle) (*span, uint32) {
	// A detached mutator (m.heap nil) reads the empty table, whose spans
	// have no slots, so m.heap is read only once the handle matched.
	//
	// The handle check is Deref's, written out again: one method for both
	// (returning the word's offset and the result) cost Deref 11 more of
	// the inliner's nodes, 81 of 80, and Get its inlining; this function
	// is at 79.
	s := m.tab.span(x)
	i := int(x>>34) & (handle.MaxSlots - 1)
	if i < len(s.hv) && s.hv[i].Load() == uint64(x) && s.sweepgen.Load() == m.heap.sweepgen.Load() {
		return s, uint32(i)
	}
	return nil, 0
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
	if m.tab == nil {
		// A zero Mutator, which Init never readied, has no table for the
		// fast path's lookup; the slow path reports it as detached.
		m.setFinalizerSlow(x, fn)
		return
	}
	if s, i := m.sweptSlot(x); s != nil && !m.busyElsewhere() {
		if t := s.sp.fin.Load(); t != nil {
			w := &t.fn[i]
			if fn == nil {
				*w = nil
				return
			}
			// The table exists, so the slow path that made it has
			// started the finalizer goroutine (it does so before it
			// installs the table): no need to read the status word,
			// whose cache line the goroutine writes.
			if *w == nil {
				*w = (*funcval)(fn)
				return
			}
		}
	}
	m.setFinalizerSlow(x, fn)
}

func (m *Mutator) setFinalizerSlow(x handle.Handle, fn unsafe.Pointer) {
	h := m.enter("SetFinalizer")
	defer m.leave()
	s := h.check(x, "SetFinalizer")
	if s.sweepgen.Load() != h.sweepgen.Load() {
		// The last mark may have found the object unreachable: the sweep
		// frees it, and a finalizer set on its slot would be the next
		// object's. Check again, as Pin and AddCleanup do.
		h.ensureSwept(s, &m.local)
		h.check(x, "SetFinalizer")
	}
	t := s.sp.fin.Load()
	if fn == nil {
		if t != nil {
			t.fn[x.Slot()] = nil
		}
		return
	}
	h.fin.start(h) // before any table exists: the fast path relies on it
	if t == nil {
		t = install(&s.sp.fin, &finTable{fn: make([]*funcval, s.nslots)})
	}
	if t.fn[x.Slot()] != nil {
		panic(fmt.Sprintf("reclaim: SetFinalizer called twice on one %s object (clear it with nil first)", s.typ.Name))
	}
	t.fn[x.Slot()] = (*funcval)(fn)
}

// CleanupSpecial is one registered cleanup: the heap's part of the record
// AddCleanup allocates. The root package embeds it in its typed record, so
// one allocation holds the function, the argument and the special, and a
// Cleanup handle is a pointer to it.
//
// The state word is the record's generation: a counter that only CAS moves,
// by one, once per registration. lgen is its value when the record was
// linked, and the Cleanup handle's generation:
//
//	state      meaning                        moved to lgen+1 by
//	lgen       registered                     Stop (CAS), any goroutine; or
//	                                          the sweeper that found the
//	                                          object unreachable, or Close,
//	                                          as it queues the record (CAS)
//	lgen+1     stopped, if still linked;      (reuse links the record again
//	           queued, once the sweeper has   with lgen+1: no write)
//	           unlinked it
//
// Of a Stop and a sweeper racing for one record exactly one CAS wins; the
// loser sees a state that is no longer its generation. Nobody needs to
// tell "stopped" from "queued" by the value: while the record is linked
// only Stop can move it, and once the sweeper unlinks it only the sweeper
// could have. A stopped record stays linked until AddCleanup drops it
// from its list or the object dies; the mark ignores it, so its argument
// is not kept alive. AddCleanup hands the stopped records it unlinks to
// its mutator, and cleanup workers hand the queued ones that ran to the
// type's CleanupPool; either is reused for a new cleanup at the next
// generation, which is already the state's value: reuse writes no atomic,
// and a Stop through an older handle fails its CAS (after 2^32
// registrations of one record the counter wraps, and a handle kept that
// long could stop its successor).
type CleanupSpecial struct {
	r     CleanupRecord // the embedding record; immutable after Init
	typ   *CleanupType  // the record's type; immutable after Init
	state atomic.Uint32 // the generation counter; see above
	// lgen, next, n and pruneAt are owned like the slot's list (see
	// specials) while the record is linked: lgen is the generation the
	// record was linked with; next links the list; n is the length of the
	// list from this record on; in the head record, pruneAt is the length
	// past which AddCleanup drops the stopped records. Once unlinked, a
	// stopped record's next links its mutator's cleanupFree list (owned by
	// that mutator); a queued record's fields are not written until a
	// mutator reuses it, after the record has run and travelled through
	// the type's CleanupPool.
	lgen       uint32
	next       *CleanupSpecial
	n, pruneAt uint32
}

// cleanupPruneMin is the shortest list AddCleanup prunes of stopped records.
const cleanupPruneMin = 8

// Init makes c the special of record r (the value that embeds c), a
// record of type t.
func (c *CleanupSpecial) Init(r CleanupRecord, t *CleanupType) { c.r, c.typ = r, t }

// CleanupRecord is what embeds a CleanupSpecial: a cleanup's runner, which
// can also drop its function and argument (Zero) while it waits for
// reuse. Zero is a method of the interface the special holds, not an
// assertion made at each Stop: that cost as much as the rest of recycle.
type CleanupRecord interface {
	cleanupq.Runner
	Zero()
	// FuncPC returns the entry of the cleanup function's code, for the
	// debug reports (funcLocation); 0 if the record holds none.
	FuncPC() uintptr
}

// Type returns the type c was made with.
func (c *CleanupSpecial) Type() *CleanupType { return c.typ }

// Gen returns the generation c was linked with, for its Cleanup handle.
// Only the mutator that linked c may call it.
func (c *CleanupSpecial) Gen() uint32 { return c.lgen }

// Stop unregisters the cleanup of generation gen if it is still
// registered. It is safe from any goroutine; a cleanup already queued or
// run, or a record reused since, is unaffected.
// It reports whether it cancelled the cleanup.
func (c *CleanupSpecial) Stop(gen uint32) bool { return c.state.CompareAndSwap(gen, gen+1) }

// registered reports whether the linked cleanup is neither stopped nor
// queued. REQUIRES: the caller owns the slot's list.
func (c *CleanupSpecial) registered() bool { return c.state.Load() == c.lgen }

// stopped reports whether Stop won the linked record.
// REQUIRES: the caller owns the slot's list.
func (c *CleanupSpecial) stopped() bool { return c.state.Load() != c.lgen }

// take moves a registered cleanup to queued; it fails if Stop won.
// REQUIRES: the caller owns the slot's list.
func (c *CleanupSpecial) take() bool {
	return c.state.CompareAndSwap(c.lgen, c.lgen+1)
}

// cleanupFreeMax bounds the stopped records a mutator keeps per type.
const cleanupFreeMax = 64

// cleanupFree is a mutator's list of stopped records of one type, linked
// by next; owned by the mutator.
type cleanupFree struct {
	typ  *CleanupType
	head *CleanupSpecial
	n    int
}

// recycle keeps the stopped record c, just unlinked from its list, for
// reuse by m.
func (m *Mutator) recycle(c *CleanupSpecial) {
	// Zeroed even when it is not kept: the record may stay in memory (a
	// Cleanup handle, the rest of its slab), its function and argument
	// must not.
	c.r.Zero()
	e := &m.cfree[(uintptr(unsafe.Pointer(c.typ))>>5)%uintptr(len(m.cfree))]
	if e.typ != c.typ {
		if e.n != 0 {
			return // the entry holds another type's records: let Go collect c
		}
		e.typ = c.typ
	}
	if e.n == cleanupFreeMax {
		return
	}
	c.next, e.head = e.head, c
	e.n++
}

// ReuseCleanup returns a stopped record of type t, unlinked, or nil if m
// has none. Its state is already the next generation's "registered" (Stop
// advanced it), and no Stop of an older generation can change it.
func (m *Mutator) ReuseCleanup(t *CleanupType) *CleanupSpecial {
	e := &m.cfree[(uintptr(unsafe.Pointer(t))>>5)%uintptr(len(m.cfree))]
	if e.typ != t || e.head == nil {
		return nil
	}
	c := e.head
	e.head, c.next = c.next, nil
	e.n--
	return c
}

// cleanupTable holds a span's cleanups: head[slot] is the list of the
// object's cleanups, newest first. See specials for who may touch head's
// words (plain reads and writes, owned like the object's memory).
type cleanupTable struct {
	head []*CleanupSpecial
	// argRefs is set once a record whose argument holds refs is linked
	// here, and never cleared: while it is false, the mark and Debug,
	// which only follow arguments, skip the table without touching its
	// records. Unlike head's words it is shared by the span's objects,
	// which mutators may register cleanups on at once: atomic, stored
	// only when still false (a load, not a locked store, per push).
	argRefs atomic.Bool
}

// AddCleanup registers the cleanup c on x: LinkCleanup on x's
// CleanupList.
func (m *Mutator) AddCleanup(x handle.Handle, c *CleanupSpecial) {
	m.LinkCleanup(m.CleanupList(x), c)
}

// CleanupList is an object's list of cleanups, as CleanupList found it
// for LinkCleanup.
type CleanupList struct {
	t *cleanupTable
	i uint32 // the object's slot
}

// CleanupList makes AddCleanup's checks of m and x and returns x's list
// of cleanups. It panics if m is detached or in another goroutine's slow
// path, or x does not name a live object of m's heap, before it touches
// anything of m's: a caller that checks first and only then takes a
// record leaves nothing behind on misuse. The list is good for one
// LinkCleanup on m before m's next safepoint (no cycle can free x or
// drop its table in between).
//
// The fast path is the one of SetFinalizer: a span lookup and the
// sweepgen check; anything else takes the slow path.
func (m *Mutator) CleanupList(x handle.Handle) CleanupList {
	if m.tab == nil {
		return m.cleanupListSlow(x) // a zero Mutator: see SetFinalizer
	}
	if s, i := m.sweptSlot(x); s != nil && !m.busyElsewhere() {
		if t := s.sp.cl.Load(); t != nil {
			return CleanupList{t, i}
		}
	}
	return m.cleanupListSlow(x)
}

func (m *Mutator) cleanupListSlow(x handle.Handle) CleanupList {
	h := m.enter("AddCleanup")
	defer m.leave()
	s := h.check(x, "AddCleanup")
	if s.sweepgen.Load() != h.sweepgen.Load() {
		// The last mark may have found the object unreachable: the sweep
		// frees it, and a cleanup linked on its slot would belong to the
		// next object allocated there. Check again, as Pin does.
		h.ensureSwept(s, &m.local)
		h.check(x, "AddCleanup")
	}
	t := s.sp.cl.Load()
	if t == nil {
		t = install(&s.sp.cl, &cleanupTable{head: make([]*CleanupSpecial, s.nslots)})
	}
	return CleanupList{t, x.Slot()}
}

// LinkCleanup registers the cleanup c on the object whose list l is,
// which m's CleanupList returned since m's last safepoint: a plain push
// on the slot's list (see specials). It does not panic.
func (m *Mutator) LinkCleanup(l CleanupList, c *CleanupSpecial) { l.t.push(m, l.i, c) }

// push links c at the head of slot i's list, first dropping the stopped
// records at the head, and every stopped record once the list has doubled
// since the last time: the list stays within twice its registered
// cleanups plus cleanupPruneMin, at O(1) amortized per push.
func (t *cleanupTable) push(m *Mutator, i uint32, c *CleanupSpecial) {
	head := t.head[i]
	for head != nil && head.stopped() {
		next := head.next
		m.recycle(head)
		head = next
	}
	n, pruneAt := uint32(1), uint32(cleanupPruneMin)
	if head != nil {
		n, pruneAt = head.n+1, head.pruneAt
		if n > pruneAt {
			head = pruneStopped(m, head)
			n = 1
			if head != nil {
				n = head.n + 1
			}
			pruneAt = max(2*n, cleanupPruneMin)
		}
	}
	c.lgen = c.state.Load() // no Stop can race: no handle names c yet
	c.next, c.n, c.pruneAt = head, n, pruneAt
	t.head[i] = c
	if !c.typ.Layout.NoRefs && !t.argRefs.Load() {
		t.argRefs.Store(true)
	}
}

// pruneStopped unlinks the stopped records of the list at head, renumbers
// the rest, and returns the new head.
func pruneStopped(m *Mutator, head *CleanupSpecial) *CleanupSpecial {
	n := uint32(0)
	p := &head
	for *p != nil {
		if c := *p; c.stopped() {
			*p = c.next
			m.recycle(c)
			continue
		}
		n++
		p = &(*p).next
	}
	for c := head; c != nil; c = c.next {
		c.n = n
		n--
	}
	return head
}

// sweepSpecials processes the specials of s's unmarked objects (heap.go,
// step 7). Objects that get their finalizer queued are marked, so the rest
// of the sweep keeps them.
// REQUIRES: the caller has claimed s for sweeping.
func (h *Heap) sweepSpecials(s *span, local *cleanupq.Local) {
	s.sp.mu.Lock()
	defer s.sp.mu.Unlock()
	sp := &s.sp.mu
	// Counts and finalizer records are published in batches: one atomic
	// on s.sp.n per span, and finalizer records a block at a time
	// (finFill).
	removed := int32(0)
	var fins finFill
	// Loaded once: no table is installed while the span is being swept
	// (mutators install them only on swept spans).
	fin, cl := s.sp.fin.Load(), s.sp.cl.Load()
	defer func() {
		if removed != 0 {
			s.sp.n.Add(-removed)
		}
		h.fin.flush(&fins)
	}()
	// Visit the unmarked allocated slots a bitmap word at a time, one kind
	// of special after another; the objects revived for their finalizer
	// are marked with one Or per word.
	if cl != nil {
		prefetchCleanups(s, cl, 0)
	}
	for w := range s.allocBits {
		dead := s.allocBits[w] &^ s.markBits[w].Load()
		if dead == 0 {
			continue
		}
		if cl != nil && w+1 < len(s.allocBits) {
			prefetchCleanups(s, cl, w+1)
		}
		// Weak handles go nil as soon as the object is found
		// unreachable, finalizer or not (Go's rule for weak.Pointer):
		// before the finalizer is queued, and so before it can run.
		if sp.weak != nil {
			removed += h.killWeak(sp.weak, w, dead)
		}
		if fin != nil {
			if revived := h.queueFinalizers(s, w, dead, fin, &fins); revived != 0 {
				s.markBits[w].Or(revived)
				// Long weak handles and cleanups wait until the object
				// is unreachable again.
				dead &^= revived
			}
		}
		if sp.long != nil {
			removed += h.killWeak(sp.long, w, dead)
		}
		if cl != nil {
			for d := dead; d != 0; d &= d - 1 {
				h.queueCleanups(cl, uint32(w*64+bits.TrailingZeros64(d)), local)
			}
		}
	}
}

// killWeak clears the weak handles cells (sp.mu.weak or long) holds for the
// slots dead names in bitmap word w, and returns how many it cleared.
// REQUIRES: s.sp.mu held; the caller has claimed s for sweeping.
func (h *Heap) killWeak(cells []uint32, w int, dead uint64) (n int32) {
	for d := dead; d != 0; d &= d - 1 {
		i := w*64 + bits.TrailingZeros64(d)
		if c := cells[i]; c != 0 {
			h.weak.kill(c - 1)
			cells[i] = 0
			n++
		}
	}
	return n
}

// dropWeak is killWeak outside the sweep, for one word: it clears the
// weak handles cells holds for the slots dead names in word w and takes
// them off s.sp.n at once (the sweep sums its counts, and subtracts them
// once per span). Close and the ephemeron doom use it.
// REQUIRES: s.sp.mu held.
func (h *Heap) dropWeak(s *span, cells []uint32, w int, dead uint64) {
	if cells == nil || dead == 0 {
		return
	}
	if n := h.killWeak(cells, w, dead); n != 0 {
		s.sp.n.Add(-n)
	}
}

// prefetchCleanups asks for the lines of the first cleanup record of each
// dead object of bitmap word w of s, exclusive. The records are cold
// (written by AddCleanup a cycle ago) and the sweeper CASes each one: a
// locked instruction that waits for its line. sweepSpecials asks for word
// w+1's records before it works on word w's, so that their misses overlap
// that work instead of one another's CASes.
// REQUIRES: as sweepSpecials.
func prefetchCleanups(s *span, cl *cleanupTable, w int) {
	var addrs [64]uintptr
	n := 0
	for d := s.allocBits[w] &^ s.markBits[w].Load(); d != 0; d &= d - 1 {
		if c := cl.head[uint32(w*64+bits.TrailingZeros64(d))]; c != nil {
			addrs[n] = uintptr(unsafe.Pointer(&c.state))
			n++
		}
	}
	prefetchw(addrs[:n])
}

// queueFinalizers queues the finalizers of the unmarked objects dead names
// in bitmap word w of s, whose finalizer table is fin, and returns the
// objects it revived: kept for this cycle, their finalizer's record on
// finq, their entry in fin cleared.
// REQUIRES: s.sp.mu held; the caller has claimed s for sweeping.
func (h *Heap) queueFinalizers(s *span, w int, dead uint64, fin *finTable, fins *finFill) (revived uint64) {
	b := fins.b
	for d := dead; d != 0; d &= d - 1 {
		i := w*64 + bits.TrailingZeros64(d)
		fn := fin.fn[i]
		if fn == nil {
			continue
		}
		if b == nil || b.n == finBlockLen {
			b = h.fin.next(fins)
			b.queuedAt = nanotime() // the delay's start (delayHist)
		}
		b.recs[b.n] = finRec{x: handle.Handle(s.hv[i].Load()), typ: s.typ, fn: unsafe.Pointer(fn)}
		b.n++
		fin.fn[i] = nil
		revived |= 1 << (i % 64)
	}
	return revived
}
