package reclaim

import (
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
	"github.com/reclaimgc/reclaim/internal/heap"
	"github.com/reclaimgc/reclaim/internal/layout"
)

// Ref is a reference to an object of type T in a heap: an 8-byte handle
// naming its span, slot and generation. Refs are comparable; the zero Ref
// is nil. A Ref stored in an object (or reported by ScanRoots, or pinned)
// keeps its object alive. A Ref kept past its object's death is caught: it
// never names another object, and using it panics.
type Ref[T any] struct {
	h handle.Handle
}

// Object is an untyped Ref, for dynamically typed values. A field of type
// Object keeps its object alive like a Ref.
type Object struct {
	h handle.Handle
}

// IsNil reports whether r is the nil ref.
func (r Ref[T]) IsNil() bool { return r.h == 0 }

// Object returns r as an untyped Object.
func (r Ref[T]) Object() Object { return Object{r.h} }

// String formats the ref for debugging.
func (r Ref[T]) String() string { return "Ref(" + r.h.String() + ")" }

// IsNil reports whether o is the nil object.
func (o Object) IsNil() bool { return o.h == 0 }

// String formats the object for debugging.
func (o Object) String() string { return "Object(" + o.h.String() + ")" }

// As returns o as a Ref[T] and true if o is nil or names a live object of
// type T; otherwise the nil Ref and false (o is of another type, freed, or
// of a closed heap).
func As[T any](o Object) (Ref[T], bool) {
	if o.h == 0 {
		return Ref[T]{}, true
	}
	t := typeOf[T]()
	h := heap.Lookup(o.h.Heap())
	if h == nil || h.TypeOf(o.h) != t { // nil if o is freed
		return Ref[T]{}, false
	}
	return Ref[T]{o.h}, true
}

// Get returns a pointer to r's object. The pointer is valid until m's next
// safepoint. Get panics if r is nil, names a freed object, belongs to
// another heap, or m is detached.
//
// Get is inlined into its caller, with heap.Mutator.Deref's lookup in it
// (TestFastPathsInline holds it to that).
func (r Ref[T]) Get(m *Mutator) *T {
	return (*T)(deref(&m.m, r.h))
}

// deref is Get without its type: the shape function of a generic method
// does not inline a call into another package, so Get goes through this
// non-generic wrapper, into which Deref's fast path is inlined. Deref's
// cost must leave room for the wrapper within the inlining budget.
func deref(m *heap.Mutator, x handle.Handle) unsafe.Pointer { return m.Deref(x) }

// New allocates a zeroed T in m's heap. It panics with an error wrapping
// ErrMemoryLimit if the heap's memory limit does not allow it.
func New[T any](m *Mutator) Ref[T] {
	x, err := m.alloc(typeKey[T](), registerType[T])
	if err != nil {
		newFailed[T](err)
	}
	return Ref[T]{x}
}

// alloc is New without its type (see deref), with the fast path inlined
// into it: the type cache's hit and heap.Mutator.AllocFast, so that New
// makes one call where it made two. Anything else goes through typeOf and
// Alloc.
func (m *Mutator) alloc(key unsafe.Pointer, register func() *heap.Type) (handle.Handle, error) {
	if e := &m.tc[(uintptr(key)>>5)%typeCacheSize]; e.key == key {
		if x, ok := m.m.AllocFast(e.t); ok {
			return x, nil
		}
	}
	return m.m.Alloc(m.typeOf(key, register))
}

// newFailed panics with New's error.
func newFailed[T any](err error) {
	panic(fmt.Errorf("reclaim: New[%v]: %w", reflect.TypeFor[T](), err))
}

// TryNew is New, but returns ErrMemoryLimit instead of panicking.
func TryNew[T any](m *Mutator) (Ref[T], error) {
	x, err := m.m.Alloc(m.typeOf(typeKey[T](), registerType[T]))
	if err != nil {
		return Ref[T]{}, err
	}
	return Ref[T]{x}, nil
}

