package reclaim_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
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
			h := newTestHeap(t, reclaim.Options{MarkWorkers: workers, GCPercent: -1, Logger: quietLogger()}) // quiet: the graphs hold stale refs on purpose
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
				h := newTestHeap(t, reclaim.Options{MarkWorkers: workers, GCPercent: -1, Logger: quietLogger()}) // quiet: the graphs hold stale refs on purpose
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

// locNode and locTracer are the nodes of TestMarkLocalGraphs: fixed
// offsets, and refs a Trace method reports.
type locNode struct {
	a, b, c reclaim.Ref[locNode]
	id      int
}

type locTracer struct {
	a, b reclaim.Ref[locTracer]
}

func (p *locTracer) Trace(visit func(reclaim.Object)) {
	visit(p.a.Object())
	visit(p.b.Object())
}

// TestMarkLocalGraphs: random graphs whose edges mostly go to nodes
// allocated nearby, ahead or behind (so to the span being scanned, into
// its current, later and earlier mark words), some anywhere, with one
// node in twenty finalizable or none. With one to four workers, the mark
// marks exactly what a breadth-first search of a model finds: the roots'
// closure plus that of the finalizable nodes' referents, and the
// finalizable nodes it scanned as roots are those the roots did not
// reach, at most.
func TestMarkLocalGraphs(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		for _, workers := range []int{1, 2, 3, 4} {
			for _, withFin := range []bool{false, true} {
				t.Run(fmt.Sprintf("seed=%d/workers=%d/fin=%v", seed, workers, withFin), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(seed, 99))
					h := newTestHeap(t, reclaim.Options{MarkWorkers: workers, GCPercent: -1, Logger: quietLogger()}) // quiet: the graphs hold stale refs on purpose
					m := h.Attach()
					defer m.Detach()
					n := 2000 + rng.IntN(6000)
					near := func(i, n int) int {
						switch rng.IntN(4) {
						case 0:
							return rng.IntN(n)
						case 1:
							return max(0, i-1-rng.IntN(200))
						default:
							return min(n-1, i+1+rng.IntN(200))
						}
					}
					// edges of the model: node i -> adj[i]; tracer i -> tadj[i]
					build := func(count, fields int, set func(i, k, j int)) [][]int {
						adj := make([][]int, count)
						for i := range count {
							for k := range fields {
								if rng.IntN(3) == 0 {
									continue
								}
								j := near(i, count)
								adj[i] = append(adj[i], j)
								set(i, k, j)
							}
						}
						return adj
					}
					nodes := make([]reclaim.Ref[locNode], n)
					for i := range nodes {
						nodes[i] = reclaim.New[locNode](m)
						nodes[i].Get(m).id = i
					}
					trs := make([]reclaim.Ref[locTracer], n/2)
					for i := range trs {
						trs[i] = reclaim.New[locTracer](m)
					}
					adj := build(n, 3, func(i, k, j int) {
						p := nodes[i].Get(m)
						*[]*reclaim.Ref[locNode]{&p.a, &p.b, &p.c}[k] = nodes[j]
					})
					tadj := build(len(trs), 2, func(i, k, j int) {
						p := trs[i].Get(m)
						*[]*reclaim.Ref[locTracer]{&p.a, &p.b}[k] = trs[j]
					})
					var fins []int
					if withFin {
						for i := range nodes {
							if rng.IntN(20) == 0 {
								fins = append(fins, i)
								reclaim.SetFinalizer(m, nodes[i], func(*reclaim.Mutator, reclaim.Ref[locNode]) {})
							}
						}
					}
					var roots []int
					for range 1 + rng.IntN(5) {
						roots = append(roots, rng.IntN(n))
					}
					troot := rng.IntN(len(trs))
					for _, r := range roots {
						h.Pin(nodes[r].Object())
					}
					h.Pin(trs[troot].Object())

					reach := make([]bool, n)
					for _, r := range roots {
						reach[r] = true
					}
					reachFrom(adj, reach, roots)
					unreached := 0
					for _, i := range fins {
						if !reach[i] {
							unreached++
						}
					}
					reachFrom(adj, reach, fins) // the referents of every finalizable node
					treach := make([]bool, len(trs))
					treach[troot] = true
					reachFrom(tadj, treach, []int{troot})
					want := 0
					for _, r := range append(reach, treach...) {
						if r {
							want++
						}
					}

					m.Collect()
					if got := h.Stats().ObjectsMarked; got != int64(want) {
						t.Fatalf("marked %d objects, want %d", got, want)
					}
					if got := h.FinalizerRoots(); got > int64(unreached) {
						t.Errorf("%d finalizable objects scanned as roots, want at most the %d the roots do not reach", got, unreached)
					}
					for i := range nodes {
						if reach[i] && !isLive(nodes[i]) {
							t.Fatalf("node %d was freed", i)
						}
					}
					for i := range trs {
						if treach[i] && !isLive(trs[i]) {
							t.Fatalf("tracer %d was freed", i)
						}
					}
					for _, r := range roots {
						h.Unpin(nodes[r].Object())
					}
					h.Unpin(trs[troot].Object())
				})
			}
		}
	}
}

