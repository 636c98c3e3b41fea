package workload

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

// safepointEvery is how many objects the allocating workloads allocate
// between two safepoints: often enough that the pacer's collections run at
// the heap's goal, rarely enough that a safepoint's few loads do not count.
const safepointEvery = 1000

// newWorkload is New[T] against new(T). Not inlined into All (see
// getWorkload).
//
//go:noinline
func newWorkload() Workload {
	return Workload{
		Name: "new",
		Doc:  "allocate one 32-byte object and drop it; collections amortized (reclaim: a safepoint every 1000 objects, paced at GCPercent 100)",
		Reclaim: func(b *testing.B) {
			_, m := newHeap(b, reclaim.Options{})
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sinkRef = reclaim.New[obj](m)
				if i%safepointEvery == 0 {
					m.Safepoint()
				}
			}
		},
		Go: func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				sinkPtr = new(gobj)
			}
		},
	}
}

// getObjects is how many objects the get workload reads round-robin.
const getObjects = 1024

// getWorkload is not inlined into All, so that its closures are compiled
// on their own, with Get inlined into the loop as in a caller's code.
//
//go:noinline
func getWorkload() Workload {
	return Workload{
		Name: "get",
		Doc:  "read one field through a ref (Ref.Get) vs through a Go pointer, round-robin over 1024 live objects",
		Reclaim: func(b *testing.B) {
			_, m := newHeap(b, reclaim.Options{})
			var refs [getObjects]reclaim.Ref[obj]
			for i := range refs {
				refs[i] = reclaim.New[obj](m)
				refs[i].Get(m).pad[0] = uint64(i)
			}
			var sum uint64
			b.ResetTimer()
			for i := range b.N {
				sum += refs[uint(i)%getObjects].Get(m).pad[0]
			}
			sinkInt = sum
		},
		Go: func(b *testing.B) {
			var ptrs [getObjects]*gobj
			for i := range ptrs {
				ptrs[i] = &gobj{pad: [2]uint64{uint64(i)}}
			}
			var sum uint64
			b.ResetTimer()
			for i := range b.N {
				sum += ptrs[uint(i)%getObjects].pad[0]
			}
			sinkInt = sum
		},
	}
}

// allocBatch is Scaling("alloc", n): allocate n objects linked in a list,
// so all n are live at once, drop the list and collect; per object.
func allocBatch(n int) Workload {
	return Workload{
		Name: scalingName("alloc", n),
		Doc:  fmt.Sprintf("allocate a list of %d 32-byte objects, drop it, collect; per object", n),
		Reclaim: func(b *testing.B) {
			_, m := newHeap(b, reclaim.Options{GCPercent: -1})
			k := batches(b, n)
			b.ResetTimer()
			start := time.Now()
			for range k {
				var prev reclaim.Ref[obj]
				for range n {
					r := reclaim.New[obj](m)
					r.Get(m).a = prev
					prev = r
				}
				m.Collect()
			}
			reportPerObject(b, time.Since(start), k*n)
		},
		Go: func(b *testing.B) {
			k := batches(b, n)
			runtime.GC()
			b.ResetTimer()
			start := time.Now()
			for range k {
				goList(n)
				runtime.GC()
			}
			reportPerObject(b, time.Since(start), k*n)
		},
	}
}

//go:noinline
func goList(n int) {
	var prev *gobj
	for range n {
		prev = &gobj{a: prev}
	}
	sinkPtr = prev
	sinkPtr = nil
}

// scalingName names a Scaling workload: kind for the suite's N, kind/N
// otherwise.
func scalingName(kind string, n int) string {
	if n == runN {
		return kind
	}
	return fmt.Sprintf("%s/%d", kind, n)
}
