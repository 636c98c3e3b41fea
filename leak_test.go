package reclaim_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/reclaimgc/reclaim"
)

type LexScope struct {
	Parent reclaim.Ref[LexScope]
	Vars   []reclaim.Object
}

type LexClosure struct {
	Env reclaim.Ref[LexScope]
}

func TestRetainingPath(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	global := reclaim.New[LexScope](m)
	h.Pin(global.Object())
	inner := reclaim.New[LexScope](m)
	inner.Get(m).Parent = global
	leak := reclaim.New[LexClosure](m)
	leak.Get(m).Env = inner
	// The leak: the global scope keeps a closure whose environment is
	// the scope we expected to die.
	global.Get(m).Vars = append(global.Get(m).Vars, leak.Object())

	path, ok := m.RetainingPath(inner.Object())
	if !ok {
		t.Fatal("a reachable object reported unreachable")
	}
	want := []string{"pinned: reclaim_test.LexScope", "-> reclaim_test.LexClosure", "-> reclaim_test.LexScope"}
	if strings.Join(path, "\n") != strings.Join(want, "\n") {
		t.Fatalf("path:\n%s\nwant:\n%s", strings.Join(path, "\n"), strings.Join(want, "\n"))
	}

	// Break the leak: the object is now unreachable.
	global.Get(m).Vars = nil
	if path, ok := m.RetainingPath(inner.Object()); ok {
		t.Fatalf("unreachable object has a path: %v", path)
	}

	// A root of another kind: the referent of a finalizable object.
	fin := reclaim.New[LexClosure](m)
	fin.Get(m).Env = inner
	reclaim.SetFinalizer(m, fin, func(*reclaim.Mutator, reclaim.Ref[LexClosure]) {})
	path, ok = m.RetainingPath(inner.Object())
	if !ok || len(path) != 1 || path[0] != "referenced by a finalizable object reclaim_test.LexClosure: reclaim_test.LexScope" {
		t.Fatalf("path through a finalizable object: %q %v", path, ok)
	}
	reclaim.SetFinalizer[LexClosure](m, fin, nil)
}

// LeakTableHolder reaches a WeakMap at once and the map's key one
// reference further, so a breadth-first search visits the table before
// it reaches the key.
type LeakTableHolder struct {
	Table reclaim.Ref[reclaim.WeakMap[LexScope, reclaim.Ref[LexScope]]]
	Next  reclaim.Ref[LeakTableHolder]
	Key   reclaim.Ref[LexScope]
}

// leakTableName is the type name RetainingPath gives the WeakMap the tests
// below use.
const leakTableName = "reclaim.WeakMap[github.com/reclaimgc/reclaim_test.LexScope,github.com/reclaimgc/reclaim.Ref[github.com/reclaimgc/reclaim_test.LexScope]]"

// checkPath fails unless RetainingPath(o) returns want (nil: unreachable),
// and unless a collection agrees: o survives it exactly when it has a path.
func checkPath(t *testing.T, m *reclaim.Mutator, o reclaim.Ref[LexScope], want []string) {
	t.Helper()
	path, ok := m.RetainingPath(o.Object())
	if ok != (want != nil) || strings.Join(path, "\n") != strings.Join(want, "\n") {
		t.Fatalf("path (reachable %v):\n%s\nwant:\n%s", ok, strings.Join(path, "\n"), strings.Join(want, "\n"))
	}
	w := reclaim.MakeWeak(m, o)
	m.Collect()
	if survived := !w.Value(m).IsNil(); survived != ok {
		t.Fatalf("RetainingPath says reachable %v, but the object survived a collection: %v", ok, survived)
	}
}

// A WeakMap entry's value is reachable once its table and its key are,
// in whichever order the search finds them.
func TestRetainingPathThroughWeakMap(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	root := reclaim.New[LeakTableHolder](m)
	h.Pin(root.Object())
	tab := reclaim.New[reclaim.WeakMap[LexScope, reclaim.Ref[LexScope]]](m)
	root.Get(m).Table = tab
	next := reclaim.New[LeakTableHolder](m)
	root.Get(m).Next = next
	key, val := reclaim.New[LexScope](m), reclaim.New[LexScope](m)
	next.Get(m).Key = key
	tab.Get(m).Set(key, val)

	checkPath(t, m, val, []string{"pinned: reclaim_test.LeakTableHolder", "-> " + leakTableName, "-> reclaim_test.LexScope"})
	// Without its key the entry holds nothing (and the collection in
	// checkPath deletes it).
	next.Get(m).Key = reclaim.Ref[LexScope]{}
	checkPath(t, m, val, nil)
	// A finalizable key counts as live, though nothing reaches it: it
	// survives the cycle for its finalizer, and its entry with it.
	key2, val2 := reclaim.New[LexScope](m), reclaim.New[LexScope](m)
	reclaim.SetFinalizer(m, key2, func(*reclaim.Mutator, reclaim.Ref[LexScope]) {})
	tab.Get(m).Set(key2, val2)
	checkPath(t, m, val2, []string{"pinned: reclaim_test.LeakTableHolder", "-> " + leakTableName, "-> reclaim_test.LexScope"})
}

