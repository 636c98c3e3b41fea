//go:build race || !(amd64 || arm64)

package heap

import "sync/atomic"

// storeFreedGen is the atomic store, under the race detector and where
// an aligned word store is not known to be atomic in hardware; see
// genstore.go.
func storeFreedGen(w *atomic.Uint64, v uint64) { w.Store(v) }

// loadHV is the atomic load of the handle word off bytes into s.hv (see
// genstore.go).
func loadHV(s *span, off uintptr) uint64 { return s.hv[off/8].Load() }
