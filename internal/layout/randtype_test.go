package layout

import (
	"fmt"
	"math/rand"
	"reflect"
	"testing"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// randType builds a random type from structs, arrays (empty, small, at and
// past the unroll limits, large), slices, handles, weak words and opaque
// kinds, nested up to depth levels.
func randType(r *rand.Rand, depth int) reflect.Type {
	leaves := []reflect.Type{
		handleType, handleType, handleType,
		reflect.TypeFor[handle.Weak](),
		reflect.TypeFor[myHandle](),
		reflect.TypeFor[ref[int]](),
		reflect.TypeFor[byte](),
		reflect.TypeFor[int32](),
		reflect.TypeFor[uint64](),
		reflect.TypeFor[string](),
		reflect.TypeFor[*handle.Handle](),
		reflect.TypeFor[any](),
		reflect.TypeFor[map[int]handle.Handle](),
		reflect.TypeFor[struct{}](),
		reflect.TypeFor[[0]handle.Handle](),
		reflect.TypeFor[Node](),
		reflect.TypeFor[recA](),
	}
	if depth <= 0 || r.Intn(3) == 0 {
		return leaves[r.Intn(len(leaves))]
	}
	switch r.Intn(3) {
	case 0:
		n := r.Intn(5)
		fields := make([]reflect.StructField, n)
		for i := range fields {
			fields[i] = reflect.StructField{Name: fmt.Sprintf("F%d", i), Type: randType(r, depth-1)}
		}
		return reflect.StructOf(fields)
	case 1:
		lens := []int{0, 1, 2, 3, 7, 16, 17, 31, 64, 65, 200}
		return reflect.ArrayOf(lens[r.Intn(len(lens))], randType(r, depth-1))
	default:
		return reflect.SliceOf(randType(r, depth-1))
	}
}

func TestRandomTypesAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	n := 3000
	if testing.Short() {
		n = 500
	}
	for range n {
		typ := randType(r, 4)
		if typ.Size() > 1<<20 {
			continue
		}
		for range 3 {
			v := reflect.New(typ).Elem()
			fill(r, v, 0)
			if !checkScan(t, v) {
				t.FailNow()
			}
		}
		lt := Of(typ, nil)
		if lt.NoRefs != !naiveMayHold(typ, map[reflect.Type]bool{}) {
			t.Fatalf("%v: NoRefs %v", typ, lt.NoRefs)
		}
	}
}

func naiveMayHold(t reflect.Type, seen map[reflect.Type]bool) bool {
	if t == handleType {
		return true
	}
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			if naiveMayHold(t.Field(i).Type, seen) {
				return true
			}
		}
	case reflect.Array:
		return t.Len() > 0 && naiveMayHold(t.Elem(), seen)
	case reflect.Slice:
		return naiveMayHold(t.Elem(), seen)
	}
	return false
}
