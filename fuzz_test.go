package reclaim_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
	"github.com/reclaimgc/reclaim/internal/model"
)

// FuzzHeap is a model-based test: the fzState's bytes decode into a sequence
// of operations on a small heap, which internal/model runs too. After every
// collection, and after every Drain, the heap is compared with the model:
// which objects are live (and what their fields hold), which finalizers and
// cleanups ran (each exactly once per queuing), what weak references return,
// what the holder of resurrected objects holds, the panics reported and the
// heap's counters. Close at the end must run every finalizer and cleanup
// left, once.
//
// Input layout: byte 0 configures the heap (fzConfig); every following
// operation is one byte, op = b % fzNumOps on mutator (b / fzNumOps) % n,
// followed by its operand bytes. Missing bytes read as 0. With
// RECLAIM_FUZZ_TRACE set in the environment, each input logs the
// operations it ran and what the model predicted.
//
// The model is exact only where the heap is deterministic, so the test
// keeps to those points:
//   - A collection (Collect, or a cycle that an over-limit AddExternal makes
//     due at a Safepoint) first drains what earlier cycles queued: whether
//     a running cleanup's argument is still a root, or whether a finalizer
//     already stored its object, depends on timing.
//   - After a cycle that a Safepoint ran, sweeping goes on concurrently, so
//     until the next Drain the test does not use objects the model says
//     are dead (a stale ref to an object not yet swept still works).
//   - Every attached mutator must reach a safepoint for the world to stop,
//     so a collection runs either with the other mutators detached, or with
//     each of them spinning on Safepoint on a goroutine of its own.
func FuzzHeap(f *testing.F) {
	f.Add([]byte{0, fzOpAllocNode, fzOpAllocNode, fzOpLink, 0, 0, 1, fzOpCollect, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		runFuzzHeap(t, data)
	})
}

// The object types of the fuzzed heap. Each object keeps its model id.
type (
	fzNode struct {
		ID  uint64
		Out [fzSlots]reclaim.Object
	}
	fzLeaf struct {
		ID   uint64
		Data [2]uint64
	}
	// fzHolder is the pinned object finalizers store resurrected objects
	// into.
	fzHolder struct {
		Items []reclaim.Object
	}
	// fzArg is a cleanup argument that refers to an object without being
	// it.
	fzArg struct {
		CID uint64
		Obj reclaim.Object
	}
	// fzPanic is the value fuzzed finalizers and cleanups panic with.
	fzPanic struct {
		kind string
		id   int
	}
)

const (
	fzSlots      = 3   // reference fields of fzNode
	fzMaxObjects = 64  // allocations per input
	fzMaxOps     = 400 // operations per input
	// fzExternal is what an ExternalCycle op adds with AddExternal: past
	// fzLimit, so a collection becomes due.
	fzLimit    = 1 << 40
	fzExternal = 2 << 40
	fzWait     = 30 * time.Second // bound of every wait; far above need
	fzHang     = 2 * time.Minute  // bound of one input
)

// The operations.
const (
	fzOpAllocNode      = iota // -
	fzOpAllocLeaf             // -
	fzOpLink                  // a, slot, b
	fzOpCut                   // a, slot
	fzOpPin                   // a
	fzOpUnpin                 // a
	fzOpPushRoot              // a
	fzOpPopRoot               // -
	fzOpSetFinalizer          // a, behavior
	fzOpClearFinalizer        // a
	fzOpAddCleanup            // a, arg, flags
	fzOpStop                  // cleanup, goroutine
	fzOpMakeWeak              // a
	fzOpMakeLongWeak          // a
	fzOpSafepoint             // -
	fzOpCollect               // strategy
	fzOpDrain                 // -
	fzOpExternalCycle         // strategy
	fzOpReleaseHolder         // -
	fzOpOtherGoroutine        // - (the next op runs on a goroutine of its own)
	fzOpReattach              // -
	fzOpCheckWeaks            // -
	fzNumOps
)

var fzOpNames = [...]string{
	"AllocNode", "AllocLeaf", "Link", "Cut", "Pin", "Unpin", "PushRoot", "PopRoot",
	"SetFinalizer", "ClearFinalizer", "AddCleanup", "Stop", "MakeWeak", "MakeLongWeak",
	"Safepoint", "Collect", "Drain", "ExternalCycle", "ReleaseHolder", "OtherGoroutine",
	"Reattach", "CheckWeaks",
}

