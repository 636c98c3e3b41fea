package cleanupq

import (
	"sync/atomic"
	"testing"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// panicScanRec is a record whose Scan panics while panicking is set, as the
// Trace method of a cleanup argument may.
type panicScanRec struct {
	panicking *atomic.Bool
	ran       *atomic.Int32
}

func (r *panicScanRec) Run() { r.ran.Add(1) }
func (r *panicScanRec) Scan(buf []handle.Handle) []handle.Handle {
	if r.panicking.Load() {
		panic("panicScanRec: scan failed")
	}
	return append(buf, 1)
}

// TestScanRootsPanicReleasesBlocks: a record's Scan that panics (a cleanup
// argument's Trace method, called by the mark) reaches ScanRoots' caller,
// which abandons the mark, with every block's mutex released: one left
// locked hung the next mark's ScanRoots, with the world stopped, and the
// worker that recycles the block once its records have run.
func TestScanRootsPanicReleasesBlocks(t *testing.T) {
	q, d := newTestQueue(t, Config{MaxWorkers: 1})
	var panicking atomic.Bool
	var ran atomic.Int32
	var l Local
	q.Enqueue(&l, &panicScanRec{&panicking, &ran})

	panicking.Store(true)
	var v any
	func() {
		defer func() { v = recover() }()
		q.ScanRoots([]*Local{&l}, nil)
	}()
	panicking.Store(false)
	if v != "panicScanRec: scan failed" {
		t.Fatalf("ScanRoots with a panicking Scan: recovered %v, want the Scan's panic", v)
	}
	for _, b := range q.arena.all() {
		if !b.mu.TryLock() {
			t.Fatalf("block %d's mutex is still locked after the Scan panic", b.idx)
		}
		b.mu.Unlock()
	}
	if got := q.ScanRoots([]*Local{&l}, nil); len(got) != 1 {
		t.Fatalf("ScanRoots after the panic reported %d handles, want 1", len(got))
	}
	q.Flush([]*Local{&l})
	d.wait()
	if n := ran.Load(); n != 1 {
		t.Fatalf("the record ran %d times, want once", n)
	}
}
