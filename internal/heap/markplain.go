//go:build !race

package heap

// plainMark lets the mark write a span's mark state (mark bits, scan bits,
// queued flag) with plain loads and stores where only one worker touches
// it: see markWorker.solo and markWorker.ownPlain, and the top of mark.go.
// The race detector's build keeps the atomics (markplain_race.go).
const plainMark = true
