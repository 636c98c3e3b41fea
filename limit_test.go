package reclaim_test

// Memory limit, pacing and accounting, under pressure: several mutators at
// the limit at once, AddExternal racing with collections, limits smaller
// than one span, objects of many sizes, Stats read concurrently.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/reclaimgc/reclaim"
)

// Types of many sizes, each a distinct Go type (so a distinct span class).
type (
	lrZero  struct{}
	lrW8    struct{ V int64 }
	lrW24   struct{ A, B, C int64 }
	lrW100  struct{ V [100]byte }
	lrW1K   struct{ B [1024]byte }
	lrW5K   struct{ B [5000]byte }
	lrW20K  struct{ B [20000]byte } // past a span's 16 KiB target: one slot a span
	lrArray [3000]int64             // 24000 bytes, one slot a span
)

type lrB struct {
	Next reclaim.Ref[lrB]
	V    int64
}

// lrRoot holds a goroutine's live objects; pinned, so what it holds lives.
type lrRoot struct {
	Items []reclaim.Object
}

// lrTagged is a live object that carries a check value.
type lrTagged struct {
	Tag uint64
	Pad [40]byte
}

type lrTagged2 struct {
	Tag uint64
	Pad [400]byte
}

// heldBytes is the memory the limit counts, as Stats reports it.
func heldBytes(st reclaim.Stats) int64 {
	return st.SpanBytes + st.MetaBytes + st.SpareBytes + st.ExternalBytes
}

// checkStatsSane fails t (Errorf; safe from any goroutine) on a Stats
// snapshot with a negative or absurd field.
func checkStatsSane(t *testing.T, st reclaim.Stats, limit int64) bool {
	t.Helper()
	ok := true
	bad := func(format string, args ...any) {
		ok = false
		t.Errorf(format+" (stats %+v)", append(args, st)...)
	}
	if st.SpanBytes < 0 || st.MetaBytes < 0 || st.SpareBytes < 0 || st.ExternalBytes < 0 || st.HeapLiveBytes < 0 {
		bad("negative byte count")
	}
	if st.HeapObjects < 0 || st.Allocated < 0 || st.Freed < 0 || st.Freed > st.Allocated {
		bad("object counts: allocated %d freed %d objects %d", st.Allocated, st.Freed, st.HeapObjects)
	}
	if st.HeapGoal < -1 {
		bad("goal %d", st.HeapGoal)
	}
	if limit > 0 && st.SpanBytes+st.MetaBytes+st.SpareBytes > limit {
		bad("slabs %d + meta %d + spares %d past the limit %d", st.SpanBytes, st.MetaBytes, st.SpareBytes, limit)
	}
	if limit > 0 && st.HeapGoal > limit {
		bad("goal %d past the limit %d", st.HeapGoal, limit)
	}
	return ok
}

// fillGarbage allocates Ts that nothing keeps until the limit refuses one,
// and returns how many it got. It fails t if TryNew fails otherwise, or
// never fails within max.
func fillGarbage[T any](t *testing.T, m *reclaim.Mutator, max int) int {
	t.Helper()
	for n := 0; ; n++ {
		if _, err := reclaim.TryNew[T](m); err != nil {
			if !errors.Is(err, reclaim.ErrMemoryLimit) {
				t.Fatalf("TryNew: %v", err)
			}
			return n
		}
		if n > max {
			t.Fatalf("%d objects allocated, more than the limit allows (%d)", n, max)
		}
	}
}

// TestLimitOtherTypeAfterCollect: a heap filled to its limit with garbage of
// one type, then collected, must take an object of another type: after a
// collection frees memory, allocation succeeds again.
func TestLimitOtherTypeAfterCollect(t *testing.T) {
	for _, pct := range []int{-1, 0} {
		t.Run(fmt.Sprint("GCPercent", pct), func(t *testing.T) {
			const limit = 1 << 20
			h := newTestHeap(t, reclaim.Options{MemoryLimit: limit, GCPercent: pct})
			m := h.Attach()
			defer m.Detach()
			n := fillGarbage[lrW1K](t, m, limit/1024)
			m.Collect()
			st := h.Stats()
			if st.HeapObjects != 0 {
				t.Fatalf("HeapObjects %d after Collect with nothing live", st.HeapObjects)
			}
			if _, err := reclaim.TryNew[lrB](m); err != nil {
				t.Errorf("after %d garbage objects and Collect (objects %d, slabs %d, meta %d, spares %d): TryNew of another type: %v",
					n, st.HeapObjects, st.SpanBytes, st.MetaBytes, st.SpareBytes, err)
			}
		})
	}
}

