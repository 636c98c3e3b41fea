package reclaim_test

import (
	"testing"

	"github.com/reclaimgc/reclaim"
)

type wmtLeaf struct{ v int }

// wmtEnv keeps its refs in a Go map, which reflection cannot follow: its
// Trace method reports them.
type wmtEnv struct {
	vars map[string]reclaim.Ref[wmtLeaf]
}

func (e *wmtEnv) Trace(visit func(reclaim.Object)) {
	for _, r := range e.vars {
		visit(r.Object())
	}
}

// A WeakMap value whose type implements Tracer is scanned by its Trace
// method, as an object or a cleanup argument of that type is: the refs it
// reports stay alive while the entry's key does.
func TestWeakMapValueTracer(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1})
	m := h.Attach()
	defer m.Detach()
	tab := reclaim.New[reclaim.WeakMap[wmtLeaf, wmtEnv]](m)
	key := reclaim.New[wmtLeaf](m)
	h.Pin(tab.Object())
	h.Pin(key.Object())
	defer h.Unpin(tab.Object())
	defer h.Unpin(key.Object())
	leaf := reclaim.New[wmtLeaf](m)
	tab.Get(m).Set(key, wmtEnv{vars: map[string]reclaim.Ref[wmtLeaf]{"x": leaf}})
	m.Collect()
	if !isLive(leaf) {
		t.Fatalf("a ref reported by the Trace method of a live entry's value was freed")
	}
	v, _ := tab.Get(m).Get(key)
	if v.vars["x"].Get(m).v != 0 {
		t.Fatal("unexpected value")
	}
}
