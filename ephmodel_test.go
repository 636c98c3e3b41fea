package reclaim_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/reclaimgc/reclaim"
	"github.com/reclaimgc/reclaim/internal/model"
)

// TestWeakMapModel is a randomized test of WeakMaps (ephemeron tables)
// together with finalizers, resurrection, pins, short and long weak refs:
// random operations on a small graph of nodes, leaves and tables, run on a
// real heap and on internal/model's Eph, compared after every collection
// (before and after Drain): which objects are live and what their fields
// hold, which finalizers ran (once each), what weak refs return, each
// table's entries, and the holder of resurrected objects.
//
// The seeds are fixed; -reclaim.ephseed runs one seed only, and
// FuzzWeakMapModel takes a seed and a configuration from the fuzzer.
func TestWeakMapModel(t *testing.T) {
	seeds := 64
	if testing.Short() {
		seeds = 12
	}
	for _, workers := range []int{1, 2} {
		for _, here := range []bool{false, true} {
			t.Run(fmt.Sprintf("workers=%d/atSafepoints=%v", workers, here), func(t *testing.T) {
				var st emStats
				defer func() { t.Logf("%+v", st) }()
				for s := range uint64(seeds) {
					seed := 1000 + s
					if *ephSeed != 0 {
						if s > 0 {
							break
						}
						seed = *ephSeed
					}
					runEphModel(t, seed, workers, here, !testing.Short() || s%2 == 0, &st)
				}
			})
		}
	}
}

// FuzzWeakMapModel runs the model test with a seed and configuration
// chosen by the fuzzer.
func FuzzWeakMapModel(f *testing.F) {
	f.Add(uint64(1), uint8(0))
	f.Add(uint64(7), uint8(3))
	f.Fuzz(func(t *testing.T, seed uint64, cfg uint8) {
		runEphModel(t, seed, 1+int(cfg&1), cfg&2 != 0, cfg&4 != 0, nil)
	})
}

var ephSeed = flag.Uint64("reclaim.ephseed", 0, "run TestWeakMapModel with this seed only")

// The object types of the test. Each carries its model id.
type (
	emNode struct {
		ID  int64
		Out [2]reclaim.Object
	}
	emLeaf struct{ ID int64 } // no refs: its span is not scanned
	// Three kinds of table: node keys and object values, node keys and
	// values without refs, leaf keys and object values.
	emTabNO = reclaim.WeakMap[emNode, reclaim.Object]
	emTabNI = reclaim.WeakMap[emNode, int64]
	emTabLO = reclaim.WeakMap[emLeaf, reclaim.Object]
	// emHolder is the pinned object resurrecting finalizers store into.
	emHolder struct{ Items []reclaim.Object }
)

type emObj struct {
	id   model.ID
	kind model.EphKind
	tk   int // table kind: 0 NO, 1 NI, 2 LO
	obj  reclaim.Object
}

type emWeak struct {
	w     model.EphWeak
	value func(m *reclaim.Mutator) reclaim.Object
}

// emStats counts what the runs of one configuration exercised.
type emStats struct {
	collections, queued, doomed, multiRound, freed, entriesKept, finTables int
}

type emState struct {
	t      *testing.T
	rng    *rand.Rand
	h      *reclaim.Heap
	m      *reclaim.Mutator
	md     *model.Eph
	objs   []*emObj
	holder reclaim.Ref[emHolder]
	weaks  []emWeak
	trace  []string
	stats  *emStats
	config string
	// leafFins keeps finalizers to leaves, whose spans are not scanned:
	// then no scanned span has a finalizer.
	leafFins bool

	mu struct {
		sync.Mutex
		runs []int // finalizer registrations, in the order they ran
		errs []string
	}
}

func (s *emState) logf(format string, args ...any) {
	s.trace = append(s.trace, fmt.Sprintf(format, args...))
}

