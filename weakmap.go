package reclaim

import (
	"fmt"
	"iter"
	"reflect"
	"sync"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
	"github.com/reclaimgc/reclaim/internal/heap"
	"github.com/reclaimgc/reclaim/internal/layout"
)

// WeakMap is an ephemeron table, the semantics of JavaScript's WeakMap and
// Lua's weak-key tables: an entry keeps its value alive only while its key
// is reachable from somewhere other than the entry's own value (and other
// entries' values leading back to it); once the key is unreachable the
// entry disappears. The key itself is never kept alive by the table.
//
// A WeakMap is a heap object: allocate it with New[WeakMap[K, V]] and reach
// it through its Ref, so that it is found by the collector like any other
// object (a WeakMap kept outside the heap is not an ephemeron table, and
// refs in its values are not seen).
//
//	t := reclaim.New[reclaim.WeakMap[Obj, Ref[Obj]]](m)
//	t.Get(m).Set(key, value)
//
// Marking reaches the fixpoint (a value that makes another entry's key
// reachable, to any depth) in time linear in the number of entries. Keys
// kept alive for their finalizer keep their entries until they are freed
// (Lua 5.4 manual §2.5.4: resurrected objects are removed from weak keys
// only when they are actually freed), but they do not keep their key
// alive: a finalizable key that only its own entries' values reach
// (directly, or through other entries) is finalized, as Lua and
// JavaScript finalize it. A finalizable table, by contrast, owns its
// entries as an object owns its fields (Go's rule for finalizers): if a
// value of one of its live keys leads back to the table, the table is on
// a reference cycle and never finalized, and Options.Debug reports it.
// Entries of dead keys are deleted when the mark that found them dead
// ends.
//
// A WeakMap is not safe for concurrent use by several mutators; like any
// object, it is read and written between safepoints.
//
// Its fields are written by mutators between safepoints, like any object's;
// with the world stopped, mark workers read keys and vals (ephEach) and the
// leader deletes the entries of dead keys (ephPrune).
//
// A WeakMap must not be copied: a copy shares the original's index map,
// and keeps its heap's id. It holds a noCopy, so that go vet's copylocks
// check reports a copy.
type WeakMap[K, V any] struct {
	_    noCopy
	idx  map[handle.Handle]int32 // key -> index into keys and vals
	keys []handle.Handle
	vals []V

	// heap is the id of the table's heap, which Set, Get, Has and Delete
	// read to refuse a key of another heap. Written by the heap in every
	// slot of the table's span (heap.Type.EphHeapOff): when the span is
	// made, h.mu held, before it is published, and again by the sweep
	// after it zeroes a freed table, before the slot can be allocated; so
	// a table allocated with New has it from the start. The collector
	// does not read it. A WeakMap made outside the heap, or zeroed by
	// the program, has 0 until its first Set, which writes its key's heap;
	// like the other fields, used by mutators between safepoints.
	heap uint32
}

// Set stores v under k. It panics if k is nil, names a freed object, or
// belongs to another heap than the table; the table is then unchanged.
// Refs inside v are not checked, as a store into an object's field is not:
// a stale or foreign one is caught by the next mark and by Get.
func (t *WeakMap[K, V]) Set(k Ref[K], v V) {
	if k.h == 0 {
		panic("reclaim: WeakMap.Set with a nil key")
	}
	checkKey(t.heap, k.h, "WeakMap.Set")
	t.heap = k.h.Heap()
	if i, ok := t.idx[k.h]; ok {
		t.vals[i] = v
		return
	}
	if t.idx == nil {
		t.idx = make(map[handle.Handle]int32)
	}
	if len(t.keys) >= 1<<31-1 {
		panic(fmt.Sprintf("reclaim: WeakMap holds %d entries, the most it can", len(t.keys)))
	}
	t.idx[k.h] = int32(len(t.keys))
	t.keys = append(t.keys, k.h)
	t.vals = append(t.vals, v)
}

// Get returns the value stored under k. It panics if k names a freed object
// or belongs to another heap than the table; a nil k has no value.
func (t *WeakMap[K, V]) Get(k Ref[K]) (V, bool) {
	if k.h != 0 {
		checkKey(t.heap, k.h, "WeakMap.Get")
	}
	if i, ok := t.idx[k.h]; ok {
		return t.vals[i], true
	}
	var zero V
	return zero, false
}

