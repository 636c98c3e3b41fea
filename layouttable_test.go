package reclaim_test

import (
	"fmt"
	"testing"

	"github.com/reclaimgc/reclaim"
)

// Layout table: objects of many layouts, each linking leaves only through
// the field under test, kept alive in four ways (pinned, queued for
// finalization, as a cleanup's argument, as a WeakMap value). Strong leaves
// must survive the collection; leaves held only through Weak or LongWeak
// fields must not.

type ltLeaf struct{ v int }

type (
	ltRef    = reclaim.Ref[ltLeaf]
	ltNamed  reclaim.Ref[ltLeaf] // a defined type of Ref
	ltNamedO reclaim.Object

	ltAtZero struct {
		r ltRef
		n [3]int
	}
	ltAtEnd struct {
		n [3]int64
		b byte
		r ltRef
	}
	ltObjArray struct {
		n int8
		a [3]reclaim.Object
	}
	ltSliceArrStruct struct {
		s [][2]struct {
			x int
			r ltRef
		}
	}
	ltEmbedInner struct {
		p *int
		R ltRef
	}
	ltEmbed struct {
		ltEmbedInner
		n int
	}
	ltEmbedRef struct {
		n int32
		reclaim.Ref[ltLeaf]
	}
	ltBlank struct {
		_ int
		r ltRef
		_ [2]ltRef
		o reclaim.Object
		_ struct{}
	}
	ltZeroLenFirst struct {
		z [0]ltRef
		r ltRef
	}
	ltZeroLenLast struct {
		r ltRef
		z [0]ltRef
	}
	ltMixed struct {
		p  *int
		s  string
		r  ltRef
		m  map[int]ltRef // opaque
		f  func()
		i  any
		o  reclaim.Object
		bs []byte
	}
	ltRec struct {
		kids []ltRec
		r    ltRef
	}
	ltBig struct {
		pad byte
		a   [1000]struct {
			x int32
			r ltRef
		}
	}
	ltSliceSlice struct {
		ss [][]reclaim.Object
	}
	ltNamedFields struct {
		a ltNamed
		b ltNamedO
		c [2]ltNamed
	}
	ltWeak struct {
		w  reclaim.Weak[ltLeaf]
		lw reclaim.LongWeak[ltLeaf]
		r  ltRef
		ws []reclaim.Weak[ltLeaf]
	}
	ltDeep struct {
		a [2][3]struct {
			s []struct {
				b [17]ltRef
			}
		}
	}
	ltArrOfSlices [3][]ltRef
	ltSliceOfArr  [][4]ltRef
)

type ltTracerPtr struct {
	m map[int]ltRef
	r ltRef // not seen: Trace is the whole story, and it reports it too
}

func (t *ltTracerPtr) Trace(visit func(reclaim.Object)) {
	for _, r := range t.m {
		visit(r.Object())
	}
	visit(t.r.Object())
}

type ltTracerVal struct {
	m map[int]ltRef
}

func (t ltTracerVal) Trace(visit func(reclaim.Object)) {
	for _, r := range t.m {
		visit(r.Object())
	}
}

// ltCase fills a T through its pointer: leaf makes a leaf that must
// survive, weak one that must be freed.
type ltCase struct {
	name string
	run  func(t *testing.T, mode string)
}

func ltCaseOf[T any](name string, fill func(m *reclaim.Mutator, p *T, leaf, weak func() ltRef)) ltCase {
	return ltCase{name, func(t *testing.T, mode string) { ltCheck(t, mode, fill) }}
}

const ltObjects = 70 // several mark words' worth of slots per span for small types

