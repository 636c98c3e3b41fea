package model

import (
	"fmt"
	"maps"
	"slices"
)

// Eph is a reference model of a heap with WeakMaps (ephemeron tables),
// finalizers, short and long weak references, written for clarity rather
// than speed: reachability is recomputed by sweeping over every object
// until nothing changes (quadratic, for heaps of a few hundred objects).
// It shares nothing with reclaim's internal/heap. ephmodel_test.go at the
// module root runs random operations on it and on a real heap and compares
// the two after every collection.
//
// Objects are nodes (two reference fields), leaves (none) and tables. A
// table maps keys (live objects) to values: object ids, or plain numbers
// for a table whose value type holds no refs (RefVals false). A
// collection is:
//
//  1. Roots: pinned objects, the holder (objects resurrected by their
//     finalizers), objects whose finalizer is queued and has not run, and
//     the referents of every object with a finalizer registered when the
//     collection starts (Go's rule, seed 003): a node's fields, and a
//     table's entries whose keys are reachable. The object itself is not a
//     root.
//  2. Mark (Mark): an object's fields are followed; a table's entry's value
//     is followed when the table is marked (or finalizable, step 1) and the
//     entry's key is marked, to a fixpoint.
//  3. Doom rounds: a key with a finalizer still registered, not marked,
//     with an entry whose value type holds refs in a table that is marked
//     or finalizable, is doomed: its short weak references turn nil, its
//     finalizer is queued (and unregistered), and it is marked, as a root of
//     another mark, which follows its entries. All the keys found when a
//     mark ends are doomed together; the next round looks again (a table
//     first reached through a doomed key's value may hold more), until a
//     round finds none.
//  4. Sweep: every live object not marked has its short weak references
//     turn nil; if it has a finalizer, the finalizer is queued and the
//     object survives; otherwise it is freed and its long weak references
//     turn nil.
//  5. Prune: every surviving table deletes the entries whose keys were
//     freed. (A doomed key, or one kept for its finalizer, keeps its
//     entries until it is freed, by a later collection.)
type Eph struct {
	Objs   []*EphObj // Objs[id-1]
	Fins   []*EphFin // Fins[reg-1]
	Holder []ID
	Cycles int
}

// EphKind is the kind of an object of an Eph.
type EphKind uint8

const (
	EphNode  EphKind = iota // two reference fields
	EphLeaf                 // no reference fields
	EphTable                // a WeakMap
)

// EphObj is one object of an Eph.
type EphObj struct {
	ID         ID
	Kind       EphKind
	Alive      bool
	Out        [2]ID // fields (nodes only)
	Pins       int
	Fin        *EphFin // registered finalizer, or nil
	ShortEpoch int     // advanced when its short weak refs are cleared
	// Tables only: KeyKind is the kind of the table's keys; RefVals says
	// the values are object ids (else numbers, which hold no refs);
	// Entries maps a key to its value.
	KeyKind EphKind
	RefVals bool
	Entries map[ID]int64
}

// EphFin is one finalizer registration.
type EphFin struct {
	Reg       int
	Obj       ID
	Resurrect bool // the finalizer stores its object into the holder
	State     State
	Doomed    bool // queued by a doom round (step 3), not by the sweep
}

// EphWeak is a weak reference.
type EphWeak struct {
	Obj   ID
	Long  bool
	Epoch int
}

// EphResult is what one collection did.
type EphResult struct {
	Queued []*EphFin
	Doomed []ID // keys doomed, in the order of the rounds
	Freed  []ID
	Rounds int // doom rounds that doomed keys
}

// NewEph returns an empty model.
func NewEph() *Eph { return &Eph{} }

// Obj returns object id (nil if out of range).
func (m *Eph) Obj(id ID) *EphObj {
	if id <= 0 || int(id) > len(m.Objs) {
		return nil
	}
	return m.Objs[id-1]
}

// Alive reports whether id is allocated and not freed.
func (m *Eph) Alive(id ID) bool {
	o := m.Obj(id)
	return o != nil && o.Alive
}

