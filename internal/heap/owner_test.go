package heap

import (
	"testing"
	"unsafe"
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

// TestOutboxesApart: a worker's outbox headers, which route rewrites after
// every span, start on a 128-byte boundary (a pair of lines the CPU
// fetches together) in an array of their own, so that no other worker's
// writes share their lines.
func TestOutboxesApart(t *testing.T) {
	for nw := 1; nw <= 16; nw++ {
		for range 8 {
			out := newOutboxes(nw)
			if len(out) != nw {
				t.Fatalf("newOutboxes(%d) has %d outboxes", nw, len(out))
			}
			base := uintptr(unsafe.Pointer(unsafe.SliceData(out)))
			size := uintptr(cap(out)) * unsafe.Sizeof(out[0])
			if base%128 != 0 || size < 128 || uintptr(nw)*unsafe.Sizeof(out[0]) > size {
				t.Fatalf("newOutboxes(%d): %d bytes at %#x, want a 128-byte boundary and room past the headers' pair", nw, size, base)
			}
		}
	}
}
