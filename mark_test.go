package reclaim_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/reclaimgc/reclaim"
)

// markNode is a graph node for TestMarkParallelGraph.
type markNode struct {
	child, sibling, extra, bad reclaim.Ref[markNode]
}

// TestMarkParallelGraph: a random graph spread over many spans is marked
// exactly, by one worker or several, collection after collection; stale
// refs stored in live nodes are counted once each and keep nothing alive,
// not even the new objects now in their slots.
func TestMarkParallelGraph(t *testing.T) {
	n, nstale := 40_000, 500
	if testing.Short() {
		n, nstale = 10_000, 200
	}
	for _, workers := range []int{1, 2, 3, 4} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			h := newTestHeap(t, reclaim.Options{MarkWorkers: workers, GCPercent: -1})
			m := h.Attach()
			defer m.Detach()
			rng := rand.New(rand.NewPCG(uint64(workers), 7))
			nodes := make([]reclaim.Ref[markNode], n)
			for i := range nodes {
				nodes[i] = reclaim.New[markNode](m)
			}
			for i := 1; i < n; i++ {
				p, c := nodes[rng.IntN(i)].Get(m), nodes[i].Get(m)
				c.sibling = p.child
				p.child = nodes[i]
			}
			for i := range nodes {
				nodes[i].Get(m).extra = nodes[rng.IntN(n)]
			}
			h.Pin(nodes[0].Object())
			defer h.Unpin(nodes[0].Object())

			// Objects that die, then new ones that may take their slots.
			dead := make([]reclaim.Ref[markNode], nstale)
			for i := range dead {
				dead[i] = reclaim.New[markNode](m)
			}
			m.Collect()
			for range nstale {
				reclaim.New[markNode](m)
			}
			for _, d := range dead {
				nodes[rng.IntN(n)].Get(m).bad = d
			}
			// A node drawn twice holds only the last ref stored.
			want := int64(0)
			for _, x := range nodes {
				if x.Get(m).bad != (reclaim.Ref[markNode]{}) {
					want++
				}
			}
			for range 3 {
				before := h.Stats().StaleRefsInMark
				m.Collect()
				st := h.Stats()
				if st.ObjectsMarked != int64(n) {
					t.Fatalf("marked %d objects, want %d", st.ObjectsMarked, n)
				}
				if got := st.StaleRefsInMark - before; got != want {
					t.Fatalf("%d stale refs found, want %d", got, want)
				}
			}
			for _, x := range nodes {
				x.Get(m).bad = reclaim.Ref[markNode]{}
			}
		})
	}
}
