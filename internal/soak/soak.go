// Package soak runs a reclaim heap under load and faults for a while and
// checks that nothing is lost or run twice. It is behind `reclaim soak` and
// the long form of this package's test (go test ./internal/soak -soak=10m).
//
// Several mutators churn object graphs: they allocate, link and cut,
// register finalizers and cleanups, stop cleanups, make weak refs, reach
// safepoints, collect, detach and re-attach. Finalizers panic, block for a
// while (bounded), allocate, resurrect their object, and re-register;
// cleanups panic, block, and attach mutators of their own to allocate. The
// memory limit is hit (allocation and external memory) and recovered from.
//
// Invariants checked while it runs:
//   - every finalizer and cleanup runs at most once per registration (a
//     bitset of ids, one bit per registration);
//   - a finalizer is called with the object it was registered on, and a
//     cleanup's argument still exists when it runs;
//   - a ref kept across a collection to an object that was unreachable is
//     caught (its use panics with a reclaim: message) and never names
//     another object; a weak ref to it is nil;
//   - after a limit hit, dropping the graph and collecting makes room again.
//
// And at the end, after Drain and Close: every finalizer registered and not
// cleared ran exactly once, every cleanup not stopped ran exactly once and
// every stopped one never ran, the panics reported match the panics raised,
// and the heap's counters match the soak's own.
package soak

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/reclaimgc/reclaim"
)

// Config configures a soak run.
type Config struct {
	Duration    time.Duration // how long the mutators churn; 0 means 1s
	Mutators    int           // churning goroutines; 0 means 4
	Seed        uint64        // seeds every mutator's random source
	MemoryLimit int64         // the heap's limit in bytes; 0 means 32 MiB
	Logger      *slog.Logger  // the heap's diagnostics and progress; nil discards them
}

// Report is what a soak run did.
type Report struct {
	Duration             time.Duration
	Allocated, Freed     int64 // objects, by the heap's counters
	Cycles               int64
	FinalizersRegistered int64
	FinalizersCleared    int64
	FinalizersRun        int64
	CleanupsRegistered   int64
	CleanupsRun          int64
	CleanupsStopped      int64 // stopped while their object was reachable: must never run
	StaleCaught          int64 // uses of refs to freed objects that panicked
	LimitHits            int64 // allocations refused by the memory limit
	LimitRecoveries      int64 // allocations that succeeded after a hit, once the graph was dropped
	Resurrected          int64
	Panics               int64 // finalizers and cleanups that panicked, as reported by OnPanic
	MutatorsAttached     int64 // by churning goroutines and by cleanups
}

// String prints the counts, one per line.
func (r Report) String() string {
	var b strings.Builder
	row := func(name string, v any) { fmt.Fprintf(&b, "%-22s %v\n", name, v) }
	row("duration", r.Duration.Round(time.Millisecond))
	row("objects allocated", r.Allocated)
	row("objects freed", r.Freed)
	row("cycles", r.Cycles)
	row("finalizers registered", r.FinalizersRegistered)
	row("finalizers cleared", r.FinalizersCleared)
	row("finalizers run", r.FinalizersRun)
	row("cleanups registered", r.CleanupsRegistered)
	row("cleanups run", r.CleanupsRun)
	row("cleanups stopped", r.CleanupsStopped)
	row("resurrections", r.Resurrected)
	row("stale refs caught", r.StaleCaught)
	row("memory limit hits", r.LimitHits)
	row("limit recoveries", r.LimitRecoveries)
	row("callback panics", r.Panics)
	row("mutators attached", r.MutatorsAttached)
	return b.String()
}

// The object types.
type (
	node struct {
		ID     uint64
		Kids   [4]reclaim.Ref[node]
		Blob   reclaim.Object
		FinReg uint64 // the registration id of the node's finalizer, 0 if none; written by the owning mutator
	}
	blob struct {
		ID   uint64
		Data [200]byte
	}
	// root is a mutator's pinned root: its graph hangs from Slots.
	root struct {
		Slots [16]reclaim.Ref[node]
	}
	// grave holds objects that finalizers resurrected; pinned, guarded
	// by run.graveMu.
	grave struct {
		Items []reclaim.Object
	}
	// cleanupArg is every cleanup's argument.
	cleanupArg struct {
		CID uint64
		Obj reclaim.Object // another object, kept alive until the cleanup has run; may be nil
	}
	// callbackPanic is what soak finalizers and cleanups panic with.
	callbackPanic struct{ id uint64 }
)

