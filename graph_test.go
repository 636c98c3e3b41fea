package reclaim_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/reclaimgc/reclaim"
)

// The randomized graph test: build and cut random graphs of objects of
// several kinds, root some of them, collect at random, and after every
// collection compare the heap with a plain reference model (maps and a
// breadth-first search): exactly the objects the model finds reachable
// survive, with their payload and edges intact, and every other one is
// gone for good (its refs panic, As rejects them).

var graphSeed = flag.Uint64("reclaim.graphseed", 0, "run the random graph test with this seed only")

// The node kinds. Each has an ID payload and a different way to hold edges.

// gFields holds two edges in Object fields.
type gFields struct {
	ID   int64
	A, B reclaim.Object
}

// gSlice holds its edges in a slice of Objects.
type gSlice struct {
	ID int64
	S  []reclaim.Object
}

// gTyped holds two typed edges (to gTyped only) in an array, and one
// untyped.
type gTyped struct {
	ID int64
	R  [2]reclaim.Ref[gTyped]
	O  reclaim.Object
	W  reclaim.Weak[gTyped] // not an edge
}

// gTracer holds its edges in a map, reported by Trace.
type gTracer struct {
	ID int64
	M  map[int]reclaim.Object
}

func (g *gTracer) Trace(visit func(reclaim.Object)) {
	for _, o := range g.M {
		visit(o)
	}
}

const (
	kindFields = iota
	kindSlice
	kindTyped
	kindTracer
	numKinds
)

// gnode is the model of one object.
type gnode struct {
	id    int64
	kind  int
	obj   reclaim.Object
	edges map[int]int64 // slot -> target id
}

// graphModel is the reference model: the objects believed live, their
// edges, and the roots.
type graphModel struct {
	nodes map[int64]*gnode
	pins  map[int64]int // pin counts
	scan  []int64       // what ScanRoots reports (may repeat)
}

// reachable returns the ids reachable from the roots, by breadth-first
// search.
func (g *graphModel) reachable() map[int64]bool {
	seen := make(map[int64]bool)
	var queue []int64
	add := func(id int64) {
		if !seen[id] {
			seen[id] = true
			queue = append(queue, id)
		}
	}
	for id, n := range g.pins {
		if n > 0 {
			add(id)
		}
	}
	for _, id := range g.scan {
		add(id)
	}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		for _, to := range g.nodes[id].edges {
			add(to)
		}
	}
	return seen
}

// slots returns how many edge slots a node of kind has; -1 means any
// number (slice and tracer kinds: the test uses 0..5).
func slotsOf(kind int) int {
	switch kind {
	case kindFields:
		return 2
	case kindTyped:
		return 3
	}
	return 6
}

type graphTest struct {
	t     *testing.T
	seed  uint64
	rng   *rand.Rand
	h     *reclaim.Heap
	m     *reclaim.Mutator
	model graphModel
	ids   []int64 // ids of model nodes, for random picks
	next  int64
	dead  []reclaim.Object // refs of freed objects, checked after every collection (bounded)

	collections int
	freed       int
}

func (g *graphTest) fatalf(format string, args ...any) {
	g.t.Helper()
	g.t.Fatalf("seed %d, after %d collections: %s", g.seed, g.collections, fmt.Sprintf(format, args...))
}

func (g *graphTest) pick() *gnode {
	if len(g.ids) == 0 {
		return nil
	}
	return g.model.nodes[g.ids[g.rng.IntN(len(g.ids))]]
}

func (g *graphTest) alloc() {
	g.next++
	n := &gnode{id: g.next, kind: g.rng.IntN(numKinds), edges: make(map[int]int64)}
	m := g.m
	switch n.kind {
	case kindFields:
		r := reclaim.New[gFields](m)
		r.Get(m).ID = n.id
		n.obj = r.Object()
	case kindSlice:
		r := reclaim.New[gSlice](m)
		r.Get(m).ID = n.id
		n.obj = r.Object()
	case kindTyped:
		r := reclaim.New[gTyped](m)
		r.Get(m).ID = n.id
		n.obj = r.Object()
		if g.rng.IntN(4) == 0 {
			r.Get(m).W = reclaim.MakeWeak(m, r) // a weak ref to itself: no edge
		}
	case kindTracer:
		r := reclaim.New[gTracer](m)
		r.Get(m).ID = n.id
		n.obj = r.Object()
	}
	g.model.nodes[n.id] = n
	g.ids = append(g.ids, n.id)
}

