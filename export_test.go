package reclaim

// Internals exposed to the package's tests.

// Verify checks the heap's internal consistency (see the internal heap
// package's Heap.Verify). The heap must be quiescent: no mutator between
// safepoints on another goroutine, nothing running (call Drain first).
func (h *Heap) Verify() error { return h.h.Verify() }

// Closed reports whether Close has begun.
func (h *Heap) Closed() bool { return h.h.Closed() }

// HandleFields returns the span index, slot and generation o's handle names.
func HandleFields(o Object) (span, slot, gen uint32) {
	return o.h.Span(), o.h.Slot(), o.h.Gen()
}

// HeapID returns the id every handle of h carries.
func (h *Heap) HeapID() uint32 { return h.h.ID() }

// UncheckedRef returns o as a Ref[T] without As's checks, so that tests can
// see what Get does with a stale or mistyped handle.
func UncheckedRef[T any](o Object) Ref[T] { return Ref[T]{o.h} }

// FinalizerRoots returns the number of finalizable objects the last mark
// scanned as roots: those its other roots did not reach.
func (h *Heap) FinalizerRoots() int64 { return h.h.Stats().FinalizerRoots }

// StopRequested reports whether a collection is stopping the world or
// holds it stopped.
func (h *Heap) StopRequested() bool { return h.h.StopRequested() }