// fzConfig decodes byte 0 of an input.
//
//	bit 0    FinalizersAtSafepoints
//	bit 1    FinalizerBudget 1 (else unbounded)
//	bits 2-3 mutators: 1 + min(value, 2)
//	bit 4    MarkWorkers 2 (else 1)
//	bit 5    CleanupWorkers 2 (else 1)
//	bit 6    Debug
type fzConfig struct {
	here     bool
	budget   int
	mutators int
	opts     reclaim.Options
}

func fzDecodeConfig(b byte) fzConfig {
	c := fzConfig{here: b&1 != 0, mutators: 1 + min(int(b>>2&3), 2)}
	if b&2 != 0 {
		c.budget = 1
	}
	c.opts = reclaim.Options{
		GCPercent:              -1,
		MemoryLimit:            fzLimit,
		MarkWorkers:            1 + int(b>>4&1),
		CleanupWorkers:         1 + int(b>>5&1),
		Debug:                  b&64 != 0,
		FinalizersAtSafepoints: c.here,
		FinalizerBudget:        c.budget,
		Logger:                 slog.New(slog.DiscardHandler),
	}
	return c
}

// fzObj is the heap side of a model object: a ref of one of the two types.
type fzObj struct {
	id   model.ID
	node reclaim.Ref[fzNode] // set for nodes
	leaf reclaim.Ref[fzLeaf] // set for leaves
}

func (o *fzObj) obj() reclaim.Object {
	if !o.node.IsNil() {
		return o.node.Object()
	}
	return o.leaf.Object()
}

// fzValid reports whether o names a live object.
func fzValid(o reclaim.Object) bool {
	if o.IsNil() {
		return false
	}
	_, okN := reclaim.As[fzNode](o)
	_, okL := reclaim.As[fzLeaf](o)
	return okN || okL
}

// fzWeakRef is one of the four kinds of weak references the test makes.
type fzWeakRef interface {
	value(m *reclaim.Mutator) reclaim.Object
	same(o fzWeakRef) bool
}

type fzShort[T any] struct{ w reclaim.Weak[T] }
type fzLong[T any] struct{ w reclaim.LongWeak[T] }

func (w fzShort[T]) value(m *reclaim.Mutator) reclaim.Object { return w.w.Value(m).Object() }
func (w fzLong[T]) value(m *reclaim.Mutator) reclaim.Object  { return w.w.Value(m).Object() }
func (w fzShort[T]) same(o fzWeakRef) bool {
	x, ok := o.(fzShort[T])
	return ok && x.w == w.w
}
func (w fzLong[T]) same(o fzWeakRef) bool {
	x, ok := o.(fzLong[T])
	return ok && x.w == w.w
}

type fzWeak struct {
	key model.Weak
	ref fzWeakRef
}

// fzState is one run of FuzzHeap. Fields above mu are used by the operation
// being run only (on the fuzz goroutine, or on the goroutine an op was
// handed to, with a WaitGroup as the hand-off); mu guards what finalizers
// and cleanups write from their own goroutines.
type fzState struct {
	h        *reclaim.Heap
	cfg      fzConfig
	md       *model.Model
	objs     []*fzObj // by model id - 1
	muts     []*reclaim.Mutator
	holder   reclaim.Ref[fzHolder]
	cleanups []reclaim.Cleanup // by model cleanup id - 1
	weaks    []fzWeak
	canon    map[model.Weak]fzWeakRef // the first weak made per model key
	// sweepPending is set after a cycle that a Safepoint ran, until the
	// next Drain: objects the model says are dead may not be swept yet.
	sweepPending bool
	data         []byte
	pos          int
	traceMu      sync.Mutex // guards trace (read by the hang watchdog)
	trace        []string   // the operations run, for failure messages

	mu struct {
		sync.Mutex
		finRuns     []int            // finalizer registrations in the order they ran
		cleanupRuns []int            // cleanup ids in the order they ran
		panics      int              // OnPanic calls with a fzPanic value
		stack       []reclaim.Object // the embedder's roots, reported by ScanRoots
		errs        []string         // problems found on other goroutines
	}
}