func (s *emState) fail(format string, args ...any) {
	s.t.Helper()
	tr := s.trace
	if len(tr) > 80 {
		tr = tr[len(tr)-80:]
	}
	s.t.Fatalf("%s: %s\nlast operations:\n\t%s", s.config, fmt.Sprintf(format, args...), strings.Join(tr, "\n\t"))
}

// runEphModel runs one seed. big gives it more objects and operations.
func runEphModel(t *testing.T, seed uint64, workers int, here, big bool, st *emStats) {
	t.Helper()
	s := &emState{t: t, rng: rand.New(rand.NewPCG(seed, 0xe9e)), md: model.NewEph(), stats: st}
	s.leafFins = s.rng.IntN(4) == 0
	s.config = fmt.Sprintf("seed %d, workers %d, atSafepoints %v, big %v, leafFins %v", seed, workers, here, big, s.leafFins)
	s.h = newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: workers, FinalizersAtSafepoints: here})
	s.m = s.h.Attach()
	s.holder = reclaim.New[emHolder](s.m)
	s.h.Pin(s.holder.Object())

	maxObjs, ops := 60, 400
	if big {
		maxObjs, ops = 200, 1200
	}
	for range ops {
		s.step(maxObjs)
	}
	s.collect()
	s.logf("ReleaseHolder, unpin all, collect")
	s.md.ReleaseHolder()
	s.holder.Get(s.m).Items = nil
	for _, o := range s.objs {
		for s.md.Alive(o.id) && s.md.Obj(o.id).Pins > 0 {
			s.md.Unpin(o.id)
			s.h.Unpin(o.obj)
		}
	}
	for range 4 {
		s.collect()
	}
	if err := s.h.Verify(); err != nil {
		s.fail("Verify: %v", err)
	}
	s.m.Detach()
	if err := s.h.Close(); err != nil {
		s.fail("Close: %v", err)
	}
}

// live returns the live objects, those of kind k if k is not nil.
func (s *emState) live(ok func(*emObj) bool) []*emObj {
	var l []*emObj
	for _, o := range s.objs {
		if s.md.Alive(o.id) && (ok == nil || ok(o)) {
			l = append(l, o)
		}
	}
	return l
}

func (s *emState) pick(ok func(*emObj) bool) *emObj {
	l := s.live(ok)
	if len(l) == 0 {
		return nil
	}
	// Favor recent objects a little, so that structures grow.
	if s.rng.IntN(2) == 0 {
		return l[len(l)-1-s.rng.IntN(min(len(l), 8))]
	}
	return l[s.rng.IntN(len(l))]
}

func isNode(o *emObj) bool  { return o.kind == model.EphNode }
func isTable(o *emObj) bool { return o.kind == model.EphTable }

