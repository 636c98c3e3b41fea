package layout

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// Type is the compiled reference map of one Go type (see the package comment
// for the rules it follows). A Type is immutable once Of returns it and is
// safe for concurrent use.
type Type struct {
	// Go is the described type.
	Go reflect.Type
	// Size is Go.Size().
	Size uintptr
	// HasPointers reports that values of the type hold Go pointers (pointers,
	// strings, slices, maps, channels, funcs, interfaces, unsafe.Pointer), so
	// memory that held one must be cleared with typed stores that the Go
	// collector's write barrier sees.
	HasPointers bool
	// NoRefs reports that the type can never hold a handle: Scan is a no-op
	// and the marker may skip the object entirely.
	NoRefs bool

	// refs are the offsets of the handles at fixed positions, ascending.
	refs []uintptr
	// ops scan the variable or repeated parts: slices and large arrays.
	ops []op
	// custom, if set, replaces refs and ops entirely (rule 7).
	custom CustomFunc
	// slow is len(ops) > 0 || custom != nil: Scan has more to do than refs.
	slow bool
}

// CustomFunc scans a value whose layout reflection cannot follow, appending
// every non-zero strong handle it holds to buf and returning the extended
// buffer. Rules 7 to 11 of the package comment say when it is used and what it
// may and may not do.
type CustomFunc func(p unsafe.Pointer, buf []handle.Handle) []handle.Handle

type opKind uint8

const (
	// opArray scans n elements of sub, stride bytes apart, starting at off.
	opArray opKind = iota + 1
	// opSlice scans the elements of the slice whose header is at off; each
	// element is a sub, stride bytes apart.
	opSlice
)

// op is one instruction of a compiled Type beyond its fixed offsets.
type op struct {
	kind   opKind
	off    uintptr // offset of the array or of the slice header in the value
	n      int     // element count, opArray only
	stride uintptr // element size
	sub    *Type   // element map; never NoRefs
}

const (
	// maxUnrollLen is the longest array whose elements are inlined into
	// their container's map instead of becoming an opArray.
	maxUnrollLen = 16
	// maxUnrollWords bounds what unrolling one array may add (offsets plus
	// ops), so nested small arrays ([16][16][16]handle.Handle) do not
	// multiply into a huge map.
	maxUnrollWords = 64
)

var handleType = reflect.TypeFor[handle.Handle]()

// The caches. Entries are stored only once complete, so a Type loaded from
// either map may be read without locking.
var (
	// plain maps reflect.Type to its reflection-compiled *Type. Read
	// without lock; written only with compiler.mu held.
	plain sync.Map
	// customs maps reflect.Type to its *Type with a CustomFunc; written by
	// LoadOrStore, so the first registration wins.
	customs sync.Map
)

// compiler serializes compilation. Recursive types make a Type refer to
// itself before it is finished; holding one lock for the whole compilation,
// and publishing every Type it made only at the end, keeps those unfinished
// Types invisible to other goroutines.
var compiler struct {
	mu sync.Mutex
}

// Of returns the reference map of t, compiling it on first use. With custom
// nil the map comes from reflection; otherwise custom alone finds t's
// references (rule 7) and the first custom function registered for t is the
// one used by every later call. Concurrent callers receive the same *Type.
func Of(t reflect.Type, custom CustomFunc) *Type {
	if t == nil {
		panic("reclaim: layout.Of of a nil type")
	}
	if custom != nil {
		if v, ok := customs.Load(t); ok {
			return v.(*Type)
		}
		nt := &Type{
			Go:          t,
			Size:        t.Size(),
			HasPointers: hasPointers(t),
			custom:      custom,
			slow:        true,
		}
		v, _ := customs.LoadOrStore(t, nt)
		return v.(*Type)
	}
	if v, ok := plain.Load(t); ok {
		return v.(*Type)
	}
	compiler.mu.Lock()
	defer compiler.mu.Unlock()
	if v, ok := plain.Load(t); ok {
		return v.(*Type)
	}
	c := compilation{pending: make(map[reflect.Type]*pendingType)}
	nt := c.typeOf(t)
	c.publishLocked()
	return nt
}

