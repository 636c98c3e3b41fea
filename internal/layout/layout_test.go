package layout

import (
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"sync"
	"testing"
	"testing/quick"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// Types used by the tests. Their layouts exercise one rule each; the random
// test runs all of them against the naive walker.
type (
	// ref mirrors the public Ref[T]: a struct wrapping one Handle.
	ref[T any] struct{ h handle.Handle }

	Pair struct{ A, B handle.Handle }

	Mixed struct {
		N  int
		R  handle.Handle
		W  handle.Weak
		U  uint64
		S  string
		P  *handle.Handle
		I  any
		M  map[int]handle.Handle
		F  func() handle.Handle
		C  chan handle.Handle
		UP unsafe.Pointer
		Ws []handle.Weak
		PP *Pair
		r  handle.Handle
		o  ref[int]
		my myHandle
	}

	myHandle handle.Handle

	Node struct {
		Kids []Node
		Next handle.Handle
		Arr  [3]handle.Handle
		W    handle.Weak
	}

	Elem struct {
		a int
		r handle.Handle
		s []handle.Handle
	}

	BigArr struct {
		pad byte
		E   [20]Elem
	}

	Deep struct {
		M [2][3]struct {
			x handle.Handle
			y [][2]handle.Handle
		}
		SS  [][]Pair
		SSE [][]Elem
	}

	// recA and recB are mutually recursive through slices; recB holds
	// handles only through recA.
	recA struct {
		Bs []recB
		H  handle.Handle
	}
	recB struct {
		As  []recA
		pad int32
	}

	// emptyRec is recursive and can never hold a handle.
	emptyRec struct {
		Kids []emptyRec
		N    int
		P    *handle.Handle
	}

	Arr17 [17]struct {
		x int32
		h handle.Handle
		y [2]handle.Handle
	}

	strNode struct {
		A, B handle.Handle
		Kids []strNode
	}
)

// naiveRefs is the reference implementation: a direct reflective walk.
func naiveRefs(v reflect.Value, out []handle.Handle) []handle.Handle {
	if v.Type() == handleType {
		if h := handle.Handle(v.Uint()); h != 0 {
			out = append(out, h)
		}
		return out
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			out = naiveRefs(v.Field(i), out)
		}
	case reflect.Array, reflect.Slice:
		for i := range v.Len() {
			out = naiveRefs(v.Index(i), out)
		}
	}
	return out
}

// settable returns v made settable even if it is an unexported field.
func settable(v reflect.Value) reflect.Value {
	if v.CanSet() {
		return v
	}
	return reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
}

