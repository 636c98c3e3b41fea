// Package heap is reclaim's collector: typed spans, mutators and safepoints,
// the stop-the-world parallel mark, the concurrent sweep, specials
// (finalizers, cleanups, weak handles), the finalizer goroutine and the glue
// to the cleanup queue. The public package reclaim is a thin typed layer over
// it; docs/DESIGN.md holds the long form of this comment.
//
// # Data structures
//
//   - Heap: one per reclaim.Heap. Owns the span table, the per-type centrals,
//     the mutator set, the pacer, the finalizer queue and the cleanup queue.
//   - span (span.go): a slab of up to 1024 objects of one Go type, allocated
//     as a real Go []T so that Go's collector sees T's Go pointers and nothing
//     else. Per-slot generations, allocation bits, mark bits, specials, and
//     the mark's per-span queue flag and scanned bits.
//   - spanTable (span.go): span index -> *span, a two-level table of atomic
//     pointers read without locks by Deref.
//   - central (alloc.go): per (heap, type) lists of spans with free slots and
//     of spans still to be swept, like the runtime's mcentral.
//   - Mutator (mutator.go): a goroutine's handle on the heap; caches one span
//     per type to allocate from, like the runtime's mcache, and a cleanup
//     block to sweep into, like a P's.
//   - specials (special.go): per-span, per-slot records: at most one
//     finalizer, any number of cleanups, at most one weak cell.
//   - finq (final.go): fixed-size blocks of queued finalizer calls, run by one
//     goroutine; cleanupq.Queue (cleanup.go): seed 004's block queue and pool.
//
// # The cycle
//
//  1. A collection is due (pacer.go: live bytes reached the goal, a memory
//     limit was hit, or Collect was called). The mutator that notices it at a
//     safepoint becomes the cycle's leader.
//  2. Stop the world (mutator.go): set stwReq; every attached mutator parks at
//     its next safepoint (or is detached, or blocked in the finalizer
//     goroutine's idle wait). The leader waits until none is running.
//  3. Finish the previous sweep (sweep.go, finishSweepLocked): sweep every
//     span still unswept, so that mark bits are clear and specials current.
//     Flush every mutator's span cache back to its central.
//  4. Mark (mark.go) on MarkWorkers goroutines, span-batched like the
//     runtime's green tea marker: greying a handle checks it against its
//     slot's handle word, sets its mark bit and queues its span if the span
//     is not queued (markSpan.queued); a worker takes a span and scans its
//     marked, unscanned objects (markBits &^ scanBits) in slot order,
//     prefetching the next queued span's and checking found handles one
//     span later, their handle words prefetched; spans are owned in groups
//     of consecutive indexes, span idx by worker (idx >> ownShift) mod
//     MarkWorkers, which marks the handles found for it.
//     Roots:
//     pinned objects, the embedder's ScanRoots, queued finalizer records,
//     queued and registered cleanup arguments, and the referents of every
//     object that has a finalizer (seed 003: the object itself is not marked
//     by its special).
//  5. Flip (mark.go, flipLocked): sweepgen += 2, so every span now needs
//     sweeping; snapshot the sweep list; reset activeSweep; set the next goal.
//  6. Start the world. Mutators allocate again; a span is swept before it is
//     allocated from or its specials are touched (lazy sweep), and the
//     background sweeper sweeps the rest.
//  7. Sweep (sweep.go): for each unmarked object with specials: clear its weak
//     cell; if it has a finalizer, queue the finalizer, drop the special and
//     keep the object (it is marked for this sweep); otherwise queue its
//     cleanups. Free every other unmarked object: advance its generation,
//     zero its memory. Release spans that emptied out.
//  8. The last sweeper (activeSweep.end seeing "drained, zero active") wakes
//     the finalizer goroutine if it waits and has work (seed 001) and flushes
//     the cleanup blocks local to sweeping contexts (seed 004).
//
// Everything here is reached from the public package; nothing is exported
// beyond what it needs.
package heap

import (
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reclaimgc/reclaim/internal/cleanupq"
	"github.com/reclaimgc/reclaim/internal/handle"
	"github.com/reclaimgc/reclaim/internal/pacer"
)