// idSet is a growable bitset of registration ids.
type idSet struct {
	mu   sync.Mutex
	bits []uint64 // protected by mu
}

// set sets id and returns whether it was set before.
func (s *idSet) set(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := int(id / 64)
	for w >= len(s.bits) {
		s.bits = append(s.bits, make([]uint64, len(s.bits)+1)...)
	}
	old := s.bits[w]&(1<<(id%64)) != 0
	s.bits[w] |= 1 << (id % 64)
	return old
}

func (s *idSet) has(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := int(id / 64)
	return w < len(s.bits) && s.bits[w]&(1<<(id%64)) != 0
}

// maxViolations bounds the violations a run reports.
const maxViolations = 20

// run is one soak run's shared state. Counters are atomic; the bitsets and
// violations have their own locks.
type run struct {
	cfg   Config
	h     *reclaim.Heap
	log   *slog.Logger
	grave reclaim.Ref[grave]
	// graveMu guards the grave's Items, written by finalizers (on the
	// finalizer goroutine, or in Close) and emptied by mutators.
	graveMu sync.Mutex

	objIDs     atomic.Uint64 // object ids handed out
	finIDs     atomic.Uint64 // finalizer registrations handed out
	cleanupIDs atomic.Uint64 // cleanup registrations handed out

	finRan       idSet // finalizer registrations that ran
	finCleared   idSet // finalizer registrations cleared while their object was reachable
	cleanupRan   idSet
	stopped      idSet // cleanups stopped while their object was reachable: must never run
	maybeStopped idSet // cleanups stopped at a time their object may have been queued: run at most once

	allocated      atomic.Int64 // successful allocations, by anyone
	finRuns        atomic.Int64
	cleanupRuns    atomic.Int64
	cleared        atomic.Int64
	stopCount      atomic.Int64
	stale          atomic.Int64
	limitHits      atomic.Int64 // ErrMemoryLimit seen by the soak
	recoveries     atomic.Int64
	resurrected    atomic.Int64
	panicsRaised   atomic.Int64
	panicsReported atomic.Int64
	attached       atomic.Int64

	vmu        sync.Mutex
	violations []string // protected by vmu
	nviolate   int      // protected by vmu
}

func (r *run) violate(format string, args ...any) {
	r.vmu.Lock()
	defer r.vmu.Unlock()
	r.nviolate++
	if len(r.violations) < maxViolations {
		r.violations = append(r.violations, fmt.Sprintf(format, args...))
	}
}

func (r *run) failed() bool {
	r.vmu.Lock()
	defer r.vmu.Unlock()
	return r.nviolate > 0
}

// Run soaks a heap for cfg.Duration (or until ctx ends) and returns what it
// did, and an error describing every invariant violated (at most 20 of
// them), or nil.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if cfg.Duration <= 0 {
		cfg.Duration = time.Second
	}
	if cfg.Mutators <= 0 {
		cfg.Mutators = 4
	}
	if cfg.MemoryLimit <= 0 {
		cfg.MemoryLimit = 32 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &run{cfg: cfg, log: cfg.Logger}
	r.h = reclaim.NewHeap(reclaim.Options{
		MemoryLimit:             cfg.MemoryLimit,
		Logger:                  cfg.Logger,
		FinalizerBlockThreshold: 50 * time.Millisecond,
		OnPanic: func(p *reclaim.CallbackPanic) {
			if _, ok := p.Value.(callbackPanic); !ok {
				r.violate("%s panicked with an unexpected value: %v\n%s", p.Kind, p.Value, p.Stack)
				return
			}
			r.panicsReported.Add(1)
		},
	})
	start := time.Now()
	m := r.h.Attach()
	r.grave = r.mustNew(m)
	r.h.Pin(r.grave.Object())
	m.Detach()

	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := range cfg.Mutators {
		w := &worker{r: r, idx: i, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i)))}
		wg.Go(func() { w.main(ctx) })
	}
	progress := time.NewTicker(10 * time.Second)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-progress.C:
			st := r.h.Stats()
			r.log.Info("soak: progress", "elapsed", time.Since(start).Round(time.Second), "allocated", st.Allocated,
				"freed", st.Freed, "cycles", st.Cycles, "finalizers", r.finRuns.Load(), "cleanups", r.cleanupRuns.Load())
		}
	}
	progress.Stop()

	// Everything queued must run; a lost wake-up shows up here.
	dctx, dcancel := context.WithTimeout(context.Background(), time.Minute)
	err := r.h.Drain(dctx)
	dcancel()
	if err != nil {
		r.violate("Drain after the churn: %v", err)
	}
	if err := r.h.Close(); err != nil {
		r.violate("Close: %v", err)
	}
	rep := r.finish(time.Since(start))
	r.vmu.Lock()
	defer r.vmu.Unlock()
	if r.nviolate > 0 {
		msg := strings.Join(r.violations, "\n\t")
		if r.nviolate > len(r.violations) {
			msg += fmt.Sprintf("\n\t(and %d more)", r.nviolate-len(r.violations))
		}
		return rep, errors.New("soak: invariants violated:\n\t" + msg)
	}
	return rep, nil
}