func runFuzzHeap(t *testing.T, data []byte) {
	if len(data) == 0 {
		return
	}
	fz := &fzState{cfg: fzDecodeConfig(data[0]), md: model.New(), data: data, pos: 1, canon: make(map[model.Weak]fzWeakRef)}
	// A hang (a lost wake-up, a world that never stops) becomes a crash
	// with every goroutine's stack, which the fzState keeps as a failing
	// input.
	watchdog := time.AfterFunc(fzHang, func() {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		fmt.Fprintf(os.Stderr, "FuzzHeap: input %x still running after %v; operations:\n\t%s\n%s\n",
			data, fzHang, strings.Join(fz.traceSnapshot(), "\n\t"), buf)
		panic("FuzzHeap: hang")
	})
	defer watchdog.Stop()
	opts := fz.cfg.opts
	opts.ScanRoots = func(visit func(reclaim.Object)) {
		fz.mu.Lock()
		defer fz.mu.Unlock()
		for _, o := range fz.mu.stack {
			visit(o)
		}
	}
	opts.OnPanic = func(p *reclaim.CallbackPanic) {
		fz.mu.Lock()
		defer fz.mu.Unlock()
		if v, ok := p.Value.(fzPanic); !ok || v.kind != p.Kind {
			fz.mu.errs = append(fz.mu.errs, fmt.Sprintf("unexpected %s panic: %v", p.Kind, p.Value))
			return
		}
		fz.mu.panics++
	}
	fz.h = newTestHeap(t, opts)
	for range fz.cfg.mutators {
		fz.muts = append(fz.muts, fz.h.Attach())
	}
	fz.holder = reclaim.New[fzHolder](fz.muts[0])
	fz.h.Pin(fz.holder.Object())

	fail := func(err error) {
		t.Helper()
		tr := fz.trace
		if len(tr) > 60 {
			tr = tr[len(tr)-60:]
		}
		t.Fatalf("config %+v\nlast operations:\n\t%s\n%v", fz.cfg, strings.Join(tr, "\n\t"), err)
	}
	var other bool // the next op runs on a goroutine of its own
	for n := 0; n < fzMaxOps && fz.pos < len(data); n++ {
		b := fz.byte()
		op, mi := int(b)%fzNumOps, int(b)/fzNumOps%len(fz.muts)
		if op == fzOpOtherGoroutine {
			other = true
			continue
		}
		fz.logf("%s on m%d%s", fzOpNames[op], mi, map[bool]string{true: " (other goroutine)"}[other])
		var err error
		if other {
			var wg sync.WaitGroup
			wg.Go(func() { err = fz.run(op, mi) })
			wg.Wait()
			other = false
		} else {
			err = fz.run(op, mi)
		}
		if err == nil {
			err = fz.takeErrs()
		}
		if err != nil {
			fail(err)
		}
	}
	fz.logf("final Drain and Close")
	if err := fz.quiesce(fz.muts[0]); err != nil {
		fail(err)
	}
	if err := fz.close(); err != nil {
		fail(err)
	}
	if os.Getenv("RECLAIM_FUZZ_TRACE") != "" {
		t.Logf("config %+v\n\t%s", fz.cfg, strings.Join(fz.trace, "\n\t"))
	}
}

func (fz *fzState) logf(format string, args ...any) {
	fz.traceMu.Lock()
	fz.trace = append(fz.trace, fmt.Sprintf(format, args...))
	fz.traceMu.Unlock()
}

func (fz *fzState) traceSnapshot() []string {
	fz.traceMu.Lock()
	defer fz.traceMu.Unlock()
	return slices.Clone(fz.trace)
}

func (fz *fzState) byte() byte {
	if fz.pos >= len(fz.data) {
		return 0
	}
	b := fz.data[fz.pos]
	fz.pos++
	return b
}

func (fz *fzState) takeErrs() error {
	fz.mu.Lock()
	defer fz.mu.Unlock()
	if len(fz.mu.errs) == 0 {
		return nil
	}
	err := errors.New(strings.Join(fz.mu.errs, "\n"))
	fz.mu.errs = nil
	return err
}

func (fz *fzState) errorf(format string, args ...any) {
	fz.mu.Lock()
	fz.mu.errs = append(fz.mu.errs, fmt.Sprintf(format, args...))
	fz.mu.Unlock()
}

// pick chooses an object by the next byte b: live[b % #live] for b < 200,
// else objects[(b-200) % #objects], often a dead one. It returns nil if there is none, and
// never a dead one while sweepPending is set.
func (fz *fzState) pick() *fzObj {
	b := fz.byte()
	var live []*fzObj
	for _, o := range fz.objs {
		if fz.md.Alive(o.id) {
			live = append(live, o)
		}
	}
	if (b < 200 || fz.sweepPending) && len(live) > 0 {
		return live[int(b)%len(live)]
	}
	if len(fz.objs) == 0 || fz.sweepPending {
		return nil
	}
	return fz.objs[int(b-200)%len(fz.objs)]
}

// fzExpectPanic runs f and returns an error unless it panics with a
// message that begins "reclaim:".
func fzExpectPanic(what string, f func()) (err error) {
	defer func() {
		v := recover()
		if v == nil {
			err = fmt.Errorf("%s: expected a panic, got none", what)
			return
		}
		var msg string
		switch v := v.(type) {
		case string:
			msg = v
		case error:
			msg = v.Error()
		default:
			msg = fmt.Sprint(v)
		}
		if !strings.HasPrefix(msg, "reclaim:") {
			err = fmt.Errorf("%s: panic message %q does not begin with \"reclaim:\"", what, msg)
		}
	}()
	f()
	return nil
}

