package heap

import (
	"reflect"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
	"github.com/reclaimgc/reclaim/internal/layout"
)

type finObj struct{ v int64 }

// finObjCalls counts finObjType's finalizer calls.
var finObjCalls atomic.Int64

var finObjType = RegisterType(&Type{
	Name:    "finObj",
	Layout:  layout.Of(reflect.TypeFor[finObj](), nil),
	Size:    unsafe.Sizeof(finObj{}),
	NewSlab: func(n int) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(make([]finObj, n))) },
	Clear:   func(p unsafe.Pointer) { *(*finObj)(p) = finObj{} },
	FinCall: func(*Mutator, handle.Handle, unsafe.Pointer) { finObjCalls.Add(1) },
})

// TestFinalizerCountsInOrder checks that a block of finalizers is counted as
// queued before the finalizer goroutine can run it, so that no Stats
// snapshot shows more executed than queued. The hook holds the sweeper
// just after it linked a block, wakes the goroutine and lets it run the
// block, then takes a snapshot: a sweeper once counted the block only
// after that point.
func TestFinalizerCountsInOrder(t *testing.T) {
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
	var armed atomic.Bool
	var snap Stats
	var ran atomic.Bool
	testHookFinPublished = func(f *finState) {
		if !armed.CompareAndSwap(true, false) {
			return
		}
		before := f.executed.Load()
		f.status.or(fingWake)
		f.wake()
		// Liveness, not speed: the deadline only keeps a sleeping
		// goroutine from hanging the test.
		for deadline := time.Now().Add(10 * time.Second); f.executed.Load() == before && time.Now().Before(deadline); {
			time.Sleep(100 * time.Microsecond)
		}
		ran.Store(f.executed.Load() != before)
		snap = h.Stats()
	}
	defer func() { testHookFinPublished = nil }()
	fn := unsafe.Pointer(&finObjCalls) // any non-nil word: FinCall ignores it
	for range 2 * finBlockLen {
		x, err := m.Alloc(finObjType)
		if err != nil {
			t.Fatal(err)
		}
		m.SetFinalizer(x, fn)
	}
	m.Collect() // starts the finalizer goroutine's work
	m.Drain(t.Context())
	for range 2 * finBlockLen {
		x, err := m.Alloc(finObjType)
		if err != nil {
			t.Fatal(err)
		}
		m.SetFinalizer(x, fn)
	}
	armed.Store(true)
	m.Collect()
	if err := m.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !ran.Load() {
		t.Fatal("the hook did not see the finalizer goroutine run the block it held")
	}
	if snap.FinalizersExecuted > snap.FinalizersQueued {
		t.Fatalf("a snapshot showed %d finalizers executed of %d queued", snap.FinalizersExecuted, snap.FinalizersQueued)
	}
}

// TestQueuedBlockIsNotIdle checks, in both modes, that once a block of
// finalizers is linked on the queue the heap's finalizers are not idle: in
// FinalizersAtSafepoints mode the pending count, which idle reads, was once
// raised only after the link, so a Drain could return with the block
// queued.
func TestQueuedBlockIsNotIdle(t *testing.T) {
	for _, here := range []bool{false, true} {
		h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1, FinalizersAtSafepoints: here})
		var checked, idle atomic.Bool
		testHookFinPublished = func(f *finState) {
			if !checked.Swap(true) {
				idle.Store(f.idle())
			}
		}
		fn := unsafe.Pointer(&finObjCalls)
		for range 10 {
			x, err := m.Alloc(finObjType)
			if err != nil {
				t.Fatal(err)
			}
			m.SetFinalizer(x, fn)
		}
		// The finalizer goroutine must be asleep (Wait set) before the
		// cycle: then only the wake that publish gives after the hook can
		// start it. One that started late would take the block between
		// its link and the hook, run it, and be idle again.
		if !here {
			deadline := time.Now().Add(10 * time.Second)
			for h.fin.status.load()&fingWait == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("the finalizer goroutine did not go to sleep in 10s with nothing queued: status %s", FingStatusName(h.fin.status.load()))
				}
				runtime.Gosched()
			}
		}
		m.Collect()
		testHookFinPublished = nil
		if !checked.Load() {
			t.Fatalf("FinalizersAtSafepoints %v: no block was published", here)
		}
		if idle.Load() {
			t.Errorf("FinalizersAtSafepoints %v: idle with a block of finalizers just queued", here)
		}
		if err := m.Drain(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAbandonedMessage checks that an abandoned collection's panic says
// whose code failed.
func TestAbandonedMessage(t *testing.T) {
	for _, c := range []struct {
		v    any
		want string
	}{
		{"boom", "reclaim: collection abandoned, the heap unchanged: the mark's ScanRoots or a Trace method panicked: boom"},
		{"reclaim: internal error: x", "reclaim: collection abandoned, the heap unchanged: internal error: x"},
		{goexitInMark{}, "reclaim: collection abandoned, the heap unchanged: " + goexitInMark{}.String()},
	} {
		if got := abandonedMessage(c.v); got != c.want {
			t.Errorf("abandonedMessage(%#v) = %q, want %q", c.v, got, c.want)
		}
	}
}