// Config is the heap's configuration, filled in by the public package.
type Config struct {
	GCPercent      int
	MemoryLimit    int64
	MarkWorkers    int
	CleanupWorkers int
	MinHeap        int64
	ScanRoots      func(visit func(handle.Handle))
	OnPanic        func(kind string, value any, stack []byte)
	Logger         *slog.Logger

	// SafepointOnAlloc makes allocation a safepoint: a due collection runs
	// inside the allocating call.
	SafepointOnAlloc bool
	// FinalizerBlockThreshold is how long a running finalizer may keep a
	// pending collection waiting before it is reported, and how long any
	// mutator may before the wait is (once per collection). 0 means 1s.
	FinalizerBlockThreshold time.Duration
	// DebugCycles makes each collection look for finalizable cycles and
	// cleanups whose argument leads back to their object, and report them.
	DebugCycles bool
	// NewMutator allocates every mutator the heap creates for itself (the
	// finalizer goroutine's, Close's), so the public package can embed it
	// in its own type; it returns a mutator ready for Attach (see Init).
	// Nil means heap.NewMutator.
	NewMutator func() *Mutator
	// FinalizerMode selects where finalizers run: on the finalizer goroutine
	// (the default), or on the embedder's mutators at their safepoints.
	FinalizersAtSafepoints bool
	// FinalizerBudget bounds the work of one safepoint in that mode.
	FinalizerBudget     int
	FinalizerTimeBudget time.Duration
}

// heapIDs hands out heap ids. Ids are recycled only after every other id has
// been used once, so a ref kept past its heap's Close stays foreign for as
// long as possible. And a heap that takes an id again starts its
// generations past every generation the id's last heap issued (genBase),
// so that such a ref, which the id no longer tells apart (a script per
// request goes through 4095 heaps in no time), names no object of the new
// heap either: its generation is older than every one there.
var heapIDs struct {
	sync.Mutex
	next  uint32          // protected by the mutex
	inUse map[uint32]bool // protected by the mutex
	// genBase[id] is the generation the next heap with id starts every
	// span index at: 1 + the highest the last one issued, or 1. Protected
	// by the mutex.
	genBase map[uint32]uint32
}

// maxGenBase bounds genBase: a heap that starts higher would have fewer
// than half the generations for each slot before the slot retires, so the
// id starts over at 1 then, and refs kept from heaps that old can name
// objects again (docs/MISUSE.md).
const maxGenBase = handle.MaxGen / 2

// allocHeapID returns a free heap id and the generation its heap starts at.
func allocHeapID() (id, genBase uint32) {
	heapIDs.Lock()
	defer heapIDs.Unlock()
	if heapIDs.inUse == nil {
		heapIDs.inUse = make(map[uint32]bool)
		heapIDs.genBase = make(map[uint32]uint32)
	}
	for range handle.MaxHeaps {
		heapIDs.next = heapIDs.next%handle.MaxHeaps + 1
		if id := heapIDs.next; !heapIDs.inUse[id] {
			heapIDs.inUse[id] = true
			return id, max(heapIDs.genBase[id], 1)
		}
	}
	panic(fmt.Sprintf("reclaim: more than %d heaps open at once", handle.MaxHeaps))
}

// freeHeapID gives id back; next is 1 + the highest generation its heap
// issued, where the id's next heap starts (if under maxGenBase).
func freeHeapID(id, next uint32) {
	heapIDs.Lock()
	delete(heapIDs.inUse, id)
	if next > maxGenBase {
		next = 1
	}
	heapIDs.genBase[id] = next
	heapIDs.Unlock()
	byID.Delete(id)
}

// byID maps heap ids to open heaps, for As and Weak lookups that start from
// a handle alone.
var byID sync.Map // uint32 -> *Heap

// Lookup returns the open heap with id, or nil.
func Lookup(id uint32) *Heap {
	if v, ok := byID.Load(id); ok {
		return v.(*Heap)
	}
	return nil
}

