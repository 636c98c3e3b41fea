package heap

import (
	"testing"
	"time"
)

func TestDelayBucketBounds(t *testing.T) {
	for _, ns := range []int64{0, 1, 3, 4, 5, 7, 8, 100, 1000, 12345, 999_999, 1 << 40} {
		i := delayBucket(ns)
		if up := bucketUpper(i); time.Duration(ns) > up {
			t.Fatalf("%d ns in bucket %d whose upper bound is %d", ns, i, up)
		}
		if i > 0 {
			if below := bucketUpper(i - 1); time.Duration(ns) <= below {
				t.Fatalf("%d ns in bucket %d, but bucket %d already holds up to %d", ns, i, i-1, below)
			}
		}
		if up := bucketUpper(i); ns >= 4 && float64(up) > 1.25*float64(ns)+1 {
			t.Fatalf("%d ns: bucket upper bound %d is more than 25%% above", ns, up)
		}
	}
}

func TestDelayQuantiles(t *testing.T) {
	var d delayHist
	if q, n := d.quantile(0.5); q != 0 || n != 0 {
		t.Fatalf("empty histogram: %v, %d", q, n)
	}
	for i := 1; i <= 1000; i++ {
		d.record(int64(i) * 1000) // 1 µs .. 1 ms
	}
	p50, n := d.quantile(0.5)
	p99, _ := d.quantile(0.99)
	if n != 1000 {
		t.Fatalf("%d samples, want 1000", n)
	}
	if p50 < 500*time.Microsecond || p50 > 625*time.Microsecond {
		t.Fatalf("p50 = %v, want within 25%% above 500µs", p50)
	}
	if p99 < 990*time.Microsecond || p99 > 1238*time.Microsecond {
		t.Fatalf("p99 = %v, want within 25%% above 990µs", p99)
	}
}
