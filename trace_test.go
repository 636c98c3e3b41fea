package reclaim_test

import (
	"sync/atomic"
	"testing"

	"github.com/reclaimgc/reclaim"
)

// trEnv keeps refs in a Go map and traces them itself.
type trEnv struct {
	vars  map[string]reclaim.Object
	mode  *atomic.Int32 // 0 trace, 1 trace nothing, 2 panic
	extra reclaim.Object
}

func (e *trEnv) Trace(visit func(reclaim.Object)) {
	switch e.mode.Load() {
	case 1:
		return
	case 2:
		panic("trEnv: trace failed")
	}
	for _, o := range e.vars {
		visit(o)
	}
	visit(e.extra)
}

// TestTracerModes: a Tracer keeps what it visits (and nothing else: the
// reflected field extra is not scanned when it is not visited); one that
// reports a ref of another heap keeps nothing there and is counted; one
// that reports nothing lets its targets go, and using them panics.
func TestTracerModes(t *testing.T) {
	other := newTestHeap(t, reclaim.Options{GCPercent: -1})
	om := other.Attach()
	defer om.Detach()
	foreign := reclaim.New[mrLeaf](om)

	var mode atomic.Int32
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, Logger: quietLogger()})
	m := h.Attach()
	defer m.Detach()
	env := reclaim.New[trEnv](m)
	h.Pin(env.Object())
	defer h.Unpin(env.Object())
	env.Get(m).mode = &mode
	a, b := reclaim.New[mrLeaf](m), reclaim.New[mrLeaf](m)
	env.Get(m).vars = map[string]reclaim.Object{"a": a.Object(), "b": b.Object(), "f": foreign.Object(), "nil": {}}
	before := h.Stats()
	m.Collect()
	if !isLive(a) || !isLive(b) {
		t.Fatal("traced refs freed")
	}
	if d := h.Stats().ForeignRefsInMark - before.ForeignRefsInMark; d != 1 {
		t.Errorf("ForeignRefsInMark grew by %d, want 1", d)
	}
	om.Collect() // the foreign ref traced in h keeps nothing in other
	if isLive(foreign) {
		t.Error("a ref traced in another heap kept its object alive")
	}

	mode.Store(1)
	m.Collect()
	if isLive(a) || isLive(b) {
		t.Fatal("refs of a Trace that visits nothing survived")
	}
	wantPanic(t, func() { a.Get(m) }, "freed object")
	if err := h.Verify(); err != nil {
		t.Fatal(err)
	}
}

// TestTracePanicInRetainingPath: RetainingPath runs Trace with the world
// stopped. A Trace that panics there must not leave the world stopped or
// the mutator busy, and the panic should be a reclaim: one, as in Collect.
func TestTracePanicInRetainingPath(t *testing.T) {
	var mode atomic.Int32
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	env := reclaim.New[trEnv](m)
	h.Pin(env.Object())
	defer h.Unpin(env.Object())
	env.Get(m).mode = &mode
	a := reclaim.New[mrLeaf](m)
	env.Get(m).vars = map[string]reclaim.Object{"a": a.Object()}
	if path, ok := m.RetainingPath(a.Object()); !ok || len(path) != 2 {
		t.Fatalf("RetainingPath = %q, %v", path, ok)
	}
	mode.Store(2)
	wantPanic(t, func() { m.RetainingPath(a.Object()) }, "trace failed")
	mode.Store(0)
	if h.StopRequested() {
		t.Fatal("the world is still stopped after RetainingPath panicked")
	}
	// m is not busy: another goroutine may use it now.
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Collect()
	}()
	recvWithin(t, done, "a collection on m after the panic")
	m.Collect()
	if !isLive(a) {
		t.Fatal("traced ref freed")
	}
}

// TestTracePanicInNewWithSafepointOnAlloc: a collection run inside New
// (SafepointOnAlloc) whose Trace panics is abandoned; New panics with a
// reclaim: message and the heap is unchanged and usable.
func TestTracePanicInNewWithSafepointOnAlloc(t *testing.T) {
	var mode atomic.Int32
	var root reclaim.Ref[trEnv]
	h := newTestHeap(t, reclaim.Options{SafepointOnAlloc: true, GCPercent: 1, ScanRoots: func(visit func(reclaim.Object)) {
		visit(root.Object())
	}})
	m := h.Attach()
	defer m.Detach()
	root = reclaim.New[trEnv](m)
	root.Get(m).mode = &mode
	a := reclaim.New[mrLeaf](m)
	root.Get(m).vars = map[string]reclaim.Object{"a": a.Object()}
	mode.Store(2)
	start := h.Stats().Cycles
	var msg string
	for i := 0; i < 1_000_000 && msg == ""; i++ {
		v, ok := panicValue(func() { reclaim.New[mrNode](m) })
		if ok {
			msg, _ = panicText(v)
		}
	}
	if msg == "" {
		t.Fatal("no collection ran inside New")
	}
	if want := "reclaim: collection abandoned"; len(msg) < len(want) || msg[:len(want)] != want {
		t.Fatalf("New panicked with %q", msg)
	}
	if h.Stats().Cycles != start {
		t.Errorf("an abandoned cycle was counted")
	}
	mode.Store(0)
	m.Collect()
	if !isLive(a) || a.Get(m).v != 0 {
		t.Fatal("traced ref lost after an abandoned cycle")
	}
	reclaim.New[mrNode](m)
}
