package reclaim

import (
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/cleanupq"
	"github.com/reclaimgc/reclaim/internal/handle"
	"github.com/reclaimgc/reclaim/internal/heap"
	"github.com/reclaimgc/reclaim/internal/layout"
)

// Cleanup is a handle on a cleanup registered with AddCleanup. It points
// to the cleanup's record, so Go's collector keeps the record's memory (a
// few words, in a slab of records) while a Cleanup value is kept. The
// record lets go of the function and its argument once the cleanup has
// run, and once a stopped cleanup's record is dropped: by the sweep after
// its object dies, or when another cleanup is added to the object.
type Cleanup struct {
	c   *heap.CleanupSpecial
	gen uint32 // the record's generation when it was registered
}

// cleanupRec is one registered cleanup call: the record AddCleanup
// allocates, and the only allocation it makes. The heap's special (state,
// list link) is embedded, so the record is linked on the object's span
// as it is.
type cleanupRec[S any] struct {
	heap.CleanupSpecial
	// fn and arg are written by the mutator that registers the record
	// (new or reused) before it links it. Read after that: by the mark
	// and Debug while the record is linked (the world stopped orders them
	// after the write); by the cleanup queue's ScanRoots and the worker
	// that runs the record once the sweeper has queued it (the sweep comes
	// after a stopped world; the queue's publication orders the rest).
	// Cleared by Zero while no one else holds it: by the mutator that
	// unlinked the stopped record (recycle), or by the worker that ran it
	// (RecycleRun, with the queue block's mutex held against ScanRoots).
	// With the special (48 bytes) a record of a one-word S fills one
	// cache line: it is touched by the mutator, the sweeper and a worker
	// in turn, a cycle apart, so every line counts.
	fn  func(S)
	arg S
}

// Run calls the cleanup (cleanupq.Runner).
func (c *cleanupRec[S]) Run() { c.fn(c.arg) }

// Scan appends the handles the argument holds, for the mark: the argument
// is a root until the cleanup has run (cleanupq.Runner).
func (c *cleanupRec[S]) Scan(buf []handle.Handle) []handle.Handle {
	lay := c.Type().Layout
	if lay.NoRefs {
		return buf
	}
	return lay.Scan(unsafe.Pointer(&c.arg), buf)
}

// AddCleanup attaches cleanup(arg) to r's object, with the Go runtime's
// semantics: an object may have many cleanups; each runs some time after
// the object is found unreachable, in no particular order, concurrently
// with other cleanups, on the heap's cleanup goroutines. If the object also
// has a finalizer, its cleanups run only after the finalizer has run and the
// object has become unreachable again. Refs inside arg stay alive until the
// cleanup has run (found as in an object: Ref and Object fields by
// reflection, or the Trace method if *S implements Tracer); if arg leads back to the object, the cleanup can never run
// (Options.Debug reports it), and if arg is the object itself AddCleanup
// panics. AddCleanup panics too if S holds a WeakMap by value or is one,
// as New does for such a type: pass the WeakMap's Ref instead. A cleanup
// is not a mutator: one that needs the heap attaches a mutator of its own. A cleanup that panics is reported through
// Options.OnPanic and the others go on.
//
// Adding a cleanup writes a word that belongs to the object, with no lock:
// two mutators that add cleanups to one object at the same time must
// synchronize, as they must to write its fields. Cleanup.Stop may be called
// from any goroutine at any time.
//
// Misuse (a nil, freed or foreign r, a detached mutator or one another
// goroutine is using, arg the object itself) panics before anything is
// kept: neither cleanup nor arg stays reachable from the heap.
func AddCleanup[T, S any](m *Mutator, r Ref[T], cleanup func(S), arg S) Cleanup {
	if cleanup == nil {
		panic("reclaim: AddCleanup with a nil cleanup function")
	}
	// Every check comes before a record is taken or m's caches are
	// touched: a misuse panics leaving no record that holds cleanup and
	// arg, and nothing of m's written from a goroutine that does not own
	// it. With no safepoint in between, l is still r's object's list when
	// the record is linked.
	l := m.m.CleanupList(r.h)
	e := argCache[S](m)
	typ := e.typ
	lay := typ.Layout
	// A Ref[U] or Object arg naming r's object (r.h is not zero: checked).
	if !lay.NoRefs && unsafe.Sizeof(arg) == unsafe.Sizeof(handle.Handle(0)) &&
		*(*handle.Handle)(unsafe.Pointer(&arg)) == r.h && refsIn(lay, arg) == 1 {
		panic("reclaim: AddCleanup: arg is the object itself, so the cleanup could never run")
	}
	var rec *cleanupRec[S]
	if c := m.m.ReuseCleanup(typ); c != nil {
		// A stopped record of this type, unlinked: the special is the
		// record's first field.
		rec = (*cleanupRec[S])(unsafe.Pointer(c))
	} else if c := e.stock.Take(typ.Pool()); c != nil {
		rec = (*cleanupRec[S])(unsafe.Pointer(c)) // run, retired and zeroed by RecycleRun
	} else {
		rec = newCleanupRec[S](e)
		rec.Init(rec, typ)
	}
	rec.fn, rec.arg = cleanup, arg
	m.m.LinkCleanup(l, &rec.CleanupSpecial)
	return Cleanup{&rec.CleanupSpecial, rec.Gen()}
}