// fill stores random values into v: non-zero handles at random positions,
// random integers and weak words elsewhere, slices of random length with
// handles beyond their length, and handles hidden behind opaque kinds.
func fill(r *rand.Rand, v reflect.Value, depth int) {
	v = settable(v)
	t := v.Type()
	if t == handleType {
		if r.Intn(4) != 0 {
			v.SetUint(r.Uint64() | 1)
		}
		return
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(r.Int63())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(r.Uint64()) // handle.Weak, myHandle, plain uint64
	case reflect.String:
		v.SetString(fmt.Sprint(r.Int()))
	case reflect.Struct:
		for i := range v.NumField() {
			fill(r, v.Field(i), depth)
		}
	case reflect.Array:
		for i := range v.Len() {
			fill(r, v.Index(i), depth)
		}
	case reflect.Slice:
		if r.Intn(5) == 0 {
			return // nil
		}
		n, c := 0, 0
		if depth <= 3 {
			n = r.Intn(5)
			c = n + r.Intn(3)
		}
		s := reflect.MakeSlice(t, c, c)
		for i := range c {
			fill(r, s.Index(i), depth+1) // also beyond len: must not be seen
		}
		v.Set(s.Slice(0, n))
	case reflect.Pointer:
		if depth > 3 {
			return
		}
		p := reflect.New(t.Elem())
		fill(r, p.Elem(), depth+1)
		v.Set(p)
	case reflect.Map:
		m := reflect.MakeMap(t)
		k := reflect.New(t.Key()).Elem()
		e := reflect.New(t.Elem()).Elem()
		fill(r, k, depth+1)
		fill(r, e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Interface:
		v.Set(reflect.ValueOf(handle.Handle(r.Uint64() | 1)))
	case reflect.Chan:
		v.Set(reflect.MakeChan(t, 1))
	case reflect.Func:
		h := handle.Handle(r.Uint64() | 1)
		v.Set(reflect.ValueOf(func() handle.Handle { return h }))
	case reflect.UnsafePointer:
		h := new(handle.Handle)
		*h = handle.Handle(r.Uint64() | 1)
		v.SetPointer(unsafe.Pointer(h))
	}
}

func sorted(hs []handle.Handle) []handle.Handle {
	hs = slices.Clone(hs)
	slices.Sort(hs)
	return hs
}

// scanOf scans *p with the reflection-compiled map of T.
func scanOf[T any](p *T) []handle.Handle {
	return Of(reflect.TypeFor[T](), nil).Scan(unsafe.Pointer(p), nil)
}

// checkScan compares Scan of the value at v (addressable) with the naive walk.
func checkScan(t *testing.T, v reflect.Value) bool {
	t.Helper()
	lt := Of(v.Type(), nil)
	got := sorted(lt.Scan(v.Addr().UnsafePointer(), nil))
	want := sorted(naiveRefs(v, nil))
	if !slices.Equal(got, want) {
		t.Errorf("%v: Scan found %d handles %x, naive walk %d %x\nmap: %v", v.Type(), len(got), got, len(want), want, lt)
		return false
	}
	return true
}

func want(t *testing.T, got []handle.Handle, exp ...handle.Handle) {
	t.Helper()
	if !slices.Equal(sorted(got), sorted(exp)) {
		t.Fatalf("got %x, want %x", got, exp)
	}
}

func TestStructFields(t *testing.T) {
	v := Pair{A: 1, B: 2}
	want(t, scanOf(&v), 1, 2)
	lt := Of(reflect.TypeFor[Pair](), nil)
	if lt.NoRefs || lt.HasPointers || lt.Size != 16 || len(lt.ops) != 0 || !slices.Equal(lt.refs, []uintptr{0, 8}) {
		t.Fatalf("Pair compiled to %v (NoRefs %v HasPointers %v Size %d)", lt, lt.NoRefs, lt.HasPointers, lt.Size)
	}
	w := ref[Pair]{h: 7}
	want(t, scanOf(&w), 7)
}

func TestNestedStructsAndSmallArrays(t *testing.T) {
	type inner struct {
		x int
		h handle.Handle
		a [2]Pair
	}
	type outer struct {
		n   byte
		in  inner
		arr [4]inner
		g   [16]handle.Handle
	}
	var v outer
	v.in = inner{h: 1, a: [2]Pair{{2, 3}, {4, 0}}}
	v.arr[3].a[1].B = 5
	v.arr[0].h = 6
	v.g[15] = 7
	v.g[0] = 8
	want(t, scanOf(&v), 1, 2, 3, 4, 5, 6, 7, 8)
	lt := Of(reflect.TypeFor[outer](), nil)
	if len(lt.ops) != 0 || len(lt.refs) != 5+4*5+16 {
		t.Fatalf("want all offsets unrolled, got %v", lt)
	}
	if !slices.IsSorted(lt.refs) {
		t.Fatalf("offsets not ascending: %v", lt.refs)
	}
}

func TestBigArrays(t *testing.T) {
	type big [1 << 20]handle.Handle
	lt := Of(reflect.TypeFor[big](), nil)
	if len(lt.refs) != 0 || len(lt.ops) != 1 || lt.ops[0].kind != opArray || lt.ops[0].n != 1<<20 {
		t.Fatalf("[1<<20]Handle compiled to %v", lt)
	}
	b := new(big)
	b[0], b[12345], b[1<<20-1] = 1, 2, 3
	want(t, lt.Scan(unsafe.Pointer(b), nil), 1, 2, 3)

	type elem struct {
		a int
		r handle.Handle
	}
	type big2 struct {
		pad int32
		a   [4096]elem
	}
	lt2 := Of(reflect.TypeFor[big2](), nil)
	// a at 8 and elem 16 bytes on 64-bit platforms; where a word is 32 bits
	// a uint64 (the handle) is 4-aligned: a at 4 and elem 12 bytes.
	var v2 big2
	off, stride := unsafe.Offsetof(v2.a), unsafe.Sizeof(v2.a[0])
	if len(lt2.refs) != 0 || len(lt2.ops) != 1 || lt2.ops[0].off != off || lt2.ops[0].stride != stride {
		t.Fatalf("[4096]elem compiled to %v, want an array at %d, %d bytes apart", lt2, off, stride)
	}
	if sub := lt2.ops[0].sub; sub == nil || len(sub.refs) != 1 || sub.refs[0] != unsafe.Offsetof(v2.a[0].r) {
		t.Fatalf("[4096]elem's element compiled to %v, want the handle at %d", sub, unsafe.Offsetof(v2.a[0].r))
	}
	b2 := new(big2)
	b2.a[0].r, b2.a[4095].r, b2.a[100].a = 4, 5, 6
	want(t, lt2.Scan(unsafe.Pointer(b2), nil), 4, 5)

	// Nested small arrays do not multiply past the unroll budget.
	type cube [16][16][16]handle.Handle
	lt3 := Of(reflect.TypeFor[cube](), nil)
	if len(lt3.refs)+len(lt3.ops) > maxUnrollWords {
		t.Fatalf("[16][16][16]Handle compiled to %d offsets and %d ops", len(lt3.refs), len(lt3.ops))
	}
	c := new(cube)
	c[15][15][15], c[0][0][0], c[7][3][9] = 1, 2, 3
	want(t, lt3.Scan(unsafe.Pointer(c), nil), 1, 2, 3)
}

func TestSlices(t *testing.T) {
	hs := []handle.Handle{1, 0, 2}
	want(t, scanOf(&hs), 1, 2)
	hs = hs[:1:3]
	want(t, scanOf(&hs), 1) // beyond len is not scanned

	v := struct {
		E  []Elem
		SS [][]handle.Handle
	}{
		E:  []Elem{{r: 1, s: []handle.Handle{2, 3}}, {r: 0, s: nil}, {s: []handle.Handle{4}}},
		SS: [][]handle.Handle{nil, {}, {5, 0, 6}},
	}
	want(t, scanOf(&v), 1, 2, 3, 4, 5, 6)

	var empty struct {
		E  []Elem
		SS [][]handle.Handle
	}
	if got := scanOf(&empty); len(got) != 0 {
		t.Fatalf("nil slices: got %x", got)
	}
}

func TestRecursive(t *testing.T) {
	n := Node{
		Next: 1,
		Kids: []Node{
			{Next: 2, Arr: [3]handle.Handle{0, 3, 0}, W: 99},
			{Kids: []Node{{Next: 4, Kids: []Node{{Arr: [3]handle.Handle{5, 6, 7}}}}}},
		},
	}
	want(t, scanOf(&n), 1, 2, 3, 4, 5, 6, 7)
	lt := Of(reflect.TypeFor[Node](), nil)
	if lt.NoRefs || len(lt.ops) != 1 || lt.ops[0].sub != lt {
		t.Fatalf("Node compiled to %v", lt)
	}

	a := recA{H: 1, Bs: []recB{{As: []recA{{H: 2}, {Bs: []recB{{As: []recA{{H: 3}}}}}}}}}
	want(t, scanOf(&a), 1, 2, 3)
	b := recB{As: []recA{{H: 4}}}
	want(t, scanOf(&b), 4)
	if Of(reflect.TypeFor[recB](), nil).NoRefs {
		t.Fatal("recB holds handles through recA but is NoRefs")
	}
	if !Of(reflect.TypeFor[emptyRec](), nil).NoRefs {
		t.Fatal("emptyRec can hold no handle but is not NoRefs")
	}
}

func TestOpaqueAndWeak(t *testing.T) {
	h := handle.Handle(11)
	m := Mixed{
		N: 1, R: 2, W: 3, U: 4, S: "x", P: &h, I: handle.Handle(12),
		M:  map[int]handle.Handle{1: 13},
		F:  func() handle.Handle { return 14 },
		C:  make(chan handle.Handle),
		UP: unsafe.Pointer(&h),
		Ws: []handle.Weak{15},
		PP: &Pair{16, 17},
		r:  5,
		o:  ref[int]{h: 6},
		my: 7,
	}
	want(t, scanOf(&m), 2, 5, 6)
}

func TestZeroSkipped(t *testing.T) {
	var v struct {
		P Pair
		A [40]handle.Handle
		S []handle.Handle
		E []Elem
	}
	v.S = make([]handle.Handle, 10)
	v.E = make([]Elem, 3)
	if got := scanOf(&v); len(got) != 0 {
		t.Fatalf("zero value: got %x", got)
	}
}

func TestNoRefs(t *testing.T) {
	types := []reflect.Type{
		reflect.TypeFor[int](),
		reflect.TypeFor[[100]byte](),
		reflect.TypeFor[string](),
		reflect.TypeFor[struct{ p *int }](),
		reflect.TypeFor[*handle.Handle](),
		reflect.TypeFor[map[int]handle.Handle](),
		reflect.TypeFor[chan handle.Handle](),
		reflect.TypeFor[func() handle.Handle](),
		reflect.TypeFor[any](),
		reflect.TypeFor[handle.Weak](),
		reflect.TypeFor[[]handle.Weak](),
		reflect.TypeFor[[0]handle.Handle](),
		reflect.TypeFor[myHandle](),
		reflect.TypeFor[struct{ p *Pair }](),
		reflect.TypeFor[emptyRec](),
		reflect.TypeFor[struct{}](),
	}
	buf := make([]handle.Handle, 1, 8)
	buf[0] = 42
	for _, typ := range types {
		lt := Of(typ, nil)
		if !lt.NoRefs || len(lt.refs) != 0 || len(lt.ops) != 0 || lt.slow {
			t.Errorf("%v: want NoRefs, got %v", typ, lt)
		}
		v := reflect.New(typ)
		fill(rand.New(rand.NewSource(1)), v.Elem(), 0)
		got := lt.Scan(v.UnsafePointer(), buf)
		if len(got) != 1 || got[0] != 42 || &got[0] != &buf[0] {
			t.Errorf("%v: Scan changed the buffer: %x", typ, got)
		}
	}
}

func TestHasPointers(t *testing.T) {
	for _, c := range []struct {
		typ  reflect.Type
		want bool
	}{
		{reflect.TypeFor[int](), false},
		{reflect.TypeFor[Pair](), false},
		{reflect.TypeFor[[1 << 20]handle.Handle](), false},
		{reflect.TypeFor[[0]*int](), false},
		{reflect.TypeFor[string](), true},
		{reflect.TypeFor[Node](), true},
		{reflect.TypeFor[struct {
			a int
			f func()
		}](), true},
		{reflect.TypeFor[[3]any](), true},
		{reflect.TypeFor[unsafe.Pointer](), true},
		{reflect.TypeFor[emptyRec](), true},
	} {
		if got := Of(c.typ, nil).HasPointers; got != c.want {
			t.Errorf("%v: HasPointers = %v, want %v", c.typ, got, c.want)
		}
	}
}

type traced struct {
	h     handle.Handle
	extra *[]handle.Handle
}

func traceTraced(p unsafe.Pointer, buf []handle.Handle) []handle.Handle {
	v := (*traced)(p)
	if v.extra != nil {
		for _, h := range *v.extra {
			if h != 0 {
				buf = append(buf, h)
			}
		}
	}
	return buf
}

func TestCustom(t *testing.T) {
	typ := reflect.TypeFor[traced]()
	lt := Of(typ, traceTraced)
	if lt.NoRefs || !lt.HasPointers || lt.Go != typ || lt.Size != typ.Size() {
		t.Fatalf("custom type: %v NoRefs %v HasPointers %v", lt, lt.NoRefs, lt.HasPointers)
	}
	v := traced{h: 1, extra: &[]handle.Handle{2, 0, 3}}
	// Only the custom function is consulted: h is not reported by it.
	want(t, lt.Scan(unsafe.Pointer(&v), nil), 2, 3)

	// The first registration wins.
	other := func(p unsafe.Pointer, buf []handle.Handle) []handle.Handle { return append(buf, 99) }
	if lt2 := Of(typ, other); lt2 != lt {
		t.Fatal("second registration replaced the first")
	}
	// The reflection map of the same type is separate.
	plainT := Of(typ, nil)
	if plainT == lt || plainT.custom != nil {
		t.Fatal("Of(t, nil) returned the custom map")
	}
	want(t, plainT.Scan(unsafe.Pointer(&v), nil), 1)

	// A custom type holding no handle by reflection is still scanned.
	noRefs := Of(reflect.TypeFor[struct{ p *traced }](), func(p unsafe.Pointer, buf []handle.Handle) []handle.Handle {
		return traceTraced(unsafe.Pointer(*(**traced)(p)), buf)
	})
	w := struct{ p *traced }{&v}
	if noRefs.NoRefs {
		t.Fatal("custom type is NoRefs")
	}
	want(t, noRefs.Scan(unsafe.Pointer(&w), nil), 2, 3)
}

func TestCache(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeFor[Pair](), reflect.TypeFor[Node](), reflect.TypeFor[int](), reflect.TypeFor[[]Node](),
	} {
		if a, b := Of(typ, nil), Of(typ, nil); a != b {
			t.Errorf("%v: Of returned two maps", typ)
		}
	}
	// Element maps compiled along the way are the ones Of returns.
	lt := Of(reflect.TypeFor[struct{ E []Elem }](), nil)
	if lt.ops[0].sub != Of(reflect.TypeFor[Elem](), nil) {
		t.Error("slice element map is not the cached one")
	}
}

