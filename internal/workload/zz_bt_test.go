package workload

import (
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

func TestZZTreesPause(t *testing.T) {
	depth := 18
	h := reclaim.NewHeap(reclaim.Options{})
	m := h.Attach()
	defer func() { m.Detach(); h.Close() }()
	var mark, pause time.Duration
	cycles := int64(0)
	obs := func() {
		st := h.Stats()
		if st.Cycles != cycles {
			cycles = st.Cycles
			mark += st.LastMark
			pause += st.PauseLast
		}
	}
	start := time.Now()
	check(m, bottomUp(m, depth+1))
	m.Safepoint()
	obs()
	long := bottomUp(m, depth)
	h.Pin(long.Object())
	for d := 4; d <= depth; d += 2 {
		for range 1 << (depth - d + 4) {
			check(m, bottomUp(m, d))
			m.Safepoint()
			obs()
		}
	}
	st := h.Stats()
	t.Logf("total %v cycles %d sampled mark %v pause %v (PauseTotal %v)", time.Since(start), st.Cycles, mark, pause, st.PauseTotal)
}