// TestLimitManySizesCollectLoop: TryNew in a loop with Collect between,
// each round a type of another size: every round gets most of the limit,
// and the memory held stays under it.
func TestLimitManySizesCollectLoop(t *testing.T) {
	const limit = 2 << 20
	h := newTestHeap(t, reclaim.Options{MemoryLimit: limit})
	m := h.Attach()
	defer m.Detach()
	fills := []struct {
		name string
		size int64
		fill func() int
	}{
		{"w8", 8, func() int { return fillGarbage[lrW8](t, m, limit/16) }},
		{"w1K", 1024, func() int { return fillGarbage[lrW1K](t, m, limit/1024) }},
		{"zero", 0, func() int { return fillGarbage[lrZero](t, m, limit/8) }},
		{"w24", 24, func() int { return fillGarbage[lrW24](t, m, limit/32) }},
		{"w20K", 20000, func() int { return fillGarbage[lrW20K](t, m, limit/20000) }},
		{"w100", 100, func() int { return fillGarbage[lrW100](t, m, limit/108) }},
		{"w5K", 5000, func() int { return fillGarbage[lrW5K](t, m, limit/5000) }},
		{"array", 24000, func() int { return fillGarbage[lrArray](t, m, limit/24000) }},
	}
	for round := range 2 {
		for _, f := range fills {
			n := f.fill()
			st := h.Stats()
			checkStatsSane(t, st, limit)
			// At least half the limit's worth of objects with their
			// handle words, so no type is starved by another's memory.
			if want := limit / 2 / (f.size + 8); int64(n) < want {
				t.Errorf("round %d, %s: %d objects before the limit refused one, want at least %d (slabs %d, meta %d, spares %d)",
					round, f.name, n, want, st.SpanBytes, st.MetaBytes, st.SpareBytes)
			}
			m.Collect()
			if st := h.Stats(); st.HeapObjects != 0 || st.HeapLiveBytes != 0 {
				t.Fatalf("round %d, %s: after Collect with nothing live: HeapObjects %d, HeapLiveBytes %d", round, f.name, st.HeapObjects, st.HeapLiveBytes)
			}
		}
	}
}