// Tracer is implemented by types whose references reflection cannot find:
// refs kept in maps, behind Go pointers, in interfaces. If *T implements
// Tracer, the collector calls Trace to find T's references instead of
// reading T's layout. The rules for implementers:
//
//  1. Trace must call visit for every Ref and Object the value holds that
//     should keep its target alive (nil ones may be skipped).
//  2. Trace runs with the world stopped, possibly on several goroutines at
//     once for different objects; it must not use a mutator, allocate from
//     the heap, block, or modify the value.
//  3. Trace must not retain visit.
//
// A Trace method promoted from an embedded field makes the outer type a
// Tracer too, by Go's method sets, and its other fields are then not
// scanned: embed such a type under a field name, or give the outer type a
// Trace of its own (docs/API.md, rule 5). New panics on an outer type
// whose other fields hold refs that the promoted Trace would miss.
//
// A Trace that panics abandons the collection: the heap is left as it was
// before it, the world runs again, and the mutator that led it (in Collect
// or Safepoint) panics with a reclaim: message that includes the value.
// A Trace that calls runtime.Goexit (t.FailNow, say) abandons it too: on
// the collecting goroutine, that goroutine ends; on another mark worker,
// the collecting mutator panics with a reclaim: message that says so.
type Tracer interface {
	Trace(visit func(Object))
}

// The type registry: every Go type stored in a heap is registered once, with
// its reference map and its typed helpers.

type typeCacheEntry struct {
	key unsafe.Pointer
	t   *heap.Type
}

const typeCacheSize = 8

var registry struct {
	sync.Mutex
	// byKey maps unsafe.Pointer (the type word of *T) to *heap.Type.
	// Stored with the mutex held, so each type is registered once; loaded
	// without it (the Type is immutable once stored).
	byKey sync.Map
}

// typeKey returns the type word of *T, a cheap unique key per T.
func typeKey[T any]() unsafe.Pointer {
	var e any = (*T)(nil)
	return (*[2]unsafe.Pointer)(unsafe.Pointer(&e))[0]
}

// typeOf looks T up in the mutator's small cache, then in the registry.
func (m *Mutator) typeOf(key unsafe.Pointer, register func() *heap.Type) *heap.Type {
	e := &m.tc[(uintptr(key)>>5)%typeCacheSize]
	if e.key == key {
		return e.t
	}
	t := lookupType(key, register)
	e.key, e.t = key, t
	return t
}

func lookupType(key unsafe.Pointer, register func() *heap.Type) *heap.Type {
	if v, ok := registry.byKey.Load(key); ok {
		return v.(*heap.Type)
	}
	return register()
}

// weakMapInside returns where t holds a WeakMap by value, inside a struct
// field, an array or a slice element at any depth ("field Tab", say, or
// "field Scopes, element, field Tab"), or "" if it does not. t itself
// being a WeakMap is not such a case, but a WeakMap whose values hold one
// by value is ("values: ..."). Go pointers, maps and the other opaque
// kinds are not looked into: the collector does not either.
func weakMapInside(t reflect.Type) string {
	seen := make(map[reflect.Type]bool)
	var walk func(t reflect.Type, top bool) string
	walk = func(t reflect.Type, top bool) string {
		if !top && isWeakMap(t) {
			// A type that embeds a WeakMap is found below, at its
			// field; one that embeds a *WeakMap implements
			// ephemeronTable too, but holds no WeakMap by value.
			return t.String()
		}
		if seen[t] {
			return ""
		}
		seen[t] = true
		switch t.Kind() {
		case reflect.Struct:
			if top && isWeakMap(t) {
				// A WeakMap's own fields, but for its values: a
				// WeakMap among them would be scanned as the rest of
				// the value is, its keys kept alive.
				vals, _ := t.FieldByName("vals")
				if w := walk(vals.Type.Elem(), false); w != "" {
					return "values: " + w
				}
				return ""
			}
			for i := range t.NumField() {
				if w := walk(t.Field(i).Type, false); w != "" {
					return "field " + t.Field(i).Name + ": " + w
				}
			}
		case reflect.Array, reflect.Slice:
			if w := walk(t.Elem(), false); w != "" {
				return "element: " + w
			}
		}
		return ""
	}
	return walk(t, true)
}

