package reclaim_test

import (
	"testing"

	"github.com/reclaimgc/reclaim"
)

// Types recursive through a slice inside an array. docs: "Compiling a
// recursive type terminates" (internal/layout rule 2) and refs are found
// "inside structs, arrays and slices, at any depth".
type mrRecA struct {
	kids [2][]mrRecA
	r    reclaim.Ref[mrLeaf]
}

type mrRecOuter struct {
	a mrRecA // mrRecA as a field: compiled inline
}

type mrRecX struct {
	ys [1][]mrRecY
}

type mrRecY struct {
	x mrRecX // mutual recursion: Y holds X inline, X holds Y through [1][]Y
	r reclaim.Ref[mrLeaf]
}

type mrRecS struct {
	a [2]struct{ s []mrRecS }
	r reclaim.Ref[mrLeaf]
}

type mrRecSOuter struct {
	pad int
	s   mrRecS
}

func mrRecCheck[T any](t *testing.T, fill func(m *reclaim.Mutator, p *T, leaf func() reclaim.Ref[mrLeaf])) {
	t.Helper()
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	var leaves []reclaim.Ref[mrLeaf]
	leaf := func() reclaim.Ref[mrLeaf] {
		r := reclaim.New[mrLeaf](m)
		leaves = append(leaves, r)
		return r
	}
	var r reclaim.Ref[T]
	if v, ok := panicValue(func() { r = reclaim.New[T](m) }); ok {
		t.Fatalf("New panicked: %v", v)
	}
	h.Pin(r.Object())
	defer h.Unpin(r.Object())
	fill(m, r.Get(m), leaf)
	m.Collect()
	for i, l := range leaves {
		if !isLive(l) {
			t.Errorf("leaf %d freed", i)
		}
	}
}

func TestLayoutRecursiveThroughArrayOfSlices(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		mrRecCheck(t, func(m *reclaim.Mutator, p *mrRecA, leaf func() reclaim.Ref[mrLeaf]) {
			p.r = leaf()
			p.kids[1] = []mrRecA{{r: leaf()}, {kids: [2][]mrRecA{{{r: leaf()}}}}}
		})
	})
	t.Run("as a field", func(t *testing.T) {
		mrRecCheck(t, func(m *reclaim.Mutator, p *mrRecOuter, leaf func() reclaim.Ref[mrLeaf]) {
			p.a.r = leaf()
			p.a.kids[1] = []mrRecA{{r: leaf()}, {kids: [2][]mrRecA{{{r: leaf()}}}}}
		})
	})
	t.Run("mutual", func(t *testing.T) {
		mrRecCheck(t, func(m *reclaim.Mutator, p *mrRecX, leaf func() reclaim.Ref[mrLeaf]) {
			p.ys[0] = []mrRecY{{r: leaf()}, {r: leaf(), x: mrRecX{ys: [1][]mrRecY{{{r: leaf()}}}}}}
		})
	})
	t.Run("struct in array as a field", func(t *testing.T) {
		mrRecCheck(t, func(m *reclaim.Mutator, p *mrRecSOuter, leaf func() reclaim.Ref[mrLeaf]) {
			p.s.r = leaf()
			p.s.a[1].s = []mrRecS{{r: leaf()}}
		})
	})
}
