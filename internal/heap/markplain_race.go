//go:build race

package heap

// plainMark is false under the race detector: every mark uses atomics on
// the mark state, as with several workers; see markplain.go.
const plainMark = false
