// Package reclaim is a garbage-collected object heap for Go, whose
// finalizers, cleanups and weak references work the way the Go runtime's do.
//
// A Heap holds objects of any Go type in typed spans. Objects refer to each
// other through Ref and Object values: 8-byte handles that Go's own
// collector sees as plain integers, so a graph of millions of reclaim
// objects costs Go's GC nothing to scan. Each heap has its own pacing and
// memory limit, counts memory its objects hold outside it (AddExternal),
// and runs finalizers (SetFinalizer) on one goroutine and cleanups
// (AddCleanup) on a small pool, like the Go runtime, with panics contained,
// queues observable (Stats) and waitable (Drain), and everything still
// registered run when the heap is closed (Close).
//
// # Mutators and safepoints
//
// A goroutine works on a heap through a Mutator (Heap.Attach). Between two
// safepoints (Mutator.Safepoint, Mutator.Collect) a mutator may hold refs in
// Go variables freely; at a safepoint only objects reachable from roots
// survive: pinned objects (Heap.Pin), what Options.ScanRoots reports, and
// objects the heap itself keeps (queued finalizers, cleanup arguments).
// Marking stops the world: it begins once every attached mutator is at a
// safepoint or detached. Sweeping runs concurrently with mutators.
//
// # What the collector sees
//
// The collector finds references inside T from its type, once per type:
// fields of type Ref[U] and Object, inside structs, arrays and slices, at any
// depth. Weak[U] and LongWeak[U] fields do not keep their target alive. A
// WeakMap is an object of its own, held by a Ref: New panics for a type
// that holds one by value.
// Go pointers, interfaces, maps, channels and funcs are opaque: a ref stored
// only there is not seen, and its object may be freed. A type whose refs
// live in such places implements Tracer instead. See docs/API.md.
//
// The design is described in docs/DESIGN.md.
package reclaim

import (
	"context"
	"fmt"
	"log/slog"
	"time"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
	"github.com/reclaimgc/reclaim/internal/heap"
)

// ErrMemoryLimit is returned by TryNew (and carried by New's panic) when an
// allocation would take the heap past Options.MemoryLimit. The heap stays
// consistent and usable, and a collection becomes due at once.
var ErrMemoryLimit = heap.ErrMemoryLimit

// Options configures a heap. The zero value is a heap with Go's defaults.
type Options struct {
	// GCPercent is like GOGC: a collection is due when the live heap plus
	// external bytes has grown GCPercent% past what the last cycle marked
	// (with a 4 MiB floor). 0 means 100. Negative turns automatic
	// collection off (Collect still works), except under a MemoryLimit:
	// then a collection is due only as the heap nears the limit, as with
	// GOGC=off and GOMEMLIMIT.
	GCPercent int
	// MemoryLimit caps the memory the heap holds for its objects plus
	// external bytes, in bytes. 0 means none. That memory is the spans'
	// slabs (slots times the type's size, Stats.SpanBytes), each slot's
	// 8-byte handle word and three bitmaps (Stats.MetaBytes), and
	// the emptied spans kept for reuse (Stats.SpareBytes): a limit of L
	// holds at most L/24 live objects of 16 bytes. The heap's bookkeeping
	// outside its spans (a span's struct and table entries, some 350
	// bytes a span, 2% of a 16 KiB span; queues and special records) is
	// not counted, nor is memory the objects reach through Go pointers (a
	// []byte or string field's array): report that with AddExternal.
	// Under a limit, the goal (Stats.HeapGoal) is capped below the limit's
	// share for objects by the largest span the heap has made plus 3%
	// (at most half that share), so that a collection is due before an
	// allocation is refused.
	MemoryLimit int64
	// MarkWorkers is the number of goroutines that mark in parallel. 0
	// means GOMAXPROCS.
	MarkWorkers int
	// CleanupWorkers bounds the cleanup goroutine pool. 0 means
	// max(GOMAXPROCS/4, 1).
	CleanupWorkers int
	// ScanRoots reports the embedder's roots (a VM's stack, its globals) at
	// each mark. It runs with the world stopped, on the collecting
	// goroutine; it must not use a mutator, nor call Attach or Close:
	// they wait for the world to restart, which waits for ScanRoots, so
	// the heap hangs (Heap.Drain would wait until its context ends).
	// Stats, Pin, Unpin and AddExternal are fine; a Pin made here counts
	// in this mark. If it panics (as if a Tracer's
	// Trace panics), the collection is abandoned with the heap unchanged,
	// and the collecting mutator's Collect or Safepoint panics with a
	// reclaim: message that includes the value (a panic of another mark
	// worker's Trace in the same collection is logged). If it calls
	// runtime.Goexit (t.FailNow, say), the collection is abandoned the
	// same way and the collecting goroutine ends.
	ScanRoots func(visit func(Object))
	// OnPanic is called when a finalizer or cleanup panics; the queue goes
	// on. nil means log it (Logger, level Error) and go on. If OnPanic
	// itself panics, that panic and the one it was given are logged, and
	// the queue goes on; it must not call runtime.Goexit.
	OnPanic func(*CallbackPanic)
	// Logger receives the heap's diagnostics. nil means slog.Default().
	Logger *slog.Logger

	// SafepointOnAlloc makes every allocation that takes a new span a
	// safepoint: a due collection runs inside New, and so does the one a
	// refusal by MemoryLimit makes due, before the allocation is tried
	// once more (TryNew fails only if the heap is full after it). Only
	// for embedders whose ScanRoots reports every live reference,
	// including those held in Go variables across the New call.
	SafepointOnAlloc bool
	// FinalizerBlockThreshold is how long a running finalizer may keep a
	// pending collection waiting before the heap logs it (with the
	// finalizer's type and, on the finalizer goroutine, its stack: where
	// it is), and how long any mutator may before the heap logs
	// that the collection waits (once per collection). 0 means 1s.
	FinalizerBlockThreshold time.Duration
	// Debug makes every collection look for finalizable objects that are
	// part of a reference cycle (they are never collected) and cleanups
	// whose argument leads back to their object (they never run), and log
	// them with the types on the path and the finalizer or cleanup
	// function (its name, file and line). It costs a walk of the graph
	// reachable from those objects per cycle.
	Debug bool
	// FinalizersAtSafepoints runs finalizers on the embedder's own mutators
	// at Safepoint and Collect, instead of on the finalizer goroutine, as
	// Lua and JavaScript engines run theirs: a single-threaded interpreter
	// never sees its objects touched from another goroutine. A finalizer
	// runs as the mutator that reached the safepoint and may allocate,
	// set finalizers, make weak refs and collect through it; a safepoint
	// it reaches runs no other finalizer.
	FinalizersAtSafepoints bool
	// FinalizerBudget bounds how many finalizers one safepoint runs in that
	// mode; 0 means no bound. FinalizerTimeBudget bounds the time (at
	// least one finalizer runs per safepoint when any is queued).
	FinalizerBudget     int
	FinalizerTimeBudget time.Duration
}