// Has reports whether k has an entry. It panics as Get does.
func (t *WeakMap[K, V]) Has(k Ref[K]) bool {
	if k.h != 0 {
		checkKey(t.heap, k.h, "WeakMap.Has")
	}
	_, ok := t.idx[k.h]
	return ok
}

// Delete removes k's entry and reports whether there was one. It panics as
// Get does.
func (t *WeakMap[K, V]) Delete(k Ref[K]) bool {
	if k.h != 0 {
		checkKey(t.heap, k.h, "WeakMap.Delete")
	}
	i, ok := t.idx[k.h]
	if !ok {
		return false
	}
	t.removeAt(i)
	return true
}

// Len returns the number of entries.
func (t *WeakMap[K, V]) Len() int { return len(t.keys) }

// All iterates over the entries, in no particular order. The table must not
// be modified during the iteration.
func (t *WeakMap[K, V]) All() iter.Seq2[Ref[K], V] {
	return func(yield func(Ref[K], V) bool) {
		for i, k := range t.keys {
			if !yield(Ref[K]{k}, t.vals[i]) {
				return
			}
		}
	}
}

func (t *WeakMap[K, V]) removeAt(i int32) {
	last := int32(len(t.keys) - 1)
	delete(t.idx, t.keys[i])
	if i != last {
		t.keys[i] = t.keys[last]
		t.vals[i] = t.vals[last]
		t.idx[t.keys[i]] = i
	}
	var zero V
	t.vals[last] = zero
	t.keys = t.keys[:last]
	t.vals = t.vals[:last]
}

// checkKey panics unless k, a non-nil key, names a live object of the heap
// tab (a table's heap; 0 for a table made outside the heap, or zeroed by
// the program, and given no key yet).
// Without a mutator, it finds k's heap by k's id: a key of a closed heap is
// freed, as every object of a closed heap is. An object the last mark
// found unreachable and that is not yet swept still passes, as it does
// Ref.Get; the next mark deletes its entry. Not generic, so that the four
// callers of every WeakMap type share it.
func checkKey(tab uint32, k handle.Handle, op string) {
	if tab != 0 && k.Heap() != tab {
		panic(fmt.Sprintf("reclaim: %s of a ref from another heap (ref heap %d, table's heap %d)", op, k.Heap(), tab))
	}
	if h := heap.Lookup(k.Heap()); h == nil || !h.Valid(k) {
		panic(fmt.Sprintf("reclaim: %s of a ref to a freed object (%v)", op, k))
	}
}

// ephemeronTable is implemented by *WeakMap (and by a type embedding a
// WeakMap or a *WeakMap); registerType recognizes a WeakMap by its name.
type ephemeronTable interface {
	ephEach(f func(key handle.Handle, val unsafe.Pointer, lay *layout.Type))
	ephPrune(dead func(handle.Handle) bool)
}

func (t *WeakMap[K, V]) ephEach(f func(key handle.Handle, val unsafe.Pointer, lay *layout.Type)) {
	lay := valueLayout[V]()
	for i, k := range t.keys {
		f(k, unsafe.Pointer(&t.vals[i]), lay)
	}
}

func (t *WeakMap[K, V]) ephPrune(dead func(handle.Handle) bool) {
	for i := int32(0); i < int32(len(t.keys)); {
		if dead(t.keys[i]) {
			t.removeAt(i)
			continue
		}
		i++
	}
}

// valueLayouts holds the reference map of each WeakMap value type V, keyed
// by typeKey[V]: made once, kept for the program's life.
var valueLayouts sync.Map

// valueLayout returns the reference map of a WeakMap's values: by
// reflection, or V's Trace method if *V implements Tracer, as for an
// object or a cleanup's argument (the table's own layout is not a
// reflected map that could cover its values).
func valueLayout[V any]() *layout.Type {
	key := typeKey[V]()
	if l, ok := valueLayouts.Load(key); ok {
		return l.(*layout.Type)
	}
	l, _ := valueLayouts.LoadOrStore(key, layout.Of(reflect.TypeFor[V](), tracerFunc[V]()))
	return l.(*layout.Type)
}

// noCopy makes go vet's copylocks check report a copy of the struct that
// holds it, as the sync package's noCopy does. It takes no room.
type noCopy struct{}

// Lock is a no-op used by the copylocks check.
func (*noCopy) Lock() {}

// Unlock is a no-op used by the copylocks check.
func (*noCopy) Unlock() {}
