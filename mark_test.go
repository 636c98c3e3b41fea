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

// listNode is a cell of TestMarkListsWithinSpans' lists.
type listNode struct {
	next, stale reclaim.Ref[listNode]
	v           int
}

// TestMarkListsWithinSpans: lists whose cells sit side by side in their
// spans, linked forwards, backwards and in a shuffled order, so that the
// refs a scan finds point into the span it scans, ahead of the object,
// behind it, and into words it has left; some cells also hold stale refs
// to freed cells of their own span. Every cell is marked, each stale ref
// is counted and keeps nothing alive, whether one worker marks or two.
func TestMarkListsWithinSpans(t *testing.T) {
	const n, every = 3000, 10 // cells; one allocation in every is a cell that dies
	for _, order := range []string{"forward", "backward", "shuffled"} {
		for _, workers := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/workers=%d", order, workers), func(t *testing.T) {
				h := newTestHeap(t, reclaim.Options{MarkWorkers: workers, GCPercent: -1})
				m := h.Attach()
				defer m.Detach()
				cells := make([]reclaim.Ref[listNode], 0, n)
				var dead []reclaim.Ref[listNode]
				for len(cells) < n {
					r := reclaim.New[listNode](m)
					if (len(cells)+len(dead))%every == every-1 {
						dead = append(dead, r)
						continue
					}
					cells = append(cells, r)
				}
				perm := make([]int, n)
				for i := range perm {
					switch order {
					case "forward":
						perm[i] = i
					case "backward":
						perm[i] = n - 1 - i
					}
				}
				if order == "shuffled" {
					perm = rand.New(rand.NewPCG(3, 5)).Perm(n)
				}
				for k, i := range perm {
					c := cells[i].Get(m)
					c.v = k
					if k+1 < n {
						c.next = cells[perm[k+1]]
					}
				}
				head := cells[perm[0]]
				h.Pin(head.Object())
				defer h.Unpin(head.Object())
				m.Collect() // frees the dead cells
				for range len(dead) {
					reclaim.New[listNode](m) // garbage, possibly in their slots
				}
				for k, d := range dead {
					cells[(k*7)%n].Get(m).stale = d
				}
				for round := range 2 {
					before := h.Stats().StaleRefsInMark
					m.Collect()
					st := h.Stats()
					if st.ObjectsMarked != n {
						t.Fatalf("round %d: marked %d objects, want %d", round, st.ObjectsMarked, n)
					}
					if got := st.StaleRefsInMark - before; got != int64(len(dead)) {
						t.Fatalf("round %d: %d stale refs found, want %d", round, got, len(dead))
					}
					if st.HeapObjects != n {
						t.Fatalf("round %d: %d objects after the collection, want %d", round, st.HeapObjects, n)
					}
				}
				r := head
				for k := range n {
					c := r.Get(m)
					if c.v != k {
						t.Fatalf("cell %d of the list holds %d", k, c.v)
					}
					r = c.next
				}
				if !r.IsNil() {
					t.Fatalf("the list is longer than %d cells", n)
				}
			})
		}
	}
}