// TestLimitExactSpan: the limit counts a span's slab, handle words and
// bitmaps exactly: a limit of exactly one span's memory holds that span,
// one byte less holds nothing, and either way the heap stays usable.
func TestLimitExactSpan(t *testing.T) {
	// One mark worker: bitmaps are 3 unpadded words per 64 slots, and
	// every slot has a handle word and a mark tag byte.
	cases := []struct {
		name  string
		span  int64 // one span's memory
		slots int
		try   func(m *reclaim.Mutator) error
	}{
		{"w8", 1024*8 + 1024*8 + 3*8*16 + 1024, 1024, func(m *reclaim.Mutator) error { _, err := reclaim.TryNew[lrW8](m); return err }},
		{"zero", 1024*8 + 3*8*16 + 1024, 1024, func(m *reclaim.Mutator) error { _, err := reclaim.TryNew[lrZero](m); return err }},
		{"array", 24000 + 8 + 3*8 + 1, 1, func(m *reclaim.Mutator) error { _, err := reclaim.TryNew[lrArray](m); return err }},
	}
	for _, c := range cases {
		for _, spans := range []int64{0, 1, 4} {
			for _, slack := range []int64{-1, 0} {
				limit := c.span*spans + slack
				if limit <= 0 {
					limit = c.span - 1 // smaller than one span
				}
				want := c.slots * int(spans)
				if slack < 0 && spans > 0 {
					want = c.slots * int(spans-1)
				}
				t.Run(fmt.Sprintf("%s/limit%d", c.name, limit), func(t *testing.T) {
					h := newTestHeap(t, reclaim.Options{MemoryLimit: limit, MarkWorkers: 1, GCPercent: -1})
					m := h.Attach()
					defer m.Detach()
					var roots []error // keep nothing: GCPercent -1, no safepoint between
					n := 0
					for {
						err := c.try(m)
						if err != nil {
							if !errors.Is(err, reclaim.ErrMemoryLimit) {
								t.Fatal(err)
							}
							break
						}
						n++
						if n > want+c.slots {
							break
						}
					}
					_ = roots
					st := h.Stats()
					if n != want {
						t.Errorf("%d objects under a limit of %d (span %d bytes), want %d (slabs %d, meta %d)", n, limit, c.span, want, st.SpanBytes, st.MetaBytes)
					}
					if got := st.SpanBytes + st.MetaBytes; got > limit || (want > 0 && got != c.span*int64(want/c.slots)) {
						t.Errorf("slabs %d + meta %d = %d, limit %d, %d spans of %d", st.SpanBytes, st.MetaBytes, got, limit, want/c.slots, c.span)
					}
					if st.MemoryLimitHits != 1 {
						t.Errorf("MemoryLimitHits %d, want 1", st.MemoryLimitHits)
					}
					// Usable: the refusal made a collection due; after it
					// (and the sweep), the same count fits again.
					m.Safepoint()
					if c := h.Stats().Cycles; c != 1 {
						t.Errorf("%d cycles after a refusal and a safepoint with GCPercent -1, want 1", c)
					}
					m.Collect()
					m.Collect()
					// Spares are kept within the goal, which the limit caps.
					if st := h.Stats(); st.SpanBytes != 0 || st.MetaBytes != 0 || st.SpareBytes > st.HeapGoal || st.HeapObjects != 0 {
						t.Errorf("after collecting everything: slabs %d, meta %d, spares %d (goal %d), objects %d; want none but spares within the goal",
							st.SpanBytes, st.MetaBytes, st.SpareBytes, st.HeapGoal, st.HeapObjects)
					}
					n2 := 0
					for c.try(m) == nil {
						n2++
						if n2 > want {
							break
						}
					}
					if n2 != want {
						t.Errorf("%d objects after collecting, want %d again", n2, want)
					}
				})
			}
		}
	}
}

// TestLimitConcurrentMutators: several mutators allocate objects of several
// sizes near the limit at once, each keeping what it allocated in a pinned
// root and giving half of it up when refused; a reader takes Stats all the
// while. Nothing kept is lost or changed, the memory held never passes the
// limit, and Stats is never absurd.
func TestLimitConcurrentMutators(t *testing.T) {
	const limit = 4 << 20
	const workers = 4
	iters := 100000
	if testing.Short() {
		iters = 20000
	}
	h := newTestHeap(t, reclaim.Options{MemoryLimit: limit, MarkWorkers: 2})
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	var reads atomic.Int64
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if !checkStatsSane(t, h.Stats(), limit) {
				return
			}
			reads.Add(1)
		}
	}()
	var wg sync.WaitGroup
	var refused atomic.Int64
	roots := make([]reclaim.Ref[lrRoot], workers)
	setup := h.Attach()
	for w := range roots {
		roots[w] = reclaim.New[lrRoot](setup)
		h.Pin(roots[w].Object())
	}
	setup.Detach()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := h.Attach()
			defer m.Detach()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			root := roots[w]
			defer h.Unpin(root.Object())
			tags := map[reclaim.Object]uint64{}
			tag := uint64(w) << 40
			for i := range iters {
				tag++
				var o reclaim.Object
				var err error
				switch rng.IntN(4) {
				case 0:
					var r reclaim.Ref[lrTagged]
					if r, err = reclaim.TryNew[lrTagged](m); err == nil {
						r.Get(m).Tag = tag
						o = r.Object()
					}
				case 1:
					var r reclaim.Ref[lrTagged2]
					if r, err = reclaim.TryNew[lrTagged2](m); err == nil {
						r.Get(m).Tag = tag
						o = r.Object()
					}
				case 2:
					_, err = reclaim.TryNew[lrW1K](m) // garbage
				case 3:
					_, err = reclaim.TryNew[lrW20K](m) // garbage, a span each
				}
				if err != nil {
					if !errors.Is(err, reclaim.ErrMemoryLimit) {
						t.Errorf("worker %d: TryNew: %v", w, err)
						return
					}
					refused.Add(1)
					// Give up half of what is kept, and let the due
					// collection run.
					items := root.Get(m).Items
					for _, x := range items[len(items)/2:] {
						delete(tags, x)
					}
					root.Get(m).Items = items[:len(items)/2]
					m.Safepoint()
					continue
				}
				if !o.IsNil() {
					tags[o] = tag
					root.Get(m).Items = append(root.Get(m).Items, o)
				}
				if i%64 == 0 {
					m.Safepoint()
				}
			}
			m.Collect()
			if got := len(root.Get(m).Items); got != len(tags) {
				t.Errorf("worker %d: root holds %d, want %d", w, got, len(tags))
			}
			for _, x := range root.Get(m).Items {
				var got uint64
				if r, ok := reclaim.As[lrTagged](x); ok && !x.IsNil() {
					got = r.Get(m).Tag
				} else if r, ok := reclaim.As[lrTagged2](x); ok {
					got = r.Get(m).Tag
				} else {
					t.Errorf("worker %d: kept object %v lost", w, x)
					return
				}
				if got != tags[x] {
					t.Errorf("worker %d: kept object %v has tag %x, want %x", w, x, got, tags[x])
					return
				}
			}
			root.Get(m).Items = nil
		}()
	}
	waitTimeout(t, &wg, 2*time.Minute, "the allocating mutators")
	close(stop)
	waitTimeout(t, &readers, time.Minute, "the Stats reader")
	if refused.Load() == 0 {
		t.Errorf("no allocation refused: the test did not reach the limit")
	}
	st := h.Stats()
	checkStatsSane(t, st, limit)
	if int64(st.MemoryLimitHits) != refused.Load() {
		t.Errorf("MemoryLimitHits %d, refusals seen %d", st.MemoryLimitHits, refused.Load())
	}
	t.Logf("%d refusals, %d cycles, %d Stats reads", refused.Load(), st.Cycles, reads.Load())
}

