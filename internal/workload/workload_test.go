package workload

import (
	"flag"
	"math"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/reclaimgc/reclaim"
)

func TestAllNames(t *testing.T) {
	want := []string{"new", "get", "binary-trees", "binary-trees-gc200", "mark-1w", "mark-2w", "mark-speedup", "mark-fin", "finalizer-setclear",
		"finalizer-run", "cleanup-run", "cleanup-stop", "cleanup-burst-1w", "cleanup-burst-2w",
		"weak", "graph-churn"}
	peers := map[string]bool{"finalizer-setclear": true, "finalizer-run": true, "cleanup-run": true,
		"cleanup-stop": true, "weak": true, "binary-trees": true}
	all := All()
	if len(all) != len(want) {
		t.Fatalf("All() has %d workloads, want %d", len(all), len(want))
	}
	for i, w := range all {
		if w.Name != want[i] {
			t.Errorf("All()[%d].Name = %q, want %q", i, w.Name, want[i])
		}
		if w.Doc == "" || w.Reclaim == nil || w.Go == nil {
			t.Errorf("%s: Doc, Reclaim or Go missing", w.Name)
		}
		if w.Peer != "" && (!peers[w.Peer] || w.PeerN <= 0) {
			t.Errorf("%s: Peer %q, PeerN %d: not a peer workload", w.Name, w.Peer, w.PeerN)
		}
		if peers[w.Name] && w.Peer != w.Name {
			t.Errorf("%s: Peer = %q, want the same name", w.Name, w.Peer)
		}
	}
	for _, kind := range []string{"alloc", "finalizer-run", "cleanup-run"} {
		if got := Scaling(kind, 1000).Name; got != kind+"/1000" {
			t.Errorf("Scaling(%q, 1000).Name = %q", kind, got)
		}
	}
}

func TestTreesNodes(t *testing.T) {
	for depth := 4; depth <= 8; depth++ {
		want := treesNodes(depth)
		if got := GoTrees(depth); got != want {
			t.Errorf("GoTrees(%d) = %d, want %d", depth, got, want)
		}
		got, peak, st := ReclaimTrees(depth, 0)
		if got != want {
			t.Errorf("ReclaimTrees(%d) = %d, want %d", depth, got, want)
		}
		if peak <= 0 {
			t.Errorf("ReclaimTrees(%d): peak span bytes %d", depth, peak)
		}
		if st.Cycles > 0 && st.PauseTotal <= 0 {
			t.Errorf("ReclaimTrees(%d): %d collections with a total pause of %v", depth, st.Cycles, st.PauseTotal)
		}
	}
}

// TestGraphs checks that every build makes the same graph, reclaim's and
// Go's, of narrow and of wide nodes, and that a collection keeps all of
// the reclaim ones.
func TestGraphs(t *testing.T) {
	const n = 5000
	h := reclaim.NewHeap(reclaim.Options{})
	m := h.Attach()
	defer func() {
		m.Detach()
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	}()
	if a, b := unsafe.Sizeof(wnode{}), unsafe.Sizeof(gwnode{}); a != 128 || b != 128 {
		t.Fatalf("wide nodes of %d and %d bytes, want 128", a, b)
	}
	shapes := map[string][][4]int64{
		"gnode":  shapeOf(m, buildGraph(h, m, n)),
		"wnode":  shapeOf(m, buildGraphOf[wnode](h, m, n)),
		"ggnode": goShapeOf(buildGoGraph(n)),
		"gwnode": goShapeOf(buildGoGraphOf[gwnode](n)),
	}
	m.Collect()
	if got := h.Stats().ObjectsMarked; got != 2*n {
		t.Fatalf("a collection marked %d objects of two %d-node graphs", got, n)
	}
	want := shapes["gnode"]
	for i := range n {
		if want[i][0] != int64(i) {
			t.Fatalf("gnode %d has val %d", i, want[i][0])
		}
	}
	for name, got := range shapes {
		for i := range n {
			if got[i] != want[i] {
				t.Fatalf("node %d differs: %s %v, gnode %v (val, child, sibling, x1)", i, name, got[i], want[i])
			}
		}
	}
}

// shapeOf returns, for each node of a reclaim graph, its val and those of
// its child, sibling and x1 (-1 for none).
func shapeOf[N any, P graphNode[N]](m *reclaim.Mutator, refs []reclaim.Ref[N]) [][4]int64 {
	val := func(r reclaim.Ref[N]) int64 {
		if r.IsNil() {
			return -1
		}
		return int64(P(r.Get(m)).node().val)
	}
	out := make([][4]int64, len(refs))
	for i, r := range refs {
		l := P(r.Get(m)).node()
		out[i] = [4]int64{int64(l.val), val(l.child), val(l.sibling), val(l.x1)}
	}
	return out
}

// goShapeOf is shapeOf for a Go graph.
func goShapeOf[N any, P goGraphNode[N]](ptrs []*N) [][4]int64 {
	val := func(p *N) int64 {
		if p == nil {
			return -1
		}
		return int64(P(p).node().val)
	}
	out := make([][4]int64, len(ptrs))
	for i, p := range ptrs {
		l := P(p).node()
		out[i] = [4]int64{int64(l.val), val(l.child), val(l.sibling), val(l.x1)}
	}
	return out
}

