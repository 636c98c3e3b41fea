package workload

import (
	"flag"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/reclaimgc/reclaim"
)

func TestAllNames(t *testing.T) {
	want := []string{"new", "get", "binary-trees", "binary-trees-gc200", "mark-1w", "mark-2w", "mark-fin", "finalizer-setclear",
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

// TestGraphs checks that both builds make the same graph, and that a
// collection keeps all of the reclaim one.
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
	refs := buildGraph(h, m, n)
	ptrs := buildGoGraph(n)
	m.Collect()
	if got := h.Stats().ObjectsMarked; got != n {
		t.Fatalf("a collection marked %d objects of a %d-node graph", got, n)
	}
	val := func(r reclaim.Ref[gnode]) int64 {
		if r.IsNil() {
			return -1
		}
		return int64(r.Get(m).val)
	}
	gval := func(p *ggnode) int64 {
		if p == nil {
			return -1
		}
		return int64(p.val)
	}
	for i := range n {
		r, p := refs[i].Get(m), ptrs[i]
		if r.val != uint64(i) || p.val != uint64(i) ||
			val(r.child) != gval(p.child) || val(r.sibling) != gval(p.sibling) || val(r.x1) != gval(p.x1) {
			t.Fatalf("node %d differs: reclaim %d %d %d, go %d %d %d", i,
				val(r.child), val(r.sibling), val(r.x1), gval(p.child), gval(p.sibling), gval(p.x1))
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
	for _, name := range []string{"mark-fin/reclaim", "mark-fin/go"} {
		if r, ok := results[name]; ok && !(r.Extra["gc-ms"] > 0) {
			t.Errorf("%s: gc-ms = %v", name, r.Extra["gc-ms"])
		}
	}
	rc, ok1 := results["graph-churn/reclaim"]
	gc, ok2 := results["graph-churn/go"]
	if ok1 && ok2 {
		// The Go-pointer graph is 2^14 nodes of 48 bytes, all scannable,
		// plus its index; the reclaim graph adds only its spans' headers.
		if rs, gs := rc.Extra["go-scan-graph-MB"], gc.Extra["go-scan-graph-MB"]; !(gs > 0.75) || !(rs < gs/4) {
			t.Errorf("go-scan-graph-MB: reclaim graph %.3f, Go graph %.3f; want the reclaim one under a quarter of the Go one", rs, gs)
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
