package workload

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

// The Benchmarks Game's binary-trees, single-threaded: a stretch tree of
// depth+1, a long-lived tree of depth, then 2^(depth-d+4) trees of each
// even depth d from 4 to depth, each built bottom-up, checked (its nodes
// counted) and dropped. The peers compute the same trees (bench/peers).

// tnode is a tree node on a reclaim heap: 16 bytes, like Go's.
type tnode struct {
	left, right reclaim.Ref[tnode]
}

// gtnode is a tree node with Go pointers.
type gtnode struct {
	left, right *gtnode
}

// BinaryTrees returns the binary-trees workload at depth (the Benchmarks
// Game runs 18; at least 4), with both sides at the collectors' default
// pacing when gcPercent is 0 ("binary-trees"), else with reclaim's
// Options.GCPercent and Go's GOGC both at gcPercent ("binary-trees-gcN"):
// the same trade of memory for time on both sides. One op is one whole
// run. Reclaim's side reaches a safepoint after each tree it drops, with
// the long-lived tree pinned, and reports the peak of Stats.SpanBytes,
// sampled as the run goes, as "span-MB", and its collections per run
// ("cycles") and their total stop-the-world time ("pause-ms"). On Linux
// both sides also report "peak-RSS-MB", the process's peak resident set
// during the runs (see peakRSS). Both sides report the node count as
// "nodes" (the same on both, or the run fails).
func BinaryTrees(depth, gcPercent int) Workload {
	if depth < 4 {
		panic("reclaim: workload.BinaryTrees: depth must be at least 4")
	}
	if gcPercent < 0 {
		panic("reclaim: workload.BinaryTrees: gcPercent must be 0 (the default) or positive")
	}
	name, pacing := "binary-trees", "default pacing"
	if gcPercent != 0 {
		name, pacing = fmt.Sprintf("binary-trees-gc%d", gcPercent), fmt.Sprintf("GCPercent and GOGC %d", gcPercent)
	}
	return Workload{
		Name:  name,
		Doc:   fmt.Sprintf("one binary-trees run at depth %d, single-threaded, %s; reports span-MB (reclaim's peak span bytes), peak-RSS-MB (the process's) and nodes", depth, pacing),
		Peer:  "binary-trees",
		PeerN: depth,
		Reclaim: func(b *testing.B) {
			var peak int64
			var nodes int
			var pause time.Duration
			var cycles int64
			rss := startPeakRSS()
			for i := 0; i < b.N; i++ {
				var st reclaim.Stats
				nodes, peak, st = ReclaimTrees(depth, gcPercent)
				pause += st.PauseTotal
				cycles += st.Cycles
			}
			rss.report(b)
			b.ReportMetric(float64(peak)/(1<<20), "span-MB")
			b.ReportMetric(pause.Seconds()*1e3/float64(b.N), "pause-ms")
			b.ReportMetric(float64(cycles)/float64(b.N), "cycles")
			b.ReportMetric(float64(nodes), "nodes")
			if want := treesNodes(depth); nodes != want {
				b.Fatalf("binary-trees(%d) counted %d nodes, want %d", depth, nodes, want)
			}
		},
		Go: func(b *testing.B) {
			var nodes int
			rss := startPeakRSS()
			if gcPercent != 0 {
				defer debug.SetGCPercent(debug.SetGCPercent(gcPercent))
			}
			for i := 0; i < b.N; i++ {
				nodes = GoTrees(depth)
			}
			rss.report(b)
			b.ReportMetric(float64(nodes), "nodes")
			if want := treesNodes(depth); nodes != want {
				b.Fatalf("binary-trees(%d) counted %d nodes, want %d", depth, nodes, want)
			}
		},
	}
}