// TestAddExternalConcurrentWithCollections: goroutines that are not
// mutators add and give back external bytes while a mutator collects and
// allocates under a limit; the total ends at zero, Stats never shows it
// negative or past what was added, and allocation works again once it is
// given back.
func TestAddExternalConcurrentWithCollections(t *testing.T) {
	const limit = 8 << 20
	const adders = 4
	const each = 3 << 19 // at most adders*each outstanding: 6 of the 8 MiB
	collections := 300
	if testing.Short() {
		collections = 60
	}
	h := newTestHeap(t, reclaim.Options{MemoryLimit: limit})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for a := range adders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(a), 11))
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := rng.Int64N(each) + 1
				h.AddExternal(n)
				st := h.Stats()
				if st.ExternalBytes < n || st.ExternalBytes > adders*each {
					t.Errorf("ExternalBytes %d with %d of ours outstanding (at most %d in all)", st.ExternalBytes, n, adders*each)
					return
				}
				checkStatsSane(t, st, limit)
				h.AddExternal(-n)
			}
		}()
	}
	var mw sync.WaitGroup
	mw.Add(1)
	var refused, allocated int
	go func() {
		defer mw.Done()
		defer close(stop)
		m := h.Attach()
		defer m.Detach()
		// 2 MiB live, so that external bytes at their peak leave too
		// little for the garbage between collections.
		root := reclaim.New[lrRoot](m)
		h.Pin(root.Object())
		defer h.Unpin(root.Object())
		for range 2048 {
			root.Get(m).Items = append(root.Get(m).Items, reclaim.New[lrW1K](m).Object())
		}
		for c := 0; c < collections; {
			if _, err := reclaim.TryNew[lrW1K](m); err != nil {
				if !errors.Is(err, reclaim.ErrMemoryLimit) {
					t.Errorf("TryNew: %v", err)
					return
				}
				refused++
				m.Safepoint() // the refusal made a collection due
				continue
			}
			allocated++
			if allocated%2048 == 0 {
				m.Collect()
				c++
			} else if allocated%256 == 0 {
				m.Safepoint()
			}
		}
	}()
	waitTimeout(t, &mw, 2*time.Minute, "the mutator")
	waitTimeout(t, &wg, time.Minute, "the AddExternal goroutines")
	st := h.Stats()
	if st.ExternalBytes != 0 {
		t.Errorf("ExternalBytes %d after every addition was given back", st.ExternalBytes)
	}
	checkStatsSane(t, st, limit)
	m := h.Attach()
	defer m.Detach()
	m.Collect()
	fillGarbage[lrW1K](t, m, limit/1024)
	if st := h.Stats(); st.SpanBytes < limit/2 {
		t.Errorf("with external bytes back to 0, only %d span bytes under an %d limit", st.SpanBytes, limit)
	}
	// External bytes held count: with three quarters of the limit held
	// outside, the heap fills the last quarter and no more.
	h.AddExternal(limit * 3 / 4)
	m.Collect()
	m.Collect()
	fillGarbage[lrW1K](t, m, limit/1024)
	if st := h.Stats(); heldBytes(st) > limit || st.SpanBytes < limit/8 {
		t.Errorf("with %d external bytes: slabs %d + meta %d + spares %d + external = %d, limit %d", st.ExternalBytes, st.SpanBytes, st.MetaBytes, st.SpareBytes, heldBytes(st), limit)
	}
	h.AddExternal(-limit * 3 / 4)
	t.Logf("%d cycles, %d allocated, %d refusals", st.Cycles, allocated, refused)
}