// fzApply runs the heap side of an operation whose model side returned merr:
// if the model rejected it, the heap must panic; otherwise it must not.
func fzApply(what string, merr error, f func()) error {
	if merr != nil {
		return fzExpectPanic(fmt.Sprintf("%s (model: %v)", what, merr), f)
	}
	f()
	return nil
}

// run runs one operation on mutator mi.
func (fz *fzState) run(op, mi int) error {
	m := fz.muts[mi]
	switch op {
	case fzOpAllocNode, fzOpAllocLeaf:
		if len(fz.objs) >= fzMaxObjects {
			return nil
		}
		o := &fzObj{}
		if op == fzOpAllocNode {
			o.id = fz.md.Alloc(fzSlots)
			o.node = reclaim.New[fzNode](m)
			o.node.Get(m).ID = uint64(o.id)
		} else {
			o.id = fz.md.Alloc(0)
			o.leaf = reclaim.New[fzLeaf](m)
			o.leaf.Get(m).ID = uint64(o.id)
		}
		fz.objs = append(fz.objs, o)
		fz.logf("  -> object %d (%v)", o.id, o.obj())

	case fzOpLink, fzOpCut:
		a := fz.pick()
		slot := int(fz.byte()) % fzSlots
		var b *fzObj
		if op == fzOpLink {
			b = fz.pick()
			if b == nil || !fz.md.Alive(b.id) {
				return nil // storing a stale ref is not what this op tests
			}
		}
		if a == nil || a.node.IsNil() {
			return nil
		}
		var bid model.ID
		var bo reclaim.Object
		if b != nil {
			bid, bo = b.id, b.obj()
		}
		fz.logf("  %d.Out[%d] = %d", a.id, slot, bid)
		return fzApply("Link", fz.md.Link(a.id, slot, bid), func() { a.node.Get(m).Out[slot] = bo })

	case fzOpPin, fzOpUnpin:
		a := fz.pick()
		if a == nil {
			return nil
		}
		fz.logf("  object %d", a.id)
		if op == fzOpPin {
			return fzApply("Pin", fz.md.Pin(a.id), func() { fz.h.Pin(a.obj()) })
		}
		return fzApply("Unpin", fz.md.Unpin(a.id), func() { fz.h.Unpin(a.obj()) })

	case fzOpPushRoot:
		a := fz.pick()
		if a == nil || !fz.md.Alive(a.id) {
			return nil
		}
		fz.logf("  object %d", a.id)
		if err := fz.md.PushRoot(a.id); err != nil {
			return err
		}
		fz.mu.Lock()
		fz.mu.stack = append(fz.mu.stack, a.obj())
		fz.mu.Unlock()

	case fzOpPopRoot:
		if _, err := fz.md.PopRoot(); err != nil {
			return nil
		}
		fz.mu.Lock()
		fz.mu.stack = fz.mu.stack[:len(fz.mu.stack)-1]
		fz.mu.Unlock()

	case fzOpSetFinalizer:
		a := fz.pick()
		beh := model.FinBehavior(fz.byte() % 3)
		if a == nil {
			return nil
		}
		f, merr := fz.md.SetFinalizer(a.id, beh)
		reg := 0
		if f != nil {
			reg = f.Reg
		}
		fz.logf("  object %d, %v, registration %d", a.id, beh, reg)
		return fzApply("SetFinalizer", merr, func() { fz.setFinalizer(m, a, reg, beh) })

	case fzOpClearFinalizer:
		a := fz.pick()
		if a == nil {
			return nil
		}
		fz.logf("  object %d", a.id)
		return fzApply("SetFinalizer(nil)", fz.md.ClearFinalizer(a.id), func() {
			if !a.node.IsNil() {
				reclaim.SetFinalizer(m, a.node, nil)
			} else {
				reclaim.SetFinalizer(m, a.leaf, nil)
			}
		})

	case fzOpAddCleanup:
		return fz.addCleanup(m)

	case fzOpStop:
		b, g := fz.byte(), fz.byte()
		if len(fz.cleanups) == 0 {
			return nil
		}
		cid := int(b)%len(fz.cleanups) + 1
		if fz.sweepPending && fz.md.Cleanups[cid-1].State == model.Queued {
			// The object was found dead but may not be swept yet: Stop
			// cancels the cleanup until the sweep queues it.
			return nil
		}
		took := fz.md.Stop(cid)
		fz.logf("  cleanup %d (model: stopped %v)", cid, took)
		c := fz.cleanups[cid-1]
		if g&1 != 0 {
			var wg sync.WaitGroup
			wg.Go(c.Stop) // Stop is safe from any goroutine, not only mutators
			wg.Wait()
		} else {
			c.Stop()
		}

	case fzOpMakeWeak, fzOpMakeLongWeak:
		return fz.makeWeak(m, op == fzOpMakeLongWeak)

	case fzOpSafepoint:
		m.Safepoint()

	case fzOpCollect, fzOpExternalCycle:
		return fz.collect(mi, op == fzOpExternalCycle, fz.byte()&1 != 0)

	case fzOpDrain:
		return fz.quiesce(m)

	case fzOpReleaseHolder:
		if err := fz.quiesce(m); err != nil {
			return err
		}
		fz.md.ReleaseHolder()
		fz.mu.Lock()
		fz.holder.Get(m).Items = nil
		fz.mu.Unlock()

	case fzOpReattach:
		m.Detach()
		fz.muts[mi] = fz.h.Attach()

	case fzOpCheckWeaks:
		return fz.checkWeaks(m)
	}
	return nil
}

