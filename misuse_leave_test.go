package reclaim_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"weak"

	"github.com/reclaimgc/reclaim"
)

// mlPayload is Go memory that a misused call's function or argument
// holds.
type mlPayload struct{ b [64]byte }

// misusedLeavesNothing calls misuse with a function that holds one fresh
// payload and an argument that is another, wants it to panic with a
// message that mentions words, and then wants both payloads unreachable
// for Go's collector: the panicking call kept neither.
func misusedLeavesNothing(t *testing.T, misuse func(fn func(*mlPayload), arg *mlPayload), words ...string) {
	t.Helper()
	wf, wa := misuseWithPayloads(t, misuse, words)
	runtime.GC()
	runtime.GC()
	if wf.Value() != nil {
		t.Error("the misused call's function (and what it holds) is still reachable for Go's collector")
	}
	if wa.Value() != nil {
		t.Error("the misused call's argument is still reachable for Go's collector")
	}
}

// misuseWithPayloads makes the payloads of misusedLeavesNothing, so that
// no variable of its caller holds them.
//
//go:noinline
func misuseWithPayloads(t *testing.T, misuse func(fn func(*mlPayload), arg *mlPayload), words []string) (weak.Pointer[mlPayload], weak.Pointer[mlPayload]) {
	t.Helper()
	held, arg := new(mlPayload), new(mlPayload)
	wf, wa := weak.Make(held), weak.Make(arg)
	fn := func(p *mlPayload) { held.b[0] = p.b[0] }
	wantPanic(t, func() { misuse(fn, arg) }, words...)
	return wf, wa
}

// cleanupStillRuns wants a cleanup added on m after a misuse to run once
// its object is unreachable: the misuse left the heap usable.
func cleanupStillRuns(t *testing.T, m *reclaim.Mutator) {
	t.Helper()
	var ran atomic.Int32
	reclaim.AddCleanup(m, reclaim.New[misuseObj](m), func(p *atomic.Int32) { p.Add(1) }, &ran)
	m.Collect()
	if err := m.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := ran.Load(); n != 1 {
		t.Errorf("a cleanup added after the misuse ran %d times, want 1", n)
	}
}

// TestMisusedAddCleanupLeavesNothing: an AddCleanup that panics for a
// misuse took a record for the cleanup, set its function and argument and
// dropped it, so that the slab it came from kept them reachable; and it
// touched the mutator's caches before it checked the mutator.
func TestMisusedAddCleanupLeavesNothing(t *testing.T) {
	h, m, duringCollect := heldCollectHeap(t, reclaim.Options{GCPercent: -1})
	// A cleanup of the argument's type on a neighbour of the objects
	// below: their span has a cleanup table, so AddCleanup's fast path
	// would link them.
	keep := reclaim.New[misuseObj](m)
	h.Pin(keep.Object())
	defer h.Unpin(keep.Object())
	reclaim.AddCleanup(m, keep, func(*mlPayload) {}, nil)

	t.Run("nil", func(t *testing.T) {
		misusedLeavesNothing(t, func(fn func(*mlPayload), arg *mlPayload) {
			reclaim.AddCleanup(m, reclaim.Ref[misuseObj]{}, fn, arg)
		}, "AddCleanup of a nil ref")
		cleanupStillRuns(t, m)
	})
	t.Run("freed", func(t *testing.T) {
		r := reclaim.New[misuseObj](m)
		m.Collect()
		misusedLeavesNothing(t, func(fn func(*mlPayload), arg *mlPayload) {
			reclaim.AddCleanup(m, r, fn, arg)
		}, "AddCleanup of a ref to a freed object")
		cleanupStillRuns(t, m)
	})
	t.Run("foreign", func(t *testing.T) {
		_, m2 := misuseHeap(t, reclaim.Options{})
		r := reclaim.New[misuseObj](m2)
		misusedLeavesNothing(t, func(fn func(*mlPayload), arg *mlPayload) {
			reclaim.AddCleanup(m, r, fn, arg)
		}, "AddCleanup of a ref from another heap")
		cleanupStillRuns(t, m)
	})
	t.Run("detached", func(t *testing.T) {
		m2 := h.Attach()
		r := reclaim.New[misuseObj](m2)
		h.Pin(r.Object())
		defer h.Unpin(r.Object())
		m2.Detach()
		misusedLeavesNothing(t, func(fn func(*mlPayload), arg *mlPayload) {
			reclaim.AddCleanup(m2, r, fn, arg)
		}, "AddCleanup on a detached mutator")
		runtime.KeepAlive(m2) // its caches would hold what AddCleanup left
		cleanupStillRuns(t, m)
	})
	t.Run("argIsObject", func(t *testing.T) {
		r := reclaim.New[misuseObj](m)
		misusedLeavesNothing(t, func(fn func(*mlPayload), arg *mlPayload) {
			reclaim.AddCleanup(m, r, func(reclaim.Ref[misuseObj]) { fn(arg) }, r)
		}, "AddCleanup: arg is the object itself")
		cleanupStillRuns(t, m)
	})
	t.Run("twoGoroutines", func(t *testing.T) {
		r := reclaim.New[misuseObj](m)
		duringCollect(func() {
			misusedLeavesNothing(t, func(fn func(*mlPayload), arg *mlPayload) {
				reclaim.AddCleanup(m, r, fn, arg)
			}, "mutator used from two goroutines at once", "AddCleanup")
		})
		cleanupStillRuns(t, m)
	})
}

// TestMisusedSetFinalizerLeavesNothing: SetFinalizer keeps its function
// only once its checks have passed.
func TestMisusedSetFinalizerLeavesNothing(t *testing.T) {
	h, m := misuseHeap(t, reclaim.Options{GCPercent: -1})
	r := reclaim.New[misuseObj](m)
	h.Pin(r.Object())
	defer h.Unpin(r.Object())
	reclaim.SetFinalizer(m, r, func(*reclaim.Mutator, reclaim.Ref[misuseObj]) {})
	defer reclaim.SetFinalizer(m, r, nil)
	finOf := func(fn func(*mlPayload), arg *mlPayload) func(*reclaim.Mutator, reclaim.Ref[misuseObj]) {
		return func(*reclaim.Mutator, reclaim.Ref[misuseObj]) { fn(arg) }
	}
	misusedLeavesNothing(t, func(fn func(*mlPayload), arg *mlPayload) {
		reclaim.SetFinalizer(m, r, finOf(fn, arg))
	}, "SetFinalizer called twice")
	freed := reclaim.New[misuseObj](m)
	m.Collect()
	misusedLeavesNothing(t, func(fn func(*mlPayload), arg *mlPayload) {
		reclaim.SetFinalizer(m, freed, finOf(fn, arg))
	}, "SetFinalizer of a ref to a freed object")
}