// finish checks the end-of-run invariants and builds the report.
func (r *run) finish(d time.Duration) Report {
	st := r.h.Stats()
	rep := Report{
		Duration:             d,
		Allocated:            st.Allocated,
		Freed:                st.Freed,
		Cycles:               st.Cycles,
		FinalizersRegistered: int64(r.finIDs.Load()),
		FinalizersCleared:    r.cleared.Load(),
		FinalizersRun:        r.finRuns.Load(),
		CleanupsRegistered:   int64(r.cleanupIDs.Load()),
		CleanupsRun:          r.cleanupRuns.Load(),
		CleanupsStopped:      r.stopCount.Load(),
		StaleCaught:          r.stale.Load(),
		LimitHits:            st.MemoryLimitHits,
		LimitRecoveries:      r.recoveries.Load(),
		Resurrected:          r.resurrected.Load(),
		Panics:               r.panicsReported.Load(),
		MutatorsAttached:     r.attached.Load(),
	}
	r.checkRegistrations()
	switch {
	case r.panicsRaised.Load() != r.panicsReported.Load() || st.Panics != r.panicsRaised.Load():
		r.violate("callbacks panicked %d times; OnPanic saw %d, Stats say %d", r.panicsRaised.Load(), r.panicsReported.Load(), st.Panics)
	case st.FinalizersExecuted != r.finRuns.Load():
		r.violate("Stats say %d finalizers ran; the soak counted %d", st.FinalizersExecuted, r.finRuns.Load())
	case st.CleanupsExecuted != r.cleanupRuns.Load():
		r.violate("Stats say %d cleanups ran; the soak counted %d", st.CleanupsExecuted, r.cleanupRuns.Load())
	case st.Allocated != r.allocated.Load():
		r.violate("Stats say %d objects allocated; the soak counted %d", st.Allocated, r.allocated.Load())
	case st.MemoryLimitHits < r.limitHits.Load():
		r.violate("Stats say %d memory limit hits; the soak saw %d", st.MemoryLimitHits, r.limitHits.Load())
	case st.StaleRefsInMark != 0 || st.ForeignRefsInMark != 0:
		r.violate("the mark found %d stale and %d foreign refs in live objects; the soak stores none", st.StaleRefsInMark, st.ForeignRefsInMark)
	}
	return rep
}

// checkRegistrations checks that every finalizer registered and not
// cleared ran, none that was cleared did, every cleanup not stopped ran,
// and none stopped while its object was reachable did. (Running twice is
// caught when it happens.)
func (r *run) checkRegistrations() {
	lost, twice := 0, 0
	for id := uint64(1); id <= r.finIDs.Load(); id++ {
		ran, cleared := r.finRan.has(id), r.finCleared.has(id)
		switch {
		case !ran && !cleared:
			if lost++; lost <= 5 {
				r.violate("finalizer %d never ran", id)
			}
		case ran && cleared:
			if twice++; twice <= 5 {
				r.violate("finalizer %d ran although it was cleared", id)
			}
		}
	}
	for id := uint64(1); id <= r.cleanupIDs.Load(); id++ {
		ran := r.cleanupRan.has(id)
		switch {
		case r.stopped.has(id):
			if ran {
				r.violate("cleanup %d ran although it was stopped while its object was reachable", id)
			}
		case r.maybeStopped.has(id):
		case !ran:
			if lost++; lost <= 10 {
				r.violate("cleanup %d never ran", id)
			}
		}
	}
	if lost > 0 {
		r.violate("%d finalizers and cleanups never ran in all", lost)
	}
}

