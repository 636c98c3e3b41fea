// Package workload is reclaim's benchmark suite: each workload measured on a
// reclaim heap and, side by side in the same process, on the Go runtime.
//
// A Workload is a pair of benchmark functions (testing.B), so the suite runs
// both under `go test -bench` (bench_test.go at the module root) and inside
// the `reclaim bench` command (through testing.Benchmark). The shapes follow
// the Go runtime's own benchmarks (BenchmarkFinalizer, BenchmarkFinalizerRun
// and BenchmarkAddCleanupAndStop in $GOROOT/src/runtime) and the peers'
// protocol in bench/peers/README.md, so that figures of reclaim, the Go
// runtime and the peers compare per object.
//
// # What one op is
//
// Unless a workload's Doc says otherwise, one op is one object, and ns/op is
// the cost per object. Workloads that must work in whole batches (the "run"
// workloads, whose batch of N objects is collected at once) round b.N up to
// whole batches and report the true per-object figure with
// b.ReportMetric(x, "ns/op"), which replaces the built-in ns/op: read results
// through NsPerOp, not BenchmarkResult.NsPerOp. Workloads with an expensive
// set-up (the mark and graph-churn workloads, which build a graph of
// millions of objects) use b.Loop, so the set-up runs once.
//
// # Extra metrics
//
// Workloads report what one ns/op cannot say with b.ReportMetric; the units
// are listed in each Workload's Doc and in docs/BENCHMARKS.md.
package workload

import (
	"flag"
	"math"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

// Workload is one benchmark, measured on reclaim and on the Go runtime.
type Workload struct {
	// Name is the workload's stable id, used on the command line and in
	// reports: "new", "get", "binary-trees", "binary-trees-gc200",
	// "mark-1w", "mark-2w", "mark-speedup", "mark-fin",
	// "finalizer-setclear", "finalizer-run", "cleanup-run", "cleanup-stop",
	// "cleanup-burst-1w", "cleanup-burst-2w", "weak", "graph-churn".
	Name string
	// Doc says in one line what one op is, and which extra metrics the
	// workload reports.
	Doc string
	// Peer is the workload's name in the peers' protocol
	// (bench/peers/README.md), or "" if the peers do not run it.
	Peer string
	// PeerN is the N to pass to the peers (objects per batch, or the depth
	// for binary-trees).
	PeerN int
	// Reclaim runs the workload on a reclaim heap.
	Reclaim func(b *testing.B)
	// Go runs the same workload on the Go runtime; nil if there is none.
	Go func(b *testing.B)
}

// Sizes of the full suite, and of the suite under testing.Short.
const (
	batchDefault = 1000   // live objects in the set/clear workloads (the runtime's Batch)
	runN         = 100000 // objects per batch in the run workloads (the peers' N)
	treesDepth   = 18     // binary-trees, as the Benchmarks Game runs it
	treesShort   = 14
	// treesGCPercent is the pacing of binary-trees' second run: memory
	// for time, on both sides.
	treesGCPercent = 200
	markNodes      = 1 << 20 // the mark workloads' graph
	markShort      = 1 << 17
	churnNodes     = 4 << 20 // graph-churn's long-lived graph
	churnShort     = 1 << 20
	burstN         = 1 << 20 // cleanups in one burst
	burstShort     = 1 << 16
)

// All returns every workload, in a stable order. Under testing.Short the
// graphs, trees and bursts are smaller.
func All() []Workload {
	s := short()
	pick := func(full, small int) int {
		if s {
			return small
		}
		return full
	}
	return []Workload{
		newWorkload(),
		getWorkload(),
		BinaryTrees(pick(treesDepth, treesShort), 0),
		BinaryTrees(pick(treesDepth, treesShort), treesGCPercent),
		Mark(1, pick(markNodes, markShort)),
		Mark(2, pick(markNodes, markShort)),
		MarkSpeedup(pick(markNodes, markShort)),
		MarkFinalizable(pick(markNodes, markShort)),
		finalizerSetClear(batchDefault),
		Scaling("finalizer-run", runN),
		Scaling("cleanup-run", runN),
		cleanupStop(batchDefault),
		Burst(1, pick(burstN, burstShort)),
		Burst(2, pick(burstN, burstShort)),
		weakWorkload(batchDefault),
		GraphChurn(pick(churnNodes, churnShort)),
	}
}

// Scaling returns the allocation, finalizer-run and cleanup-run workloads
// at a fixed N (objects per batch), for cost-per-object-vs-N curves from
// 1e3 to 1e7. kind is "alloc", "finalizer-run" or "cleanup-run". The
// workload's name is kind itself for the suite's N (100000) and kind/N
// otherwise. b.N is rounded up to whole batches; see NsPerOp.
func Scaling(kind string, n int) Workload {
	if n <= 0 {
		panic("reclaim: workload.Scaling: N must be positive")
	}
	switch kind {
	case "alloc":
		return allocBatch(n)
	case "finalizer-run":
		return finalizerRun(n)
	case "cleanup-run":
		return cleanupRun(n)
	}
	panic("reclaim: workload.Scaling: unknown kind " + kind)
}

// liveObjs allocates n objects on m's heap for the workloads that work
// over a batch of live objects.
func liveObjs(m *reclaim.Mutator, n int) []reclaim.Ref[obj] {
	refs := make([]reclaim.Ref[obj], n)
	for i := range refs {
		refs[i] = reclaim.New[obj](m)
	}
	return refs
}

// liveGoObjs is liveObjs for the Go side.
func liveGoObjs(n int) []*gobj {
	ptrs := make([]*gobj, n)
	for i := range ptrs {
		ptrs[i] = new(gobj)
	}
	return ptrs
}

// NsPerOp returns a result's cost per op: the "ns/op" the workload reported
// with b.ReportMetric if it did (batch workloads do), the built-in figure
// otherwise.
func NsPerOp(r testing.BenchmarkResult) float64 {
	if v, ok := r.Extra["ns/op"]; ok {
		return v
	}
	if r.N == 0 {
		return math.NaN()
	}
	return float64(r.T.Nanoseconds()) / float64(r.N)
}

// short reports testing.Short, and false in a program that has not
// registered the testing flags (testing.Short would panic there).
func short() bool {
	if flag.Lookup("test.short") == nil {
		return false
	}
	return testing.Short()
}

// obj is the 32-byte object of the allocation, finalizer and cleanup
// workloads, on both sides: two reference words and padding, as the peers'
// struct { void *a, *b; char pad[16]; }.
type obj struct {
	a, b reclaim.Ref[obj]
	pad  [2]uint64
}

// gobj is obj with Go pointers.
type gobj struct {
	a, b *gobj
	pad  [2]uint64
}

// Sinks keep the compiler from dropping work; they are written by the
// benchmark goroutine only.
var (
	sinkRef reclaim.Ref[obj]
	sinkPtr *gobj
	sinkInt uint64
)

// batches returns how many batches of n objects cover b.N objects, at
// least one.
func batches(b *testing.B, n int) int {
	return max(1, (b.N+n-1)/n)
}

// reportPerObject replaces ns/op by elapsed time per object.
func reportPerObject(b *testing.B, elapsed time.Duration, objects int) {
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(objects), "ns/op")
}