// TestAddExternalMisuseDoesNotLeak: an AddExternal that would make the
// total negative panics and leaves the total unchanged (MISUSE.md); a
// goroutine that gives back bytes it did add must not panic because
// another goroutine misused AddExternal at the same moment, and Stats must
// never show a negative total.
func TestAddExternalMisuseDoesNotLeak(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{})
	const base = 1 << 20
	h.AddExternal(base)
	d := time.Second
	if testing.Short() {
		d = 250 * time.Millisecond
	}
	var misuses atomic.Int64
	stopMisuse := repeatUntilStopped(t, 1, "the misusing goroutine", func() bool { // the misuse: more than there is
		if _, ok := panicValue(func() { h.AddExternal(-2 * base) }); !ok {
			t.Errorf("AddExternal(-%d) with %d outstanding did not panic", 2*base, base)
			return false
		}
		misuses.Add(1)
		return true
	})
	defer stopMisuse()
	var negative atomic.Int64
	stopReader := repeatUntilStopped(t, 1, "the Stats reader", func() bool {
		if e := h.Stats().ExternalBytes; e < 0 {
			negative.Store(e)
		}
		return true
	})
	defer stopReader()
	var spurious, rounds int
	var first any
	for deadline := time.Now().Add(d); time.Now().Before(deadline); rounds++ {
		// Either may panic for the other goroutine's misuse (even the
		// addition: it saw the total negative); the total stays unchanged.
		for _, n := range []int64{-1, 1} {
			for tries := 0; ; tries++ { // until it is taken: the total must come back
				v, ok := panicValue(func() { h.AddExternal(n) })
				if !ok {
					break
				}
				spurious++
				if first == nil {
					first = v
				}
				if tries > 1000 {
					t.Fatalf("AddExternal(%d) panicked 1000 times in a row: %v", n, v)
				}
			}
		}
	}
	stopMisuse()
	stopReader()
	if spurious > 0 {
		t.Errorf("AddExternal(-1) or (+1) with at least %d bytes outstanding panicked %d times in %d rounds, with a concurrent misuse (%d): %v", base-1, spurious, rounds, misuses.Load(), first)
	}
	if e := negative.Load(); e != 0 {
		t.Errorf("Stats showed ExternalBytes %d", e)
	}
	if e := h.Stats().ExternalBytes; e != base {
		t.Errorf("ExternalBytes %d at the end, want %d", e, base)
	}
	h.AddExternal(-base)
}

