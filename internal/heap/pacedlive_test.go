package heap

import (
	"math"
	"testing"
)

// TestPacedLive: the total compared with the goal saturates instead of
// wrapping to a negative number, which no goal would ever reach.
func TestPacedLive(t *testing.T) {
	for _, c := range []struct{ live, ext, base, want int64 }{
		{100, 50, 20, 130},
		{100, 20, 50, 70},                                // external bytes given back since the flip
		{100, math.MaxInt64 - 1, 0, math.MaxInt64},       // overflows: saturates
		{0, math.MaxInt64, 0, math.MaxInt64},             // exactly at the bound
		{1 << 40, math.MaxInt64, math.MaxInt64, 1 << 40}, // the flip saw them all
	} {
		if got := pacedLive(c.live, c.ext, c.base); got != c.want {
			t.Errorf("pacedLive(%d, %d, %d) = %d, want %d", c.live, c.ext, c.base, got, c.want)
		}
	}
}