// waitGuard is how long a run workload waits for its last finalizer or
// cleanup before it fails: a hang guard for a broken heap, far beyond any
// run's duration.
const waitGuard = 5 * time.Minute

// await waits for done, failing b if the guard expires first.
func await(b *testing.B, done <-chan struct{}, what string, status func() string) {
	t := time.NewTimer(waitGuard)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		b.Fatalf("%s: not done after %v: %s", what, waitGuard, status())
	}
}

// newHeap makes a heap for a benchmark, with a mutator attached, and
// detaches the mutator and closes the heap when b ends.
func newHeap(b *testing.B, opts reclaim.Options) (*reclaim.Heap, *reclaim.Mutator) {
	h := newBareHeap(b, opts)
	held := &struct{ m *reclaim.Mutator }{h.Attach()}
	m := held.m
	b.Cleanup(func() { // before newBareHeap's: cleanups run last first
		held.m.Detach()
		held.m = nil
	})
	return h, m
}

// newBareHeap makes a heap for a benchmark, with no mutator attached, and
// closes it when b ends. The cleanup drops its reference once it has run:
// the testing package may keep a finished benchmark's cleanups reachable
// until the next one ends, and a closed heap still holds its spans.
func newBareHeap(b *testing.B, opts reclaim.Options) *reclaim.Heap {
	held := &struct{ h *reclaim.Heap }{reclaim.NewHeap(opts)}
	h := held.h
	b.Cleanup(func() {
		if err := held.h.Close(); err != nil {
			b.Errorf("Close: %v", err)
		}
		held.h = nil
	})
	return h
}
