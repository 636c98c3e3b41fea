// Package layout compiles, once per Go type, the reference map the collector
// uses to find the strong handles inside an object: the type-scanning
// contract between the objects a heap stores and its mark phase.
//
// # The contract
//
// The mark phase asks a Type to Scan an object and receives the object's
// outgoing strong references. What counts as one is fixed by these rules:
//
//  1. A field or element whose type is exactly handle.Handle is a strong
//     reference. Wrappers that hold a Handle (the public Ref[T] and Object
//     types) are references because their inner field is one. handle.Weak is
//     never a reference, and neither is any other integer type, including
//     types defined as handle.Handle's underlying uint64.
//  2. References are found inside structs, arrays and slices at any depth:
//     slices of slices, slices of structs holding slices, and types recursive
//     through slices (type Node struct{ Kids []Node; Next handle.Handle }).
//     Compiling a recursive type terminates.
//  3. Go pointers, interfaces, maps, channels, funcs, strings and
//     unsafe.Pointer are opaque: a handle reachable only through one of them
//     is not seen. A type that keeps handles there must trace them itself
//     (rule 7).
//  4. Arrays are not unrolled beyond a small budget (up to 16 elements): a
//     large array such as [1<<20]handle.Handle compiles to one repeat
//     operation, so a map's size does not grow with the array's length.
//  5. Zero handles are skipped; nil and empty slices are skipped.
//  6. A type that can never hold a handle is NoRefs: Scan returns its buffer
//     unchanged and the marker may skip the object. Examples: int, [100]byte,
//     string, a struct holding only a *int, a recursive type with no Handle
//     anywhere.
//  7. A type registered with a CustomFunc is scanned by that function alone:
//     reflection is not consulted for its references, and it is never NoRefs.
//     The first function registered for a type wins. The function applies to
//     objects of that type; where the type is nested in another one (a field
//     or element), the enclosing type's reflected map covers it.
//
// A CustomFunc, in turn, follows these rules:
//
//  8. It appends every non-zero strong handle the value holds, including the
//     ones its reflected layout would show: nothing else scans the value.
//  9. It may be called concurrently by several mark workers, on different
//     objects.
//  10. It does not allocate from, free into, or otherwise touch the heap whose
//     object it scans, and it does not block: it runs with the world stopped.
//  11. It allocates Go memory only by growing the buffer through append.
//
// # Representation
//
// A compiled Type is a flat program. The handles at fixed offsets (struct
// fields, elements of small arrays, at any nesting) form one sorted []uintptr
// of offsets, scanned by a tight loop; most types need nothing else. Slices
// and large arrays add one op each, naming the element's own Type, which is
// shared with every other type that holds the same element type; an op
// inside an element is therefore run once per element, and recursion through
// a slice is a pointer back to a Type, not an expansion. Types are compiled
// under one lock and published only when complete, so a Type read from the
// cache is immutable.
package layout