// compilation is the state of one call to Of that missed the cache. It is
// owned by the goroutine holding compiler.mu.
type compilation struct {
	// pending holds the Types made by this compilation, not yet published.
	pending map[reflect.Type]*pendingType
	// order lists pending in creation order, for publishing.
	order []*Type
}

type pendingType struct {
	t    *Type
	done bool // refs and ops are final
}

// lookup returns the Type for t if it is published or pending, else nil.
func (c *compilation) lookup(t reflect.Type) *Type {
	if v, ok := plain.Load(t); ok {
		return v.(*Type)
	}
	if p, ok := c.pending[t]; ok {
		return p.t
	}
	return nil
}

// typeOf returns the Type of t, compiling it if needed. The result may be
// unfinished only when t is being compiled further up the stack, which
// happens only through a slice element; compile's array case, which inlines
// a Type's offsets, then makes an op instead.
func (c *compilation) typeOf(t reflect.Type) *Type {
	if nt := c.lookup(t); nt != nil {
		return nt
	}
	nt := &Type{
		Go:          t,
		Size:        t.Size(),
		HasPointers: hasPointers(t),
		NoRefs:      !c.mayHoldRefs(t),
	}
	p := &pendingType{t: nt}
	c.pending[t] = p
	c.order = append(c.order, nt)
	if !nt.NoRefs {
		c.compile(nt, t, 0)
	}
	nt.slow = len(nt.ops) > 0
	p.done = true
	return nt
}

// publishLocked stores every Type the compilation made into the cache.
//
// REQUIRES: compiler.mu held.
func (c *compilation) publishLocked() {
	for _, nt := range c.order {
		plain.Store(nt.Go, nt)
	}
}

// compile appends to dst the map of a value of type t found at offset base
// inside dst's value.
func (c *compilation) compile(dst *Type, t reflect.Type, base uintptr) {
	if t == handleType {
		dst.refs = append(dst.refs, base)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if !c.mayHoldRefs(f.Type) {
				continue
			}
			c.compile(dst, f.Type, base+f.Offset)
		}
	case reflect.Array:
		n := t.Len()
		if n == 0 || !c.mayHoldRefs(t.Elem()) {
			return
		}
		stride := t.Elem().Size()
		sub := c.typeOf(t.Elem())
		if p, ok := c.pending[t.Elem()]; ok && !p.done {
			// The element is being compiled further up the stack: the
			// type is recursive through a slice inside this array
			// (type X struct{ a [1][]Y }; type Y struct{ x X }). Its map
			// is not final, so it cannot be inlined; the op keeps only
			// the pointer, as a slice's does.
			dst.ops = append(dst.ops, op{kind: opArray, off: base, n: n, stride: stride, sub: sub})
			return
		}
		if n <= maxUnrollLen && n*(len(sub.refs)+len(sub.ops)) <= maxUnrollWords {
			for i := range n {
				dst.inline(sub, base+uintptr(i)*stride)
			}
			return
		}
		dst.ops = append(dst.ops, op{kind: opArray, off: base, n: n, stride: stride, sub: sub})
	case reflect.Slice:
		if !c.mayHoldRefs(t.Elem()) {
			return
		}
		// The element may be unfinished (a recursive type); the op only
		// keeps the pointer, so that is fine.
		sub := c.typeOf(t.Elem())
		dst.ops = append(dst.ops, op{kind: opSlice, off: base, stride: t.Elem().Size(), sub: sub})
	}
}

// inline appends sub's map, shifted to offset base, to t's.
func (t *Type) inline(sub *Type, base uintptr) {
	for _, off := range sub.refs {
		t.refs = append(t.refs, base+off)
	}
	for _, o := range sub.ops {
		o.off += base
		t.ops = append(t.ops, o)
	}
}

// mayHoldRefs reports whether a handle.Handle is reachable from t through
// struct fields, array elements and slice elements. It is a plain graph
// search, so a recursive type needs no fixed point.
func (c *compilation) mayHoldRefs(t reflect.Type) bool {
	seen := make(map[reflect.Type]bool)
	var walk func(t reflect.Type) bool
	walk = func(t reflect.Type) bool {
		if t == handleType {
			return true
		}
		if seen[t] {
			return false
		}
		seen[t] = true
		if v, ok := plain.Load(t); ok {
			return !v.(*Type).NoRefs
		}
		if p, ok := c.pending[t]; ok {
			return !p.t.NoRefs // set before p's fields are compiled
		}
		switch t.Kind() {
		case reflect.Struct:
			for i := range t.NumField() {
				if walk(t.Field(i).Type) {
					return true
				}
			}
		case reflect.Array:
			return t.Len() > 0 && walk(t.Elem())
		case reflect.Slice:
			return walk(t.Elem())
		}
		return false
	}
	return walk(t)
}

