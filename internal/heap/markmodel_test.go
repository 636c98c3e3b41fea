package heap

import (
	"math/rand/v2"
	"testing"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// wnode has two handles at fixed offsets and a size (48 bytes) whose span
// has 341 slots, not a multiple of 64: handles to slots past the last
// name no slot.
type wnode struct {
	a, b handle.Handle
	pad  [4]int64
}

var wnodeType = newTestType[wnode]()

// TestMarkMatchesTagModel: live objects of one span type hold handles to
// live objects (mostly neighbours, which scanLinear marks as it scans),
// and stale, aliased (256 generations apart), out-of-range, foreign and
// unknown-span ones; the mark, with one worker and several, marks exactly
// what a walk with the tag check's rules reaches, with the spans owned one
// by one or in groups.
func TestMarkMatchesTagModel(t *testing.T) {
	slots, bytes, groups := tagsAheadSlots, objectsAheadBytes, minOwnGroups
	defer func() { tagsAheadSlots, objectsAheadBytes, minOwnGroups = slots, bytes, groups }()
	testMarkMatchesTagModel(t) // a small heap: nothing read ahead, spans owned one by one
	tagsAheadSlots, objectsAheadBytes = 0, 0
	testMarkMatchesTagModel(t) // tags and objects read ahead, as in a large heap
	minOwnGroups = 1
	testMarkMatchesTagModel(t) // and spans owned in groups (of four), as in a large heap
}

func testMarkMatchesTagModel(t *testing.T) {
	for _, nw := range []int{1, 2, 3} {
		for seed := uint64(1); seed <= 6; seed++ {
			h, m := testHeap(t, Config{MarkWorkers: nw, GCPercent: -1})
			r := rand.New(rand.NewPCG(seed, uint64(nw)))
			var all []handle.Handle
			for range 4000 {
				x, err := m.Alloc(wnodeType)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, x)
			}
			// Free a third: pin the rest for one collection.
			var live, dead []handle.Handle
			for _, x := range all {
				if r.IntN(3) == 0 {
					dead = append(dead, x)
				} else {
					live = append(live, x)
					h.Pin(x)
				}
			}
			m.Collect()
			for _, x := range live {
				h.Unpin(x)
			}
			pick := func() handle.Handle {
				switch r.IntN(10) {
				case 0:
					return 0
				case 1:
					return dead[r.IntN(len(dead))]
				case 2:
					d := live[r.IntN(len(live))]
					g := d.Gen()
					if g >= 256 {
						return handle.Pack(h.id, d.Span(), d.Slot(), g-256)
					}
					return handle.Pack(h.id, d.Span(), d.Slot(), g+256)
				case 3:
					d := live[r.IntN(len(live))]
					return handle.Pack(h.id, d.Span(), uint32(r.IntN(handle.MaxSlots)), d.Gen())
				case 4:
					d := live[r.IntN(len(live))]
					return handle.Pack(h.id%handle.MaxHeaps+1, d.Span(), d.Slot(), d.Gen())
				case 5:
					d := live[r.IntN(len(live))]
					return handle.Pack(h.id, uint32(r.IntN(handle.MaxSpans)), d.Slot(), d.Gen())
				default:
					// Mostly live handles into the same spans.
					d := live[r.IntN(len(live))]
					return d
				}
			}
			for i, x := range live {
				p := (*wnode)(m.Deref(x))
				p.a = pick()
				if i+1 < len(live) && r.IntN(2) == 0 {
					p.b = live[i+1]
				} else {
					p.b = pick()
				}
			}
			roots := live[:5]
			for _, x := range roots {
				h.Pin(x)
			}
			// What the mark must reach.
			seen := map[handle.Handle]bool{}
			stack := append([]handle.Handle(nil), roots...)
			for _, x := range roots {
				seen[x] = true
			}
			for len(stack) > 0 {
				x := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				p := (*wnode)(h.spans.get(x.Span()).ptr(x.Slot()))
				for _, c := range []handle.Handle{p.a, p.b} {
					if y := h.markTarget(c); y != 0 && !seen[y] {
						seen[y] = true
						stack = append(stack, y)
					}
				}
			}
			m.Collect()
			if got := h.Stats().Marked; got != int64(len(seen)) {
				t.Fatalf("nw %d seed %d: marked %d, model %d", nw, seed, got, len(seen))
			}
			if err := h.Verify(); err != nil {
				t.Fatal(err)
			}
			for _, x := range roots {
				h.Unpin(x)
			}
		}
	}
}