type concNode struct {
	Kids []concNode
	H    handle.Handle
	B    []concB
}

type concB struct {
	N []concNode
	A [20]Pair
}

func TestConcurrentOf(t *testing.T) {
	// Types no other test compiles, built fresh so that the goroutines race
	// to compile them.
	var types []reflect.Type
	types = append(types, reflect.TypeFor[concNode](), reflect.TypeFor[[]concB]())
	for i := range 20 {
		at := reflect.ArrayOf(100+i, reflect.TypeFor[concB]())
		st := reflect.StructOf([]reflect.StructField{
			{Name: "X", Type: reflect.TypeFor[int]()},
			{Name: fmt.Sprintf("S%d", i), Type: reflect.SliceOf(at)},
			{Name: "H", Type: handleType},
		})
		types = append(types, st, reflect.SliceOf(st))
	}
	const workers = 8
	results := make([][]*Type, workers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res := make([]*Type, len(types))
			for k := range types {
				i := (k + w*7) % len(types) // different orders
				res[i] = Of(types[i], nil)
				v := reflect.New(types[i])
				res[i].Scan(v.UnsafePointer(), nil)
			}
			results[w] = res
		}()
	}
	close(start)
	wg.Wait()
	for w := 1; w < workers; w++ {
		for i := range types {
			if results[w][i] != results[0][i] {
				t.Fatalf("%v: workers got different maps", types[i])
			}
		}
	}
	r := rand.New(rand.NewSource(3))
	for _, typ := range types {
		v := reflect.New(typ).Elem()
		fill(r, v, 2) // shallow: the arrays are large
		checkScan(t, v)
	}
}