// TestAccountingBaseline: after everything is dropped and collected, the
// heap's byte counts come back to where they started; live bytes after a
// collection are exactly the bytes of the objects kept.
func TestAccountingBaseline(t *testing.T) {
	for _, pct := range []int{-1, 100} {
		t.Run(fmt.Sprint("GCPercent", pct), func(t *testing.T) {
			h := newTestHeap(t, reclaim.Options{GCPercent: pct})
			m := h.Attach()
			defer m.Detach()
			base := h.Stats()
			root := reclaim.New[lrRoot](m)
			h.Pin(root.Object())
			var keep []reclaim.Object
			var keptBytes int64
			for i := range 20000 {
				var o reclaim.Object
				var sz int64
				switch i % 5 {
				case 0:
					o, sz = reclaim.New[lrW8](m).Object(), 8
				case 1:
					o, sz = reclaim.New[lrW100](m).Object(), 100
				case 2:
					o, sz = reclaim.New[lrW1K](m).Object(), 1024
				case 3:
					o, sz = reclaim.New[lrZero](m).Object(), 0
				case 4:
					if i%50 == 4 {
						o, sz = reclaim.New[lrW20K](m).Object(), 20000
					}
				}
				if i%3 == 0 && !o.IsNil() {
					keep = append(keep, o)
					keptBytes += sz
				}
			}
			root.Get(m).Items = keep
			rootSize := int64(unsafe.Sizeof(lrRoot{})) // a slice header: 24 bytes, 12 where a word is 32 bits
			m.Collect()
			st := h.Stats()
			if st.HeapLiveBytes != keptBytes+rootSize {
				t.Errorf("HeapLiveBytes %d after Collect, want the %d bytes kept", st.HeapLiveBytes, keptBytes+rootSize)
			}
			if st.HeapObjects != int64(len(keep))+1 || st.ObjectsMarked != int64(len(keep))+1 {
				t.Errorf("HeapObjects %d, ObjectsMarked %d, want %d", st.HeapObjects, st.ObjectsMarked, len(keep)+1)
			}
			if pct >= 0 {
				if want := max(2*(keptBytes+rootSize), 4<<20); st.HeapGoal != want {
					t.Errorf("HeapGoal %d with %d bytes marked, want %d", st.HeapGoal, keptBytes+rootSize, want)
				}
			}
			root.Get(m).Items = nil
			h.Unpin(root.Object())
			m.Collect()
			m.Collect()
			st = h.Stats()
			if st.SpanBytes != base.SpanBytes || st.MetaBytes != base.MetaBytes || st.HeapLiveBytes != 0 || st.HeapObjects != 0 {
				t.Errorf("after dropping everything: slabs %d, meta %d, live %d, objects %d; want %d, %d, 0, 0",
					st.SpanBytes, st.MetaBytes, st.HeapLiveBytes, st.HeapObjects, base.SpanBytes, base.MetaBytes)
			}
			if pct < 0 && st.SpareBytes != 0 {
				t.Errorf("SpareBytes %d with GCPercent -1 (no goal to keep spares within)", st.SpareBytes)
			}
			if pct >= 0 && st.SpareBytes > st.HeapGoal {
				t.Errorf("SpareBytes %d past the goal %d", st.SpareBytes, st.HeapGoal)
			}
		})
	}
}

// TestGoalFormula: the goal after a cycle is marked + (marked+external) *
// GCPercent/100, with the 4 MiB floor; with a limit, never past it.
func TestGoalFormula(t *testing.T) {
	for _, c := range []struct {
		pct      int
		ext      int64
		limit    int64
		wantGoal func(marked int64) int64
	}{
		{1, 0, 0, func(int64) int64 { return 4 << 20 }}, // the floor
		{300, 0, 0, func(mk int64) int64 { return mk + mk*3 }},
		{50, 16 << 20, 0, func(mk int64) int64 { return mk + (mk+16<<20)/2 }},
		{-1, 16 << 20, 0, func(int64) int64 { return -1 }},
		{100, 0, 5 << 20, nil},
	} {
		t.Run(fmt.Sprintf("pct%d_ext%d_limit%d", c.pct, c.ext, c.limit), func(t *testing.T) {
			h := newTestHeap(t, reclaim.Options{GCPercent: c.pct, MemoryLimit: c.limit})
			m := h.Attach()
			defer m.Detach()
			root := reclaim.New[lrRoot](m)
			h.Pin(root.Object())
			items := make([]reclaim.Object, 0, 2000)
			for range 2000 {
				items = append(items, reclaim.New[lrW1K](m).Object())
			}
			root.Get(m).Items = items
			h.AddExternal(c.ext)
			m.Collect()
			st := h.Stats()
			marked := 2000*1024 + int64(unsafe.Sizeof(lrRoot{}))
			if st.HeapLiveBytes != marked {
				t.Fatalf("HeapLiveBytes %d, want %d", st.HeapLiveBytes, marked)
			}
			if c.wantGoal != nil {
				if want := c.wantGoal(marked); st.HeapGoal != want {
					t.Errorf("HeapGoal %d, want %d", st.HeapGoal, want)
				}
			} else {
				checkStatsSane(t, st, c.limit)
				if st.HeapGoal < marked || st.HeapGoal > c.limit {
					t.Errorf("HeapGoal %d with %d marked under a %d limit", st.HeapGoal, marked, c.limit)
				}
			}
			root.Get(m).Items = nil
			h.Unpin(root.Object())
			h.AddExternal(-c.ext)
		})
	}
}

