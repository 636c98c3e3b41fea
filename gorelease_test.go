package reclaim_test

import (
	"runtime"
	"testing"
	"weak"

	"github.com/reclaimgc/reclaim"
)

type grPayload struct{ b [64]byte }

type (
	grPtrFirst struct {
		p *grPayload
		r reclaim.Ref[grPtrFirst]
	}
	grPtrLast struct {
		r [3]reclaim.Ref[grPtrLast]
		n int
		p *grPayload
	}
	grArr  [5]*grPayload
	grBig  [40]struct{ p *grPayload }
	grIntf struct {
		o reclaim.Object
		i any
	}
	grSlice struct{ s []*grPayload }
	grTr    struct{ m map[int]*grPayload }
)

func (t *grTr) Trace(func(reclaim.Object)) {}

// Freed objects holding Go pointers are zeroed with stores Go's collector
// sees, whatever the layout: what they held is released.
func grCheck[T any](t *testing.T, set func(p *T, g *grPayload)) {
	t.Helper()
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	var ws []weak.Pointer[grPayload]
	for range 100 {
		g := new(grPayload)
		ws = append(ws, weak.Make(g))
		set(reclaim.New[T](m).Get(m), g)
	}
	m.Collect()
	m.Collect()
	runtime.GC()
	runtime.GC()
	for i, w := range ws {
		if w.Value() != nil {
			t.Fatalf("Go memory held by freed object %d of %d still reachable", i, len(ws))
		}
	}
}

func TestFreedObjectsReleaseGoPointers(t *testing.T) {
	t.Run("first", func(t *testing.T) { grCheck(t, func(p *grPtrFirst, g *grPayload) { p.p = g }) })
	t.Run("last", func(t *testing.T) { grCheck(t, func(p *grPtrLast, g *grPayload) { p.p = g }) })
	t.Run("array", func(t *testing.T) { grCheck(t, func(p *grArr, g *grPayload) { p[4] = g }) })
	t.Run("big", func(t *testing.T) { grCheck(t, func(p *grBig, g *grPayload) { p[39].p = g }) })
	t.Run("interface", func(t *testing.T) { grCheck(t, func(p *grIntf, g *grPayload) { p.i = g }) })
	t.Run("slice", func(t *testing.T) { grCheck(t, func(p *grSlice, g *grPayload) { p.s = []*grPayload{g} }) })
	t.Run("tracer", func(t *testing.T) { grCheck(t, func(p *grTr, g *grPayload) { p.m = map[int]*grPayload{1: g} }) })
	t.Run("ptr", func(t *testing.T) { grCheck(t, func(p **grPayload, g *grPayload) { *p = g }) })
}