func (s *emState) step(maxObjs int) {
	m := s.m
	r := s.rng.IntN(100)
	switch {
	case r < 22: // allocate
		if len(s.objs) >= maxObjs {
			return
		}
		var o *emObj
		switch k := s.rng.IntN(10); {
		case k < 6:
			o = s.alloc(model.EphNode, 0)
		case k < 8:
			o = s.alloc(model.EphLeaf, 0)
		default:
			o = s.alloc(model.EphTable, s.rng.IntN(3))
		}
		// New objects often start pinned, so that they can be reached
		// while the graph is built.
		if s.rng.IntN(3) == 0 {
			s.pin(o)
		}

	case r < 37: // link a node's field, or cut it
		a := s.pick(isNode)
		if a == nil {
			return
		}
		slot := s.rng.IntN(2)
		var b *emObj
		if s.rng.IntN(5) != 0 {
			b = s.pick(nil)
		}
		var bid model.ID
		var bo reclaim.Object
		if b != nil {
			bid, bo = b.id, b.obj
		}
		s.logf("link %d.Out[%d] = %d", a.id, slot, bid)
		s.md.Link(a.id, slot, bid)
		emRef[emNode](a).Get(m).Out[slot] = bo

	case r < 57: // set an entry
		t := s.pick(isTable)
		if t == nil {
			return
		}
		want := model.EphNode
		if t.tk == 2 {
			want = model.EphLeaf
		}
		k := s.pick(func(o *emObj) bool { return o.kind == want })
		if k == nil {
			return
		}
		var v *emObj
		switch r := s.rng.IntN(10); {
		case r < 2:
			v = k // the value is the key itself
		case r < 3: // nil
		case r < 5:
			v = s.pick(isTable) // a table reached (also) through an entry
		default:
			v = s.pick(nil)
		}
		s.set(t, k, v, s.rng.Int64N(1000)+1)

	case r < 61: // delete an entry
		t := s.pick(isTable)
		if t == nil {
			return
		}
		keys := slices.Sorted(func(yield func(model.ID) bool) {
			for k := range s.md.Obj(t.id).Entries {
				if !yield(k) {
					return
				}
			}
		})
		if len(keys) == 0 {
			return
		}
		k := s.objs[keys[s.rng.IntN(len(keys))]-1]
		s.logf("delete table %d [%d]", t.id, k.id)
		want := s.md.Delete(t.id, k.id)
		var got bool
		switch t.tk {
		case 0:
			got = emRef[emTabNO](t).Get(m).Delete(emRef[emNode](k))
		case 1:
			got = emRef[emTabNI](t).Get(m).Delete(emRef[emNode](k))
		case 2:
			got = emRef[emTabLO](t).Get(m).Delete(emRef[emLeaf](k))
		}
		if got != want {
			s.fail("Delete returned %v, model %v", got, want)
		}

	case r < 72: // set a finalizer
		a := s.pick(func(o *emObj) bool { return s.md.Obj(o.id).Fin == nil && (!s.leafFins || o.kind == model.EphLeaf) })
		if a == nil {
			return
		}
		res := s.rng.IntN(3) == 0
		f := s.md.SetFinalizer(a.id, res)
		s.logf("setFinalizer %d resurrect %v reg %d", a.id, res, f.Reg)
		s.setFinalizer(a, f.Reg, res)

	case r < 75: // clear a finalizer
		a := s.pick(func(o *emObj) bool { return s.md.Obj(o.id).Fin != nil })
		if a == nil {
			return
		}
		s.logf("clearFinalizer %d", a.id)
		s.md.ClearFinalizer(a.id)
		switch a.kind {
		case model.EphNode:
			reclaim.SetFinalizer(m, emRef[emNode](a), nil)
		case model.EphLeaf:
			reclaim.SetFinalizer(m, emRef[emLeaf](a), nil)
		default:
			switch a.tk {
			case 0:
				reclaim.SetFinalizer(m, emRef[emTabNO](a), nil)
			case 1:
				reclaim.SetFinalizer(m, emRef[emTabNI](a), nil)
			case 2:
				reclaim.SetFinalizer(m, emRef[emTabLO](a), nil)
			}
		}

	case r < 79: // pin
		if a := s.pick(nil); a != nil {
			s.pin(a)
		}

	case r < 87: // unpin
		a := s.pick(func(o *emObj) bool { return s.md.Obj(o.id).Pins > 0 })
		if a == nil {
			return
		}
		s.logf("unpin %d", a.id)
		s.md.Unpin(a.id)
		s.h.Unpin(a.obj)

	case r < 92: // a weak ref
		a := s.pick(nil)
		if a == nil {
			return
		}
		long := s.rng.IntN(2) == 0
		s.logf("weak %d long %v", a.id, long)
		s.weaks = append(s.weaks, emWeak{s.md.MakeWeak(a.id, long), emMakeWeak(m, a, long)})

	case r < 93: // let go of the resurrected objects
		s.logf("releaseHolder")
		s.md.ReleaseHolder()
		s.holder.Get(m).Items = nil

	case r < 95: // nest a new table with a finalizable key under an entry
		if len(s.objs)+4 > maxObjs {
			return
		}
		s.nest()

	default:
		s.collect()
	}
}

