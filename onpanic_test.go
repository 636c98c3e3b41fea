package reclaim_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/reclaimgc/reclaim"
)

type onPanicObj struct{ ID int }

// An OnPanic that panics itself is logged with the panic it was given, and
// the finalizers and cleanups after it still run: the panic was raised in
// the deferred function of the goroutine running the queue, where it ended
// the process.
func TestOnPanicThatPanics(t *testing.T) {
	for _, here := range []bool{false, true} {
		t.Run(fmt.Sprint("atSafepoints=", here), func(t *testing.T) {
			logs, logger := newLogBuffer()
			var calls atomic.Int32
			h := newTestHeap(t, reclaim.Options{GCPercent: -1, FinalizersAtSafepoints: here, Logger: logger,
				OnPanic: func(p *reclaim.CallbackPanic) {
					calls.Add(1)
					panic("the handler's own panic")
				}})
			m := h.Attach()
			defer m.Detach()
			var ran atomic.Int32
			for i := range 4 {
				r := reclaim.New[onPanicObj](m)
				r.Get(m).ID = i
				reclaim.SetFinalizer(m, r, func(_ *reclaim.Mutator, r reclaim.Ref[onPanicObj]) {
					ran.Add(1)
					panic("finalizer panic")
				})
				reclaim.AddCleanup(m, reclaim.New[onPanicObj](m), func(int) {
					ran.Add(1)
					panic("cleanup panic")
				}, i)
			}
			collectDrain(t, m, h)
			if ran.Load() != 8 || calls.Load() != 8 {
				t.Fatalf("%d of 8 callbacks ran, OnPanic called %d times (want 8 and 8)", ran.Load(), calls.Load())
			}
			out := logs.String()
			for _, want := range []string{"OnPanic panicked", "the handler's own panic", "finalizer panic", "cleanup panic"} {
				if !strings.Contains(out, want) {
					t.Errorf("the log does not say %q:\n%s", want, out)
				}
			}
		})
	}
}
