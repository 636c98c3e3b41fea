package workload

import (
	"fmt"
	"runtime"
	"testing"
	"weak"

	"github.com/reclaimgc/reclaim"
)

// weakWorkload makes a weak reference to a live object and reads it back,
// round-robin over batch live objects. On both sides an object's weak
// handle is made once and shared by every later weak reference to it.
//
// Not inlined into All (see getWorkload).
//
//go:noinline
func weakWorkload(batch int) Workload {
	return Workload{
		Name:  "weak",
		Doc:   fmt.Sprintf("make a weak reference and read it back, over %d live objects (MakeWeak+Value vs weak.Make+Value)", batch),
		Peer:  "weak",
		PeerN: batch,
		Reclaim: func(b *testing.B) {
			_, m := newHeap(b, reclaim.Options{})
			refs := liveObjs(m, batch)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sinkRef = reclaim.MakeWeak(m, refs[i%batch]).Value(m)
			}
		},
		Go: func(b *testing.B) {
			ptrs := liveGoObjs(batch)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sinkPtr = weak.Make(ptrs[i%batch]).Value()
			}
			sinkPtr = nil
			runtime.KeepAlive(ptrs)
		},
	}
}