type soaPage struct{ B [4096]byte }
type soaPair struct{ A, B int64 }

// TestSafepointOnAllocCollectsBeforeRefusing: with SafepointOnAlloc, an
// allocation the limit refuses runs the collection the refusal makes due,
// there (the allocation is a safepoint), and tries again: a heap of
// garbage under a limit of a few spans, where one span passes the goal's
// headroom, never refuses one. A refusal that stands counts once in
// MemoryLimitHits.
func TestSafepointOnAllocCollectsBeforeRefusing(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{MemoryLimit: 64 << 10, SafepointOnAlloc: true, GCPercent: -1, Logger: quietLogger()})
	m := h.Attach()
	defer m.Detach()
	for i := range 2000 {
		var err error
		if i%2 == 0 {
			_, err = reclaim.TryNew[soaPage](m)
		} else {
			_, err = reclaim.TryNew[soaPair](m)
		}
		if err != nil {
			st := h.Stats()
			t.Fatalf("allocation %d refused with every object garbage: %v (cycles %d, limit hits %d)", i, err, st.Cycles, st.MemoryLimitHits)
		}
	}
	// Now fill the limit with pinned objects: the refusal stands, and
	// counts once.
	var pinned []reclaim.Object
	defer func() {
		for _, o := range pinned {
			h.Unpin(o)
		}
	}()
	for {
		r, err := reclaim.TryNew[soaPage](m)
		if err != nil {
			break
		}
		h.Pin(r.Object())
		pinned = append(pinned, r.Object())
	}
	if st := h.Stats(); st.MemoryLimitHits != 1 {
		t.Fatalf("MemoryLimitHits %d after one refused allocation, want 1", st.MemoryLimitHits)
	}
}

type lsBig struct{ A [65536]uint64 }    // 512 KiB: one slot a span, past 3% of a 4 MiB limit
type lsMid struct{ A [16384]uint64 }    // 128 KiB: a span just past 3% of a 4 MiB limit
type lsSmall struct{ A, B, C, D int64 } // 32 bytes: 512 slots a span

// TestLimitSpanPastHeadroom: under a limit where one span is larger than
// 3% of the limit's share for objects, a program that reaches a safepoint
// after every allocation and keeps nothing alive is never refused: the
// goal leaves room for the largest span the heap has made, so the
// allocation that passes the goal still fits under the limit, and room
// for the small allocations after it (the 3%), so the collection it makes
// due runs at the next safepoint, before any refusal.
func TestLimitSpanPastHeadroom(t *testing.T) {
	for _, c := range []struct {
		name string
		big  func(m *reclaim.Mutator) error
	}{
		{"512KiB", func(m *reclaim.Mutator) error { _, err := reclaim.TryNew[lsBig](m); return err }},
		{"128KiB", func(m *reclaim.Mutator) error { _, err := reclaim.TryNew[lsMid](m); return err }},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newTestHeap(t, reclaim.Options{MemoryLimit: 4 << 20, Logger: quietLogger()})
			m := h.Attach()
			defer m.Detach()
			refused, small := 0, 0
			for range 200 {
				if err := c.big(m); err != nil {
					refused++
				}
				for range 100 {
					if _, err := reclaim.TryNew[lsSmall](m); err != nil {
						small++
					}
				}
				m.Safepoint()
			}
			st := h.Stats()
			checkStatsSane(t, st, 4<<20)
			if refused != 0 || small != 0 || st.MemoryLimitHits != 0 {
				t.Fatalf("%d of 200 allocations of %s and %d of 20000 of 32 bytes refused under a 4 MiB limit with every object garbage (cycles %d, limit hits %d, goal %d)",
					refused, c.name, small, st.Cycles, st.MemoryLimitHits, st.HeapGoal)
			}
			if st.Cycles == 0 {
				t.Fatalf("no collection in 200 allocations of %s under a 4 MiB limit", c.name)
			}
		})
	}
}
