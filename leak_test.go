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