// tryNew allocates a T, counting it; ErrMemoryLimit is counted as a hit.
func tryNew[T any](r *run, m *reclaim.Mutator) (reclaim.Ref[T], bool) {
	x, err := reclaim.TryNew[T](m)
	if err != nil {
		if !errors.Is(err, reclaim.ErrMemoryLimit) {
			r.violate("TryNew: %v", err)
		}
		r.limitHits.Add(1)
		return x, false
	}
	r.allocated.Add(1)
	return x, true
}

func (r *run) mustNew(m *reclaim.Mutator) reclaim.Ref[grave] {
	x, ok := tryNew[grave](r, m)
	if !ok {
		panic("soak: cannot allocate the grave")
	}
	return x
}

// newNode allocates a node with a fresh id.
func (r *run) newNode(m *reclaim.Mutator) (reclaim.Ref[node], bool) {
	x, ok := tryNew[node](r, m)
	if ok {
		x.Get(m).ID = r.objIDs.Add(1)
	}
	return x, ok
}

// Finalizer behaviours.
const (
	finNothing = iota
	finPanic
	finBlock
	finAlloc
	finResurrect
	finResurrectAgain // resurrect and register a new finalizer (once)
	numFin
)

// setFinalizer registers a finalizer with behaviour beh on x and records
// its registration id in the node.
func (r *run) setFinalizer(m *reclaim.Mutator, x reclaim.Ref[node], beh int) {
	reg := r.finIDs.Add(1)
	id := x.Get(m).ID
	x.Get(m).FinReg = reg
	reclaim.SetFinalizer(m, x, func(fm *reclaim.Mutator, x reclaim.Ref[node]) {
		r.finalizer(fm, x, reg, id, beh)
	})
}

func (r *run) finalizer(fm *reclaim.Mutator, x reclaim.Ref[node], reg, id uint64, beh int) {
	if r.finRan.set(reg) {
		r.violate("finalizer %d ran twice", reg)
	}
	r.finRuns.Add(1)
	n := x.Get(fm)
	if n.ID != id || n.FinReg != reg {
		r.violate("finalizer %d of object %d called with object %d (registration %d)", reg, id, n.ID, n.FinReg)
	}
	n.FinReg = 0
	switch beh {
	case finPanic:
		r.panicsRaised.Add(1)
		panic(callbackPanic{reg})
	case finBlock:
		time.Sleep(time.Duration(reg%4) * 250 * time.Microsecond)
	case finAlloc:
		if k, ok := r.newNode(fm); ok {
			x.Get(fm).Kids[0] = k // kept alive by the object until it is freed
		}
	case finResurrect, finResurrectAgain:
		r.graveMu.Lock()
		g := r.grave.Get(fm)
		g.Items = append(g.Items, x.Object())
		r.graveMu.Unlock()
		r.resurrected.Add(1)
		if beh == finResurrectAgain {
			r.setFinalizer(fm, x, finResurrect)
		}
	}
}

// Cleanup behaviours.
const (
	cleanCount = iota
	cleanPanic
	cleanBlock
	cleanAttach // attach a mutator of its own and allocate
	numClean
)

func (r *run) cleanup(a cleanupArg, beh int) {
	if r.cleanupRan.set(a.CID) {
		r.violate("cleanup %d ran twice", a.CID)
	}
	r.cleanupRuns.Add(1)
	if !a.Obj.IsNil() {
		if _, ok := reclaim.As[node](a.Obj); !ok {
			r.violate("cleanup %d: its argument's object %v was freed before it ran", a.CID, a.Obj)
		}
	}
	switch beh {
	case cleanPanic:
		r.panicsRaised.Add(1)
		panic(callbackPanic{a.CID})
	case cleanBlock:
		time.Sleep(time.Duration(a.CID%4) * 250 * time.Microsecond)
	case cleanAttach:
		m := r.h.Attach()
		r.attached.Add(1)
		for range 4 {
			r.newNode(m)
		}
		m.Safepoint()
		m.Detach()
	}
}

// worker is one churning mutator goroutine. Its graph hangs from a pinned
// root object; it keeps no ref in Go variables across a safepoint except
// on purpose (the stale-ref probes).
type worker struct {
	r    *run
	idx  int
	rng  *rand.Rand
	m    *reclaim.Mutator
	root reclaim.Ref[root]
	// cleanups registered by this worker, with their objects, for Stop.
	cleanups []cleanupRec
}

