package workload

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/reclaimgc/reclaim"
)

// The graph of the mark and graph-churn workloads: a random tree (each
// node's parent drawn uniformly from the nodes before it, kept as
// first-child/next-sibling links) plus one extra edge per node to a random
// node, so marking meets many already-marked objects as a real heap does.
// x2 is left for graph-churn to hang short-lived nodes on.

// links are a graph node's references and value: what the workloads read
// and write of a node, embedded in each node type.
type links[N any] struct {
	child, sibling, x1, x2 reclaim.Ref[N]
	val                    uint64
}

// gnode is a graph node on a reclaim heap: 40 bytes, no Go pointers.
type gnode struct{ links[gnode] }

// wnode is gnode padded to 128 bytes, the size of a small object of a
// dynamic language (a JavaScript object with a few properties, a Lua table
// header), for the mark-wide workloads. Its spans hold 128 objects, whose
// mark bitmaps are 16 bytes.
type wnode struct {
	links[wnode]
	_ [11]uint64
}

func (p *gnode) node() *links[gnode] { return &p.links }
func (p *wnode) node() *links[wnode] { return &p.links }

// graphNode is a node type of the reclaim graphs: *N reaches its links.
type graphNode[N any] interface {
	*N
	node() *links[N]
}

// goLinks are links with Go pointers.
type goLinks[N any] struct {
	child, sibling, x1, x2 *N
	val                    uint64
}

// ggnode is gnode with Go pointers (40 bytes, 48 in Go's size classes; 24
// where a word is 32 bits).
type ggnode struct{ goLinks[ggnode] }

// gwnode is wnode with Go pointers (128 bytes). Its four pointers are 16
// bytes smaller than wnode's four handles where a word is 32 bits, and the
// first blank field makes that up, so both sides of mark-wide mark 128-byte
// nodes on every platform (it is empty on 64-bit platforms).
type gwnode struct {
	goLinks[gwnode]
	_ [4 * (8 - unsafe.Sizeof(uintptr(0)))]byte
	_ [11]uint64
}

func (p *ggnode) node() *goLinks[ggnode] { return &p.goLinks }
func (p *gwnode) node() *goLinks[gwnode] { return &p.goLinks }

// goGraphNode is a node type of the Go graphs.
type goGraphNode[N any] interface {
	*N
	node() *goLinks[N]
}

// graphSeed makes every build of a graph the same graph.
const graphSeed = 0x5eed

// buildGraph allocates an n-node graph of gnodes on m's heap, pins its root
// (node 0), and returns every node's ref. It reaches no safepoint.
func buildGraph(h *reclaim.Heap, m *reclaim.Mutator, n int) []reclaim.Ref[gnode] {
	return buildGraphOf[gnode](h, m, n)
}

// buildGraphOf is buildGraph for nodes of type N.
func buildGraphOf[N any, P graphNode[N]](h *reclaim.Heap, m *reclaim.Mutator, n int) []reclaim.Ref[N] {
	rng := rand.New(rand.NewPCG(graphSeed, uint64(n)))
	refs := make([]reclaim.Ref[N], n)
	at := func(i int) *links[N] { return P(refs[i].Get(m)).node() }
	for i := range refs {
		refs[i] = reclaim.New[N](m)
		at(i).val = uint64(i)
	}
	for i := 1; i < n; i++ {
		p, c := at(rng.IntN(i)), at(i)
		c.sibling = p.child
		p.child = refs[i]
	}
	for i := range refs {
		at(i).x1 = refs[rng.IntN(n)]
	}
	h.Pin(refs[0].Object())
	return refs
}

// buildGoGraph builds the same graph with Go pointers.
func buildGoGraph(n int) []*ggnode { return buildGoGraphOf[ggnode](n) }

// buildGoGraphOf is buildGoGraph for nodes of type N.
func buildGoGraphOf[N any, P goGraphNode[N]](n int) []*N {
	rng := rand.New(rand.NewPCG(graphSeed, uint64(n)))
	ptrs := make([]*N, n)
	for i := range ptrs {
		ptrs[i] = new(N)
		P(ptrs[i]).node().val = uint64(i)
	}
	for i := 1; i < n; i++ {
		p, c := P(ptrs[rng.IntN(i)]).node(), ptrs[i]
		P(c).node().sibling = p.child
		p.child = c
	}
	for i := range ptrs {
		P(ptrs[i]).node().x1 = ptrs[rng.IntN(n)]
	}
	return ptrs
}