// isWeakMap reports whether t is an instance of WeakMap itself. A type that
// embeds a WeakMap also implements ephemeronTable (its methods are
// promoted), but it holds the table by value, as a field.
func isWeakMap(t reflect.Type) bool {
	return t.PkgPath() == weakMapPkg && strings.HasPrefix(t.Name(), "WeakMap[")
}

var weakMapPkg = reflect.TypeFor[Object]().PkgPath()

// tracerFunc returns a layout function that calls T's Trace method, if *T
// implements Tracer, and nil otherwise (T's layout then comes from
// reflection).
func tracerFunc[T any]() layout.CustomFunc {
	rt := reflect.TypeFor[T]()
	if !reflect.PointerTo(rt).Implements(tracerType) {
		return nil
	}
	if provider, skipped := promotedTraceSkips(rt); skipped != "" {
		panic(fmt.Sprintf("reclaim: %v's Trace method is promoted from its embedded field %s, so the collector would not see the refs its field %s holds: embed %s under a field name, or give %v a Trace of its own that visits %s and calls %s's (docs/API.md, Tracer rule 5)", rt, provider, skipped, provider, rt, skipped, provider))
	}
	return func(p unsafe.Pointer, buf []handle.Handle) []handle.Handle {
		any((*T)(p)).(Tracer).Trace(func(o Object) {
			if o.h != 0 {
				buf = append(buf, o.h)
			}
		})
		return buf
	}
}

// promotedTraceSkips reports, for a struct type t whose Trace method is
// promoted from an embedded field (Go's method sets make t a Tracer then:
// docs/API.md, rule 5), that field's name and the name of the first other
// field that holds refs, which that Trace does not visit; skipped is ""
// if t declares its Trace, or no other field holds refs (a promotion that
// loses nothing). A promoted method is one the compiler wrote: its code is
// a wrapper, whose position is "<autogenerated>"; reflect tells the two
// apart no other way.
func promotedTraceSkips(t reflect.Type) (provider, skipped string) {
	if t.Kind() != reflect.Struct {
		return "", ""
	}
	m, ok := t.MethodByName("Trace")
	if !ok {
		m, ok = reflect.PointerTo(t).MethodByName("Trace")
	}
	if !ok {
		return "", ""
	}
	pc := m.Func.Pointer()
	if f := runtime.FuncForPC(pc); f == nil {
		return "", ""
	} else if file, _ := f.FileLine(pc); file != "<autogenerated>" {
		return "", ""
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && (f.Type.Implements(tracerType) || reflect.PointerTo(f.Type).Implements(tracerType)) {
			provider = f.Name
		} else if skipped == "" && !layout.Of(f.Type, nil).NoRefs {
			skipped = f.Name
		}
	}
	if provider == "" {
		return "", "" // no field of t's own provides it
	}
	return provider, skipped
}

func typeOf[T any]() *heap.Type { return lookupType(typeKey[T](), registerType[T]) }

var tracerType = reflect.TypeFor[Tracer]()