// Heap is one garbage-collected heap.
type Heap struct {
	id uint32 // immutable
	// genBase is the generation every span index starts at (heapIDs);
	// immutable.
	genBase uint32
	cfg     Config       // immutable after New
	log     *slog.Logger // immutable after New; safe for concurrent use

	// markReuse keeps the mark's span table and its workers' buffers from
	// one mark to the next; owned by the leader (world stopped).
	markReuse struct {
		tab   []markSpan
		bufs  []markBuffers
		spare [][]handle.Handle // balanceFree's scratch
	}

	// debugReported holds what the last DebugCycles pass reported, so a
	// finalizable cycle or an unrunnable cleanup is reported once, not at
	// every collection; owned by the leader (world stopped).
	debugReported struct {
		fins     map[handle.Handle]bool
		cleanups map[cleanupReg]bool
	}

	// spans is immutable after New; its entries are written with mu held
	// and read lock-free (see spanTable).
	spans *spanTable
	// centrals is indexed by Type.ID; read lock-free, replaced (copied on
	// growth) with mu held.
	centrals atomic.Pointer[[]*central]

	// sweepgen is the heap's sweep generation, advanced by 2 in each flip
	// with the world stopped; read atomically by sweepers and allocators.
	// See span.sweepgen for the state table.
	sweepgen atomic.Uint32

	// stwReq mirrors mu.stw for lock-free polling at every safepoint: set
	// by a cycle's leader while it stops or holds the world stopped.
	// Written with mu held, together with mu.stw.
	stwReq atomic.Bool
	// gcDue is set, with no lock, when the pacer or the memory limit wants
	// a collection (addLive and refill on a mutator, AddExternal on any
	// goroutine); cleared by the leader once it has stopped the world,
	// before finishSweep. Polled at every safepoint.
	gcDue atomic.Bool

	// mu protects the fields grouped in it. The leader does not hold it
	// while the world is stopped (see collect); it takes it for the
	// fields it reads or writes then.
	mu struct {
		sync.Mutex
		cond     sync.Cond             // on mu; broadcast when running drops, the world restarts, Close begins, or a stopping cycle gives up
		stw      bool                  // the world is stopped or stopping; mirrored by stwReq
		running  int                   // attached mutators running (see Mutator's table); the leader counts itself out
		mutators map[*Mutator]struct{} // attached mutators: Attach, attachClosing; Detach removes
		closed   bool                  // Close has begun: no cycle starts, one still stopping the world gives up (waitStoppedLocked), and Close waits for stw to clear
		dead     bool                  // Close has released the spans: Attach, Pin and Unpin panic, and so does refill (New on a mutator left attached)

		// allspans holds every span in use, and released ones until the
		// next flip drops them (readers skip those).
		allspans []*span
		freeIdx  []uint32 // span indexes free for reuse
		idxFloor []uint32 // per index: lowest generation a new span there may start at
		nextIdx  uint32   // next never-used span index

		pacer     pacer.Pacer           // a plain value: every call is made with mu held
		pins      map[handle.Handle]int // Pin counts
		spanBytes int64                 // memory held by spans' slabs
		// metaBytes is the memory of the handle words and bitmaps of the
		// spans in use (spanMeta). MemoryLimit
		// counts it; the pacer's goal, like GOGC's, counts objects only.
		// Both move together, in accountSpanLocked.
		metaBytes int64
		// spares are the memory of released spans kept for new spans of
		// the same type (span.go, keepSpareLocked), by Type; spareBytes
		// is the memory they hold, slabs and handle words (spare.bytes;
		// addSpareBytesLocked). A spare is kept
		// only while spanBytes+spareBytes stays within the goal
		// (keepSpareLocked); the flip trims them to its new goal, and
		// allocation past the goal may then outgrow that bound.
		spares     map[*Type][]spare
		spareBytes int64
		// locals are the cleanup blocks of goroutines that sweep but are
		// not mutators (Pin, Verify, Close: sweepOwn), for the cycle's
		// last sweeper to flush with the mutators' (sweepDone).
		locals map[*cleanupq.Local]struct{}
	}

	// heapLive is the pacer's live-heap estimate: bytes marked by the last
	// cycle plus span bytes handed to mutator caches since. Atomic, no
	// lock: added to by mutators (addLive in refill; flushCache, by the
	// mutator itself or by the leader with the world stopped), stored by
	// the leader in the flip, and by Close (closeRelease, 0 once every
	// span is released); read by AddExternal and Stats.
	heapLive atomic.Int64
	external atomic.Int64 // AddExternal total; atomic, added to by any goroutine
	// extBase is external at the last flip: the pacer's goal allows for it,
	// so only growth past it counts toward the next trigger. Stored by the
	// leader in the flip (mu held); read lock-free by addLive and
	// AddExternal.
	extBase atomic.Int64

	// The following synchronize themselves; see each type.
	sweep sweepState      // sweep.go
	fin   finState        // final.go
	cq    *cleanupq.Queue // the pointer is immutable after New
	bg    bgSweeper       // sweep.go
	weak  weakTable       // weak.go
	eph   ephState        // ephemeron.go
	stats heapStats       // stats.go
	idle  event           // broadcast when queues may have drained (Drain waits on it)
	// goal is the pacer's goal, mirrored for lock-free reads by allocators
	// (addLive); stored with mu held in the flip, and, under a memory
	// limit, when a span is made or released moves the goal's cap
	// (accountSpanLocked); and by New, before the heap is shared.
	goal atomic.Int64

	// stwLocal is the cleanup block of the sweeping in finishSweep, by the
	// goroutine that stopped the world (a collection's leader, or
	// RetainingPath): filled by it with the world stopped, so by one
	// goroutine at a time; emptied by the cycle's last sweeper (sweepDone,
	// mu held), which may be another goroutine but runs only after that
	// last sweep has ended; read by the mark's ScanRoots.
	stwLocal cleanupq.Local
}

