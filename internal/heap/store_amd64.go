//go:build !race

package heap

import "sync/atomic"

// storeHandles stores vals[k] into hv[slots[k]] for every k, with plain
// MOVs (store_amd64.s). On amd64 an aligned 8-byte store is atomic and
// stores become visible in program order (TSO), so a lock-free reader
// (Deref, check, the mark) sees each word whole, old or new, and whatever
// publishes the sweep afterwards (the span's sweepgen store, the central's
// lock) publishes these stores too: they are release stores, which is all
// the sweeper needs. sync/atomic's Store is an XCHG, which also waits for
// the store buffer to drain, and the sweeper makes one per freed object.
// Under the race detector, which cannot see stores made in assembly, the
// portable version (store_other.go) is used.
// REQUIRES: every slots[k] < len(hv); len(vals) >= len(slots).
//
//go:noescape
func storeHandles(hv []atomic.Uint64, slots []uint32, vals []uint64)