func (fz *fzState) setFinalizer(m *reclaim.Mutator, a *fzObj, reg int, beh model.FinBehavior) {
	id := a.id
	if !a.node.IsNil() {
		reclaim.SetFinalizer(m, a.node, func(fm *reclaim.Mutator, r reclaim.Ref[fzNode]) {
			fz.finalizerRan(fm, reg, id, r.Object(), r.Get(fm).ID, beh)
		})
		return
	}
	reclaim.SetFinalizer(m, a.leaf, func(fm *reclaim.Mutator, r reclaim.Ref[fzLeaf]) {
		fz.finalizerRan(fm, reg, id, r.Object(), r.Get(fm).ID, beh)
	})
}

// finalizerRan is the body of every fuzzed finalizer; it runs on the
// finalizer goroutine, on a mutator at a safepoint, or in Close.
func (fz *fzState) finalizerRan(fm *reclaim.Mutator, reg int, id model.ID, o reclaim.Object, gotID uint64, beh model.FinBehavior) {
	fz.mu.Lock()
	fz.mu.finRuns = append(fz.mu.finRuns, reg)
	if gotID != uint64(id) {
		fz.mu.errs = append(fz.mu.errs, fmt.Sprintf("finalizer %d of object %d called with object %d", reg, id, gotID))
	}
	if beh == model.FinResurrect {
		hold := fz.holder.Get(fm)
		hold.Items = append(hold.Items, o)
	}
	fz.mu.Unlock()
	if beh == model.FinPanic {
		panic(fzPanic{"finalizer", reg})
	}
}

// cleanupRan is the body of every fuzzed cleanup; it runs on the cleanup
// pool, not as a mutator. arg is the object its argument refers to, which
// must still exist.
func (fz *fzState) cleanupRan(cid int, arg reclaim.Object, panics bool) {
	fz.mu.Lock()
	fz.mu.cleanupRuns = append(fz.mu.cleanupRuns, cid)
	if !arg.IsNil() && !fzValid(arg) {
		fz.mu.errs = append(fz.mu.errs, fmt.Sprintf("cleanup %d: its argument's object %v was freed before it ran", cid, arg))
	}
	fz.mu.Unlock()
	if panics {
		panic(fzPanic{"cleanup", cid})
	}
}

// addCleanup: operands a, arg (which object the argument refers to), flags
// (bit 0 panics, bits 1-2 the argument's shape: none, the bare Object, or
// an fzArg struct).
func (fz *fzState) addCleanup(m *reclaim.Mutator) error {
	a := fz.pick()
	argSel := fz.byte()
	flags := fz.byte()
	if a == nil {
		return nil
	}
	panics := flags&1 != 0
	shape := flags >> 1 % 3 // 0 none, 1 bare, 2 struct
	var arg *fzObj
	switch {
	case shape == 0:
	case argSel%8 == 0:
		arg = a
	default:
		fz.pos-- // reuse argSel to pick
		arg = fz.pick()
	}
	if arg != nil && !fz.md.Alive(arg.id) && arg != a {
		arg = nil // a stale ref in an argument is not what this op tests
	}
	var argID model.ID
	var argObj reclaim.Object
	if arg != nil {
		argID, argObj = arg.id, arg.obj()
	}
	if shape != 0 && arg == nil {
		shape = 0
	}
	c, merr := fz.md.AddCleanup(a.id, argID, panics, shape == 1)
	cid := len(fz.cleanups) + 1
	if c != nil && c.CID != cid {
		return fmt.Errorf("model cleanup id %d, test expected %d", c.CID, cid)
	}
	fz.logf("  object %d, arg %d (shape %d), panics %v, cleanup %d (model: %v)", a.id, argID, shape, panics, cid, merr)
	var rc reclaim.Cleanup
	err := fzApply("AddCleanup", merr, func() {
		switch shape {
		case 0:
			rc = fzAddCleanup(m, a, func(x uint64) { fz.cleanupRan(int(x), reclaim.Object{}, panics) }, uint64(cid))
		case 1:
			rc = fzAddCleanup(m, a, func(o reclaim.Object) { fz.cleanupRan(cid, o, panics) }, argObj)
		case 2:
			rc = fzAddCleanup(m, a, func(x fzArg) { fz.cleanupRan(int(x.CID), x.Obj, panics) }, fzArg{CID: uint64(cid), Obj: argObj})
		}
	})
	if err == nil && merr == nil {
		fz.cleanups = append(fz.cleanups, rc)
	}
	return err
}