// New makes a heap.
func New(cfg Config) *Heap {
	if cfg.MarkWorkers <= 0 {
		cfg.MarkWorkers = runtime.GOMAXPROCS(0)
	}
	if cfg.CleanupWorkers <= 0 {
		cfg.CleanupWorkers = max(runtime.GOMAXPROCS(0)/4, 1)
	}
	if cfg.FinalizerBlockThreshold <= 0 {
		cfg.FinalizerBlockThreshold = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Heap{cfg: cfg, spans: newSpanTable()}
	h.id, h.genBase = allocHeapID()
	h.log = cfg.Logger.With("reclaim.heap", h.id)
	h.mu.cond.L = &h.mu.Mutex
	h.mu.mutators = make(map[*Mutator]struct{})
	h.mu.pins = make(map[handle.Handle]int)
	h.mu.locals = make(map[*cleanupq.Local]struct{})
	h.mu.pacer = pacer.New(pacer.Config{GCPercent: cfg.GCPercent, MemoryLimit: cfg.MemoryLimit, MinHeap: cfg.MinHeap})
	h.sweepgen.Store(2)
	h.sweep.active.state.Store(sweepDrainedMask) // nothing to sweep before the first cycle
	h.sweep.done.Store(true)
	h.cq = cleanupq.New(cleanupq.Config{
		MaxWorkers: cfg.CleanupWorkers,
		OnPanic:    func(v any, stack []byte) { h.reportPanic("cleanup", v, stack) },
		Labels:     []string{"reclaim.heap", itoa(h.id), "reclaim.worker", "cleanup"},
		OnIdle:     h.idle.broadcast,
	})
	h.fin.init()
	h.fin.hereMode = cfg.FinalizersAtSafepoints
	h.goal.Store(h.mu.pacer.Goal())
	h.bg.start(h)
	byID.Store(h.id, h)
	return h
}

// ID returns the heap's id, the one every handle of this heap carries.
func (h *Heap) ID() uint32 { return h.id }

// Logger returns the heap's logger.
func (h *Heap) Logger() *slog.Logger { return h.log }

func (h *Heap) reportPanic(kind string, v any, stack []byte) {
	h.stats.panics.Add(1)
	if h.cfg.OnPanic != nil && h.callOnPanic(kind, v, stack) {
		return
	}
	h.log.Error("reclaim: "+kind+" panicked", "value", fmt.Sprint(v), "stack", string(stack))
}

// callOnPanic calls the embedder's OnPanic and reports whether it
// returned. One that panics is logged, and the caller logs the report it
// was given: reportPanic runs in the deferred functions of the goroutines
// that run finalizers and cleanups, where a panic would end the process.
func (h *Heap) callOnPanic(kind string, v any, stack []byte) (returned bool) {
	defer func() {
		if !returned {
			// recover gives nil for runtime.Goexit, which goes on.
			if r := recover(); r != nil {
				h.log.Error("reclaim: OnPanic panicked", "value", fmt.Sprint(r), "while reporting", kind)
			}
		}
	}()
	h.cfg.OnPanic(kind, v, stack)
	return true
}

// StopRequested reports whether a leader is stopping the world or holds
// it stopped; for tests that wait for a collection to begin.
func (h *Heap) StopRequested() bool { return h.stwReq.Load() }

// Closed reports whether Close has begun.
func (h *Heap) Closed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.closed
}