// setEdge sets (to != nil) or clears slot of from, in the heap and in the
// model.
func (g *graphTest) setEdge(from *gnode, slot int, to *gnode) {
	m := g.m
	var o reclaim.Object
	if to != nil {
		o = to.obj
	}
	switch from.kind {
	case kindFields:
		p := must(reclaim.As[gFields](from.obj)).Get(m)
		if slot == 0 {
			p.A = o
		} else {
			p.B = o
		}
	case kindSlice:
		p := must(reclaim.As[gSlice](from.obj)).Get(m)
		for len(p.S) <= slot {
			p.S = append(p.S, reclaim.Object{})
		}
		p.S[slot] = o
	case kindTyped:
		p := must(reclaim.As[gTyped](from.obj)).Get(m)
		if slot == 2 {
			p.O = o
			break
		}
		var r reclaim.Ref[gTyped]
		if to != nil {
			var ok bool
			if r, ok = reclaim.As[gTyped](o); !ok {
				g.fatalf("typed edge to a %d", to.kind)
			}
		}
		p.R[slot] = r
	case kindTracer:
		p := must(reclaim.As[gTracer](from.obj)).Get(m)
		if p.M == nil {
			p.M = make(map[int]reclaim.Object)
		}
		if to == nil {
			delete(p.M, slot)
		} else {
			p.M[slot] = o
		}
	}
	if to == nil {
		delete(from.edges, slot)
	} else {
		from.edges[slot] = to.id
	}
}

func must[T any](r reclaim.Ref[T], ok bool) reclaim.Ref[T] {
	if !ok {
		panic(fmt.Sprintf("As[%T] failed", *new(T)))
	}
	return r
}

// randomEdge sets or clears a random slot of a random node. Half the
// edges go to a node allocated near it, as a list's or a tree's do, so
// that marks find refs into the span they scan, ahead and behind.
func (g *graphTest) randomEdge() {
	if len(g.ids) == 0 {
		return
	}
	fi := g.rng.IntN(len(g.ids))
	from := g.model.nodes[g.ids[fi]]
	slot := g.rng.IntN(slotsOf(from.kind))
	to := g.pick()
	if g.rng.IntN(2) == 0 {
		to = g.model.nodes[g.ids[min(max(fi+g.rng.IntN(129)-64, 0), len(g.ids)-1)]]
	}
	if g.rng.IntN(5) == 0 {
		to = nil
	}
	if from.kind == kindTyped && slot < 2 && to != nil && to.kind != kindTyped {
		slot = 2 // the typed slots take only gTyped
	}
	g.setEdge(from, slot, to)
}

func (g *graphTest) collect() {
	g.m.Collect()
	g.collections++
	live := g.model.reachable()
	var ids []int64
	for _, id := range g.ids {
		n := g.model.nodes[id]
		if live[id] {
			ids = append(ids, id)
			continue
		}
		g.checkFreed(n.obj, fmt.Sprintf("unreachable node %d (kind %d)", id, n.kind))
		delete(g.model.nodes, id)
		g.freed++
		if len(g.dead) < 2000 {
			g.dead = append(g.dead, n.obj)
		} else {
			g.dead[g.rng.IntN(len(g.dead))] = n.obj
		}
	}
	g.ids = ids
	for _, id := range g.ids {
		g.checkLive(g.model.nodes[id])
	}
	for _, o := range g.dead {
		g.checkFreed(o, "a node freed earlier")
	}
	if n := g.h.Stats().HeapObjects; n != int64(len(g.ids)) {
		g.fatalf("HeapObjects = %d, model has %d reachable", n, len(g.ids))
	}
	if err := g.h.Verify(); err != nil {
		g.fatalf("%v", err)
	}
}

// checkFreed checks that o's object is gone and stays gone: Get panics with
// "freed object" and As rejects it, whatever now lives in its slot.
func (g *graphTest) checkFreed(o reclaim.Object, what string) {
	g.t.Helper()
	r, ok := reclaim.As[gFields](o)
	_, ok2 := reclaim.As[gSlice](o)
	_, ok3 := reclaim.As[gTyped](o)
	_, ok4 := reclaim.As[gTracer](o)
	if ok || ok2 || ok3 || ok4 {
		g.fatalf("%s: As accepts %v", what, o)
	}
	r = reclaim.UncheckedRef[gFields](o)
	v, panicked := panicValue(func() { r.Get(g.m) })
	msg, _ := panicText(v)
	if !panicked || !strings.Contains(msg, "freed object") {
		g.fatalf("%s: Get = panicked %v with %v, want a \"freed object\" panic", what, panicked, v)
	}
}