// refsIn returns how many handles lay finds in arg. It scans its own copy
// of arg, which escapes, so that AddCleanup's arg does not: the copy is
// made only when arg may be the object itself.
//
//go:noinline
func refsIn[S any](lay *layout.Type, arg S) int {
	return len(lay.Scan(unsafe.Pointer(&arg), nil))
}

// cleanupSlab is how many records AddCleanup allocates at once. Go's
// allocator and collector then see one object per cleanupSlab cleanups; the
// price is that a slab stays in memory while any of its records is
// referenced (by a Cleanup handle, an object's list or the queue).
const cleanupSlab = 32

// newCleanupRec returns a zeroed record from m's slab for S.
func newCleanupRec[S any](e *argCacheEntry) *cleanupRec[S] {
	if e.left == 0 {
		s := make([]cleanupRec[S], cleanupSlab)
		e.recs, e.left = unsafe.Pointer(unsafe.SliceData(s)), cleanupSlab
	}
	rec := (*cleanupRec[S])(e.recs)
	e.left--
	if e.left == 0 {
		e.recs = nil // never a pointer past the slab's end
	} else {
		e.recs = unsafe.Add(e.recs, unsafe.Sizeof(*rec))
	}
	return rec
}

// RecycleRun retires c, which has run, and the records of its type that
// follow it in recs, and puts them in the type's pool with one push; the
// cleanup worker calls it (cleanupq.Recycler). A Cleanup handle that still
// points to a retired record stops nothing: the record's generation moved
// on.
func (c *cleanupRec[S]) RecycleRun(recs []cleanupq.Runner) int {
	r := c.Type().Pool().Retire()
	c.Zero()
	r.Add(&c.CleanupSpecial)
	n := 1
	for _, x := range recs[1:] {
		d, ok := x.(*cleanupRec[S])
		if !ok {
			break
		}
		d.Zero()
		r.Add(&d.CleanupSpecial)
		n++
	}
	r.Flush()
	return n
}

// FuncPC returns the entry of the cleanup function's code, for the debug
// reports (heap.CleanupRecord); 0 once the record is zeroed.
func (c *cleanupRec[S]) FuncPC() uintptr {
	if c.fn == nil {
		return 0
	}
	return **(**uintptr)(unsafe.Pointer(&c.fn))
}

// Zero drops the record's function and argument while it waits for reuse,
// so they do not stay reachable for Go's collector.
func (c *cleanupRec[S]) Zero() {
	var zero S
	c.fn, c.arg = nil, zero
}

// Stop cancels the cleanup if it has not been queued yet; once it has been
// queued or has run, Stop has no effect. Stop may be called from any
// goroutine, any number of times; Stop of the zero Cleanup does nothing.
//
// Stop is one CAS on the cleanup's own record: it races with the sweeper
// that finds the object unreachable, and exactly one of them wins. A Stop
// that comes after the object was found unreachable but before its span
// was swept therefore still cancels the cleanup (the runtime's Stop sweeps
// the span first, so there the cleanup would run).
func (c Cleanup) Stop() {
	if c.c != nil {
		c.c.Stop(c.gen)
	}
}
