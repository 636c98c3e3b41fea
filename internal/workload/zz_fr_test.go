package workload

import (
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

func TestZZFR(t *testing.T) {
	h := reclaim.NewHeap(reclaim.Options{})
	m := h.Attach()
	n := 100000
	var ta, tc, tw time.Duration
	K := 300
	for range K {
		c := newCounter(n)
		fin := func(*reclaim.Mutator, reclaim.Ref[obj]) { c.hit() }
		s := time.Now()
		for i := range n {
			reclaim.SetFinalizer(m, reclaim.New[obj](m), fin)
			if i%safepointEvery == safepointEvery-1 {
				m.Safepoint()
			}
		}
		s2 := time.Now()
		m.Collect()
		s3 := time.Now()
		<-c.done
		s4 := time.Now()
		ta += s2.Sub(s); tc += s3.Sub(s2); tw += s4.Sub(s3)
	}
	st := h.Stats()
	d := float64(K * n)
	t.Logf("per obj: alloc %.1f collect %.1f wait %.1f ns; cycles %d pause %.1f ns/obj", float64(ta)/d, float64(tc)/d, float64(tw)/d, st.Cycles, float64(st.PauseTotal)/d)
	m.Detach()
	h.Close()
}
