//go:build !race

package heap

// plainMark lets a mark with one worker write the mark state (mark bits,
// scan bits, queued flags) with plain loads and stores instead of atomic
// read-modify-writes: see markWorker.solo. The race detector's build keeps
// the atomics (markplain_race.go).
const plainMark = true
