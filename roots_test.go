package reclaim_test

import (
	"sync/atomic"
	"testing"

	"github.com/reclaimgc/reclaim"
)

// Tests of ScanRoots and Trace under misuse: what they report, and calls
// they make back into the heap.

type mrLeaf struct {
	v int
}

type mrNode struct {
	next reclaim.Ref[mrNode]
	leaf reclaim.Ref[mrLeaf]
	v    int
}

// TestScanRootsReportsBadRefs: ScanRoots reporting a freed ref, a ref of
// another heap, and nil Objects: the collection completes, keeps what the
// good roots reach, counts the bad ones, and the heap stays consistent.
func TestScanRootsReportsBadRefs(t *testing.T) {
	other := newTestHeap(t, reclaim.Options{Logger: quietLogger()})
	om := other.Attach()
	foreign := reclaim.New[mrLeaf](om)
	other.Pin(foreign.Object())
	om.Detach()

	var goodRef, freedRef reclaim.Ref[mrLeaf]
	var reportBad atomic.Bool
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, Logger: quietLogger(), ScanRoots: func(visit func(reclaim.Object)) {
		visit(reclaim.Object{})
		visit(goodRef.Object())
		if reportBad.Load() {
			visit(freedRef.Object())
			visit(foreign.Object())
			visit(reclaim.Object{})
		}
	}})
	m := h.Attach()
	defer m.Detach()
	goodRef = reclaim.New[mrLeaf](m)
	goodRef.Get(m).v = 7
	freedRef = reclaim.New[mrLeaf](m)
	m.Collect()
	if isLive(freedRef) {
		t.Fatal("an unreported object survived")
	}
	// Reuse the freed slot so that the stale ref's slot holds a new object.
	var fresh []reclaim.Ref[mrLeaf]
	for range 64 {
		fresh = append(fresh, reclaim.New[mrLeaf](m))
	}
	reportBad.Store(true)
	before := h.Stats()
	m.Collect()
	after := h.Stats()
	if !isLive(goodRef) || goodRef.Get(m).v != 7 {
		t.Fatal("the reported root was freed")
	}
	for i, r := range fresh {
		if isLive(r) {
			t.Errorf("fresh object %d survived through a stale root naming its slot", i)
		}
	}
	if d := after.StaleRefsInMark - before.StaleRefsInMark; d != 1 {
		t.Errorf("StaleRefsInMark grew by %d, want 1", d)
	}
	if d := after.ForeignRefsInMark - before.ForeignRefsInMark; d != 1 {
		t.Errorf("ForeignRefsInMark grew by %d, want 1", d)
	}
	if err := h.Verify(); err != nil {
		t.Fatal(err)
	}
	wantPanic(t, func() { freedRef.Get(m) }, "freed object")
	wantPanic(t, func() { foreign.Get(m) }, "another heap")
	other.Unpin(foreign.Object())
}

// TestScanRootsCallsStatsAndPin: ScanRoots may read Stats and Pin (the
// heap's methods are safe for concurrent use; Pin is allowed with the world
// stopped). A Pin made in ScanRoots keeps its object for this very cycle.
func TestScanRootsCallsStatsAndPin(t *testing.T) {
	var h *reclaim.Heap
	var toPin reclaim.Ref[mrLeaf]
	var pinIt atomic.Bool
	h = newTestHeap(t, reclaim.Options{GCPercent: -1, ScanRoots: func(visit func(reclaim.Object)) {
		_ = h.Stats()
		if pinIt.CompareAndSwap(true, false) {
			h.Pin(toPin.Object())
		}
	}})
	m := h.Attach()
	defer m.Detach()
	toPin = reclaim.New[mrLeaf](m)
	pinIt.Store(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Collect()
	}()
	recvWithin(t, done, "Collect with Stats and Pin in ScanRoots")
	if !isLive(toPin) {
		t.Fatal("the object ScanRoots pinned was freed by the same cycle")
	}
	m.Collect()
	if !isLive(toPin) {
		t.Fatal("the object ScanRoots pinned was freed")
	}
	h.Unpin(toPin.Object())
	m.Collect()
	if isLive(toPin) {
		t.Fatal("unpinned object survived")
	}
}