// A finalizable key that only its own entry's value reaches is not
// retained: the next collection queues its finalizer (doomKeys), and
// RetainingPath says it is unreachable, as for any finalizable object that
// nothing reaches; the value is reported held by the table, where the
// finalizer will find it.
func TestRetainingPathDoomedKey(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	root := reclaim.New[LeakTableHolder](m)
	h.Pin(root.Object())
	defer h.Unpin(root.Object())
	tab := reclaim.New[reclaim.WeakMap[LexScope, reclaim.Ref[LexScope]]](m)
	root.Get(m).Table = tab
	key, val := reclaim.New[LexScope](m), reclaim.New[LexScope](m)
	val.Get(m).Parent = key
	tab.Get(m).Set(key, val)
	reclaim.SetFinalizer(m, key, func(*reclaim.Mutator, reclaim.Ref[LexScope]) {})
	if path, ok := m.RetainingPath(key.Object()); ok {
		t.Errorf("a finalizable key that only its entry's value reaches has a path: %q", path)
	}
	if path, ok := m.RetainingPath(val.Object()); !ok || strings.Join(path, "\n") != strings.Join([]string{"pinned: reclaim_test.LeakTableHolder", "-> " + leakTableName, "-> reclaim_test.LexScope"}, "\n") {
		t.Errorf("the value of a key being finalized: path %q, reachable %v", path, ok)
	}
}

// A finalizable WeakMap that nothing reaches still keeps the values of its
// live keys for its finalizer, as it keeps its other referents.
func TestRetainingPathFinalizableWeakMap(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	tab := reclaim.New[reclaim.WeakMap[LexScope, reclaim.Ref[LexScope]]](m)
	key, val := reclaim.New[LexScope](m), reclaim.New[LexScope](m)
	h.Pin(key.Object())
	tab.Get(m).Set(key, val)
	reclaim.SetFinalizer(m, tab, func(*reclaim.Mutator, reclaim.Ref[reclaim.WeakMap[LexScope, reclaim.Ref[LexScope]]]) {})

	checkPath(t, m, val, []string{"held by an entry of a finalizable table " + leakTableName + ": reclaim_test.LexScope"})
	// A key that is not reachable (and has no finalizer) keeps nothing.
	h.Unpin(key.Object())
	checkPath(t, m, val, nil)
}

// PathNode is a node of the graphs below: two references and a WeakMap.
type PathNode struct {
	A, B  reclaim.Ref[PathNode]
	Table reclaim.Ref[PathTable]
}

// PathTable is a WeakMap from nodes to nodes.
type PathTable = reclaim.WeakMap[PathNode, reclaim.Ref[PathNode]]

// The chain RetainingPath returns has the fewest references, also when a
// shorter one goes through a WeakMap entry whose key the search reaches
// only late.
func TestRetainingPathShortest(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	node := func() reclaim.Ref[PathNode] { return reclaim.New[PathNode](m) }
	// chain links n new nodes after from through their A fields and
	// returns the last.
	chain := func(from reclaim.Ref[PathNode], n int) reclaim.Ref[PathNode] {
		for range n {
			x := node()
			from.Get(m).A = x
			from = x
		}
		return from
	}
	root := node()
	h.Pin(root.Object())
	tab := reclaim.New[PathTable](m)
	root.Get(m).Table = tab
	// The key, five references from the root; the table holds key -> v,
	// and v -> target: root -> table -> v -> target.
	key := chain(root, 5)
	v, target := node(), node()
	tab.Get(m).Set(key, v)
	v.Get(m).A = target
	// A longer way: root -> b1 -> b2 -> b3 -> target.
	b1 := node()
	root.Get(m).B = b1
	chain(b1, 2).Get(m).A = target

	name := "reclaim_test.PathNode"
	want := []string{"pinned: " + name, "-> reclaim.WeakMap[github.com/reclaimgc/reclaim_test.PathNode,github.com/reclaimgc/reclaim.Ref[github.com/reclaimgc/reclaim_test.PathNode]]", "-> " + name, "-> " + name}
	path, ok := m.RetainingPath(target.Object())
	if !ok || strings.Join(path, "\n") != strings.Join(want, "\n") {
		t.Fatalf("path (reachable %v):\n%s\nwant:\n%s", ok, strings.Join(path, "\n"), strings.Join(want, "\n"))
	}
}

