package heap

import (
	"testing"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// TestBalanceFree checks that the workers' free mail buffers are shared
// out evenly after a mark, at most keepMail each, and that none is lost
// below that bound.
func TestBalanceFree(t *testing.T) {
	for _, c := range []struct{ nw, total, heavy int }{
		{2, 10, 0}, {2, 11, 1}, {3, 200, 2}, {4, 7, 3}, {2, 0, 0},
	} {
		kept := make([]markBuffers, c.nw)
		for range c.total {
			kept[c.heavy].free = append(kept[c.heavy].free, make([]handle.Handle, 0, mailLen))
		}
		spare := balanceFree(kept, nil)
		if len(spare) != 0 {
			t.Errorf("%+v: spare holds %d buffers", c, len(spare))
		}
		sum, lo, hi := 0, c.total, 0
		for _, b := range kept {
			sum += len(b.free)
			lo, hi = min(lo, len(b.free)), max(hi, len(b.free))
		}
		if want := min(c.total, c.nw*keepMail); sum != want || hi > keepMail || hi-lo > 1 && hi < keepMail {
			t.Errorf("%+v: %d buffers kept (want %d), per worker %d to %d", c, sum, want, lo, hi)
		}
	}
}