type cleanupRec struct {
	c   reclaim.Cleanup
	cid uint64
	obj reclaim.Ref[node]
}

func (w *worker) main(ctx context.Context) {
	r := w.r
	w.m = r.h.Attach()
	r.attached.Add(1)
	rt, ok := tryNew[root](r, w.m)
	for !ok {
		w.m.Safepoint()
		rt, ok = tryNew[root](r, w.m)
	}
	w.root = rt
	r.h.Pin(rt.Object())
	for ctx.Err() == nil && !r.failed() {
		for range 64 {
			w.step()
		}
		w.m.Safepoint()
	}
	r.h.Unpin(w.root.Object())
	w.m.Detach()
}

// pick walks from a random root slot down a few random kids and returns
// the node it stops at (nil if it walked into a nil ref).
func (w *worker) pick() reclaim.Ref[node] {
	x := w.root.Get(w.m).Slots[w.rng.IntN(16)]
	for d := 0; d < 4 && !x.IsNil() && w.rng.IntN(2) == 0; d++ {
		x = x.Get(w.m).Kids[w.rng.IntN(4)]
	}
	return x
}

// reachable reports whether x is reachable from the worker's root, by a
// walk of its graph.
func (w *worker) reachable(x reclaim.Ref[node]) bool {
	seen := make(map[reclaim.Ref[node]]bool)
	var stack []reclaim.Ref[node]
	for _, s := range w.root.Get(w.m).Slots {
		stack = append(stack, s)
	}
	for len(stack) > 0 {
		y := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if y.IsNil() || seen[y] {
			continue
		}
		if y == x {
			return true
		}
		seen[y] = true
		stack = append(stack, y.Get(w.m).Kids[:]...)
	}
	return false
}

func (w *worker) step() {
	r, m := w.r, w.m
	switch k := w.rng.IntN(100); {
	case k < 35: // allocate and hang it somewhere
		x, ok := r.newNode(m)
		if !ok {
			w.recoverFromLimit()
			return
		}
		if w.rng.IntN(4) == 0 {
			if b, ok := tryNew[blob](r, m); ok {
				b.Get(m).ID = r.objIDs.Add(1)
				x.Get(m).Blob = b.Object()
			}
		}
		if p := w.pick(); !p.IsNil() && w.rng.IntN(2) == 0 {
			p.Get(m).Kids[w.rng.IntN(4)] = x
		} else {
			w.root.Get(m).Slots[w.rng.IntN(16)] = x
		}
	case k < 50: // link two reachable nodes (cycles included)
		a, b := w.pick(), w.pick()
		if !a.IsNil() {
			a.Get(m).Kids[w.rng.IntN(4)] = b
		}
	case k < 62: // cut
		if w.rng.IntN(3) == 0 {
			w.root.Get(m).Slots[w.rng.IntN(16)] = reclaim.Ref[node]{}
		} else if a := w.pick(); !a.IsNil() {
			a.Get(m).Kids[w.rng.IntN(4)] = reclaim.Ref[node]{}
		}
	case k < 70: // finalizer
		if a := w.pick(); !a.IsNil() && a.Get(m).FinReg == 0 {
			r.setFinalizer(m, a, w.rng.IntN(numFin))
		}
	case k < 72: // clear a finalizer of a reachable node
		if a := w.pick(); !a.IsNil() {
			if reg := a.Get(m).FinReg; reg != 0 {
				reclaim.SetFinalizer(m, a, nil)
				a.Get(m).FinReg = 0
				r.finCleared.set(reg)
				r.cleared.Add(1)
			}
		}
	case k < 80: // cleanup
		w.addCleanup()
	case k < 84: // stop a cleanup
		w.stop()
	case k < 87:
		w.probeStale()
	case k < 88:
		w.probeLimit()
	case k < 89: // empty the grave
		r.graveMu.Lock()
		r.grave.Get(m).Items = nil
		r.graveMu.Unlock()
	case k < 90:
		if w.rng.IntN(8) == 0 {
			m.Collect()
		}
	case k < 91: // detach, wait for the queues, re-attach
		if w.rng.IntN(8) == 0 {
			w.m.Detach()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := r.h.Drain(ctx); err != nil {
				r.violate("Drain by a detached mutator: %v", err)
			}
			cancel()
			w.m = r.h.Attach()
			r.attached.Add(1)
		}
	default:
		m.Safepoint()
	}
}

