package heap

import (
	"strings"
	"sync"
	"testing"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// pinPanic runs f and returns the message of its panic, "" if none.
func pinPanic(f func()) (msg string) {
	defer func() {
		if v := recover(); v != nil {
			s, ok := v.(string)
			if !ok {
				s = "non-string panic"
			}
			msg = s
		}
	}()
	f()
	return ""
}

// TestPinUnpinRacingClose: Pin and Unpin from goroutines that are not
// mutators, while Close runs. A Pin that checked its ref before Close
// released the objects added to the pin table after Close had cleared it,
// and an Unpin of a pin Close had dropped panicked that the object was
// not pinned. Each call must either count as usual or panic saying the
// heap is closed, and the closed heap's table must stay empty.
func TestPinUnpinRacingClose(t *testing.T) {
	const workers = 8
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	for range rounds {
		h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
		xs := make([]handle.Handle, workers)
		for i := range xs {
			x, err := m.Alloc(vnodeType)
			if err != nil {
				t.Fatal(err)
			}
			xs[i] = x
		}
		h.Pin(xs[0]) // alive at Close, which drops the pin
		m.Detach()
		var wg sync.WaitGroup
		start := make(chan struct{})
		bad := make(chan string, 2*workers)
		for _, x := range xs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				// Until Pin panics: after Close returns, it must.
				for {
					if msg := pinPanic(func() { h.Pin(x) }); msg != "" {
						if msg != "reclaim: Pin on a closed heap" {
							bad <- msg
						}
						return
					}
					if msg := pinPanic(func() { h.Unpin(x) }); msg != "" {
						if msg != "reclaim: Unpin on a closed heap" {
							bad <- msg
						}
						return
					}
				}
			}()
		}
		close(start)
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(bad)
		for msg := range bad {
			t.Errorf("Pin or Unpin beside Close: panic %q, want one saying the heap is closed", msg)
		}
		h.mu.Lock()
		n := len(h.mu.pins)
		h.mu.Unlock()
		if n != 0 {
			t.Fatalf("the closed heap's pin table holds %d objects", n)
		}
		if msg := pinPanic(func() { h.Unpin(xs[0]) }); !strings.Contains(msg, "Unpin on a closed heap") {
			t.Errorf("Unpin after Close of a pin Close dropped: panic %q, want \"reclaim: Unpin on a closed heap\"", msg)
		}
	}
}