// AddExternal adds bytes (negative to subtract) of memory held outside the
// heap on its objects' behalf. It counts toward pacing and the limit.
func (h *Heap) AddExternal(n int64) {
	// A CAS loop, not Add and an undo: between the two, the total was
	// negative for every other goroutine to see (Stats), and a valid
	// AddExternal elsewhere that gave bytes back then saw it negative and
	// panicked for another goroutine's misuse.
	var v int64
	for {
		old := h.external.Load()
		if n > 0 && old > math.MaxInt64-n {
			panic(fmt.Sprintf("reclaim: AddExternal(%d) overflows the external total (%d)", n, old))
		}
		v = old + n
		if v < 0 {
			panic(fmt.Sprintf("reclaim: AddExternal(%d) makes external memory negative (%d)", n, v))
		}
		if h.external.CompareAndSwap(old, v) {
			break
		}
	}
	if n > 0 {
		h.mu.Lock()
		// The goal already allows for the external bytes the last cycle
		// saw; only their growth since counts against it.
		due := h.mu.pacer.Due(pacedLive(h.heapLive.Load(), v, h.extBase.Load())) || !h.mu.pacer.Fits(h.mu.spanBytes+h.mu.metaBytes, v, 0)
		h.mu.Unlock()
		if due {
			h.gcDue.Store(true)
		}
	}
}

// Pin adds a counted root. Once Close has released the heap's objects
// (mu.dead), Pin panics: checked under mu, with the count, so that a Pin
// racing Close either counts before Close drops every pin or panics, and
// never adds to the table of a closed heap.
func (h *Heap) Pin(x handle.Handle) {
	if s := h.liveSpan(x); s != nil && s.sweepgen.Load() != h.sweepgen.Load() {
		// The last mark may have found the object unreachable: sweep its
		// span first (as SetFinalizer does), so a dead object is never
		// pinned (the check below fails). Pin may run on a goroutine that
		// is not a mutator, so the sweep gets a cleanup block of its own
		// (sweepOwn).
		h.sweepOwn(func(local *cleanupq.Local) {
			h.ensureSwept(s, local)
			if testHookPinSwept != nil {
				testHookPinSwept()
			}
		})
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checkPinLocked(x, "Pin")
	h.mu.pins[x]++
}

// Unpin removes one count of a root added by Pin. Once Close has released
// the heap's objects, and the pins with them, Unpin panics as Pin does.
func (h *Heap) Unpin(x handle.Handle) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checkPinLocked(x, "Unpin")
	n, ok := h.mu.pins[x]
	if !ok {
		panic(fmt.Sprintf("reclaim: Unpin of an object that is not pinned (%v)", x))
	}
	if n == 1 {
		delete(h.mu.pins, x)
	} else {
		h.mu.pins[x] = n - 1
	}
}

// checkPinLocked is check for Pin and Unpin, which any goroutine may call,
// also while Close runs: once Close has released the objects (and cleared
// the pins), they panic saying the heap is closed, not that the ref names
// a freed object or an object not pinned. REQUIRES: h.mu held.
func (h *Heap) checkPinLocked(x handle.Handle, op string) {
	if h.mu.dead {
		panic("reclaim: " + op + " on a closed heap")
	}
	h.check(x, op)
}

// check panics unless x names a live object of h.
func (h *Heap) check(x handle.Handle, op string) *span {
	if x == 0 {
		panic("reclaim: " + op + " of a nil ref")
	}
	if x.Heap() != h.id {
		panic(fmt.Sprintf("reclaim: %s of a ref from another heap (ref heap %d, this heap %d)", op, x.Heap(), h.id))
	}
	s := h.liveSpan(x)
	if s == nil {
		panic(fmt.Sprintf("reclaim: %s of a ref to a freed object (%v)", op, x))
	}
	return s
}

// liveSpan returns the span of the live object x, a ref of h, names, or nil
// if x names none: one load of the slot's handle word, so that the answer
// holds at that load even as the sweeper frees objects.
func (h *Heap) liveSpan(x handle.Handle) *span {
	s := h.spans.get(x.Span())
	if s == nil || x.Slot() >= s.nslots || s.hv[x.Slot()].Load() != uint64(x) {
		return nil
	}
	return s
}

// Valid reports whether x names a live (allocated, not yet freed) object of
// h. An object found unreachable but not yet swept still answers true.
func (h *Heap) Valid(x handle.Handle) bool { return h.TypeOf(x) != nil }

// TypeOf returns the type of the live object x names, or nil if x names
// none (Valid). One check, so that an object the concurrent sweeper frees
// in the meantime is not found live by Valid and then freed by the time
// its type is asked for. A span's type never changes (a released span's
// index gets a new span, and its handles a higher generation).
func (h *Heap) TypeOf(x handle.Handle) *Type {
	if x == 0 || x.Heap() != h.id {
		return nil
	}
	if s := h.liveSpan(x); s != nil {
		return s.typ
	}
	return nil
}