func fzAddCleanup[S any](m *reclaim.Mutator, a *fzObj, f func(S), arg S) reclaim.Cleanup {
	if !a.node.IsNil() {
		return reclaim.AddCleanup(m, a.node, f, arg)
	}
	return reclaim.AddCleanup(m, a.leaf, f, arg)
}

func (fz *fzState) makeWeak(m *reclaim.Mutator, long bool) error {
	a := fz.pick()
	if a == nil {
		return nil
	}
	key, merr := fz.md.MakeWeak(a.id, long)
	fz.logf("  object %d, long %v (model: %+v, %v)", a.id, long, key, merr)
	var ref fzWeakRef
	err := fzApply("MakeWeak", merr, func() {
		switch {
		case !a.node.IsNil() && long:
			ref = fzLong[fzNode]{reclaim.MakeLongWeak(m, a.node)}
		case !a.node.IsNil():
			ref = fzShort[fzNode]{reclaim.MakeWeak(m, a.node)}
		case long:
			ref = fzLong[fzLeaf]{reclaim.MakeLongWeak(m, a.leaf)}
		default:
			ref = fzShort[fzLeaf]{reclaim.MakeWeak(m, a.leaf)}
		}
	})
	if err != nil || merr != nil {
		return err
	}
	// Weak refs made from one object (in one epoch) are equal; others not.
	if c, ok := fz.canon[key]; ok {
		if !ref.same(c) {
			return fmt.Errorf("MakeWeak of object %d (%+v): not equal to the weak ref made before in the same epoch", a.id, key)
		}
	} else {
		fz.canon[key] = ref
	}
	for _, w := range fz.weaks {
		if w.key != key && w.ref.same(ref) {
			return fmt.Errorf("MakeWeak of object %d (%+v): equal to the weak ref of %+v", a.id, key, w.key)
		}
	}
	fz.weaks = append(fz.weaks, fzWeak{key, ref})
	if got := ref.value(m); got != a.obj() {
		return fmt.Errorf("MakeWeak of object %d: Value is %v right away", a.id, got)
	}
	return nil
}

func (fz *fzState) checkWeaks(m *reclaim.Mutator) error {
	for i, w := range fz.weaks {
		want := fz.md.Value(w.key)
		got := w.ref.value(m)
		var wantObj reclaim.Object
		if want != 0 {
			wantObj = fz.objs[want-1].obj()
		}
		if got != wantObj {
			return fmt.Errorf("weak ref %d (%+v): Value %v, model says object %d (%v)", i, w.key, got, want, wantObj)
		}
	}
	return nil
}