// ReclaimTrees runs binary-trees at depth on a new reclaim heap with
// Options.GCPercent gcPercent (0: the default) and returns the nodes it
// counted, the peak of the heap's span bytes, and the heap's Stats at the
// end of the run (its collections and their pauses).
func ReclaimTrees(depth, gcPercent int) (nodes int, peakSpanBytes int64, st reclaim.Stats) {
	h := reclaim.NewHeap(reclaim.Options{GCPercent: gcPercent})
	m := h.Attach()
	defer func() {
		m.Detach()
		h.Close()
	}()
	// The peak is sampled once some sampleNodes nodes have been made since
	// the last sample, not after every tree: Stats takes about 100 ns,
	// which after each of the 262,144 trees of depth 4 would cost the
	// reclaim side 2% of its time and the others nothing. Span bytes move
	// a span (16 KiB) at a time; the nodes between samples are 64 KiB.
	// The last sample is taken after the last tree, whatever the count.
	const sampleNodes = 4096
	unsampled := 0
	takeSample := func() {
		peakSpanBytes = max(peakSpanBytes, h.Stats().SpanBytes)
		unsampled = 0
	}
	sample := func(n int) {
		if unsampled += n; unsampled >= sampleNodes {
			takeSample()
		}
	}

	stretch := bottomUp(m, depth+1)
	n := check(m, stretch)
	nodes += n
	sample(n)
	m.Safepoint()

	long := bottomUp(m, depth)
	h.Pin(long.Object())
	for d := 4; d <= depth; d += 2 {
		iters := 1 << (depth - d + 4)
		for range iters {
			n := check(m, bottomUp(m, d))
			nodes += n
			sample(n)
			m.Safepoint()
		}
	}
	takeSample()
	nodes += check(m, long)
	h.Unpin(long.Object())
	return nodes, peakSpanBytes, h.Stats()
}

func bottomUp(m *reclaim.Mutator, depth int) reclaim.Ref[tnode] {
	n := reclaim.New[tnode](m)
	if depth > 0 {
		l := bottomUp(m, depth-1)
		r := bottomUp(m, depth-1)
		p := n.Get(m)
		p.left, p.right = l, r
	}
	return n
}

func check(m *reclaim.Mutator, r reclaim.Ref[tnode]) int {
	p := r.Get(m)
	if p.left.IsNil() {
		return 1
	}
	return 1 + check(m, p.left) + check(m, p.right)
}

// GoTrees runs binary-trees at depth with Go pointers and returns the nodes
// it counted.
func GoTrees(depth int) int {
	nodes := goCheck(goBottomUp(depth + 1))
	long := goBottomUp(depth)
	for d := 4; d <= depth; d += 2 {
		iters := 1 << (depth - d + 4)
		for range iters {
			nodes += goCheck(goBottomUp(d))
		}
	}
	return nodes + goCheck(long)
}

func goBottomUp(depth int) *gtnode {
	if depth <= 0 {
		return &gtnode{}
	}
	return &gtnode{goBottomUp(depth - 1), goBottomUp(depth - 1)}
}

func goCheck(n *gtnode) int {
	if n.left == nil {
		return 1
	}
	return 1 + goCheck(n.left) + goCheck(n.right)
}

// treesNodes is the number of nodes one run at depth counts.
func treesNodes(depth int) int {
	size := func(d int) int { return 1<<(d+1) - 1 }
	n := size(depth+1) + size(depth)
	for d := 4; d <= depth; d += 2 {
		n += (1 << (depth - d + 4)) * size(d)
	}
	return n
}

// peakRSS measures the process's peak resident set over a stretch of a
// benchmark, on Linux: startPeakRSS collects Go's garbage, returns the freed
// memory to the OS and resets the kernel's high-water mark (VmHWM, through
// /proc/self/clear_refs), and report reads VmHWM back. The figure is the
// whole process's: the test binary, the Go runtime and whatever earlier
// benchmarks left live count too (a few MiB), for both sides alike.
// Elsewhere, or if the reset is refused, nothing is reported.
type peakRSS struct{ ok bool }

func startPeakRSS() peakRSS { return peakRSS{ok: ResetPeakRSS()} }

// ResetPeakRSS collects Go's garbage, returns the freed memory to the OS
// and resets the process's peak resident set (VmHWM) on Linux, so that the
// next PeakRSSKiB is the peak of what runs in between. It reports whether
// the kernel took the reset.
func ResetPeakRSS() bool {
	runtime.GC()
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

func (p peakRSS) report(b *testing.B) {
	if !p.ok {
		return
	}
	if kib, ok := PeakRSSKiB(); ok {
		b.ReportMetric(float64(kib)/1024, "peak-RSS-MB")
	}
}

// PeakRSSKiB reads VmHWM, the peak resident set, from /proc/self/status.
func PeakRSSKiB() (int64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			if fields := strings.Fields(rest); len(fields) > 0 {
				v, err := strconv.ParseInt(fields[0], 10, 64)
				return v, err == nil
			}
		}
	}
	return 0, false
}