// CallbackPanic describes a finalizer or cleanup that panicked, or a
// collection that the finalizer goroutine led between two calls and that
// ScanRoots or a Trace method abandoned (with a panic or runtime.Goexit):
// the goroutine has no caller to panic to, so it reports it and goes on.
type CallbackPanic struct {
	Value any    // what was passed to panic
	Stack []byte // the goroutine's stack at the panic
	Kind  string // "finalizer", "cleanup" or "collection"
}

// Error formats the panic as an error message.
func (p *CallbackPanic) Error() string {
	return fmt.Sprintf("reclaim: %s panicked: %v", p.Kind, p.Value)
}

// Heap is a garbage-collected heap. Its methods are safe for concurrent use.
type Heap struct {
	h *heap.Heap // immutable; the heap synchronizes itself
}

// NewHeap makes a heap.
func NewHeap(opts Options) *Heap {
	cfg := heap.Config{
		GCPercent:               opts.GCPercent,
		MemoryLimit:             opts.MemoryLimit,
		MarkWorkers:             opts.MarkWorkers,
		CleanupWorkers:          opts.CleanupWorkers,
		Logger:                  opts.Logger,
		SafepointOnAlloc:        opts.SafepointOnAlloc,
		FinalizerBlockThreshold: opts.FinalizerBlockThreshold,
		DebugCycles:             opts.Debug,
		FinalizersAtSafepoints:  opts.FinalizersAtSafepoints,
		FinalizerBudget:         opts.FinalizerBudget,
		FinalizerTimeBudget:     opts.FinalizerTimeBudget,
		NewMutator:              newHeapMutator,
	}
	if opts.MemoryLimit < 0 {
		panic(fmt.Sprintf("reclaim: negative MemoryLimit %d", opts.MemoryLimit))
	}
	if opts.MarkWorkers < 0 || opts.CleanupWorkers < 0 || opts.FinalizerBudget < 0 {
		panic("reclaim: negative MarkWorkers, CleanupWorkers or FinalizerBudget")
	}
	if sr := opts.ScanRoots; sr != nil {
		cfg.ScanRoots = func(visit func(handle.Handle)) {
			sr(func(o Object) { visit(o.h) })
		}
	}
	if op := opts.OnPanic; op != nil {
		cfg.OnPanic = func(kind string, v any, stack []byte) {
			op(&CallbackPanic{Value: v, Stack: stack, Kind: kind})
		}
	}
	return &Heap{h: heap.New(cfg)}
}