// withOthersParked runs f on the fuzz goroutine while every mutator but
// lead is kept from holding the world up: detached (and replaced by a
// fresh mutator afterwards), or spinning on Safepoint on a goroutine of
// its own until f returns.
func (fz *fzState) withOthersParked(lead int, detach bool, f func()) {
	if detach {
		for j, m := range fz.muts {
			if j != lead {
				m.Detach()
			}
		}
		f()
		for j := range fz.muts {
			if j != lead {
				fz.muts[j] = fz.h.Attach()
			}
		}
		return
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for j, m := range fz.muts {
		if j == lead {
			continue
		}
		wg.Go(func() {
			for !stop.Load() {
				m.Safepoint()
				runtime.Gosched()
			}
		})
	}
	f()
	stop.Store(true)
	wg.Wait()
}

// collect runs a collection on mutator mi, after draining what earlier
// cycles queued: Collect, or (external) a cycle made due by AddExternal
// past the memory limit and run by a Safepoint.
func (fz *fzState) collect(mi int, external, detach bool) error {
	if err := fz.quiesce(fz.muts[mi]); err != nil {
		return err
	}
	before := fz.h.Stats().Cycles
	fz.withOthersParked(mi, detach, func() {
		if external {
			fz.h.AddExternal(fzExternal)
			fz.muts[mi].Safepoint()
			fz.h.AddExternal(-fzExternal)
		} else {
			fz.muts[mi].Collect()
		}
	})
	if got := fz.h.Stats().Cycles - before; got != 1 {
		return fmt.Errorf("collection (external %v) ran %d cycles, want 1", external, got)
	}
	res := fz.md.Collect()
	fz.logf("  model: freed %v, finalizers queued %v, cleanups queued %v", res.Freed, fzRegs(res.Finalizers), fzCIDs(res.Cleanups))
	if external {
		// Sweeping goes on concurrently; the live set is compared at the
		// next Drain. Weak refs are exact already: Value sweeps first.
		fz.sweepPending = true
		return fz.checkWeaks(fz.muts[mi])
	}
	if err := fz.checkLive(fz.muts[mi]); err != nil {
		return err
	}
	return fz.checkWeaks(fz.muts[mi])
}

func fzRegs(fs []*model.Finalizer) []int {
	var out []int
	for _, f := range fs {
		out = append(out, f.Reg)
	}
	return out
}

func fzCIDs(cs []*model.Cleanup) []int {
	var out []int
	for _, c := range cs {
		out = append(out, c.CID)
	}
	return out
}

// quiesce waits until every finalizer and cleanup queued so far has run
// and the last sweep is complete (with FinalizersAtSafepoints, by reaching
// safepoints on m), tells the model what ran, and compares everything.
func (fz *fzState) quiesce(m *reclaim.Mutator) error {
	if fz.cfg.here {
		fins, _ := fz.md.Pending()
		deadline := time.Now().Add(fzWait)
		for {
			fz.mu.Lock()
			n := len(fz.mu.finRuns)
			fz.mu.Unlock()
			if n >= len(fins) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("finalizers at safepoints: %d of %d queued ran after %v of safepoints", n, len(fins), fzWait)
			}
			m.Safepoint()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), fzWait)
	defer cancel()
	// Drain on m, with the other mutators kept at safepoints: a finalizer
	// may lead a collection (one an earlier operation made due), which
	// waits for every attached mutator; Heap.Drain here would wait for the
	// finalizer while it waits for the fuzz goroutine's mutators.
	var err error
	fz.withOthersParked(slices.Index(fz.muts, m), false, func() { err = m.Drain(ctx) })
	if err != nil {
		return fmt.Errorf("Drain: %v (model pending: %s)", err, fz.pendingString())
	}
	fz.sweepPending = false
	if err := fz.applyRuns(); err != nil {
		return err
	}
	fins, cleanups := fz.md.Pending()
	if len(fins) > 0 || len(cleanups) > 0 {
		return fmt.Errorf("after Drain, queued and never run: finalizers %v, cleanups %v", fzRegs(fins), fzCIDs(cleanups))
	}
	if err := fz.checkLive(m); err != nil {
		return err
	}
	if err := fz.checkWeaks(m); err != nil {
		return err
	}
	if err := fz.checkHolder(m); err != nil {
		return err
	}
	if err := fz.checkStats(); err != nil {
		return err
	}
	return fz.h.Verify()
}

func (fz *fzState) pendingString() string {
	fins, cleanups := fz.md.Pending()
	return fmt.Sprintf("finalizers %v, cleanups %v", fzRegs(fins), fzCIDs(cleanups))
}

// applyRuns tells the model which finalizers and cleanups ran since the
// last call; the model rejects any that was not queued or ran twice.
func (fz *fzState) applyRuns() error {
	fz.mu.Lock()
	fins, cleanups := fz.mu.finRuns, fz.mu.cleanupRuns
	fz.mu.finRuns, fz.mu.cleanupRuns = nil, nil
	fz.mu.Unlock()
	for _, reg := range fins {
		if err := fz.md.FinalizerRan(reg); err != nil {
			return err
		}
	}
	for _, cid := range cleanups {
		if err := fz.md.CleanupRan(cid); err != nil {
			return err
		}
	}
	if len(fins)+len(cleanups) > 0 {
		fz.logf("  ran: finalizers %v, cleanups %v", fins, cleanups)
	}
	return nil
}