func TestString(t *testing.T) {
	if got, want := Of(reflect.TypeFor[strNode](), nil).String(), "layout.strNode: refs at [0 8], slice at 16 of layout.strNode"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := Of(reflect.TypeFor[int](), nil).String(), "int: no refs"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := Of(reflect.TypeFor[[100]handle.Handle](), nil).String(), "[100]handle.Handle: array at 0 of [100]handle.Handle"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := Of(reflect.TypeFor[traced](), traceTraced).String(), "layout.traced: custom"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// randomTypes are the types the random test fills and scans.
func randomTypes() []reflect.Type {
	types := []reflect.Type{
		reflect.TypeFor[Pair](),
		reflect.TypeFor[Mixed](),
		reflect.TypeFor[Node](),
		reflect.TypeFor[Elem](),
		reflect.TypeFor[BigArr](),
		reflect.TypeFor[Deep](),
		reflect.TypeFor[recA](),
		reflect.TypeFor[recB](),
		reflect.TypeFor[emptyRec](),
		reflect.TypeFor[Arr17](),
		reflect.TypeFor[[][]handle.Handle](),
		reflect.TypeFor[[]Node](),
		reflect.TypeFor[[100]handle.Handle](),
		reflect.TypeFor[[3][20]Elem](),
	}
	// Arrays around the unroll limits.
	for _, n := range []int{0, 1, 2, 15, 16, 17, 33, 64, 65} {
		for _, e := range []reflect.Type{handleType, reflect.TypeFor[Pair](), reflect.TypeFor[Elem](), reflect.TypeFor[[4]Pair]()} {
			types = append(types, reflect.ArrayOf(n, e))
		}
	}
	return types
}

func TestRandomAgainstNaive(t *testing.T) {
	types := randomTypes()
	count := 200
	if testing.Short() {
		count = 30
	}
	f := func(seed int64) bool {
		r := rand.New(rand.NewSource(seed))
		for _, typ := range types {
			v := reflect.New(typ).Elem()
			fill(r, v, 0)
			if !checkScan(t, v) {
				return false
			}
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: count}); err != nil {
		t.Fatal(err)
	}
}

func TestScanDoesNotAllocate(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	buf := make([]handle.Handle, 0, 1<<16)
	for _, typ := range randomTypes() {
		lt := Of(typ, nil)
		v := reflect.New(typ)
		fill(r, v.Elem(), 0)
		p := v.UnsafePointer()
		allocs := testing.AllocsPerRun(10, func() {
			buf = lt.Scan(p, buf[:0])
		})
		if allocs != 0 {
			t.Errorf("%v: Scan allocated %v times", typ, allocs)
		}
	}
}

func BenchmarkScanPair(b *testing.B) {
	v := Pair{A: 1, B: 2}
	lt := Of(reflect.TypeFor[Pair](), nil)
	buf := make([]handle.Handle, 0, 16)
	p := unsafe.Pointer(&v)
	for b.Loop() {
		buf = lt.Scan(p, buf[:0])
	}
}

func BenchmarkScanSlice64(b *testing.B) {
	s := make([]handle.Handle, 64)
	for i := range s {
		s[i] = handle.Handle(i + 1)
	}
	lt := Of(reflect.TypeFor[[]handle.Handle](), nil)
	buf := make([]handle.Handle, 0, 64)
	p := unsafe.Pointer(&s)
	for b.Loop() {
		buf = lt.Scan(p, buf[:0])
	}
}

func BenchmarkScanArray16(b *testing.B) {
	var v struct {
		N int
		A [16]handle.Handle
	}
	for i := range v.A {
		v.A[i] = handle.Handle(i + 1)
	}
	lt := Of(reflect.TypeOf(v), nil)
	buf := make([]handle.Handle, 0, 16)
	p := unsafe.Pointer(&v)
	for b.Loop() {
		buf = lt.Scan(p, buf[:0])
	}
}

func BenchmarkScanNode(b *testing.B) {
	n := Node{Next: 1, Kids: make([]Node, 8)}
	for i := range n.Kids {
		n.Kids[i].Next = handle.Handle(i + 2)
		n.Kids[i].Arr[1] = handle.Handle(i + 100)
	}
	lt := Of(reflect.TypeFor[Node](), nil)
	buf := make([]handle.Handle, 0, 64)
	p := unsafe.Pointer(&n)
	for b.Loop() {
		buf = lt.Scan(p, buf[:0])
	}
}
