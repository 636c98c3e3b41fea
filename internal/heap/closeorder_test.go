package heap

import (
	"reflect"
	"slices"
	"sync"
	"testing"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
	"github.com/reclaimgc/reclaim/internal/layout"
)

// orderObj holds a ref: the collector sees next.
type orderObj struct {
	next handle.Handle
	id   int64
}

// orderCall is what orderObjType's finalizer does: set by the test that
// uses the type, before the first call.
var orderCall func(m *Mutator, x handle.Handle)

var orderObjType = RegisterType(&Type{
	Name:    "orderObj",
	Layout:  layout.Of(reflect.TypeFor[orderObj](), nil),
	Size:    unsafe.Sizeof(orderObj{}),
	NewSlab: func(n int) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(make([]orderObj, n))) },
	Clear:   func(p unsafe.Pointer) { *(*orderObj)(p) = orderObj{} },
	FinCall: func(m *Mutator, x handle.Handle, _ unsafe.Pointer) { orderCall(m, x) },
})

// TestCloseRunsQueuedFinalizerBeforeWhatItReaches: with
// FinalizersAtSafepoints, the finalizer of Q, which the last mark found
// unreachable, is queued by the sweep Close finishes and run in Close's
// first round. Q reaches B, which has a finalizer too and which the mark
// kept for Q's (it marks the referents of finalizable objects). B's
// finalizer must not run before Q's: the queued record is a root of the
// walk that picks a round's finalizers, as it is of the next mark.
func TestCloseRunsQueuedFinalizerBeforeWhatItReaches(t *testing.T) {
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1, FinalizersAtSafepoints: true})
	var ran []int64
	orderCall = func(fm *Mutator, x handle.Handle) {
		ran = append(ran, (*orderObj)(fm.Deref(x)).id)
	}
	defer func() { orderCall = nil }()
	fn := unsafe.Pointer(&ran) // any non-nil word: FinCall ignores it
	alloc := func(id int64) handle.Handle {
		x, err := m.Alloc(orderObjType)
		if err != nil {
			t.Fatal(err)
		}
		(*orderObj)(m.Deref(x)).id = id
		m.SetFinalizer(x, fn)
		return x
	}
	b := alloc(2) // the lower slot: the slot order runs B first
	q := alloc(1)
	(*orderObj)(m.Deref(q)).next = b
	m.Detach()
	collectNoSweep(h) // Q is found unreachable; its span left unswept
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if want := []int64{1, 2}; !slices.Equal(ran, want) {
		t.Errorf("Close ran the finalizers of %v, want %v (Q's, then B's)", ran, want)
	}
}

// TestCloseRunsChainInOneRound: a chain of finalizable objects, each
// reaching the next, runs head first in one round of Close, from one walk
// of the heap. Picking a round's finalizers as a collection does (the
// heads alone) took a round, and a mark of the whole heap, per link.
func TestCloseRunsChainInOneRound(t *testing.T) {
	const n = 1000
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
	var ran []int64
	orderCall = func(fm *Mutator, x handle.Handle) {
		ran = append(ran, (*orderObj)(fm.Deref(x)).id)
	}
	rounds := 0
	testHookCloseCleanupsQueued = func(*Heap) { rounds++ }
	defer func() { orderCall, testHookCloseCleanupsQueued = nil, nil }()
	fn := unsafe.Pointer(&ran) // any non-nil word: FinCall ignores it
	next := handle.Handle(0)
	for id := int64(n); id >= 1; id-- { // the tail first: the slot order is the chain's reversed
		x, err := m.Alloc(orderObjType)
		if err != nil {
			t.Fatal(err)
		}
		o := (*orderObj)(m.Deref(x))
		o.id, o.next = id, next
		m.SetFinalizer(x, fn)
		next = x
	}
	m.Detach()
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if len(ran) != n {
		t.Fatalf("Close ran %d finalizers, want %d", len(ran), n)
	}
	for i, id := range ran {
		if id != int64(i+1) {
			t.Fatalf("finalizer %d to run was object %d's, want %d's (the chain from its head)", i, id, i+1)
		}
	}
	// The round that runs them, and the one that finds none left.
	if rounds > 2 {
		t.Errorf("Close took %d rounds for a chain of %d, want 2", rounds, n)
	}
}

// chainCleanup is a cleanup whose argument is an object: it records its
// id when it runs.
type chainCleanup struct {
	CleanupSpecial
	arg handle.Handle
	id  int64
	log *chainLog
}

// chainLog is the order chainCleanups ran in; they run on the cleanup
// pool's goroutines.
type chainLog struct {
	mu  sync.Mutex
	ran []int64
}

// Zero drops the argument of a stopped record (CleanupRecord).
func (c *chainCleanup) Zero() { c.arg = 0 }