// alloc allocates an object of kind k (table kind tk) on both sides.
func (s *emState) alloc(k model.EphKind, tk int) *emObj {
	m := s.m
	o := &emObj{id: model.ID(len(s.objs) + 1), kind: k, tk: tk}
	switch k {
	case model.EphNode:
		ref := reclaim.New[emNode](m)
		ref.Get(m).ID = int64(o.id)
		o.obj = ref.Object()
		s.md.Alloc(k)
	case model.EphLeaf:
		ref := reclaim.New[emLeaf](m)
		ref.Get(m).ID = int64(o.id)
		o.obj = ref.Object()
		s.md.Alloc(k)
	default:
		switch tk {
		case 0:
			o.obj = reclaim.New[emTabNO](m).Object()
			s.md.AllocTable(model.EphNode, true)
		case 1:
			o.obj = reclaim.New[emTabNI](m).Object()
			s.md.AllocTable(model.EphNode, false)
		case 2:
			o.obj = reclaim.New[emTabLO](m).Object()
			s.md.AllocTable(model.EphLeaf, true)
		}
	}
	s.objs = append(s.objs, o)
	s.logf("alloc %d kind %d tk %d", o.id, o.kind, o.tk)
	return o
}

// set stores v (an object, nil, or for a table of kind 1 a number) under
// k in t, on both sides.
func (s *emState) set(t, k *emObj, v *emObj, n int64) {
	m := s.m
	var vo reclaim.Object
	if t.tk != 1 {
		n = 0
		if v != nil {
			n, vo = int64(v.id), v.obj
		}
	}
	s.logf("set table %d [%d] = %d", t.id, k.id, n)
	s.md.Set(t.id, k.id, n)
	switch t.tk {
	case 0:
		emRef[emTabNO](t).Get(m).Set(emRef[emNode](k), vo)
	case 1:
		emRef[emTabNI](t).Get(m).Set(emRef[emNode](k), n)
	case 2:
		emRef[emTabLO](t).Get(m).Set(emRef[emLeaf](k), vo)
	}
}

// nest makes a new table T2 holding an entry of a new finalizable key K2
// whose value leads back to K2, and stores T2 under an entry of a table
// already there (or in a node's field): T2 is then found only when the
// mark follows that entry, and if its key is doomed, K2 is doomed in a
// further round.
func (s *emState) nest() {
	tk := 0
	if s.leafFins || s.rng.IntN(3) == 0 {
		tk = 2
	}
	t2 := s.alloc(model.EphTable, tk)
	kk := model.EphNode
	if tk == 2 {
		kk = model.EphLeaf
	}
	k2 := s.alloc(kk, 0)
	v2 := k2
	if s.rng.IntN(2) == 0 {
		v2 = s.alloc(model.EphNode, 0)
		s.logf("link %d.Out[0] = %d", v2.id, k2.id)
		s.md.Link(v2.id, 0, k2.id)
		emRef[emNode](v2).Get(s.m).Out[0] = k2.obj
	}
	s.set(t2, k2, v2, 0)
	f := s.md.SetFinalizer(k2.id, s.rng.IntN(4) == 0)
	s.logf("setFinalizer %d resurrect %v reg %d", k2.id, f.Resurrect, f.Reg)
	s.setFinalizer(k2, f.Reg, f.Resurrect)
	// Hang T2 under an entry of an existing table with a ref value.
	t1 := s.pick(func(o *emObj) bool { return isTable(o) && o.tk != 1 && o != t2 && (!s.leafFins || o.tk == 2) })
	if t1 == nil {
		return
	}
	want := model.EphNode
	if t1.tk == 2 {
		want = model.EphLeaf
	}
	var k1 *emObj
	switch s.rng.IntN(3) {
	case 0: // a new finalizable key, doomed at the next collection (if t1 is reached)
		k1 = s.alloc(want, 0)
		f := s.md.SetFinalizer(k1.id, s.rng.IntN(4) == 0)
		s.logf("setFinalizer %d resurrect %v reg %d", k1.id, f.Resurrect, f.Reg)
		s.setFinalizer(k1, f.Reg, f.Resurrect)
	case 1: // a finalizable key, which may be doomed
		k1 = s.pick(func(o *emObj) bool { return o.kind == want && o != k2 && s.md.Obj(o.id).Fin != nil })
	}
	if k1 == nil {
		k1 = s.pick(func(o *emObj) bool { return o.kind == want && o != k2 })
	}
	if k1 == nil {
		return
	}
	s.set(t1, k1, t2, 0)
}