// Close runs every finalizer still registered or queued, then every cleanup
// still registered or queued, as lua_close does, and stops the heap's
// goroutines. No collection runs once Close has begun (one under way on
// another goroutine ends first; with FinalizersAtSafepoints, so do the
// finalizer calls mutators have under way at their safepoints); finalizers and cleanups run by Close may
// still use the heap through mutators, but other attached mutators must
// not be used concurrently with Close (detach them first). After Close
// returns, Attach panics, the heap holds none of its objects' memory (a
// Heap value that stays referenced costs only its bookkeeping), and refs
// into it fail as refs to freed objects do. Close returns an error if it is
// called twice, or if finalizers and cleanups kept registering new ones for
// 100 rounds (rounds that found no fewer registered than the round before;
// see below). A finalizer or cleanup must not call Close: Close waits for
// the queues, and so for the callback itself, for ever.
//
// Close runs the finalizers still registered in rounds, in the order a
// collection keeps (see SetFinalizer): each round runs the finalizers of
// the objects that neither a finalizer queued by a collection nor the
// argument of a registered cleanup reaches (the embedder's roots,
// ScanRoots and pinned objects, do not count), ordered so that if A
// reaches B and both have finalizers, A's finalizer runs first, and B's
// after A's has returned; a chain of them runs from its head. Then it
// runs the cleanups of the objects left without a finalizer, but for
// those of objects that a waiting finalizable object or a registered
// cleanup's argument reaches, which wait for that callback (cleanups that
// only wait for one another, as two whose arguments are each other's
// objects, run all the same). Objects on a
// cycle of finalizable objects (A reaches B and B reaches A, or A reaches
// itself), which no collection finalizes, are finalized too, after what
// reaches the cycle, in an order among themselves not specified: one of
// them may find another's object finalized. Through a WeakMap, an
// entry's value counts as reached from its key and from its table.
//
// The finalizers still registered run on the goroutine that calls Close, one
// at a time; a panic in one is reported through OnPanic and Close goes on. A
// finalizer that calls runtime.Goexit ends that goroutine, as it would end
// any: Close then does not return, but it is reported and the rest of Close
// runs on a goroutine of the heap's before the caller's goroutine exits.
func (h *Heap) Close() error { return h.h.Close() }

// Drain waits until every finalizer and cleanup queued so far has run (and
// those they queue in turn), and the last cycle's sweep is complete. It
// returns ctx's error if ctx ends first. With FinalizersAtSafepoints,
// queued finalizers run only when mutators reach safepoints. A finalizer
// or cleanup must not call Drain: it would wait for itself.
//
// Call Drain from a goroutine whose mutator is detached (or that has none);
// a goroutine with an attached mutator calls Mutator.Drain instead. An
// attached mutator waiting in Heap.Drain is not at a safepoint, so a
// collection that a finalizer or cleanup makes due would wait for it while
// it waits for them, until ctx ends.
func (h *Heap) Drain(ctx context.Context) error { return h.h.Drain(ctx) }

// Pin makes o a root until a matching Unpin. Pins are counted. It is safe
// to call from any goroutine. A collection cannot run while the calling
// goroutine's mutator runs; from a goroutine that has none (or whose
// mutator is detached) one may, so o must then be reachable by other
// means until Pin returns, as for any ref held outside the heap: an
// object the collection finds unreachable meanwhile is freed and Pin, or
// the matching Unpin, panics with a freed-object message. Close drops
// every pin when it releases the objects; from then on Pin and Unpin
// panic ("reclaim: Pin on a closed heap"). A Pin or Unpin on another
// goroutine while Close runs either counts as usual, before that release,
// or panics so.
func (h *Heap) Pin(o Object) { h.h.Pin(o.h) }

// Unpin undoes one Pin. Unpinning an object that is not pinned panics, and
// so does Unpin once Close has released the objects, as Pin does.
func (h *Heap) Unpin(o Object) { h.h.Unpin(o.h) }

// AddExternal records bytes of memory held outside the heap on its
// objects' behalf (a C buffer, a file's cache); negative bytes give it back.
// External bytes count toward pacing and the memory limit. It panics, leaving
// the total unchanged, if the total would go below zero or past
// math.MaxInt64. It is safe to call from any goroutine.
func (h *Heap) AddExternal(bytes int64) { h.h.AddExternal(bytes) }

// Attach makes the calling goroutine a mutator of h. A mutator must be used
// by one goroutine at a time and detached when done.
func (h *Heap) Attach() *Mutator {
	m := newMutator()
	h.h.Attach(&m.m)
	return m
}

func newMutator() *Mutator {
	m := new(Mutator)
	m.m.Init()
	return m
}

// newHeapMutator makes the mutators the heap creates for itself (the
// finalizer goroutine's, Close's) public Mutators too.
func newHeapMutator() *heap.Mutator { return &newMutator().m }

// mutatorOf returns the Mutator that embeds hm: every heap.Mutator of a
// reclaim heap is the first field of one (Attach, newHeapMutator).
func mutatorOf(hm *heap.Mutator) *Mutator { return (*Mutator)(unsafe.Pointer(hm)) }
