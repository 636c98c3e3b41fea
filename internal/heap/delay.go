package heap

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// epoch is the origin of nanotime.
var epoch = time.Now()

// nanotime returns monotonic nanoseconds since epoch (never 0 once the
// package is initialized and a nanosecond has passed).
func nanotime() int64 { return int64(time.Since(epoch)) + 1 }

// delayHist is a histogram of durations with four buckets per power of two
// (each bucket spans at most a quarter of its lower bound, so a quantile
// read from it is within 25% of the truth), recorded lock-free. It holds
// the finalizer queue's delay: from the moment a finalizer block got its
// first record to the start of the block's first call, one sample per block
// (heap.go, step 7; final.go). Sampling per block keeps the clock reads off
// the per-finalizer path.
//
// Every field is atomic: record is called by the finalizer goroutine,
// quantile by Stats on any goroutine. record adds to the bucket before n,
// so quantile may see a sample in its bucket that n does not count yet; it
// uses n only to skip the scan when no sample was ever recorded.
type delayHist struct {
	n      atomic.Uint64 // samples recorded; read first by quantile
	counts [64 * 4]atomic.Uint64
}

func delayBucket(ns int64) int {
	if ns < 4 {
		return int(max(ns, 0))
	}
	u := uint64(ns)
	e := bits.Len64(u) - 1         // 2^e <= ns < 2^(e+1)
	sub := int(u>>(uint(e)-2)) & 3 // the two bits below the leading one
	return e*4 + sub
}

// bucketUpper returns the largest duration bucket i holds.
func bucketUpper(i int) time.Duration {
	if i < 4 {
		return time.Duration(i)
	}
	e, sub := uint(i/4), uint64(i%4)
	return time.Duration(1<<e + (sub+1)<<(e-2) - 1)
}

func (d *delayHist) record(ns int64) {
	d.counts[delayBucket(ns)].Add(1)
	d.n.Add(1)
}

// quantile returns the upper bound of the bucket holding quantile q (0 < q
// <= 1) of the samples, and the number of samples; 0, 0 if there are none.
func (d *delayHist) quantile(q float64) (time.Duration, uint64) {
	if d.n.Load() == 0 {
		return 0, 0 // the common case of a heap without finalizers: no scan
	}
	var snap [len(d.counts)]uint64
	total := uint64(0)
	for i := range d.counts {
		snap[i] = d.counts[i].Load()
		total += snap[i]
	}
	if total == 0 {
		return 0, 0
	}
	rank := uint64(q*float64(total) + 0.5)
	rank = min(max(rank, 1), total)
	seen := uint64(0)
	for i, c := range snap {
		seen += c
		if seen >= rank {
			return bucketUpper(i), total
		}
	}
	return bucketUpper(len(snap) - 1), total
}