// Mark returns the mark workload with the given number of mark workers
// (named "mark-1w", "mark-2w", ...) on an n-node graph. One op is one full
// collection of the live graph (Collect; runtime.GC on the Go side, run
// with GOMAXPROCS set to workers). Both sides report "Mobj/s" per worker:
// reclaim from its mark time alone (Stats.LastMark), Go from the whole
// runtime.GC call, which also sweeps.
func Mark(workers, n int) Workload {
	if workers < 1 {
		panic("reclaim: workload.Mark: workers must be at least 1")
	}
	return Workload{
		Name: fmt.Sprintf("mark-%dw", workers),
		Doc: fmt.Sprintf("one full collection of a live %d-node graph with %d mark worker(s); reports Mobj/s per worker, mark-ms, pause-ms",
			n, workers),
		Reclaim: markReclaim[gnode](workers, n),
		Go:      markGo[ggnode](workers, n),
	}
}

// MarkWide returns the mark workload on a graph of 128-byte nodes (named
// "mark-wide-1w", ...): the graph of Mark, each node padded. Its spans'
// mark bitmaps are smaller than a cache line, which is what it measures
// against Mark's (markBitmaps in internal/heap). Not in All: run by
// BenchmarkMarkWide.
func MarkWide(workers, n int) Workload {
	if workers < 1 {
		panic("reclaim: workload.MarkWide: workers must be at least 1")
	}
	return Workload{
		Name: fmt.Sprintf("mark-wide-%dw", workers),
		Doc: fmt.Sprintf("one full collection of a live %d-node graph of 128-byte nodes with %d mark worker(s); reports Mobj/s per worker, mark-ms, pause-ms",
			n, workers),
		Reclaim: markReclaim[wnode](workers, n),
		Go:      markGo[gwnode](workers, n),
	}
}

// markReclaim is the reclaim side of the mark workloads, on nodes of type N.
func markReclaim[N any, P graphNode[N]](workers, n int) func(b *testing.B) {
	return func(b *testing.B) {
		h, m := newHeap(b, reclaim.Options{MarkWorkers: workers, GCPercent: -1})
		buildGraphOf[N, P](h, m, n)
		m.Collect()
		markLoop(b, h, m, workers, n)
	}
}

// markLoop is the timed part of the reclaim side of the mark workloads: a
// collection per b.Loop iteration of a heap whose n objects are all live.
// It reports Mobj/s per worker from the total mark time, mark-ms and
// pause-ms per collection, and best-Mobj/s from the fastest mark: on a
// shared machine the mean moves with what the neighbours do, the fastest
// of many collections much less.
func markLoop(b *testing.B, h *reclaim.Heap, m *reclaim.Mutator, workers, n int) {
	var mark, pause time.Duration
	best := time.Duration(math.MaxInt64)
	var marked int64
	iters := 0
	for b.Loop() {
		m.Collect()
		st := h.Stats()
		mark += st.LastMark
		pause += st.PauseLast
		best = min(best, st.LastMark)
		marked += st.ObjectsMarked
		iters++
	}
	if marked != int64(iters)*int64(n) {
		b.Fatalf("marked %d objects in %d collections of a %d-object heap", marked, iters, n)
	}
	b.ReportMetric(float64(marked)/mark.Seconds()/1e6/float64(workers), "Mobj/s")
	b.ReportMetric(float64(n)/best.Seconds()/1e6/float64(workers), "best-Mobj/s")
	b.ReportMetric(mark.Seconds()*1e3/float64(iters), "mark-ms")
	b.ReportMetric(pause.Seconds()*1e3/float64(iters), "pause-ms")
}

