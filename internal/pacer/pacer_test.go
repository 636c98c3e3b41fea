package pacer

import (
	"math"
	"testing"
)

func TestGoalTable(t *testing.T) {
	const MB = 1 << 20
	for _, c := range []struct {
		name             string
		cfg              Config
		marked, external int64
		slab, meta       int64
		want             int64
	}{
		{"floor", Config{}, 1 * MB, 0, 0, 0, 4 * MB},
		{"double", Config{}, 10 * MB, 0, 0, 0, 20 * MB},
		{"external grows goal", Config{}, 10 * MB, 10 * MB, 0, 0, 30 * MB},
		{"gcpercent 50", Config{GCPercent: 50}, 10 * MB, 0, 0, 0, 15 * MB},
		{"limit caps", Config{MemoryLimit: 16 * MB}, 10 * MB, 0, 0, 0, 16*MB - 16*MB/100*3},
		{"limit minus external", Config{MemoryLimit: 16 * MB}, 10 * MB, 4 * MB, 0, 0, 12*MB - 12*MB/100*3},
		{"metadata ignored without a limit", Config{}, 10 * MB, 0, 16 * MB, 8 * MB, 20 * MB},
		{"limit's share for objects", Config{MemoryLimit: 24 * MB}, 10 * MB, 0, 16 * MB, 8 * MB, 16*MB - 16*MB/100*3},
		{"share after external", Config{MemoryLimit: 28 * MB}, 10 * MB, 4 * MB, 16 * MB, 8 * MB, 16*MB - 16*MB/100*3},
		{"off", Config{GCPercent: -1}, 10 * MB, 0, 0, 0, -1},
		{"off under a limit: the limit's share", Config{GCPercent: -1, MemoryLimit: 24 * MB}, 10 * MB, 0, 16 * MB, 8 * MB, 16*MB - 16*MB/100*3},
		{"off under a limit, before any span", Config{GCPercent: -1, MemoryLimit: 16 * MB}, 0, 0, 0, 0, 16*MB - 16*MB/100*3},
		{"custom floor", Config{MinHeap: MB}, 100, 0, 0, 0, MB},
	} {
		p := New(c.cfg)
		p.EndCycle(c.marked, c.external, c.slab, c.meta)
		if got := p.Goal(); got != c.want {
			t.Errorf("%s: goal %d, want %d", c.name, got, c.want)
		}
	}
}

// TestSimulatedCycles runs the pacer over simulated cycles of a program with
// a steady live heap and a constant allocation rate, and checks the bound the
// design promises: the heap at a collection never exceeds the goal by more
// than one allocation step, and the goal stays within GCPercent of the live
// heap (above the floor).
func TestSimulatedCycles(t *testing.T) {
	for _, pct := range []int{25, 100, 300} {
		p := New(Config{GCPercent: pct, MinHeap: 1 << 20})
		const steady, step = 50 << 20, 64 << 10
		live := int64(0)
		cycles := 0
		for i := 0; i < 20000; i++ {
			live += step
			if p.Due(live) {
				if over := live - p.Goal(); over > step {
					t.Fatalf("pct %d: collection at %d, %d past goal %d", pct, live, over, p.Goal())
				}
				cycles++
				live = min(live, steady) // everything above the steady state is garbage
				p.EndCycle(live, 0, 0, 0)
				want := live + live*int64(pct)/100
				if p.Goal() != max(want, 1<<20) {
					t.Fatalf("pct %d: goal %d, want %d", pct, p.Goal(), want)
				}
			}
		}
		if cycles == 0 {
			t.Fatalf("pct %d: no cycle in 20000 steps", pct)
		}
	}
}

func TestFits(t *testing.T) {
	p := New(Config{MemoryLimit: 100})
	if !p.Fits(50, 10, 40) || p.Fits(50, 10, 41) {
		t.Fatal("Fits does not honour the limit")
	}
	if q := New(Config{}); !q.Fits(1<<60, 1<<60, 1<<60) {
		t.Fatal("no limit must always fit")
	}
}

// TestSpansRecapsGoal: the cap follows the spans' proportion of metadata to
// slabs as it changes, before any cycle has ended, and Spans reports
// whether the goal moved.
func TestSpansRecapsGoal(t *testing.T) {
	const MB = 1 << 20
	p := New(Config{MemoryLimit: 6 * MB})
	if g := p.Goal(); g != DefaultMinHeap {
		t.Fatalf("goal %d before any span, want the floor %d", g, DefaultMinHeap)
	}
	// 16-byte objects: 8 bytes of handle word for 16 of slab, a third of
	// the memory. The limit's share for objects is 4 MiB less 3%.
	if !p.Spans(2*MB, 1*MB) {
		t.Fatal("Spans did not report the goal moving under the cap")
	}
	if g, want := p.Goal(), int64(4*MB-4*MB/100*3); g != want {
		t.Fatalf("goal %d with a third of the memory metadata, want %d", g, want)
	}
	if p.Spans(4*MB, 2*MB) {
		t.Fatal("Spans reported a move for the same proportion")
	}
	if !p.Spans(8*MB, 0) || p.Goal() != DefaultMinHeap {
		t.Fatalf("goal %d with no metadata, want the floor %d again", p.Goal(), DefaultMinHeap)
	}
	if q := New(Config{}); q.Spans(MB, MB) || q.Goal() != DefaultMinHeap {
		t.Fatal("Spans moved the goal of a pacer without a limit")
	}
}

