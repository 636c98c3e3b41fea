package layout

import (
	"reflect"
	"testing"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// Types recursive through a slice held in an array: the array's element is
// still being compiled when the array is reached.
type recArrX struct {
	Ys [1][]recArrY
}

type recArrY struct {
	X recArrX
	H handle.Handle
}

type recArrS struct {
	A [2]struct{ S []recArrS }
	H handle.Handle
}

type recArrOuter struct {
	Pad int
	S   recArrS
}

type recArrBig struct {
	A [40][]recArrBigY
}

type recArrBigY struct {
	B recArrBig
	H handle.Handle
}

func TestRecursiveThroughArrayOfSlices(t *testing.T) {
	x := recArrX{Ys: [1][]recArrY{{{H: 1}, {H: 2, X: recArrX{Ys: [1][]recArrY{{{H: 3}}}}}}}}
	want(t, scanOf(&x), 1, 2, 3)
	checkScan(t, reflect.ValueOf(&x).Elem())
	y := recArrY{H: 4, X: x}
	want(t, scanOf(&y), 1, 2, 3, 4)

	o := recArrOuter{S: recArrS{H: 5}}
	o.S.A[1].S = []recArrS{{H: 6}, {A: [2]struct{ S []recArrS }{{S: []recArrS{{H: 7}}}}}}
	want(t, scanOf(&o), 5, 6, 7)
	checkScan(t, reflect.ValueOf(&o).Elem())

	var b recArrBig
	b.A[39] = []recArrBigY{{H: 8, B: recArrBig{}}, {H: 9}}
	b.A[39][0].B.A[0] = []recArrBigY{{H: 10}}
	want(t, scanOf(&b), 8, 9, 10)
	if Of(reflect.TypeFor[recArrBig](), nil).NoRefs {
		t.Fatal("recArrBig is NoRefs")
	}
}