func (m *Eph) mustLive(id ID) *EphObj {
	o := m.Obj(id)
	if o == nil || !o.Alive {
		panic(fmt.Sprintf("model: object %d is not live", id))
	}
	return o
}

// Alloc allocates a node or a leaf.
func (m *Eph) Alloc(k EphKind) ID {
	if k == EphTable {
		panic("model: Alloc of a table: use AllocTable")
	}
	id := ID(len(m.Objs) + 1)
	m.Objs = append(m.Objs, &EphObj{ID: id, Kind: k, Alive: true})
	return id
}

// AllocTable allocates a table whose keys are of kind keyKind.
func (m *Eph) AllocTable(keyKind EphKind, refVals bool) ID {
	id := ID(len(m.Objs) + 1)
	m.Objs = append(m.Objs, &EphObj{ID: id, Kind: EphTable, Alive: true, KeyKind: keyKind, RefVals: refVals, Entries: map[ID]int64{}})
	return id
}

// Link sets node a's field slot to b (0 cuts it).
func (m *Eph) Link(a ID, slot int, b ID) {
	o := m.mustLive(a)
	if o.Kind != EphNode {
		panic("model: Link on a non-node")
	}
	if b != 0 {
		m.mustLive(b)
	}
	o.Out[slot] = b
}

// Set stores v under key k in table t.
func (m *Eph) Set(t, k ID, v int64) {
	o, ko := m.mustLive(t), m.mustLive(k)
	if o.Kind != EphTable || ko.Kind != o.KeyKind {
		panic("model: Set of a wrong kind")
	}
	if o.RefVals && v != 0 {
		m.mustLive(ID(v))
	}
	o.Entries[k] = v
}

// Delete removes k's entry from t and reports whether there was one.
func (m *Eph) Delete(t, k ID) bool {
	o := m.mustLive(t)
	_, ok := o.Entries[k]
	delete(o.Entries, k)
	return ok
}

// Pin and Unpin count roots.
func (m *Eph) Pin(id ID) { m.mustLive(id).Pins++ }

func (m *Eph) Unpin(id ID) {
	o := m.mustLive(id)
	if o.Pins == 0 {
		panic("model: Unpin of an unpinned object")
	}
	o.Pins--
}

// SetFinalizer registers a finalizer on id, which must have none.
func (m *Eph) SetFinalizer(id ID, resurrect bool) *EphFin {
	o := m.mustLive(id)
	if o.Fin != nil {
		panic("model: the object has a finalizer")
	}
	f := &EphFin{Reg: len(m.Fins) + 1, Obj: id, Resurrect: resurrect}
	m.Fins = append(m.Fins, f)
	o.Fin = f
	return f
}

// ClearFinalizer unregisters id's finalizer, if any.
func (m *Eph) ClearFinalizer(id ID) {
	o := m.mustLive(id)
	if o.Fin != nil {
		o.Fin.State = Cleared
		o.Fin = nil
	}
}

// MakeWeak returns a weak reference to id.
func (m *Eph) MakeWeak(id ID, long bool) EphWeak {
	o := m.mustLive(id)
	return EphWeak{Obj: id, Long: long, Epoch: o.ShortEpoch}
}

// Value returns what w's Value returns: its object, or 0.
func (m *Eph) Value(w EphWeak) ID {
	o := m.Obj(w.Obj)
	if o == nil || !o.Alive || !w.Long && w.Epoch != o.ShortEpoch {
		return 0
	}
	return w.Obj
}

// ReleaseHolder forgets the resurrected objects.
func (m *Eph) ReleaseHolder() { m.Holder = nil }

// FinalizerRan records that finalizer reg ran.
func (m *Eph) FinalizerRan(reg int) error {
	if reg <= 0 || reg > len(m.Fins) {
		return fmt.Errorf("model: finalizer %d never registered ran", reg)
	}
	f := m.Fins[reg-1]
	if f.State != Queued {
		return fmt.Errorf("model: finalizer %d (object %d) ran while %v", reg, f.Obj, f.State)
	}
	f.State = Ran
	if f.Resurrect {
		m.Holder = append(m.Holder, f.Obj)
	}
	return nil
}

