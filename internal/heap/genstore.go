//go:build !race && (amd64 || arm64)

package heap

import (
	"sync/atomic"
	"unsafe"
)

// storeFreedGen writes the handle word of a slot the sweeper frees, with a
// plain store. Everyone who may legitimately read the word is ordered
// after the sweeper by the span's publication: a mutator allocates the
// slot, or reaches the span through the sweepgen check (SetFinalizer,
// AddCleanup, MakeWeak, Pin), only after the sweeper's sweepgen store or
// the central lists' mutex; the mark runs once sweeping is done. The one
// reader the sweeper races with is Deref through a ref to the freed
// object, which is a misuse the program has no right to (the object was
// unreachable); on amd64 and arm64 an aligned word store is atomic in
// hardware, so that Deref sees the old handle or the new one, and an
// atomic store would not tell it more: it could equally have loaded the
// word just before the store. The atomic store is a locked instruction
// (XCHG on amd64) per freed object; the race detector's build keeps it
// (genstore_race.go), so that a test of that misuse is not reported as a
// race in reclaim.
func storeFreedGen(w *atomic.Uint64, v uint64) { plainStore(w, v) }

// loadHV reads the handle word off bytes into s.hv, for Deref, with a
// plain load, which the compiler addresses from the array and off in one
// instruction (the atomic load's intrinsic took an add of its own before
// it). The word is aligned, so the hardware reads it whole; see
// storeFreedGen for who may race with it.
func loadHV(s *span, off uintptr) uint64 {
	return *(*uint64)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(s.hv)), off))
}
