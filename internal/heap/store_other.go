//go:build !amd64 || race

package heap

import "sync/atomic"

// storeHandles stores vals[k] into hv[slots[k]] for every k, with atomic
// stores; see store_amd64.go.
func storeHandles(hv []atomic.Uint64, slots []uint32, vals []uint64) {
	for k, i := range slots {
		hv[i].Store(vals[k])
	}
}
