package reclaim_test

import (
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