func ltCheck[T any](t *testing.T, mode string, fill func(m *reclaim.Mutator, p *T, leaf, weak func() ltRef)) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	var strong, weak []ltRef
	leaf := func() ltRef {
		r := reclaim.New[ltLeaf](m)
		strong = append(strong, r)
		return r
	}
	wleaf := func() ltRef {
		r := reclaim.New[ltLeaf](m)
		weak = append(weak, r)
		return r
	}
	var unpin []reclaim.Object
	defer func() {
		for _, o := range unpin {
			h.Unpin(o)
		}
	}()
	for i := range ltObjects {
		switch mode {
		case "pinned", "finalizer":
			r := reclaim.New[T](m)
			fill(m, r.Get(m), leaf, wleaf)
			if mode == "pinned" {
				h.Pin(r.Object())
				unpin = append(unpin, r.Object())
			} else {
				reclaim.SetFinalizer(m, r, func(*reclaim.Mutator, reclaim.Ref[T]) {})
			}
		case "cleanup":
			anchor := reclaim.New[ltLeaf](m)
			h.Pin(anchor.Object())
			unpin = append(unpin, anchor.Object())
			var arg T
			fill(m, &arg, leaf, wleaf)
			reclaim.AddCleanup(m, anchor, func(T) {}, arg)
		case "weakmap":
			if i > 3 {
				continue // maps are big; a few entries suffice
			}
			tab := reclaim.New[reclaim.WeakMap[ltLeaf, T]](m)
			key := reclaim.New[ltLeaf](m)
			h.Pin(tab.Object())
			h.Pin(key.Object())
			unpin = append(unpin, tab.Object(), key.Object())
			var v T
			fill(m, &v, leaf, wleaf)
			tab.Get(m).Set(key, v)
		}
	}
	m.Collect()
	for i, l := range strong {
		if !isLive(l) {
			t.Fatalf("%s: strong leaf %d of %d freed", mode, i, len(strong))
		}
	}
	for i, l := range weak {
		if isLive(l) {
			t.Fatalf("%s: leaf %d of %d held only weakly survived", mode, i, len(weak))
		}
	}
}