// FuncPC says the record holds no function of its own (CleanupRecord).
func (c *chainCleanup) FuncPC() uintptr { return 0 }

func (c *chainCleanup) Run() {
	c.log.mu.Lock()
	c.log.ran = append(c.log.ran, c.id)
	c.log.mu.Unlock()
}

func (c *chainCleanup) Scan(buf []handle.Handle) []handle.Handle {
	if c.arg != 0 {
		buf = append(buf, c.arg)
	}
	return buf
}

var chainCleanupType = &CleanupType{Layout: layout.Of(reflect.TypeFor[handle.Handle](), nil)}

// addChainCleanups makes a chain of n objects, x[1] ... x[n], and
// registers on each x[i] a cleanup with id i whose argument is x[i+1]
// (none for x[n]). The slot order is the chain's reversed when reversed
// is set.
func addChainCleanups(t testing.TB, m *Mutator, n int, reversed bool, l *chainLog) {
	xs := make([]handle.Handle, n+2)
	for k := 1; k <= n; k++ {
		i := k
		if reversed {
			i = n + 1 - k
		}
		x, err := m.Alloc(orderObjType)
		if err != nil {
			t.Fatal(err)
		}
		xs[i] = x
	}
	for i := 1; i <= n; i++ {
		c := &chainCleanup{arg: xs[i+1], id: int64(i), log: l}
		c.Init(c, chainCleanupType)
		m.AddCleanup(xs[i], &c.CleanupSpecial)
	}
}

// TestCloseRunsCleanupChainInOneRound: a chain of cleanups, X1's argument
// X2, X2's argument X3, ..., runs in chain order in one round of Close.
// A round ran the cleanups that no registered cleanup's argument reaches,
// the chain's head alone, so Close took a round, and a walk of the heap,
// per link.
func TestCloseRunsCleanupChainInOneRound(t *testing.T) {
	const n = 1000
	for _, reversed := range []bool{false, true} {
		h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
		var l chainLog
		rounds := 0
		testHookCloseCleanupsQueued = func(*Heap) { rounds++ }
		addChainCleanups(t, m, n, reversed, &l)
		m.Detach()
		err := h.Close()
		testHookCloseCleanupsQueued = nil
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
		if len(l.ran) != n {
			t.Fatalf("Close ran %d cleanups, want %d", len(l.ran), n)
		}
		for i, id := range l.ran {
			if id != int64(i+1) {
				t.Fatalf("reversed %v: cleanup %d to run was X%d's, want X%d's (the chain from its head)", reversed, i, id, i+1)
			}
		}
		// The round that runs them, and the one that finds none left.
		if rounds > 2 {
			t.Errorf("reversed %v: Close took %d rounds for a chain of %d cleanups, want at most 2", reversed, rounds, n)
		}
	}
}

// TestCloseCleanupLevelsThroughCycle: the levels that order a round's
// cleanups follow paths through a cycle of fields. X's argument is A, on
// the cycle A, B, C; C's argument is D; Y, allocated first, holds C, so
// the walk enters the cycle at C, from Y, before it comes to A from X.
// Levels propagated along the walk's reverse postorder alone gave C X's
// level only after C had passed its own to D, and D's cleanup ran in C's
// wave.
func TestCloseCleanupLevelsThroughCycle(t *testing.T) {
	h, m := testHeap(t, Config{MarkWorkers: 1, GCPercent: -1})
	var l chainLog
	alloc := func() handle.Handle {
		x, err := m.Alloc(orderObjType)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	cleanup := func(x, arg handle.Handle, id int64) {
		c := &chainCleanup{arg: arg, id: id, log: &l}
		c.Init(c, chainCleanupType)
		m.AddCleanup(x, &c.CleanupSpecial)
	}
	y, x, a, b, c, d := alloc(), alloc(), alloc(), alloc(), alloc(), alloc()
	(*orderObj)(m.Deref(y)).next = c
	(*orderObj)(m.Deref(a)).next = b
	(*orderObj)(m.Deref(b)).next = c
	(*orderObj)(m.Deref(c)).next = a
	cleanup(y, 0, 1)
	cleanup(x, a, 2)
	cleanup(c, d, 3)
	cleanup(d, 0, 4)
	m.Detach()
	levels := h.cleanupLevels(h.spanSnapshot(), nil)
	want := map[handle.Handle]int32{y: 0, x: 0, c: 1, d: 2}
	for o, lv := range want {
		if got := levels[o]; got != lv {
			t.Errorf("level of %v is %d, want %d (levels %v)", o, got, lv, levels)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	pos := map[int64]int{}
	for i, id := range l.ran {
		pos[id] = i
	}
	if len(l.ran) != 4 || pos[2] > pos[3] || pos[3] > pos[4] {
		t.Errorf("Close ran the cleanups %v, want X's (2) before C's (3) before D's (4)", l.ran)
	}
}