// MarkSpeedup returns the mark-speedup workload: what a second mark worker
// gains, measured in one process. Two heaps hold the same n-node graph,
// one marked by one worker and one by two; one op collects each once, one
// after the other, so that both see the same minutes of a shared machine,
// whose speed moves more from one minute to the next than between
// mark-1w and mark-2w run minutes apart. It reports "speedup" (the
// one-worker heap's total mark time over the two-worker heap's),
// "speedup-best" (fastest mark over fastest mark), "mark-1w-ms" and
// "mark-2w-ms". It also reports "apart-speedup", what two workers that
// share nothing reach on the same machine in the same minutes: two more
// heaps hold an n/2-node graph each, one worker each; an op collects
// them one after the other and then both at once, on two goroutines, and
// apart-speedup is the time in turn over the time at once (the slower
// of the two). The Go side collects the n-node graph with runtime.GC under
// GOMAXPROCS 1 and then 2, and reports "speedup" of the whole calls.
func MarkSpeedup(n int) Workload {
	return Workload{
		Name: "mark-speedup",
		Doc: fmt.Sprintf("collects a live %d-node graph with one mark worker and with two, in turn; reports speedup, speedup-best, mark-1w-ms, mark-2w-ms, apart-speedup",
			n),
		Reclaim: func(b *testing.B) {
			type side struct {
				h          *reclaim.Heap
				nodes      int64
				mark, best time.Duration
			}
			// Each heap is attached only while a collection runs, by the
			// goroutine that runs it.
			mk := func(workers, n int) *side {
				s := &side{h: newBareHeap(b, reclaim.Options{MarkWorkers: workers, GCPercent: -1}), nodes: int64(n), best: math.MaxInt64}
				m := s.h.Attach()
				buildGraph(s.h, m, n)
				m.Collect()
				m.Detach()
				return s
			}
			one, two := mk(1, n), mk(2, n)
			halves := [2]*side{mk(1, n/2), mk(1, n-n/2)}
			// collect collects s once and returns its mark's duration;
			// it may run on another goroutine than the benchmark's.
			collect := func(s *side) time.Duration {
				m := s.h.Attach()
				m.Collect()
				m.Detach()
				st := s.h.Stats()
				if st.ObjectsMarked != s.nodes {
					b.Errorf("marked %d objects of a %d-object heap", st.ObjectsMarked, s.nodes)
				}
				s.mark += st.LastMark
				s.best = min(s.best, st.LastMark)
				return st.LastMark
			}
			var inTurn, atOnce time.Duration // the halves' marks
			iters := 0
			for b.Loop() {
				iters++
				collect(one)
				collect(two)
				inTurn += collect(halves[0]) + collect(halves[1])
				var wg sync.WaitGroup
				var d [2]time.Duration
				for i, s := range halves {
					wg.Go(func() { d[i] = collect(s) })
				}
				wg.Wait()
				atOnce += max(d[0], d[1])
			}
			b.ReportMetric(float64(one.mark)/float64(two.mark), "speedup")
			b.ReportMetric(float64(one.best)/float64(two.best), "speedup-best")
			b.ReportMetric(float64(inTurn)/float64(atOnce), "apart-speedup")
			b.ReportMetric(one.mark.Seconds()*1e3/float64(iters), "mark-1w-ms")
			b.ReportMetric(two.mark.Seconds()*1e3/float64(iters), "mark-2w-ms")
		},
		Go: func(b *testing.B) {
			root := buildGoGraph(n)[0]
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
			runtime.GC()
			var t [2]time.Duration
			for b.Loop() {
				for i, procs := range [2]int{1, 2} {
					runtime.GOMAXPROCS(procs)
					start := time.Now()
					runtime.GC()
					t[i] += time.Since(start)
				}
			}
			runtime.KeepAlive(root)
			b.ReportMetric(float64(t[0])/float64(t[1]), "speedup")
		},
	}
}

// markGo is the Go side of the mark workloads, on nodes of type N.
func markGo[N any, P goGraphNode[N]](workers, n int) func(b *testing.B) {
	return func(b *testing.B) {
		ptrs := buildGoGraphOf[N, P](n)
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(workers))
		root := ptrs[0]
		ptrs = nil // only root keeps the graph: the slice is no root of Go's
		iters, elapsed := goCollections(b, root)
		b.ReportMetric(float64(n)*float64(iters)/elapsed.Seconds()/1e6/float64(workers), "Mobj/s")
	}
}

// goCollections runs runtime.GC once, then once per b.Loop iteration with
// root (and what it reaches) alive, and returns the iterations and the time
// they took: the Go side of the mark workloads. The caller's other refs to
// the graph must be dead (passed root only, as a value).
//
//go:noinline
func goCollections[N any](b *testing.B, root *N) (iters int, elapsed time.Duration) {
	runtime.GC()
	start := time.Now()
	for b.Loop() {
		runtime.GC()
		iters++
	}
	elapsed = time.Since(start)
	runtime.KeepAlive(root)
	return iters, elapsed
}

// finEvery is how often a node of the mark-fin graph has a finalizer: one
// node in finEvery.
const finEvery = 4