func (s *emState) pin(o *emObj) {
	s.logf("pin %d", o.id)
	s.md.Pin(o.id)
	s.h.Pin(o.obj)
}

// emRef returns o's ref as a Ref[T]; o must be live and of type T.
func emRef[T any](o *emObj) reclaim.Ref[T] {
	r, ok := reclaim.As[T](o.obj)
	if !ok {
		panic(fmt.Sprintf("object %d (%v) is not a live %T", o.id, o.obj, *new(T)))
	}
	return r
}

func emMakeWeak(m *reclaim.Mutator, o *emObj, long bool) func(*reclaim.Mutator) reclaim.Object {
	switch o.kind {
	case model.EphNode:
		return emWeakOf(m, emRef[emNode](o), long)
	case model.EphLeaf:
		return emWeakOf(m, emRef[emLeaf](o), long)
	}
	switch o.tk {
	case 0:
		return emWeakOf(m, emRef[emTabNO](o), long)
	case 1:
		return emWeakOf(m, emRef[emTabNI](o), long)
	}
	return emWeakOf(m, emRef[emTabLO](o), long)
}

func emWeakOf[T any](m *reclaim.Mutator, r reclaim.Ref[T], long bool) func(*reclaim.Mutator) reclaim.Object {
	if long {
		w := reclaim.MakeLongWeak(m, r)
		return func(m *reclaim.Mutator) reclaim.Object { return w.Value(m).Object() }
	}
	w := reclaim.MakeWeak(m, r)
	return func(m *reclaim.Mutator) reclaim.Object { return w.Value(m).Object() }
}

func (s *emState) setFinalizer(a *emObj, reg int, resurrect bool) {
	switch a.kind {
	case model.EphNode:
		emSetFinalizer(s, emRef[emNode](a), reg, resurrect)
	case model.EphLeaf:
		emSetFinalizer(s, emRef[emLeaf](a), reg, resurrect)
	default:
		switch a.tk {
		case 0:
			emSetFinalizer(s, emRef[emTabNO](a), reg, resurrect)
		case 1:
			emSetFinalizer(s, emRef[emTabNI](a), reg, resurrect)
		case 2:
			emSetFinalizer(s, emRef[emTabLO](a), reg, resurrect)
		}
	}
}

func emSetFinalizer[T any](s *emState, r reclaim.Ref[T], reg int, resurrect bool) {
	holder := s.holder
	reclaim.SetFinalizer(s.m, r, func(fm *reclaim.Mutator, x reclaim.Ref[T]) {
		if resurrect {
			h := holder.Get(fm)
			h.Items = append(h.Items, x.Object())
		}
		s.mu.Lock()
		s.mu.runs = append(s.mu.runs, reg)
		if x != r {
			s.mu.errs = append(s.mu.errs, fmt.Sprintf("finalizer %d got %v, want %v", reg, x, r))
		}
		s.mu.Unlock()
	})
}

