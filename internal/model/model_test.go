package model

import (
	"errors"
	"slices"
	"testing"
)

func ids(fs []*Finalizer) []int {
	var out []int
	for _, f := range fs {
		out = append(out, f.Reg)
	}
	return out
}

func mustCollect(t *testing.T, m *Model, wantFreed []ID, wantFins []int) CollectResult {
	t.Helper()
	res := m.Collect()
	if !slices.Equal(res.Freed, wantFreed) {
		t.Fatalf("freed %v, want %v", res.Freed, wantFreed)
	}
	if got := ids(res.Finalizers); !slices.Equal(got, wantFins) {
		t.Fatalf("finalizers queued %v, want %v", got, wantFins)
	}
	return res
}

func runAll(t *testing.T, m *Model) {
	t.Helper()
	fins, cleanups := m.Pending()
	for _, f := range fins {
		if err := m.FinalizerRan(f.Reg); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cleanups {
		if err := m.CleanupRan(c.CID); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUnreachableFreed(t *testing.T) {
	m := New()
	a, b, c := m.Alloc(1), m.Alloc(0), m.Alloc(0)
	m.Pin(a)
	m.Link(a, 0, b)
	mustCollect(t, m, []ID{c}, nil)
	m.Link(a, 0, 0)
	mustCollect(t, m, []ID{b}, nil)
	if !m.Alive(a) || m.Alive(b) || m.Alive(c) {
		t.Fatal("wrong live set")
	}
	if err := m.Link(a, 0, b); !errors.Is(err, ErrDead) {
		t.Fatalf("Link to a freed object: %v", err)
	}
}

// A -> B, both finalizable: A's finalizer runs first; B's once A is freed.
func TestFinalizerChainOrder(t *testing.T) {
	m := New()
	a, b := m.Alloc(1), m.Alloc(1)
	m.Link(a, 0, b)
	fa, _ := m.SetFinalizer(a, FinNothing)
	fb, _ := m.SetFinalizer(b, FinNothing)
	mustCollect(t, m, nil, []int{fa.Reg})
	// Queued and not run: A is a root.
	mustCollect(t, m, nil, nil)
	runAll(t, m)
	mustCollect(t, m, []ID{a}, []int{fb.Reg})
	runAll(t, m)
	mustCollect(t, m, []ID{b}, nil)
}

func TestFinalizerCycleNeverCollected(t *testing.T) {
	m := New()
	a, b := m.Alloc(1), m.Alloc(1)
	m.Link(a, 0, b)
	m.Link(b, 0, a)
	m.SetFinalizer(a, FinNothing)
	for range 3 {
		mustCollect(t, m, nil, nil)
	}
}

func TestResurrection(t *testing.T) {
	m := New()
	a := m.Alloc(0)
	f, _ := m.SetFinalizer(a, FinResurrect)
	short, _ := m.MakeWeak(a, false)
	long, _ := m.MakeWeak(a, true)
	c, _ := m.AddCleanup(a, 0, false, false)
	mustCollect(t, m, nil, []int{f.Reg})
	if m.Value(short) != 0 || m.Value(long) != a {
		t.Fatalf("after queuing: short %d long %d", m.Value(short), m.Value(long))
	}
	if c.State != Registered {
		t.Fatalf("cleanup %v while the finalizer is queued", c.State)
	}
	runAll(t, m)
	mustCollect(t, m, nil, nil) // in the holder
	short2, _ := m.MakeWeak(a, false)
	if WeakEqual(short, short2) || m.Value(short2) != a {
		t.Fatal("a weak ref made after resurrection must be new and valid")
	}
	m.ReleaseHolder()
	mustCollect(t, m, []ID{a}, nil)
	if c.State != Queued || m.Value(long) != 0 || m.Value(short2) != 0 {
		t.Fatalf("after freeing: cleanup %v, long %d, short %d", c.State, m.Value(long), m.Value(short2))
	}
	runAll(t, m)
	if err := m.CleanupRan(c.CID); err == nil {
		t.Fatal("a cleanup ran twice without an error")
	}
	if err := m.FinalizerRan(f.Reg); err == nil {
		t.Fatal("a finalizer ran twice without an error")
	}
}

func TestCleanupArgKeepsAlive(t *testing.T) {
	m := New()
	a, b := m.Alloc(0), m.Alloc(0)
	c, _ := m.AddCleanup(a, b, true, true)
	mustCollect(t, m, []ID{a}, nil)
	if !m.Alive(b) || c.State != Queued {
		t.Fatal("the argument must outlive the queued cleanup")
	}
	mustCollect(t, m, nil, nil)
	runAll(t, m)
	mustCollect(t, m, []ID{b}, nil)
	if m.Panics != 1 {
		t.Fatalf("panics %d", m.Panics)
	}
	if _, err := m.AddCleanup(b, b, false, true); !errors.Is(err, ErrCleanupSelf) {
		t.Fatalf("bare self argument: %v", err)
	}
}

func TestStopAndClose(t *testing.T) {
	m := New()
	a := m.Alloc(1)
	m.Pin(a)
	c1, _ := m.AddCleanup(a, 0, false, false)
	c2, _ := m.AddCleanup(a, a, false, false) // never runs before Close
	f, _ := m.SetFinalizer(a, FinNothing)
	if !m.Stop(c1.CID) || m.Stop(c1.CID) {
		t.Fatal("Stop must take effect once")
	}
	if _, err := m.SetFinalizer(a, FinPanic); !errors.Is(err, ErrFinalizerSet) {
		t.Fatalf("second finalizer: %v", err)
	}
	fins, cleanups := m.Close()
	if len(fins) != 1 || fins[0] != f || len(cleanups) != 1 || cleanups[0] != c2 {
		t.Fatalf("Close ran %v and %v", fins, cleanups)
	}
}

func TestRoots(t *testing.T) {
	m := New()
	a, b := m.Alloc(0), m.Alloc(0)
	m.PushRoot(a)
	m.Pin(b)
	mustCollect(t, m, nil, nil)
	m.PopRoot()
	if err := m.Unpin(b); err != nil {
		t.Fatal(err)
	}
	if err := m.Unpin(b); !errors.Is(err, ErrNotPinned) {
		t.Fatalf("Unpin twice: %v", err)
	}
	mustCollect(t, m, []ID{a, b}, nil)
	if _, err := m.PopRoot(); err == nil {
		t.Fatal("PopRoot of an empty stack")
	}
}
