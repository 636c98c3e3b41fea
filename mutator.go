package reclaim

import "github.com/reclaimgc/reclaim/internal/heap"

// Mutator is one goroutine's handle on a heap: it allocates, reads objects
// and reaches safepoints. It must not be used by two goroutines at once;
// the heap catches most such use with a panic.
type Mutator struct {
	m  *heap.Mutator
	tc [typeCacheSize]typeCacheEntry // owned by the mutator's goroutine
}

// Detach ends m's work on its heap. Its span caches go back to the heap; a
// detached mutator never holds a collection up. Using m afterwards panics.
func (m *Mutator) Detach() { m.m.Detach() }

// Safepoint lets a pending collection run. Refs held only in Go variables
// are not roots: after Safepoint returns, only objects reachable from roots
// are guaranteed to exist, and pointers returned by Get before it must not
// be used. With nothing pending it costs a few atomic loads.
func (m *Mutator) Safepoint() { m.m.Safepoint() }

// Collect runs a full collection, sweep included, like runtime.GC. It is a
// safepoint.
func (m *Mutator) Collect() { m.m.Collect() }