// TestMarkWide runs both sides of the wide-node mark workloads once, on a
// small graph.
func TestMarkWide(t *testing.T) {
	for _, workers := range []int{1, 2} {
		w := MarkWide(workers, 4096)
		for side, fn := range map[string]func(*testing.B){"reclaim": w.Reclaim, "go": w.Go} {
			r := testing.Benchmark(fn)
			if r.N == 0 || !(r.Extra["Mobj/s"] > 0) {
				t.Errorf("%s/%s: N %d, Mobj/s %v", w.Name, side, r.N, r.Extra["Mobj/s"])
			}
		}
	}
}

// small is the suite at sizes a test can afford.
func small() []Workload {
	return []Workload{
		newWorkload(),
		getWorkload(),
		BinaryTrees(6, 0),
		BinaryTrees(6, 200),
		Mark(1, 2000),
		Mark(2, 2000),
		MarkSpeedup(2000),
		finalizerSetClear(100),
		Scaling("alloc", 500),
		Scaling("finalizer-run", 500),
		Scaling("cleanup-run", 500),
		cleanupStop(100),
		Burst(1, 300),
		Burst(2, 300),
		weakWorkload(100),
		GraphChurn(1 << 14),
	}
}

// TestWorkloadsRun runs every workload, both sides, through
// testing.Benchmark at a fixed number of iterations (200; 3 runs of
// binary-trees), and checks that each reports a cost per op.
func TestWorkloadsRun(t *testing.T) {
	old := flag.Lookup("test.benchtime").Value.String()
	t.Cleanup(func() { flag.Set("test.benchtime", old) })

	results := map[string]testing.BenchmarkResult{}
	for _, w := range small() {
		iters := "200x"
		if strings.HasPrefix(w.Name, "binary-trees") {
			iters = "3x"
		}
		if err := flag.Set("test.benchtime", iters); err != nil {
			t.Fatal(err)
		}
		for side, fn := range map[string]func(*testing.B){"reclaim": w.Reclaim, "go": w.Go} {
			r := testing.Benchmark(fn)
			if r.N == 0 {
				t.Errorf("%s/%s failed", w.Name, side)
				continue
			}
			if v := NsPerOp(r); !(v > 0) || math.IsInf(v, 0) {
				t.Errorf("%s/%s: ns/op = %v", w.Name, side, v)
			}
			results[w.Name+"/"+side] = r
		}
	}
	if r, ok := results["binary-trees/reclaim"]; ok && r.Extra["span-MB"] <= 0 {
		t.Errorf("binary-trees/reclaim: span-MB = %v", r.Extra["span-MB"])
	}
	for _, name := range []string{"mark-1w/reclaim", "mark-2w/reclaim", "mark-1w/go", "mark-2w/go"} {
		if r, ok := results[name]; ok && !(r.Extra["Mobj/s"] > 0) {
			t.Errorf("%s: Mobj/s = %v", name, r.Extra["Mobj/s"])
		}
	}
	for name, units := range map[string][]string{
		"mark-speedup/reclaim": {"speedup", "speedup-best", "apart-speedup", "mark-1w-ms", "mark-2w-ms"},
		"mark-speedup/go":      {"speedup"},
	} {
		for _, unit := range units {
			if r, ok := results[name]; ok && (!(r.Extra[unit] > 0) || math.IsInf(r.Extra[unit], 0)) {
				t.Errorf("%s: %s = %v", name, unit, r.Extra[unit])
			}
		}
	}
	for _, name := range []string{"mark-fin/reclaim", "mark-fin/go"} {
		if r, ok := results[name]; ok && !(r.Extra["gc-ms"] > 0) {
			t.Errorf("%s: gc-ms = %v", name, r.Extra["gc-ms"])
		}
	}
	rc, ok1 := results["graph-churn/reclaim"]
	gc, ok2 := results["graph-churn/go"]
	if ok1 && ok2 {
		// The Go-pointer graph is 2^14 nodes with four pointers each, plus
		// its index; the reclaim graph adds only its spans' headers. How
		// much of a node Go counts as scanned depends on its collector:
		// the whole 48-byte slot where it scans a dense span at once
		// (amd64 with AVX-512), the bytes up to the last pointer where it
		// scans object by object (16 where a word is 32 bits). The floor
		// is the latter for the nodes alone, and holds for both.
		var g ggnode
		floor := float64(1<<14) * float64(unsafe.Offsetof(g.x2)+unsafe.Sizeof(g.x2)) / (1 << 20)
		if rs, gs := rc.Extra["go-scan-graph-MB"], gc.Extra["go-scan-graph-MB"]; !(gs > floor) || !(rs < gs/4) {
			t.Errorf("go-scan-graph-MB: reclaim graph %.3f, Go graph %.3f; want the Go one over %.3f and the reclaim one under a quarter of it", rs, gs, floor)
		}
	}
	runtime.GC()
}

func TestSpinIters(t *testing.T) {
	if n := spinIters(); n < 1 {
		t.Fatalf("spinIters() = %d", n)
	}
}

// TestClearGoFinalizers: the Go side of mark-fin clears the finalizer of
// every finalizable node it set one on, reached from the root alone.
func TestClearGoFinalizers(t *testing.T) {
	for _, n := range []int{1, 2, 5, 4999, 5000} {
		ptrs := buildGoGraph(n)
		set := setGoFinalizers(ptrs)
		if want := (n + finEvery - 1) / finEvery; set != want {
			t.Errorf("%d nodes: set %d finalizers, want %d", n, set, want)
		}
		if got := clearGoFinalizers(ptrs[0], n); got != set {
			t.Errorf("%d nodes: cleared %d finalizers, want %d", n, got, set)
		}
	}
}