// MarkFinalizable returns the mark-fin workload: the mark workload's
// n-node graph with a finalizer on one node in finEvery, all of them
// live, collected with the default mark workers (GOMAXPROCS on both
// sides). It is the heap of a runtime whose objects hold resources (Lua's
// userdata with __gc, JavaScript objects in a FinalizationRegistry): a
// collection must keep what each finalizable object reaches alive, whether
// or not the object itself is reachable. One op is one full collection;
// both sides report ms per collection ("gc-ms"), reclaim also its pause.
func MarkFinalizable(n int) Workload {
	return Workload{
		Name: "mark-fin",
		Doc: fmt.Sprintf("one full collection of a live %d-node graph, one node in %d with a finalizer; reports gc-ms, pause-ms",
			n, finEvery),
		Reclaim: func(b *testing.B) {
			h, m := newHeap(b, reclaim.Options{GCPercent: -1})
			refs := buildGraph(h, m, n)
			ran := 0
			fin := func(*reclaim.Mutator, reclaim.Ref[gnode]) { ran++ }
			for i := 0; i < n; i += finEvery {
				reclaim.SetFinalizer(m, refs[i], fin)
			}
			refs = nil
			m.Collect()
			var pause time.Duration
			var marked int64
			iters := 0
			start := time.Now()
			for b.Loop() {
				m.Collect()
				st := h.Stats()
				pause += st.PauseLast
				marked += st.ObjectsMarked
				iters++
			}
			elapsed := time.Since(start)
			if marked != int64(iters)*int64(n) {
				b.Fatalf("marked %d objects in %d collections of a %d-node graph", marked, iters, n)
			}
			b.ReportMetric(elapsed.Seconds()*1e3/float64(iters), "gc-ms")
			b.ReportMetric(pause.Seconds()*1e3/float64(iters), "pause-ms")
		},
		Go: func(b *testing.B) {
			ptrs := buildGoGraph(n)
			set := setGoFinalizers(ptrs)
			root := ptrs[0]
			ptrs = nil // only root keeps the graph: the slice is no root of Go's
			iters, elapsed := goCollections(b, root)
			b.ReportMetric(elapsed.Seconds()*1e3/float64(iters), "gc-ms")
			if cleared := clearGoFinalizers(root, n); cleared != set {
				b.Fatalf("cleared %d finalizers of the %d set", cleared, set)
			}
		},
	}
}

// setGoFinalizers sets a no-op finalizer on one node of the Go graph in
// finEvery (the nodes whose val is a multiple of it), and returns how many
// it set.
func setGoFinalizers(ptrs []*ggnode) int {
	fin := func(*ggnode) {}
	set := 0
	for i := 0; i < len(ptrs); i += finEvery {
		runtime.SetFinalizer(ptrs[i], fin)
		set++
	}
	return set
}

// clearGoFinalizers clears the finalizer of every node setGoFinalizers set
// one on, in the Go graph rooted at root (n nodes, each reached from root),
// and returns how many it cleared. The Go runtime frees an object with a finalizer only
// after the finalizer ran, one link of a chain of finalizable objects per
// cycle, and never one on a cycle of them: the random graph has such
// cycles, so without this its 60 MB stayed live in the process to its end,
// and every later runtime.GC marked them.
func clearGoFinalizers(root *ggnode, n int) int {
	seen := make([]bool, n)
	stack := []*ggnode{root}
	seen[root.val] = true
	cleared := 0
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if p.val%finEvery == 0 {
			runtime.SetFinalizer(p, nil)
			cleared++
		}
		for _, q := range [...]*ggnode{p.child, p.sibling, p.x1, p.x2} {
			if q != nil && !seen[q.val] {
				seen[q.val] = true
				stack = append(stack, q)
			}
		}
	}
	return cleared
}

// MarkTree returns the mark-tree workload (named "mark-tree-1w", ...): one
// full collection of binary-trees' long-lived tree, a complete binary tree
// of the given depth (2^(depth+1)-1 nodes of 16 bytes, allocated depth
// first), with the given number of mark workers (GOMAXPROCS on the Go
// side). It is the collection binary-trees makes at each of its cycles,
// where that tree is all that is live; here the collections run back to
// back. Not in All: run by BenchmarkMarkTree.
func MarkTree(workers, depth int) Workload {
	if workers < 1 || depth < 1 {
		panic("reclaim: workload.MarkTree: workers and depth must be at least 1")
	}
	n := 1<<(depth+1) - 1
	return Workload{
		Name: fmt.Sprintf("mark-tree-%dw", workers),
		Doc: fmt.Sprintf("one full collection of a live binary tree of depth %d (%d nodes) with %d mark worker(s); reports Mobj/s per worker, best-Mobj/s, mark-ms, pause-ms",
			depth, n, workers),
		Reclaim: func(b *testing.B) {
			h, m := newHeap(b, reclaim.Options{MarkWorkers: workers, GCPercent: -1})
			h.Pin(bottomUp(m, depth).Object())
			m.Collect()
			markLoop(b, h, m, workers, n)
		},
		Go: func(b *testing.B) {
			root := goBottomUp(depth)
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(workers))
			iters, elapsed := goCollections(b, root)
			b.ReportMetric(float64(n)*float64(iters)/elapsed.Seconds()/1e6/float64(workers), "Mobj/s")
		},
	}
}
