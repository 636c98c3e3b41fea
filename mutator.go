package reclaim

import (
	"context"

	"github.com/reclaimgc/reclaim/internal/heap"
)

// Mutator is one goroutine's handle on a heap: it allocates, reads objects
// and reaches safepoints. It must not be used by two goroutines at once;
// the heap catches most such use with a panic.
type Mutator struct {
	// m is embedded by value, first, so that Get reaches the span table in
	// one load less, and mutatorOf is a conversion.
	m  heap.Mutator
	tc [typeCacheSize]typeCacheEntry // owned by the mutator's goroutine
	lc [typeCacheSize]argCacheEntry  // cleanup argument types; owned likewise
}

// Drain is Heap.Drain for the goroutine that owns m: m counts as stopped at
// a safepoint while it waits, so finalizers and cleanups that allocate or
// collect do not wait for it. As at Safepoint, refs held only in Go
// variables are not roots while Drain waits. With FinalizersAtSafepoints,
// Drain runs the queued finalizers on m itself, as Safepoint does,
// including those of a cycle its own safepoint leads, and waits only for
// what others run. A finalizer's Drain panics (it would wait for itself);
// a cleanup must not call Drain either: it would wait for itself until ctx
// ends.
func (m *Mutator) Drain(ctx context.Context) error { return m.m.Drain(ctx) }

// Detach ends m's work on its heap. Its span caches go back to the heap; a
// detached mutator never holds a collection up. Using m afterwards panics.
// A finalizer must not detach the mutator it is given on the finalizer
// goroutine or by Close: that panics (the heap detaches its own).
func (m *Mutator) Detach() { m.m.Detach() }

// Safepoint lets a pending collection run. Refs held only in Go variables
// are not roots: after Safepoint returns, only objects reachable from roots
// are guaranteed to exist, and pointers returned by Get before it must not
// be used. With nothing pending it costs a few atomic loads.
func (m *Mutator) Safepoint() { m.m.Safepoint() }

// Collect runs a full collection, sweep included, like runtime.GC. It is a
// safepoint.
func (m *Mutator) Collect() { m.m.Collect() }

// RetainingPath explains why o is still alive, for an object expected to be
// dead (a leak): it stops the world and returns the chain of references
// that leads to o from a root, root first, e.g.
//
//	pinned: main.Interp
//	-> main.Scope
//	-> main.Closure
//
// and true; or nil and false if o is unreachable (the next collection frees
// it). Reachability is the collector's: a WeakMap entry's value is reached
// through its table only while the entry's key is reachable, or has a
// finalizer and nothing but such entries' values reaches it: the next
// collection keeps those entries for the key's finalizer, and reports the
// key itself unreachable, as any finalizable object that nothing reaches.
// It walks the reachable graph, so it is meant for debugging,
// not for production paths. It is a safepoint, and finishes the last
// cycle's sweep (which may queue finalizers) first. It runs ScanRoots and Trace
// methods as a collection does: if one panics, the world restarts and
// RetainingPath panics with a reclaim: message that includes the value.
func (m *Mutator) RetainingPath(o Object) ([]string, bool) {
	return m.m.RetainingPath(o.h)
}
