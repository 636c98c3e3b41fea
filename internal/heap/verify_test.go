package heap

import (
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
	"github.com/reclaimgc/reclaim/internal/layout"
)

type vnode struct {
	next handle.Handle
	val  int64
}

var vnodeType = newTestType[vnode]()

// newTestType registers T with no reference map (the collector sees no refs
// in it), enough for the verifier's tests.
func newTestType[T any]() *Type {
	rt := reflect.TypeFor[T]()
	return RegisterType(&Type{
		Name:    rt.String(),
		Layout:  layout.Of(rt, nil),
		Size:    rt.Size(),
		NewSlab: func(n int) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(make([]T, n))) },
		Clear:   func(p unsafe.Pointer) { var zero T; *(*T)(p) = zero },
	})
}

// verifyHeap builds a heap with one attached mutator, allocates n objects of
// vnodeType, pins every third and collects, so that spans hold both live
// and free slots.
// testHeap makes a heap with cfg and attaches a mutator to it; both are
// detached and closed when the test ends.
func testHeap(t *testing.T, cfg Config) (*Heap, *Mutator) {
	h := New(cfg)
	m := NewMutator()
	h.Attach(m)
	t.Cleanup(func() {
		if m.Heap() != nil {
			m.Detach()
		}
		h.Close()
	})
	return h, m
}

func verifyHeap(t *testing.T, n int) (*Heap, *Mutator, []handle.Handle) {
	t.Helper()
	h, m := testHeap(t, Config{MarkWorkers: 1})
	var kept []handle.Handle
	for i := range n {
		x, err := m.Alloc(vnodeType)
		if err != nil {
			t.Fatal(err)
		}
		(*vnode)(m.Deref(x)).val = int64(i + 1)
		if i%3 == 0 {
			h.Pin(x)
			kept = append(kept, x)
		}
	}
	m.Collect()
	return h, m, kept
}

func TestVerifyClean(t *testing.T) {
	h := New(Config{})
	if err := h.Verify(); err != nil {
		t.Fatalf("empty heap: %v", err)
	}
	h.Close()

	h, m, kept := verifyHeap(t, 3000)
	if err := h.Verify(); err != nil {
		t.Fatalf("after a collection: %v", err)
	}
	// Allocation that is not yet flushed (no safepoint since) is counted.
	for range 10 {
		if _, err := m.Alloc(vnodeType); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Verify(); err != nil {
		t.Fatalf("with unflushed allocations: %v", err)
	}
	for _, x := range kept {
		h.Unpin(x)
	}
	m.Collect()
	m.Collect() // the second sweep releases the emptied spans
	if err := h.Verify(); err != nil {
		t.Fatalf("after freeing everything: %v", err)
	}
	m.Detach()
	if err := h.Verify(); err != nil {
		t.Fatalf("after Detach: %v", err)
	}
}

// TestVerifyFinishesSweep calls Verify right after a cycle that did not
// finish its sweep (the background sweeper may still be at work).
func TestVerifyFinishesSweep(t *testing.T) {
	h, m, _ := verifyHeap(t, 2000)
	h.collect(m, false) // a cycle without Collect's sweep
	if err := h.Verify(); err != nil {
		t.Fatal(err)
	}
	if !h.sweep.done.Load() {
		t.Fatal("Verify did not finish the sweep")
	}
}

func firstLiveSpan(h *Heap) *span {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.mu.allspans {
		if !s.released && s.nfree > 0 && s.nfree < s.nslots {
			return s
		}
	}
	return nil
}

func firstFree(s *span) uint32 {
	for i := uint32(0); i < s.nslots; i++ {
		if !s.isAllocated(i) {
			return i
		}
	}
	panic("no free slot")
}

func TestVerifyFindsCorruption(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(h *Heap, s *span) (undo func())
		want    string
	}{
		{"mark bit left set", func(h *Heap, s *span) func() {
			s.markBits[0].Or(1)
			return func() { s.markBits[0].Store(0) }
		}, "mark bits"},
		{"free slot not zeroed", func(h *Heap, s *span) func() {
			i := firstFree(s)
			p := (*vnode)(s.ptr(i))
			p.val = 42
			return func() { p.val = 0 }
		}, "not zeroed"},
		{"nfree wrong", func(h *Heap, s *span) func() {
			s.nfree++
			return func() { s.nfree-- }
		}, "nfree"},
		{"specials count wrong", func(h *Heap, s *span) func() {
			s.sp.n.Add(1)
			return func() { s.sp.n.Add(-1) }
		}, "specials count"},
		{"finalizer on a free slot", func(h *Heap, s *span) func() {
			i := firstFree(s)
			t := &finTable{fn: make([]*funcval, s.nslots)}
			t.fn[i] = new(funcval)
			s.sp.fin.Store(t)
			return func() { s.sp.fin.Store(nil) }
		}, "finalizer on free slot"},
		{"span bytes wrong", func(h *Heap, s *span) func() {
			h.mu.Lock()
			h.mu.spanBytes += 8
			h.mu.Unlock()
			return func() { h.mu.Lock(); h.mu.spanBytes -= 8; h.mu.Unlock() }
		}, "span bytes"},
		{"unswept", func(h *Heap, s *span) func() {
			g := s.sweepgen.Load()
			s.sweepgen.Store(g - 1)
			return func() { s.sweepgen.Store(g) }
		}, "not swept"},
		{"not in the span table", func(h *Heap, s *span) func() {
			h.mu.Lock()
			h.spans.setLocked(s.idx, nil)
			h.mu.Unlock()
			return func() { h.mu.Lock(); h.spans.setLocked(s.idx, s); h.mu.Unlock() }
		}, "span table"},
		{"object count wrong", func(h *Heap, s *span) func() {
			h.stats.freed.Add(1)
			return func() { h.stats.freed.Add(-1) }
		}, "allocation bits count"},
		{"lost span", func(h *Heap, s *span) func() {
			c := h.central(s.typ)
			c.mu.Lock()
			was := s.inPartial
			i := -1
			for j, p := range c.mu.partial {
				if p == s {
					i = j
				}
			}
			if i >= 0 {
				c.mu.partial = append(c.mu.partial[:i], c.mu.partial[i+1:]...)
			}
			s.inPartial = false
			c.mu.Unlock()
			return func() {
				c.mu.Lock()
				s.inPartial = was
				if i >= 0 {
					c.mu.partial = append(c.mu.partial, s)
				}
				c.mu.Unlock()
			}
		}, "neither cached nor on a partial list"},
	}
	h, m, _ := verifyHeap(t, 3000)
	m.Detach() // its cached span goes back to the central
	s := firstLiveSpan(h)
	if s == nil {
		t.Fatal("no partly used span")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			undo := tt.corrupt(h, s)
			err := h.Verify()
			undo()
			if err == nil {
				t.Fatalf("Verify found nothing; want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify: %v\nwant a problem containing %q", err, tt.want)
			}
			if err := h.Verify(); err != nil {
				t.Fatalf("after undoing the corruption: %v", err)
			}
		})
	}
}