// collect runs a collection on both sides and compares them, after the
// collection and again after Drain.
func (s *emState) collect() {
	s.t.Helper()
	res := s.md.Collect()
	if st := s.stats; st != nil {
		st.collections++
		st.queued += len(res.Queued)
		st.doomed += len(res.Doomed)
		if res.Rounds > 1 {
			st.multiRound++
		}
		st.freed += len(res.Freed)
		for _, id := range res.Doomed {
			for _, o := range s.md.Objs {
				if o.Alive && o.Kind == model.EphTable {
					if _, ok := o.Entries[id]; ok {
						st.entriesKept++
					}
				}
			}
		}
		for _, f := range res.Queued {
			if s.md.Obj(f.Obj).Kind == model.EphTable {
				st.finTables++
			}
		}
	}
	s.logf("collect %d: queued %v, doomed %v, freed %v", s.md.Cycles, emRegs(res.Queued), res.Doomed, res.Freed)
	s.m.Collect()
	// The sweep is complete: liveness and weak refs are exact already,
	// while queued finalizers may be running.
	s.check(false)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	err := s.m.Drain(ctx)
	cancel()
	if err != nil {
		s.fail("Drain: %v", err)
	}
	s.mu.Lock()
	runs, errs := s.mu.runs, s.mu.errs
	s.mu.runs, s.mu.errs = nil, nil
	s.mu.Unlock()
	if len(errs) > 0 {
		s.fail("%s", strings.Join(errs, "\n"))
	}
	for _, reg := range runs {
		if err := s.md.FinalizerRan(reg); err != nil {
			s.fail("%v (ran this drain: %v)", err, runs)
		}
	}
	if p := s.md.Pending(); len(p) > 0 {
		s.fail("after Drain, finalizers queued by the model never ran: %v (ran: %v)", emRegs(p), runs)
	}
	s.check(true)
}

func emRegs(fs []*model.EphFin) []string {
	var out []string
	for _, f := range fs {
		d := ""
		if f.Doomed {
			d = "(doomed)"
		}
		out = append(out, fmt.Sprintf("%d:obj%d%s", f.Reg, f.Obj, d))
	}
	return out
}

func emLive(o *emObj) bool {
	var ok bool
	switch o.kind {
	case model.EphNode:
		_, ok = reclaim.As[emNode](o.obj)
	case model.EphLeaf:
		_, ok = reclaim.As[emLeaf](o.obj)
	default:
		switch o.tk {
		case 0:
			_, ok = reclaim.As[emTabNO](o.obj)
		case 1:
			_, ok = reclaim.As[emTabNI](o.obj)
		case 2:
			_, ok = reclaim.As[emTabLO](o.obj)
		}
	}
	return ok
}

// check compares the heap with the model. drained says Drain has run:
// the holder is compared only then.
func (s *emState) check(drained bool) {
	s.t.Helper()
	m := s.m
	when := "after Collect"
	if drained {
		when = "after Drain"
	}
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	for _, o := range s.objs {
		mo := s.md.Obj(o.id)
		if got := emLive(o); got != mo.Alive {
			bad("object %d (kind %d): live %v, model %v", o.id, o.kind, got, mo.Alive)
			continue
		}
		if !mo.Alive {
			continue
		}
		switch o.kind {
		case model.EphNode:
			n := emRef[emNode](o).Get(m)
			for i, x := range n.Out {
				var want reclaim.Object
				if id := mo.Out[i]; id != 0 {
					want = s.objs[id-1].obj
				}
				if x != want {
					bad("node %d field %d: %v, model object %d", o.id, i, x, mo.Out[i])
				}
			}
			if n.ID != int64(o.id) {
				bad("node %d: ID %d", o.id, n.ID)
			}
		case model.EphTable:
			s.checkTable(o, mo, bad)
		}
	}
	for i, w := range s.weaks {
		want := s.md.Value(w.w)
		got := w.value(m)
		var wantObj reclaim.Object
		if want != 0 {
			wantObj = s.objs[want-1].obj
		}
		if got != wantObj {
			bad("weak ref %d (object %d, long %v): %v, model %d", i, w.w.Obj, w.w.Long, got, want)
		}
	}
	if drained {
		items := s.holder.Get(m).Items
		var want []reclaim.Object
		for _, id := range s.md.Holder {
			want = append(want, s.objs[id-1].obj)
		}
		// Finalizers run in an order the model does not predict.
		slices.SortFunc(items, emCmp)
		slices.SortFunc(want, emCmp)
		if !slices.Equal(items, want) {
			bad("holder %v, model %v", items, s.md.Holder)
		}
	}
	if len(problems) > 0 {
		if len(problems) > 30 {
			problems = append(problems[:30], "...")
		}
		s.fail("%s, collection %d:\n\t%s", when, s.md.Cycles, strings.Join(problems, "\n\t"))
	}
}

