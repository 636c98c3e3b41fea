package reclaim

import "unsafe"

// SetFinalizer sets f as the finalizer of r's object, or clears it when f is
// nil, with the Go runtime's semantics:
//
//   - An object has at most one finalizer; setting a second one panics.
//   - When the collector finds the object unreachable, it clears the
//     association and queues f(m, r); the object is reachable again, and is
//     freed the next time it is found unreachable, unless f stored r
//     somewhere (resurrection).
//   - Everything reachable from a finalizable object stays alive: if A
//     points to B and both have finalizers, only A's runs in that cycle, and
//     B's runs once A is freed. A reference cycle through a finalizable
//     object is therefore never collected (Options.Debug reports such
//     cycles). Heap.Close keeps that order for the finalizers it runs; it
//     runs those on such cycles too, in an order not specified.
//   - Finalizers run one at a time, on one goroutine, as a mutator m that
//     reaches a safepoint between calls (or, with
//     Options.FinalizersAtSafepoints, on the embedder's mutators). m must not
//     be kept or detached by f. With FinalizersAtSafepoints, m is the
//     mutator that reached the safepoint, and f may use it as its own; a
//     safepoint f reaches runs no other finalizer, and Drain in f panics.
//   - A finalizer that panics is reported through Options.OnPanic, and the
//     queue goes on.
//   - Weak references to the object turn nil as soon as its finalizer is
//     queued; LongWeak references stay valid until the object is freed.
//
// f may capture Go values; refs captured only by f are not seen by the
// collector (keep them in the object instead).
//
// Setting or clearing a finalizer writes a word that belongs to the object,
// with no lock: two mutators that set or clear the finalizer of one object
// at the same time must synchronize, as they must to write its fields (the
// race detector reports it if they do not). On different objects they never
// interfere.
func SetFinalizer[T any](m *Mutator, r Ref[T], f func(m *Mutator, r Ref[T])) {
	// T's finalizer adapter (Type.FinCall) was registered by the New[T]
	// that made r's object; the heap keeps f as its one funcval word.
	m.m.SetFinalizer(r.h, *(*unsafe.Pointer)(unsafe.Pointer(&f)))
}