func (w *worker) addCleanup() {
	r, m := w.r, w.m
	a := w.pick()
	if a.IsNil() {
		return
	}
	arg := cleanupArg{CID: r.cleanupIDs.Add(1)}
	if b := w.pick(); !b.IsNil() && w.rng.IntN(2) == 0 {
		arg.Obj = b.Object() // may lead back to a: then it runs only at Close
	}
	beh := w.rng.IntN(numClean)
	c := reclaim.AddCleanup(m, a, func(a cleanupArg) { r.cleanup(a, beh) }, arg)
	if len(w.cleanups) == 64 {
		w.cleanups = w.cleanups[1:]
	}
	w.cleanups = append(w.cleanups, cleanupRec{c, arg.CID, a})
}

// stop stops one of the worker's recent cleanups. If its object is
// reachable from the root now, the cleanup has not been queued, so it must
// never run; otherwise it may already have been.
func (w *worker) stop() {
	r := w.r
	if len(w.cleanups) == 0 {
		return
	}
	i := w.rng.IntN(len(w.cleanups))
	rec := w.cleanups[i]
	w.cleanups = append(w.cleanups[:i], w.cleanups[i+1:]...)
	if w.reachable(rec.obj) {
		r.stopped.set(rec.cid)
		r.stopCount.Add(1)
	} else {
		r.maybeStopped.set(rec.cid)
	}
	rec.c.Stop()
}

// probeStale keeps a ref to a fresh node across a collection that finds it
// unreachable: using it must panic (never reach another object), and a weak
// ref to it must be nil.
func (w *worker) probeStale() {
	r, m := w.r, w.m
	x, ok := r.newNode(m)
	if !ok {
		w.recoverFromLimit()
		return
	}
	id := x.Get(m).ID
	weak := reclaim.MakeWeak(m, x)
	long := reclaim.MakeLongWeak(m, x)
	m.Collect() // x was never stored anywhere: it is freed, and the sweep is done
	if v := weak.Value(m); !v.IsNil() {
		r.violate("weak ref to an unreachable object %d is not nil after Collect", id)
	}
	if v := long.Value(m); !v.IsNil() {
		r.violate("long weak ref to a freed object %d is not nil after Collect", id)
	}
	func() {
		defer func() {
			v := recover()
			if err, ok := v.(error); ok && strings.HasPrefix(err.Error(), "reclaim:") {
				r.stale.Add(1)
				return
			}
			r.violate("Get of a ref to a freed object: recovered %v, want a reclaim: error", v)
		}()
		got := x.Get(m).ID
		r.violate("Get of a ref to freed object %d returned an object (id %d)", id, got)
	}()
}

// probeLimit fills the heap up to its memory limit with external memory,
// checks that allocation is refused, gives the memory back, and checks that
// allocation recovers once a collection has run.
func (w *worker) probeLimit() {
	r, m := w.r, w.m
	if w.rng.IntN(4) != 0 {
		return
	}
	ext := r.cfg.MemoryLimit
	r.h.AddExternal(ext)
	refused := false
	// The limit caps the memory the heap holds: allocation is refused only
	// once it needs a new span. Free slots of spans already held (a span
	// that empties is kept for a cycle before it is released) are used
	// first, so allocate past all of them.
	bound := int(r.h.Stats().SpanBytes/int64(unsafe.Sizeof(blob{}))) + 1<<12
	for range bound {
		if _, ok := tryNew[blob](r, m); !ok {
			refused = true
			break
		}
	}
	r.h.AddExternal(-ext)
	if !refused {
		r.violate("allocation with external memory at the limit was never refused")
		return
	}
	w.recoverFromLimit()
}

// recoverFromLimit reacts to a memory limit hit: drop half the graph, collect, and
// allocate again.
func (w *worker) recoverFromLimit() {
	r, m := w.r, w.m
	slots := &w.root.Get(m).Slots
	for i := range slots {
		if w.rng.IntN(2) == 0 {
			slots[i] = reclaim.Ref[node]{}
		}
	}
	for try := 0; try < 8; try++ {
		m.Collect()
		if _, ok := r.newNode(m); ok {
			r.recoveries.Add(1)
			return
		}
	}
	// Other mutators may hold the memory; that is not a violation, but it
	// is logged.
	r.log.Warn("soak: allocation still refused after 8 collections", "worker", w.idx)
}
