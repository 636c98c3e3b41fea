package heap

import (
	"runtime"
	"strconv"
	"sync"
	"time"
)

// yield backs off while another goroutine finishes a short piece of work
// (a span's sweep).
func yield(spins int) {
	if spins < 64 {
		runtime.Gosched()
		return
	}
	time.Sleep(10 * time.Microsecond)
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// event is a broadcast without a lost wake-up: a waiter takes the channel
// before it checks its condition, and every broadcast closes the channel it
// may hold.
type event struct {
	mu sync.Mutex
	ch chan struct{} // protected by mu; nil until someone waits
}

func (e *event) wait() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ch == nil {
		e.ch = make(chan struct{})
	}
	return e.ch
}

func (e *event) broadcast() {
	e.mu.Lock()
	if e.ch != nil {
		close(e.ch)
		e.ch = nil
	}
	e.mu.Unlock()
}