func registerType[T any]() *heap.Type {
	key := typeKey[T]()
	registry.Lock()
	defer registry.Unlock()
	if v, ok := registry.byKey.Load(key); ok {
		return v.(*heap.Type)
	}
	rt := reflect.TypeFor[T]()
	if where := weakMapInside(rt); where != "" {
		panic(fmt.Sprintf("reclaim: %v holds a WeakMap by value (%s): a WeakMap is an ephemeron table only as an object of its own; allocate it with New and hold its Ref (inside another object its keys and values would be kept alive like any field's)", rt, where))
	}
	custom := tracerFunc[T]()
	var ephEach func(p unsafe.Pointer, f func(handle.Handle, unsafe.Pointer, *layout.Type))
	var ephPrune func(p unsafe.Pointer, dead func(handle.Handle) bool)
	var ephHeapOff uintptr
	if isWeakMap(rt) {
		// An ephemeron table's entries are traced by the ephemeron
		// machinery only; its own layout reports nothing.
		custom = func(p unsafe.Pointer, buf []handle.Handle) []handle.Handle { return buf }
		ephEach = func(p unsafe.Pointer, f func(handle.Handle, unsafe.Pointer, *layout.Type)) {
			any((*T)(p)).(ephemeronTable).ephEach(f)
		}
		ephPrune = func(p unsafe.Pointer, dead func(handle.Handle) bool) {
			any((*T)(p)).(ephemeronTable).ephPrune(dead)
		}
		// A table knows its heap from its span on (WeakMap.heap).
		f, ok := rt.FieldByName("heap")
		if !ok || f.Type.Kind() != reflect.Uint32 {
			// The heap writes a uint32 there in every slot: a renamed
			// field would have it write over the table's first word.
			panic(fmt.Sprintf("reclaim: internal error: %v has no uint32 field heap for its heap id", rt))
		}
		ephHeapOff = f.Offset
	}
	t := heap.RegisterType(&heap.Type{
		EphEach:    ephEach,
		EphPrune:   ephPrune,
		EphHeapOff: ephHeapOff,
		Name:       rt.String(),
		Layout:     layout.Of(rt, custom),
		Size:       rt.Size(),
		NewSlab: func(n int) unsafe.Pointer {
			return unsafe.Pointer(unsafe.SliceData(make([]T, n)))
		},
		Clear: func(p unsafe.Pointer) {
			var zero T
			*(*T)(p) = zero
		},
		FinCall: func(hm *heap.Mutator, x handle.Handle, fn unsafe.Pointer) {
			// fn is the funcval pointer SetFinalizer stored: the one word
			// of a func(*Mutator, Ref[T]) value.
			(*(*func(*Mutator, Ref[T]))(unsafe.Pointer(&fn)))(mutatorOf(hm), Ref[T]{x})
		},
	})
	registry.byKey.Store(key, t)
	return t
}

// argCache returns m's cache entry for cleanup arguments of type S: the
// records' type (S's reference map, the pool of retired records) and a
// slab of cleanup records. The cache works like the type cache.
func argCache[S any](m *Mutator) *argCacheEntry {
	key := typeKey[S]()
	e := &m.lc[(uintptr(key)>>5)%typeCacheSize]
	if e.key != key {
		*e = argCacheEntry{key: key, typ: cleanupType[S](key)}
	}
	return e
}

// cleanupTypes holds the heap.CleanupType of each cleanup argument type,
// keyed by typeKey[S]: made once, kept for the program's life, as the type
// registry's entries are.
var cleanupTypes sync.Map

func cleanupType[S any](key unsafe.Pointer) *heap.CleanupType {
	if t, ok := cleanupTypes.Load(key); ok {
		return t.(*heap.CleanupType)
	}
	// A WeakMap held by value in the argument is refused as in an object
	// (registerType), and so is an argument that is a WeakMap: either way
	// the argument's layout would report the table's keys, and keep them
	// alive until the cleanup has run. Refused before anything is stored,
	// so that the type panics again when asked again.
	st := reflect.TypeFor[S]()
	where := weakMapInside(st)
	if where == "" && isWeakMap(st) {
		where = "itself"
	}
	if where != "" {
		panic(fmt.Sprintf("reclaim: AddCleanup: arg type %v holds a WeakMap by value (%s): a WeakMap is an ephemeron table only as an object of its own; allocate it with New and pass its Ref (in a cleanup's argument its keys and values would be kept alive until the cleanup has run)", st, where))
	}
	// An argument whose type implements Tracer is scanned by its Trace
	// method, as an object of that type is.
	t, _ := cleanupTypes.LoadOrStore(key, &heap.CleanupType{Layout: layout.Of(st, tracerFunc[S]())})
	return t.(*heap.CleanupType)
}

// argCacheEntry is one entry of a Mutator's cleanup-argument cache. Every
// field is owned by the mutator's goroutine (it is a field of Mutator);
// typ is shared and immutable but for its pool, which synchronizes itself.
// An entry evicted by another type drops its slab and stock to Go's
// collector.
type argCacheEntry struct {
	key unsafe.Pointer
	typ *heap.CleanupType
	// recs is the next unused record of a slab of cleanupRec[S] (nil when
	// none is left) and left how many follow it, itself included.
	recs  unsafe.Pointer
	left  int
	stock heap.CleanupStock // records taken from typ's pool, not yet reused
}