// checkLive compares the set of live objects, and their contents, with
// the model.
func (fz *fzState) checkLive(m *reclaim.Mutator) error {
	var problems []string
	for _, o := range fz.objs {
		want, got := fz.md.Alive(o.id), fzValid(o.obj())
		if want != got {
			problems = append(problems, fmt.Sprintf("object %d (%v): live %v, model says %v", o.id, o.obj(), got, want))
			continue
		}
		if !got {
			continue
		}
		mo := fz.md.Object(o.id)
		if o.node.IsNil() {
			if id := o.leaf.Get(m).ID; id != uint64(o.id) {
				problems = append(problems, fmt.Sprintf("object %d holds id %d", o.id, id))
			}
			continue
		}
		n := o.node.Get(m)
		if n.ID != uint64(o.id) {
			problems = append(problems, fmt.Sprintf("object %d holds id %d", o.id, n.ID))
		}
		for k, out := range n.Out {
			var want reclaim.Object
			if id := mo.Out[k]; id != 0 {
				want = fz.objs[id-1].obj()
			}
			if out != want {
				problems = append(problems, fmt.Sprintf("object %d.Out[%d] = %v, model says object %d", o.id, k, out, mo.Out[k]))
			}
		}
	}
	if len(problems) > 0 {
		return errors.New("live set differs from the model:\n\t" + strings.Join(problems, "\n\t"))
	}
	return nil
}

func (fz *fzState) checkHolder(m *reclaim.Mutator) error {
	fz.mu.Lock()
	items := slices.Clone(fz.holder.Get(m).Items)
	fz.mu.Unlock()
	var got []model.ID
	for _, o := range items {
		n, okN := reclaim.As[fzNode](o)
		l, okL := reclaim.As[fzLeaf](o)
		switch {
		case okN && !n.IsNil():
			got = append(got, model.ID(n.Get(m).ID))
		case okL && !l.IsNil():
			got = append(got, model.ID(l.Get(m).ID))
		default:
			return fmt.Errorf("holder item %v is not a live object", o)
		}
	}
	want := slices.Clone(fz.md.Holder)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("holder holds %v, model says %v", got, want)
	}
	return nil
}

func (fz *fzState) checkStats() error {
	st := fz.h.Stats()
	fz.mu.Lock()
	panics := fz.mu.panics
	fz.mu.Unlock()
	var fins, cleanups int64
	for _, f := range fz.md.Finalizers {
		if f.State == model.Ran {
			fins++
		}
	}
	for _, c := range fz.md.Cleanups {
		if c.State == model.Ran {
			cleanups++
		}
	}
	switch {
	case panics != fz.md.Panics || st.Panics != int64(fz.md.Panics):
		return fmt.Errorf("panics: OnPanic saw %d, Stats say %d, model says %d", panics, st.Panics, fz.md.Panics)
	case st.Freed != int64(fz.md.Freed):
		return fmt.Errorf("Stats.Freed %d, model says %d", st.Freed, fz.md.Freed)
	case st.FinalizersExecuted != fins || st.FinalizersQueued != fins:
		return fmt.Errorf("Stats finalizers queued %d, executed %d; model says %d ran", st.FinalizersQueued, st.FinalizersExecuted, fins)
	case st.CleanupsExecuted != cleanups || st.CleanupsQueued != cleanups:
		return fmt.Errorf("Stats cleanups queued %d, executed %d; model says %d ran", st.CleanupsQueued, st.CleanupsExecuted, cleanups)
	case st.StaleRefsInMark != 0 || st.ForeignRefsInMark != 0:
		return fmt.Errorf("Stats: stale refs in mark %d, foreign %d; the test stores none", st.StaleRefsInMark, st.ForeignRefsInMark)
	}
	return nil
}

// close detaches the mutators, closes the heap and checks that Close ran
// every finalizer and cleanup left exactly once.
func (fz *fzState) close() error {
	for _, m := range fz.muts {
		m.Detach()
	}
	fz.muts = nil
	if err := fz.h.Close(); err != nil {
		return fmt.Errorf("Close: %v", err)
	}
	wantFins, wantCleanups := fz.md.Close()
	fz.mu.Lock()
	gotFins, gotCleanups := fz.mu.finRuns, fz.mu.cleanupRuns
	panics := fz.mu.panics
	fz.mu.Unlock()
	slices.Sort(gotFins)
	slices.Sort(gotCleanups)
	if w := fzRegs(wantFins); !slices.Equal(gotFins, w) {
		return fmt.Errorf("Close ran finalizers %v, model says %v", gotFins, w)
	}
	if w := fzCIDs(wantCleanups); !slices.Equal(gotCleanups, w) {
		return fmt.Errorf("Close ran cleanups %v, model says %v", gotCleanups, w)
	}
	if panics != fz.md.Panics {
		return fmt.Errorf("panics after Close: %d, model says %d", panics, fz.md.Panics)
	}
	return fz.takeErrs()
}