func emCmp(a, b reclaim.Object) int { return strings.Compare(a.String(), b.String()) }

func (s *emState) checkTable(o *emObj, mo *model.EphObj, bad func(string, ...any)) {
	m := s.m
	var n int
	get := func(k *emObj) (int64, bool) { return 0, false }
	switch o.tk {
	case 0:
		t := emRef[emTabNO](o).Get(m)
		n = t.Len()
		get = func(k *emObj) (int64, bool) {
			v, ok := t.Get(reclaim.UncheckedRef[emNode](k.obj))
			return s.idOf(v), ok
		}
	case 1:
		t := emRef[emTabNI](o).Get(m)
		n = t.Len()
		get = func(k *emObj) (int64, bool) { return t.Get(reclaim.UncheckedRef[emNode](k.obj)) }
	case 2:
		t := emRef[emTabLO](o).Get(m)
		n = t.Len()
		get = func(k *emObj) (int64, bool) {
			v, ok := t.Get(reclaim.UncheckedRef[emLeaf](k.obj))
			return s.idOf(v), ok
		}
	}
	if n != len(mo.Entries) {
		keys := slices.Sorted(func(yield func(model.ID) bool) {
			for k := range mo.Entries {
				if !yield(k) {
					return
				}
			}
		})
		bad("table %d: Len %d, model %d (keys %v)", o.id, n, len(mo.Entries), keys)
	}
	for k, want := range mo.Entries {
		got, ok := get(s.objs[k-1])
		if !ok || got != want {
			bad("table %d entry [%d]: %d %v, model %d", o.id, k, got, ok, want)
		}
	}
}

// idOf returns the model id of the object v names (-1 if none), or 0 for nil.
func (s *emState) idOf(v reclaim.Object) int64 {
	if v.IsNil() {
		return 0
	}
	for _, o := range s.objs {
		if o.obj == v {
			return int64(o.id)
		}
	}
	return -1
}

// A finalizable key of a type without refs (its span is never scanned),
// in a heap where no scanned span has a finalizer: the mark must still
// doom it, so that its entry's value (reached only through the entry) is
// kept for its finalizer, as for any other key. The doom rounds ran only
// when a scanned span had finalizers, and the value was freed under the
// kept entry (the invariants build's re-mark verifier: "finalizable key
// ... is not marked and was not doomed"). Found by TestWeakMapModel.
func TestWeakMapNoRefsFinalizableKeyKeepsValue(t *testing.T) {
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: workers})
			m := h.Attach()
			defer m.Detach()
			tab := reclaim.New[emTabLO](m)
			h.Pin(tab.Object())
			defer h.Unpin(tab.Object())
			k := reclaim.New[emLeaf](m)
			v := reclaim.New[emNode](m)
			v.Get(m).ID = 7
			tab.Get(m).Set(k, v.Object())
			var runs atomic.Int32
			var read atomic.Bool
			reclaim.SetFinalizer(m, k, func(fm *reclaim.Mutator, r reclaim.Ref[emLeaf]) {
				runs.Add(1)
				got, ok := tab.Get(fm).Get(r)
				read.Store(ok && got == v.Object() && isLive(v))
			})
			m.Collect()
			if !isLive(k) || !isLive(v) || tab.Get(m).Len() != 1 {
				t.Errorf("after the collection that queued the key's finalizer: key live %v, value live %v, len %d (want true, true, 1)",
					isLive(k), isLive(v), tab.Get(m).Len())
			}
			drain(t, h)
			if runs.Load() != 1 || !read.Load() {
				t.Errorf("the key's finalizer ran %d times (want 1); it read its entry with a live value: %v", runs.Load(), read.Load())
			}
			collectDrain(t, m, h)
			if isLive(k) || isLive(v) || tab.Get(m).Len() != 0 {
				t.Errorf("after the finalizer: key live %v, value live %v, len %d (want all gone)", isLive(k), isLive(v), tab.Get(m).Len())
			}
		})
	}
}
