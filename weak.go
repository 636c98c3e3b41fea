package reclaim

import "github.com/reclaimgc/reclaim/internal/handle"

// Weak is a weak reference to an object of type T: it does not keep the
// object alive, and Value returns nil once the object has been found
// unreachable, including as soon as its finalizer is queued (Go's rule for
// weak.Pointer), and never returns the object again. Two Weak values made
// from the same object are equal, except that, as with weak.Pointer, a Weak
// made before the object's finalizer was queued differs from one made after
// it was resurrected (the first stays nil). The zero Weak is a weak nil.
type Weak[T any] struct {
	w handle.Weak
}

// MakeWeak returns a weak reference to r's object. It returns the zero Weak
// for a nil r.
func MakeWeak[T any](m *Mutator, r Ref[T]) Weak[T] {
	if r.h == 0 {
		return Weak[T]{}
	}
	return Weak[T]{m.m.MakeWeak(r.h, false)}
}

// Value returns the object, or nil if it has been found unreachable.
func (w Weak[T]) Value(m *Mutator) Ref[T] {
	return Ref[T]{m.m.WeakValue(w.w)}
}

// LongWeak is a weak reference that stays valid while its object is kept
// alive for or by its finalizer (resurrection), and turns nil only when the
// object is freed, like .NET's long weak references (trackResurrection) and
// the Boehm GC's long links. Two LongWeak values made from the same object
// are equal.
type LongWeak[T any] struct {
	w handle.Weak
}

// MakeLongWeak returns a long weak reference to r's object.
func MakeLongWeak[T any](m *Mutator, r Ref[T]) LongWeak[T] {
	if r.h == 0 {
		return LongWeak[T]{}
	}
	return LongWeak[T]{m.m.MakeWeak(r.h, true)}
}

// Value returns the object, or nil once it has been freed.
func (w LongWeak[T]) Value(m *Mutator) Ref[T] {
	return Ref[T]{m.m.WeakValue(w.w)}
}