// oddNode is 24 bytes: 682 slots a span, so a span's last mark word is
// partly beyond its slots.
type oddNode struct{ a, b, c reclaim.Ref[oddNode] }

// TestMarkLinearOddSpans: the scan of a span that marks the handles into it
// (scanLinear) on spans whose slot count is not a multiple of 64, with
// self edges, duplicate edges, edges ahead and behind in the same word and
// into other words and spans, and stale refs in live objects: after each
// collection exactly the objects a reachability model finds survive, each
// marked once, and each stale ref is counted once.
func TestMarkLinearOddSpans(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		for _, workers := range []int{1, 2, 3} {
			t.Run(fmt.Sprintf("seed=%d/workers=%d", seed, workers), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 7))
				h := newTestHeap(t, reclaim.Options{MarkWorkers: workers, GCPercent: -1, Logger: quietLogger()}) // quiet: the graphs hold stale refs on purpose
				m := h.Attach()
				defer m.Detach()
				n := 3000 + rng.IntN(3000)
				nodes := make([]reclaim.Ref[oddNode], n)
				var dead []reclaim.Ref[oddNode] // freed below, to make stale refs
				for i := range nodes {
					if rng.IntN(15) == 0 {
						dead = append(dead, reclaim.New[oddNode](m))
					}
					nodes[i] = reclaim.New[oddNode](m)
				}
				adj := make([][]int, n)
				for i := range nodes {
					p := nodes[i].Get(m)
					for _, f := range []*reclaim.Ref[oddNode]{&p.a, &p.b, &p.c} {
						var j int
						switch k := rng.IntN(8); {
						case k == 0:
							continue
						case k == 1:
							j = rng.IntN(n)
						case k == 2:
							j = i // self
						case k == 3 && len(adj[i]) > 0:
							j = adj[i][0] // duplicate
						case k < 6:
							j = max(0, i-1-rng.IntN(70))
						default:
							j = min(n-1, i+1+rng.IntN(70))
						}
						*f = nodes[j]
						adj[i] = append(adj[i], j)
					}
				}
				var roots []int
				for range 1 + rng.IntN(4) {
					roots = append(roots, rng.IntN(n))
				}
				for _, i := range roots {
					h.Pin(nodes[i].Object())
				}
				reach := make([]bool, n)
				for _, i := range roots {
					reach[i] = true
				}
				reachFrom(adj, reach, roots)
				m.Collect() // frees dead and the unreached nodes
				for range len(dead) {
					reclaim.New[oddNode](m) // new objects in the freed slots
				}
				want, stale := 0, 0
				for i := range nodes {
					if !reach[i] {
						continue
					}
					want++
					// A stale ref in a free field of a live node.
					if p := nodes[i].Get(m); stale < len(dead) && p.c.IsNil() && rng.IntN(4) == 0 {
						p.c = dead[stale]
						stale++
					}
				}
				for round := range 3 {
					before := h.Stats().StaleRefsInMark
					m.Collect()
					st := h.Stats()
					if st.ObjectsMarked != int64(want) || st.HeapObjects != int64(want) {
						t.Fatalf("round %d: marked %d, %d objects left; want %d", round, st.ObjectsMarked, st.HeapObjects, want)
					}
					if got := st.StaleRefsInMark - before; got != int64(stale) {
						t.Fatalf("round %d: %d stale refs counted, want %d", round, got, stale)
					}
				}
				for i := range nodes {
					if live := isLive(nodes[i]); live != reach[i] {
						t.Fatalf("node %d: live %v, want %v", i, live, reach[i])
					}
				}
				for _, i := range roots {
					h.Unpin(nodes[i].Object())
				}
			})
		}
	}
}

// reachFrom sets reach for every node that the nodes from reach through
// the edges adj (node i -> adj[i]): the model of a mark.
func reachFrom(adj [][]int, reach []bool, from []int) {
	stack := slices.Clone(from)
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, y := range adj[x] {
			if !reach[y] {
				reach[y] = true
				stack = append(stack, y)
			}
		}
	}
}