// checkLive checks a node the model finds reachable: its object is live,
// with its payload and exactly the model's edges.
func (g *graphTest) checkLive(n *gnode) {
	g.t.Helper()
	m := g.m
	got := make(map[int]reclaim.Object)
	var id int64
	switch n.kind {
	case kindFields:
		r, ok := reclaim.As[gFields](n.obj)
		if !ok {
			g.fatalf("reachable node %d (fields) was freed", n.id)
		}
		p := r.Get(m)
		id = p.ID
		for i, o := range []reclaim.Object{p.A, p.B} {
			if !o.IsNil() {
				got[i] = o
			}
		}
	case kindSlice:
		r, ok := reclaim.As[gSlice](n.obj)
		if !ok {
			g.fatalf("reachable node %d (slice) was freed", n.id)
		}
		p := r.Get(m)
		id = p.ID
		for i, o := range p.S {
			if !o.IsNil() {
				got[i] = o
			}
		}
	case kindTyped:
		r, ok := reclaim.As[gTyped](n.obj)
		if !ok {
			g.fatalf("reachable node %d (typed) was freed", n.id)
		}
		p := r.Get(m)
		id = p.ID
		for i, o := range []reclaim.Object{p.R[0].Object(), p.R[1].Object(), p.O} {
			if !o.IsNil() {
				got[i] = o
			}
		}
		if w := p.W; w != (reclaim.Weak[gTyped]{}) && w.Value(m) != r {
			g.fatalf("node %d: a weak ref to itself answers %v, want %v", n.id, w.Value(m), r)
		}
	case kindTracer:
		r, ok := reclaim.As[gTracer](n.obj)
		if !ok {
			g.fatalf("reachable node %d (tracer) was freed", n.id)
		}
		p := r.Get(m)
		id = p.ID
		for k, o := range p.M {
			got[k] = o
		}
	}
	if id != n.id {
		g.fatalf("node %d holds payload %d", n.id, id)
	}
	if len(got) != len(n.edges) {
		g.fatalf("node %d has %d edges, model has %d", n.id, len(got), len(n.edges))
	}
	for slot, to := range n.edges {
		if got[slot] != g.model.nodes[to].obj {
			g.fatalf("node %d slot %d = %v, want node %d (%v)", n.id, slot, got[slot], to, g.model.nodes[to].obj)
		}
	}
}

func (g *graphTest) step() {
	switch k := g.rng.IntN(100); {
	case k < 30:
		g.alloc()
	case k < 75:
		g.randomEdge()
	case k < 82:
		if n := g.pick(); n != nil {
			g.h.Pin(n.obj)
			g.model.pins[n.id]++
		}
	case k < 88:
		pinned := make([]int64, 0, len(g.model.pins))
		for id := range g.model.pins {
			pinned = append(pinned, id)
		}
		if len(pinned) == 0 {
			return
		}
		slices.Sort(pinned) // map order is random; the seed must decide
		id := pinned[g.rng.IntN(len(pinned))]
		g.h.Unpin(g.model.nodes[id].obj)
		if g.model.pins[id]--; g.model.pins[id] == 0 {
			delete(g.model.pins, id)
		}
	case k < 92:
		if n := g.pick(); n != nil {
			g.model.scan = append(g.model.scan, n.id)
		}
	case k < 95:
		if len(g.model.scan) > 0 {
			i := g.rng.IntN(len(g.model.scan))
			g.model.scan = slices.Delete(g.model.scan, i, i+1)
		}
	case k < 97:
		g.m.Safepoint() // automatic collection is off: nothing happens
	default:
		g.collect()
	}
}

func runGraphTest(t *testing.T, seed uint64, steps int) {
	g := &graphTest{
		t:     t,
		seed:  seed,
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		model: graphModel{nodes: make(map[int64]*gnode), pins: make(map[int64]int)},
	}
	g.h = newTestHeap(t, reclaim.Options{
		GCPercent:   -1,
		MarkWorkers: 1 + int(seed%3),
		// This goroutine is the only mutator and collects itself, so
		// ScanRoots reads the model without a lock.
		ScanRoots: func(visit func(reclaim.Object)) {
			for _, id := range g.model.scan {
				visit(g.model.nodes[id].obj)
			}
		},
	})
	g.m = g.h.Attach()
	defer g.m.Detach()
	for range steps {
		g.step()
	}
	g.collect()
	// Drop every root: everything goes.
	for id, n := range g.model.pins {
		for range n {
			g.h.Unpin(g.model.nodes[id].obj)
		}
	}
	clear(g.model.pins)
	g.model.scan = nil
	g.collect()
	if len(g.ids) != 0 {
		t.Fatalf("seed %d: %d nodes left with no roots", seed, len(g.ids))
	}
	t.Logf("seed %d: %d steps, %d collections, %d objects freed", seed, steps, g.collections, g.freed)
}

func TestRandomGraphs(t *testing.T) {
	seeds, steps := 6, 8_000
	if testing.Short() {
		seeds, steps = 3, 2_500
	}
	if *graphSeed != 0 {
		runGraphTest(t, *graphSeed, steps)
		return
	}
	for i := range seeds {
		seed := uint64(i*7919 + 1)
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { runGraphTest(t, seed, steps) })
	}
}
