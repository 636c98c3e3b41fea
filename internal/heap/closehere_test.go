package heap

import (
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
	"github.com/reclaimgc/reclaim/internal/layout"
)

type hereObj struct{ v int64 }

// closeWaitLimit bounds the waits of TestCloseWaitsForFinalizerAtSafepoint:
// liveness, not speed.
const closeWaitLimit = 30 * time.Second

// recvOrFail waits for ch, failing t after closeWaitLimit.
func recvOrFail(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(closeWaitLimit):
		t.Fatalf("waited %v for %s", closeWaitLimit, what)
	}
}

// hereCall is what hereObjType's finalizer does: set by the test that
// uses the type, before the first call.
var hereCall func(m *Mutator, x handle.Handle)

var hereObjType = RegisterType(&Type{
	Name:    "hereObj",
	Layout:  layout.Of(reflect.TypeFor[hereObj](), nil),
	Size:    unsafe.Sizeof(hereObj{}),
	NewSlab: func(n int) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(make([]hereObj, n))) },
	Clear:   func(p unsafe.Pointer) { *(*hereObj)(p) = hereObj{} },
	FinCall: func(m *Mutator, x handle.Handle, _ unsafe.Pointer) { hereCall(m, x) },
})

// TestCloseWaitsForFinalizerAtSafepoint: with FinalizersAtSafepoints, a
// mutator's safepoint runs a finalizer, and Close begins on another
// goroutine while the call is under way. Close waited only for the
// cleanups and ran the finalizers still queued, then released every span:
// the finalizer's object was freed under the call, which failed reading
// it (TestCloseRacesCollect saw it, rarely, at the safepoint of the
// Collect that Close waits for). Close now waits for the call, and no
// mutator takes another record once it waits.
func TestCloseWaitsForFinalizerAtSafepoint(t *testing.T) {
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1, FinalizersAtSafepoints: true, FinalizerBudget: 1,
		FinalizerBlockThreshold: time.Hour}) // no timer wakes Close: only the call's end
	started := make(chan struct{})
	release := make(chan struct{})
	var calls, derefs int
	hereCall = func(fm *Mutator, x handle.Handle) {
		calls++
		if calls == 1 {
			close(started)
			<-release
		}
		(*hereObj)(fm.Deref(x)).v++ // panics if Close freed the object
		derefs++
	}
	defer func() { hereCall = nil }()
	const n = 3
	fn := unsafe.Pointer(&calls) // any non-nil word: FinCall ignores it
	for range n {
		x, err := m.Alloc(hereObjType)
		if err != nil {
			t.Fatal(err)
		}
		m.SetFinalizer(x, fn)
	}
	// Queue the three; the Collect's own safepoint runs the first (the
	// budget is one) and blocks in it.
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		m.Collect()
	}()
	recvOrFail(t, started, "the first finalizer to start at the Collect's safepoint")

	waiting := make(chan struct{}, 1)
	testHookCloseWaitsHere = func(*Heap) {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}
	defer func() { testHookCloseWaitsHere = nil }()
	closed := make(chan error, 1)
	go func() { closed <- h.Close() }()
	// Close either waits for the call (the hook) or, as it did, returns
	// without: then the call goes on with its object freed.
	select {
	case <-waiting:
	case err := <-closed:
		closed <- err
	case <-time.After(closeWaitLimit):
		t.Fatal("Close neither waited for the finalizer nor returned")
	}
	close(release)
	recvOrFail(t, collected, "the Collect")
	var err error
	select {
	case err = <-closed:
	case <-time.After(closeWaitLimit):
		t.Fatal("Close did not return after the finalizer it waited for")
	}
	if err != nil {
		t.Fatal(err)
	}
	if p := h.Stats().Panics; p != 0 {
		t.Errorf("%d finalizers panicked: the object of the one under way was freed by Close", p)
	}
	if calls != n || derefs != n {
		t.Errorf("finalizers called %d times, read their object %d times; want %d and %d", calls, derefs, n, n)
	}
	m.Detach()
}