// RetainingPath agrees with the collector on random graphs of nodes and
// WeakMaps, with finalizable nodes and tables, finalizers left queued
// between collections, keys from another heap and keys freed since they
// were stored: an object without a pending finalizer has a path exactly
// when it survives the next collection.
func TestRetainingPathMatchesCollection(t *testing.T) {
	seeds := 2000
	if testing.Short() {
		seeds = 200
	}
	other := newTestHeap(t, reclaim.Options{GCPercent: -1})
	om := other.Attach()
	defer om.Detach()
	foreign := reclaim.New[PathNode](om)
	other.Pin(foreign.Object())
	defer other.Unpin(foreign.Object())
	for seed := range uint64(seeds) {
		retainingPathAgainstCollection(t, seed, foreign)
	}
}

func retainingPathAgainstCollection(t *testing.T, seed uint64, foreign reclaim.Ref[PathNode]) {
	rng := rand.New(rand.NewPCG(seed, 0))
	// Finalizers run one a safepoint, so some stay queued (roots) across
	// a collection.
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, FinalizersAtSafepoints: true, FinalizerBudget: 1})
	// Closed here, after Detach, which runs what is still queued: the
	// end-of-test check would wait in Drain for a mutator to run it.
	defer h.Close()
	m := h.Attach()
	defer m.Detach()
	n, nt := 4+rng.IntN(14), 1+rng.IntN(4)
	nodes := make([]reclaim.Ref[PathNode], n)
	for i := range nodes {
		nodes[i] = reclaim.New[PathNode](m)
	}
	tabs := make([]reclaim.Ref[PathTable], nt)
	tabAlive := make([]reclaim.LongWeak[PathTable], nt)
	for i := range tabs {
		tabs[i] = reclaim.New[PathTable](m)
		tabAlive[i] = reclaim.MakeLongWeak(m, tabs[i])
	}
	pick := func() reclaim.Ref[PathNode] {
		if rng.IntN(4) == 0 {
			return reclaim.Ref[PathNode]{}
		}
		return nodes[rng.IntN(n)]
	}
	for _, x := range nodes {
		p := x.Get(m)
		p.A, p.B = pick(), pick()
		if rng.IntN(3) == 0 {
			p.Table = tabs[rng.IntN(nt)]
		}
	}
	for _, tb := range tabs {
		for range rng.IntN(5) {
			tb.Get(m).Set(nodes[rng.IntN(n)], nodes[rng.IntN(n)])
		}
	}
	// A table refuses a key of another heap than its own, but one the
	// program zeroed forgets its heap and takes any as its first key, and
	// the collection treats it as a dead key: only empty tables, zeroed,
	// take it.
	foreignTab := make([]bool, nt)
	for range rng.IntN(3) {
		i := rng.IntN(nt)
		tb, v := tabs[i].Get(m), nodes[rng.IntN(n)]
		if tb.Len() == 0 || foreignTab[i] {
			if !foreignTab[i] {
				*tb = PathTable{}
			}
			tb.Set(foreign, v)
			foreignTab[i] = true
		}
	}
	for range 1 + rng.IntN(2) {
		h.Pin(nodes[rng.IntN(n)].Object())
	}
	pending := make([]bool, n) // a finalizer is set and has not run
	for i, x := range nodes {
		if rng.IntN(5) == 0 {
			pending[i] = true
			reclaim.SetFinalizer(m, x, func(*reclaim.Mutator, reclaim.Ref[PathNode]) { pending[i] = false })
		}
	}
	for _, tb := range tabs {
		if rng.IntN(3) == 0 {
			reclaim.SetFinalizer(m, tb, func(*reclaim.Mutator, reclaim.Ref[PathTable]) {})
		}
	}
	dead := make([]bool, n)
	for round := range 4 {
		type check struct {
			i    int
			ok   bool
			path []string
			w    reclaim.Weak[PathNode]
		}
		var checks []check
		for i, x := range nodes {
			if dead[i] || pending[i] {
				continue // a pending finalizer's object survives whatever the path says
			}
			path, ok := m.RetainingPath(x.Object())
			checks = append(checks, check{i, ok, path, reclaim.MakeWeak(m, x)})
		}
		m.Collect()
		for _, c := range checks {
			survived := !c.w.Value(m).IsNil()
			if survived != c.ok {
				t.Fatalf("seed %d, round %d, node %d: RetainingPath says reachable %v (%q), and it survived a collection: %v", seed, round, c.i, c.ok, c.path, survived)
			}
			dead[c.i] = !survived
		}
		// No entries keyed by freed nodes: WeakMap.Set refuses a freed key
		// (TestMisuseWeakMapKey).
	}
}