// Pending returns the finalizers queued and not run.
func (m *Eph) Pending() []*EphFin {
	var fs []*EphFin
	for _, f := range m.Fins {
		if f.State == Queued {
			fs = append(fs, f)
		}
	}
	return fs
}

// Mark extends marked to its fixpoint from seeds (step 2). finalizable
// names the objects with a finalizer when the collection started: their
// tables' entries are followed whether or not the table is marked.
func (m *Eph) Mark(marked map[ID]bool, finalizable map[ID]bool, seeds []ID) {
	for _, id := range seeds {
		if id != 0 {
			marked[id] = true
		}
	}
	for changed := true; changed; {
		changed = false
		mark := func(id ID) {
			if id != 0 && !marked[id] {
				if !m.Alive(id) {
					panic(fmt.Sprintf("model: internal error: freed object %d reached", id))
				}
				marked[id] = true
				changed = true
			}
		}
		for _, o := range m.Objs {
			if !o.Alive {
				continue
			}
			if marked[o.ID] && o.Kind == EphNode {
				mark(o.Out[0])
				mark(o.Out[1])
			}
			if o.Kind == EphTable && o.RefVals && (marked[o.ID] || finalizable[o.ID]) {
				for _, k := range slices.Sorted(maps.Keys(o.Entries)) {
					if marked[k] {
						mark(ID(o.Entries[k]))
					}
				}
			}
		}
	}
}

// Collect runs one collection (the type's comment).
func (m *Eph) Collect() EphResult {
	var res EphResult
	finalizable := map[ID]bool{}
	var seeds []ID
	for _, o := range m.Objs {
		if !o.Alive {
			continue
		}
		if o.Pins > 0 {
			seeds = append(seeds, o.ID)
		}
		if o.Fin != nil {
			finalizable[o.ID] = true
			if o.Kind == EphNode {
				seeds = append(seeds, o.Out[:]...)
			}
		}
	}
	seeds = append(seeds, m.Holder...)
	for _, f := range m.Fins {
		if f.State == Queued {
			seeds = append(seeds, f.Obj)
		}
	}
	marked := map[ID]bool{}
	m.Mark(marked, finalizable, seeds)

	// Doom rounds.
	for {
		var doom []ID
		for _, k := range m.Objs {
			if !k.Alive || marked[k.ID] || k.Fin == nil {
				continue
			}
			for _, t := range m.Objs {
				if t.Alive && t.Kind == EphTable && t.RefVals && (marked[t.ID] || finalizable[t.ID]) {
					if _, ok := t.Entries[k.ID]; ok {
						doom = append(doom, k.ID)
						break
					}
				}
			}
		}
		if len(doom) == 0 {
			break
		}
		for _, id := range doom {
			o := m.Objs[id-1]
			o.ShortEpoch++
			o.Fin.State = Queued
			o.Fin.Doomed = true
			res.Queued = append(res.Queued, o.Fin)
			o.Fin = nil
		}
		res.Doomed = append(res.Doomed, doom...)
		res.Rounds++
		m.Mark(marked, finalizable, doom)
	}

	// Sweep.
	for _, o := range m.Objs {
		if !o.Alive || marked[o.ID] {
			continue
		}
		o.ShortEpoch++
		if f := o.Fin; f != nil {
			f.State = Queued
			res.Queued = append(res.Queued, f)
			o.Fin = nil
			continue
		}
		if o.Pins != 0 {
			panic(fmt.Sprintf("model: internal error: pinned object %d freed", o.ID))
		}
		o.Alive = false
		o.Out = [2]ID{}
		o.Entries = nil
		res.Freed = append(res.Freed, o.ID)
	}

	// Prune.
	for _, t := range m.Objs {
		if t.Alive && t.Kind == EphTable {
			maps.DeleteFunc(t.Entries, func(k ID, _ int64) bool { return !m.Alive(k) })
		}
	}
	m.Cycles++
	return res
}