// TestHeadroomNoOverflow: the headroom of a limit near MaxInt64 does not
// overflow into a cap above the limit.
func TestHeadroomNoOverflow(t *testing.T) {
	const limit = 4_000_000_000_000_000_000
	p := New(Config{MemoryLimit: limit, MinHeap: limit + 1})
	if g, want := p.Goal(), int64(limit-limit/100*3); g != want {
		t.Fatalf("goal %d under a limit of %d: want %d (3%% headroom)", g, int64(limit), want)
	}
}

// TestExternalPastLimit: external bytes past the limit make the goal 0 (a
// collection always due), never negative (automatic collection off).
func TestExternalPastLimit(t *testing.T) {
	p := New(Config{MemoryLimit: 1 << 20})
	p.EndCycle(1<<10, 2<<20, 0, 0)
	if g := p.Goal(); g != 0 || !p.Due(0) {
		t.Fatalf("goal %d with external bytes past the limit: want 0, always due", g)
	}
}

// Huge inputs saturate: a GCPercent or an external total whose product
// overflows gives a huge goal, not one wrapped down to the floor, and a
// huge external total never fits under a limit.
func TestSaturation(t *testing.T) {
	p := New(Config{GCPercent: 1 << 30})
	p.EndCycle(1<<40, 0, 0, 0)
	if g := p.Goal(); g != math.MaxInt64 {
		t.Errorf("GCPercent 2^30 over 1 TiB marked: goal %d, want MaxInt64", g)
	}
	p = New(Config{})
	p.EndCycle(1<<20, math.MaxInt64-1<<19, 0, 0)
	if g := p.Goal(); g != math.MaxInt64 {
		t.Errorf("external near MaxInt64: goal %d, want MaxInt64", g)
	}
	p = New(Config{MemoryLimit: 1 << 30})
	if p.Fits(1<<20, math.MaxInt64-1<<10, 1<<20) {
		t.Errorf("an external total near MaxInt64 fits under a 1 GiB limit")
	}
}

// TestSpanHeadroom: under a limit, the headroom below the cap is 3% of the
// limit's share for objects plus the largest span made (SpanMade), at most
// half the share; so a heap just under its goal can make one more span of
// that size within the limit. Without a limit SpanMade changes nothing.
func TestSpanHeadroom(t *testing.T) {
	const MB = 1 << 20
	p := New(Config{GCPercent: -1, MemoryLimit: 16 * MB})
	share := int64(16 * MB)
	if g, want := p.Goal(), share-share/100*3; g != want {
		t.Fatalf("goal %d before any span, want %d", g, want)
	}
	p.SpanMade(MB)
	if g, want := p.Goal(), share-share/100*3; g != want {
		t.Fatalf("SpanMade moved the goal to %d by itself, want %d until Spans", g, want)
	}
	if !p.Spans(0, 0) {
		t.Fatal("Spans did not report the goal moving for a span of 1 MiB")
	}
	if g, want := p.Goal(), share-share/100*3-MB; g != want {
		t.Fatalf("goal %d after a span of 1 MiB, want %d (3%% and the span)", g, want)
	}
	p.SpanMade(64 << 10)
	if p.Spans(0, 0) || p.Goal() != share-share/100*3-MB {
		t.Fatalf("goal %d after a smaller span: the largest made still counts", p.Goal())
	}
	// The bound: a span of 12 MiB leaves half the share, not 0.
	p.SpanMade(12 * MB)
	if p.Spans(0, 0); p.Goal() != share/2 {
		t.Fatalf("goal %d after a span of 12 MiB under 16, want half the share %d", p.Goal(), share/2)
	}
	// EndCycle keeps the largest span, and the share is the objects'.
	q := New(Config{MemoryLimit: 24 * MB, MinHeap: 64 * MB})
	q.SpanMade(MB)
	q.EndCycle(10*MB, 0, 16*MB, 8*MB)
	if g, want := q.Goal(), share-share/100*3-MB; g != want {
		t.Fatalf("goal %d at the end of a cycle with a third of the memory metadata, want %d", g, want)
	}
	// Just under the goal, in the heap's proportion of metadata to slabs,
	// a new span of the largest size fits under the limit.
	for _, c := range []struct{ limit, slab, meta, span int64 }{
		{4 * MB, 3 * MB, 100 << 10, 512<<10 + 32},
		{4 * MB, 2 * MB, 1 * MB, 512<<10 + 32},
		{64 * MB, 32 * MB, 1 * MB, 16<<10 + 4<<10 + 192},
		{1 * MB, 512 << 10, 1 << 10, 400 << 10},
	} {
		r := New(Config{GCPercent: -1, MemoryLimit: c.limit})
		r.SpanMade(c.span)
		r.Spans(c.slab, c.meta)
		slab := r.Goal() - 1
		held := slab + int64(float64(slab)*float64(c.meta)/float64(c.slab))
		if !r.Fits(held, 0, c.span) {
			t.Errorf("limit %d, span %d: %d held just under the goal %d, and the span does not fit", c.limit, c.span, held, r.Goal())
		}
	}
	n := New(Config{})
	n.SpanMade(64 * MB)
	if n.Spans(0, 0) || n.Goal() != DefaultMinHeap {
		t.Fatalf("goal %d without a limit after SpanMade, want the floor %d", n.Goal(), DefaultMinHeap)
	}
	n.EndCycle(10*MB, 0, 0, 0)
	if n.Goal() != 20*MB {
		t.Fatalf("goal %d without a limit after SpanMade and a cycle, want %d", n.Goal(), 20*MB)
	}
}