func ltCases() []ltCase {
	return []ltCase{
		ltCaseOf("Ref", func(m *reclaim.Mutator, p *ltRef, leaf, weak func() ltRef) { *p = leaf() }),
		ltCaseOf("Object", func(m *reclaim.Mutator, p *reclaim.Object, leaf, weak func() ltRef) { *p = leaf().Object() }),
		ltCaseOf("[3]Ref", func(m *reclaim.Mutator, p *[3]ltRef, leaf, weak func() ltRef) { p[0], p[2] = leaf(), leaf() }),
		ltCaseOf("[100]Ref", func(m *reclaim.Mutator, p *[100]ltRef, leaf, weak func() ltRef) { p[0], p[99] = leaf(), leaf() }),
		ltCaseOf("[17]Object", func(m *reclaim.Mutator, p *[17]reclaim.Object, leaf, weak func() ltRef) { p[16] = leaf().Object() }),
		ltCaseOf("[]Ref", func(m *reclaim.Mutator, p *[]ltRef, leaf, weak func() ltRef) { *p = []ltRef{{}, leaf(), leaf()} }),
		ltCaseOf("atZero", func(m *reclaim.Mutator, p *ltAtZero, leaf, weak func() ltRef) { p.r = leaf() }),
		ltCaseOf("atEnd", func(m *reclaim.Mutator, p *ltAtEnd, leaf, weak func() ltRef) { p.r = leaf() }),
		ltCaseOf("objArray", func(m *reclaim.Mutator, p *ltObjArray, leaf, weak func() ltRef) {
			p.a[0], p.a[2] = leaf().Object(), leaf().Object()
		}),
		ltCaseOf("sliceArrStruct", func(m *reclaim.Mutator, p *ltSliceArrStruct, leaf, weak func() ltRef) {
			p.s = make([][2]struct {
				x int
				r ltRef
			}, 3)
			p.s[0][1].r, p.s[2][0].r = leaf(), leaf()
		}),
		ltCaseOf("embed", func(m *reclaim.Mutator, p *ltEmbed, leaf, weak func() ltRef) { p.R = leaf() }),
		ltCaseOf("embedRef", func(m *reclaim.Mutator, p *ltEmbedRef, leaf, weak func() ltRef) { p.Ref = leaf() }),
		ltCaseOf("blank", func(m *reclaim.Mutator, p *ltBlank, leaf, weak func() ltRef) { p.r, p.o = leaf(), leaf().Object() }),
		ltCaseOf("zeroLenFirst", func(m *reclaim.Mutator, p *ltZeroLenFirst, leaf, weak func() ltRef) { p.r = leaf() }),
		ltCaseOf("zeroLenLast", func(m *reclaim.Mutator, p *ltZeroLenLast, leaf, weak func() ltRef) { p.r = leaf() }),
		ltCaseOf("mixed", func(m *reclaim.Mutator, p *ltMixed, leaf, weak func() ltRef) {
			n := 1
			p.p, p.s, p.r, p.o = &n, "x", leaf(), leaf().Object()
			p.m, p.f, p.i, p.bs = map[int]ltRef{}, func() {}, p, []byte{1}
		}),
		ltCaseOf("recursive", func(m *reclaim.Mutator, p *ltRec, leaf, weak func() ltRef) {
			p.r = leaf()
			p.kids = []ltRec{{r: leaf()}, {kids: []ltRec{{}, {r: leaf()}}}}
		}),
		ltCaseOf("big", func(m *reclaim.Mutator, p *ltBig, leaf, weak func() ltRef) { p.a[0].r, p.a[999].r = leaf(), leaf() }),
		ltCaseOf("sliceSlice", func(m *reclaim.Mutator, p *ltSliceSlice, leaf, weak func() ltRef) {
			p.ss = [][]reclaim.Object{nil, {{}, leaf().Object()}, {leaf().Object()}}
		}),
		ltCaseOf("namedFields", func(m *reclaim.Mutator, p *ltNamedFields, leaf, weak func() ltRef) {
			p.a, p.b, p.c[1] = ltNamed(leaf()), ltNamedO(leaf().Object()), ltNamed(leaf())
		}),
		ltCaseOf("named", func(m *reclaim.Mutator, p *ltNamed, leaf, weak func() ltRef) { *p = ltNamed(leaf()) }),
		ltCaseOf("weak", func(m *reclaim.Mutator, p *ltWeak, leaf, weak func() ltRef) {
			p.w = reclaim.MakeWeak(m, weak())
			p.lw = reclaim.MakeLongWeak(m, weak())
			p.ws = []reclaim.Weak[ltLeaf]{reclaim.MakeWeak(m, weak())}
			p.r = leaf()
		}),
		ltCaseOf("deep", func(m *reclaim.Mutator, p *ltDeep, leaf, weak func() ltRef) {
			p.a[1][2].s = make([]struct{ b [17]ltRef }, 2)
			p.a[1][2].s[1].b[16] = leaf()
			p.a[0][0].s = make([]struct{ b [17]ltRef }, 1)
			p.a[0][0].s[0].b[0] = leaf()
		}),
		ltCaseOf("arrOfSlices", func(m *reclaim.Mutator, p *ltArrOfSlices, leaf, weak func() ltRef) {
			p[2] = []ltRef{leaf()}
		}),
		ltCaseOf("sliceOfArr", func(m *reclaim.Mutator, p *ltSliceOfArr, leaf, weak func() ltRef) {
			*p = ltSliceOfArr{{}, {3: leaf()}}
		}),
		ltCaseOf("empty", func(m *reclaim.Mutator, p *struct{}, leaf, weak func() ltRef) {}),
		ltCaseOf("[0]Ref", func(m *reclaim.Mutator, p *[0]ltRef, leaf, weak func() ltRef) {}),
		ltCaseOf("tracerPtr", func(m *reclaim.Mutator, p *ltTracerPtr, leaf, weak func() ltRef) {
			p.m = map[int]ltRef{1: leaf(), 2: leaf()}
			p.r = leaf()
		}),
		ltCaseOf("tracerVal", func(m *reclaim.Mutator, p *ltTracerVal, leaf, weak func() ltRef) {
			p.m = map[int]ltRef{1: leaf()}
		}),
	}
}

func TestLayoutTableKeepsRefs(t *testing.T) {
	for _, c := range ltCases() {
		for _, mode := range []string{"pinned", "finalizer", "cleanup", "weakmap"} {
			t.Run(fmt.Sprintf("%s/%s", c.name, mode), func(t *testing.T) { c.run(t, mode) })
		}
	}
}
