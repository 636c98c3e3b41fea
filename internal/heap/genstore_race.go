//go:build race || !(amd64 || arm64)

package heap

import "sync/atomic"

// storeFreedGen is the atomic store, under the race detector and where
// an aligned word store is not known to be atomic in hardware; see
// genstore.go.
func storeFreedGen(w *atomic.Uint64, v uint64) { w.Store(v) }
