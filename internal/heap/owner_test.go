package heap

import (
	"testing"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// TestOwnShift: the groups of spans the mark's workers own are as large as
// maxOwnShift allows while every worker keeps minOwnGroups of them.
func TestOwnShift(t *testing.T) {
	if minOwnGroups != 16 || maxOwnShift != 6 {
		t.Fatalf("the cases assume minOwnGroups 16 and maxOwnShift 6, not %d and %d", minOwnGroups, maxOwnShift)
	}
	for _, c := range []struct {
		nspans, nw int
		want       uint32
	}{
		{0, 2, 0}, {10, 2, 0}, {63, 2, 0}, {64, 2, 1}, {127, 2, 1}, {128, 2, 2},
		{2047, 2, 5}, {2048, 2, 6}, {2564, 2, 6}, {1 << 20, 2, 6},
		{95, 3, 0}, {96, 3, 1}, {2564, 3, 5}, {2564, 4, 5}, {2564, 8, 4}, {2564, 200, 0},
	} {
		if got := ownShift(c.nspans, c.nw); got != c.want {
			t.Errorf("ownShift(%d spans, %d workers) = %d, want %d", c.nspans, c.nw, got, c.want)
		}
	}
}

// TestOwnerGroups: owner deals the span indexes out to the workers in runs
// of 1<<ownShift, in turn, so that each owns as many spans as another, to
// one group.
func TestOwnerGroups(t *testing.T) {
	for _, nspans := range []int{100, 2564, 10000} {
		for _, nw := range []int{2, 3, 4, 5, 8} {
			w := &markWorker{nw: nw, ownShift: ownShift(nspans, nw)}
			if nw&(nw-1) == 0 {
				w.ownMask = uint32(nw - 1) // as the leader sets it
			}
			group := 1 << w.ownShift
			count := make([]int, nw)
			for idx := range nspans {
				o := w.owner(uint32(idx))
				if o < 0 || o >= nw {
					t.Fatalf("%d spans, %d workers: span %d owned by worker %d", nspans, nw, idx, o)
				}
				if want := idx / group % nw; o != want {
					t.Fatalf("%d spans, %d workers, groups of %d: span %d owned by worker %d, want %d", nspans, nw, group, idx, o, want)
				}
				count[o]++
			}
			lo, hi := count[0], count[0]
			for _, c := range count {
				lo, hi = min(lo, c), max(hi, c)
			}
			if hi-lo > group {
				t.Errorf("%d spans, %d workers, groups of %d: workers own %v spans", nspans, nw, group, count)
			}
			if w.ownShift > 0 && nspans/group < nw*minOwnGroups {
				t.Errorf("%d spans, %d workers: groups of %d leave %d groups, fewer than %d a worker", nspans, nw, group, nspans/group, minOwnGroups)
			}
		}
	}
}

// TestOutboxesApart: the outbox headers of workers, which each rewrites
// after every span, lie 128 bytes or more apart (two cache lines, which
// the CPU fetches in pairs), however the allocator places their arrays:
// here, made one after another as the leader makes them.
func TestOutboxesApart(t *testing.T) {
	for nw := 1; nw <= 20; nw++ {
		var outs [][][]handle.Handle
		for range 16 {
			outs = append(outs, newOutboxes(nw))
		}
		size := unsafe.Sizeof(outs[0][0])
		for i, a := range outs {
			if len(a) != nw {
				t.Fatalf("newOutboxes(%d) has %d outboxes", nw, len(a))
			}
			a0 := uintptr(unsafe.Pointer(unsafe.SliceData(a)))
			a1 := a0 + uintptr(nw)*size
			for _, b := range outs[i+1:] {
				b0 := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
				b1 := b0 + uintptr(nw)*size
				if a0 < b1+128 && b0 < a1+128 {
					t.Fatalf("newOutboxes(%d): headers at [%#x, %#x) and [%#x, %#x), less than 128 bytes apart", nw, a0, a1, b0, b1)
				}
			}
		}
	}
}