// hasPointers reports whether values of t hold Go pointers. Recursion ends
// at every pointer-shaped kind, so it terminates on recursive types.
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.String, reflect.Slice, reflect.Map, reflect.Chan,
		reflect.Func, reflect.Interface, reflect.UnsafePointer:
		return true
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// Fixed returns the offsets of t's handles, ascending, and true when they
// are at fixed positions and are all Scan reads (no slices, large arrays or
// custom function): a caller scanning many values can then read them
// itself. The slice must not be modified.
func (t *Type) Fixed() (offs []uintptr, ok bool) { return t.refs, !t.slow }

// Scan appends to buf every non-zero strong handle held by the value at p,
// which must point to a value of type t.Go, and returns the extended buffer.
// It allocates only when append grows buf (and whatever a CustomFunc does).
func (t *Type) Scan(p unsafe.Pointer, buf []handle.Handle) []handle.Handle {
	for _, off := range t.refs {
		if h := *(*handle.Handle)(unsafe.Add(p, off)); h != 0 {
			buf = append(buf, h)
		}
	}
	if t.slow {
		buf = t.scanSlow(p, buf)
	}
	return buf
}

// scanSlow runs the custom function or the ops.
func (t *Type) scanSlow(p unsafe.Pointer, buf []handle.Handle) []handle.Handle {
	if t.custom != nil {
		return t.custom(p, buf)
	}
	for i := range t.ops {
		o := &t.ops[i]
		switch o.kind {
		case opArray:
			buf = scanElems(unsafe.Add(p, o.off), o.n, o.stride, o.sub, buf)
		case opSlice:
			s := *(*[]byte)(unsafe.Add(p, o.off)) // only data and len are used
			if len(s) != 0 {
				buf = scanElems(unsafe.Pointer(unsafe.SliceData(s)), len(s), o.stride, o.sub, buf)
			}
		}
	}
	return buf
}

// scanElems scans n values of sub laid out stride bytes apart from base.
func scanElems(base unsafe.Pointer, n int, stride uintptr, sub *Type, buf []handle.Handle) []handle.Handle {
	if sub.slow {
		for i := range n {
			buf = sub.Scan(unsafe.Add(base, uintptr(i)*stride), buf)
		}
		return buf
	}
	if len(sub.refs) == 1 {
		// Arrays and slices of handles, or of structs with one handle.
		off := sub.refs[0]
		for i := range n {
			if h := *(*handle.Handle)(unsafe.Add(base, uintptr(i)*stride+off)); h != 0 {
				buf = append(buf, h)
			}
		}
		return buf
	}
	for i := range n {
		e := unsafe.Add(base, uintptr(i)*stride)
		for _, off := range sub.refs {
			if h := *(*handle.Handle)(unsafe.Add(e, off)); h != 0 {
				buf = append(buf, h)
			}
		}
	}
	return buf
}

// String describes the map, e.g.
// "layout.Node: refs at [0 8], slice at 16 of layout.Node".
func (t *Type) String() string {
	var b strings.Builder
	b.WriteString(t.Go.String())
	b.WriteString(": ")
	switch {
	case t.custom != nil:
		b.WriteString("custom")
		return b.String()
	case t.NoRefs:
		b.WriteString("no refs")
		return b.String()
	}
	var parts []string
	if len(t.refs) > 0 {
		parts = append(parts, fmt.Sprintf("refs at %v", t.refs))
	}
	for _, o := range t.ops {
		switch o.kind {
		case opArray:
			parts = append(parts, fmt.Sprintf("array at %d of [%d]%v", o.off, o.n, o.sub.Go))
		case opSlice:
			parts = append(parts, fmt.Sprintf("slice at %d of %v", o.off, o.sub.Go))
		}
	}
	b.WriteString(strings.Join(parts, ", "))
	return b.String()
}
