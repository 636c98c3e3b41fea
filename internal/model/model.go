// Package model is a reference model of a reclaim heap, written for clarity
// rather than speed. It predicts, for a sequence of operations, which
// objects survive each collection, which finalizers and cleanups are queued
// and run, and what weak references return, following the semantics
// documented on reclaim's SetFinalizer, AddCleanup, Weak and LongWeak (the Go
// runtime's, plus long weak references). The fuzz test (fuzz_test.go at the module root) runs
// the same operations on a real heap and compares the two after every
// collection.
//
// The model knows nothing of spans, sweeping or goroutines. A collection is
// one step:
//
//  1. Roots: pinned objects, the embedder's roots (PushRoot), objects that
//     finalizers stored in the holder (resurrection), objects whose
//     finalizer is queued and has not run, the arguments of every cleanup
//     registered or queued and not run, and the referents (not the object
//     itself) of every object with a finalizer registered.
//  2. Mark everything reachable from the roots.
//  3. For every live object left unmarked, in id order: its short weak
//     references turn nil; if it has a finalizer, the finalizer is queued
//     and unregistered and the object survives (revived) with its cleanups
//     and long weak references untouched; otherwise its long weak
//     references turn nil, its cleanups are queued, and it is freed.
//
// Queued finalizers and cleanups run when the caller reports them
// (FinalizerRan, CleanupRan); a model error is returned for a run that was
// not queued or runs twice.
package model

import (
	"errors"
	"fmt"
	"slices"
)

// ID names an object of the model. IDs start at 1; 0 is the nil reference.
type ID int

// FinBehavior is what a finalizer does when it runs.
type FinBehavior uint8

const (
	FinNothing   FinBehavior = iota // returns
	FinResurrect                    // stores its object into the holder, a root
	FinPanic                        // panics; the panic is reported and the queue goes on
)

func (b FinBehavior) String() string {
	switch b {
	case FinNothing:
		return "nothing"
	case FinResurrect:
		return "resurrect"
	case FinPanic:
		return "panic"
	}
	return fmt.Sprintf("FinBehavior(%d)", b)
}

// State is the life cycle of a finalizer or cleanup registration:
//
//	state       entered by                          left for
//	Registered  SetFinalizer / AddCleanup           Cleared/Stopped, Queued
//	Cleared     SetFinalizer(nil) / Stop            (final)
//	Queued      a collection found the object dead  Ran
//	Ran         FinalizerRan / CleanupRan / Close   (final)
type State uint8

const (
	Registered State = iota
	Cleared
	Queued
	Ran
)

func (s State) String() string {
	return [...]string{"registered", "cleared", "queued", "ran"}[s]
}

// Errors of operations that the real heap rejects with a panic.
var (
	ErrDead           = errors.New("model: the object has been freed")
	ErrFinalizerSet   = errors.New("model: the object already has a finalizer")
	ErrNotPinned      = errors.New("model: the object is not pinned")
	ErrCleanupSelf    = errors.New("model: the cleanup's argument is the object itself")
	ErrNoSlot         = errors.New("model: the object has no such reference field")
	ErrNotInRootStack = errors.New("model: the root stack is empty")
)

// Object is one object of the model.
type Object struct {
	ID    ID
	Alive bool // allocated and not freed
	// Out holds the object's reference fields; 0 is nil. Objects without
	// reference fields have none.
	Out []ID
	// Pins counts Pin calls not yet undone.
	Pins int
	// Fin is the registered finalizer, or nil.
	Fin *Finalizer
	// Cleanups are the registered cleanups, in the order they were added.
	Cleanups []*Cleanup
	// ShortEpoch advances each time the object's short weak references
	// are cleared; a Weak made in an older epoch returns nil.
	ShortEpoch int
}

// Finalizer is one SetFinalizer registration.
type Finalizer struct {
	Reg      int // unique, from 1
	Obj      ID
	Behavior FinBehavior
	State    State
}

// Cleanup is one AddCleanup registration.
type Cleanup struct {
	CID    int // unique, from 1
	Obj    ID
	Arg    ID // the object the argument refers to, or 0
	Panics bool
	State  State
}

// Weak is a weak reference of the model.
type Weak struct {
	Obj   ID
	Long  bool
	Epoch int // the object's ShortEpoch when it was made (short only)
}

// Model is the reference heap.
type Model struct {
	Objects    []*Object    // Objects[id-1]
	Finalizers []*Finalizer // Finalizers[reg-1]
	Cleanups   []*Cleanup   // Cleanups[cid-1]
	// Stack is the embedder's root stack (reported by ScanRoots).
	Stack []ID
	// Holder holds the objects finalizers resurrected, in the order they
	// ran; it is a root.
	Holder []ID
	// Panics counts finalizers and cleanups that panicked when they ran.
	Panics int
	// Freed counts objects freed by collections.
	Freed int
	// Cycles counts collections.
	Cycles int
}

// New returns an empty model.
func New() *Model { return &Model{} }

// Object returns object id, or nil if id is out of range.
func (m *Model) Object(id ID) *Object {
	if id <= 0 || int(id) > len(m.Objects) {
		return nil
	}
	return m.Objects[id-1]
}

// Alive reports whether id names an allocated, not freed object.
func (m *Model) Alive(id ID) bool {
	o := m.Object(id)
	return o != nil && o.Alive
}

func (m *Model) live(id ID) (*Object, error) {
	o := m.Object(id)
	if o == nil {
		return nil, fmt.Errorf("model: no object %d", id)
	}
	if !o.Alive {
		return nil, ErrDead
	}
	return o, nil
}

// Alloc allocates an object with nrefs reference fields and returns its id.
func (m *Model) Alloc(nrefs int) ID {
	id := ID(len(m.Objects) + 1)
	m.Objects = append(m.Objects, &Object{ID: id, Alive: true, Out: make([]ID, nrefs)})
	return id
}

// Link sets field slot of a to b (0 cuts it).
func (m *Model) Link(a ID, slot int, b ID) error {
	o, err := m.live(a)
	if err != nil {
		return err
	}
	if slot < 0 || slot >= len(o.Out) {
		return ErrNoSlot
	}
	if b != 0 {
		if _, err := m.live(b); err != nil {
			return err
		}
	}
	o.Out[slot] = b
	return nil
}

// Pin adds a counted root.
func (m *Model) Pin(id ID) error {
	o, err := m.live(id)
	if err != nil {
		return err
	}
	o.Pins++
	return nil
}

// Unpin removes one pin.
func (m *Model) Unpin(id ID) error {
	o, err := m.live(id)
	if err != nil {
		return err
	}
	if o.Pins == 0 {
		return ErrNotPinned
	}
	o.Pins--
	return nil
}

// PushRoot pushes id on the embedder's root stack.
func (m *Model) PushRoot(id ID) error {
	if _, err := m.live(id); err != nil {
		return err
	}
	m.Stack = append(m.Stack, id)
	return nil
}

// PopRoot pops the root stack.
func (m *Model) PopRoot() (ID, error) {
	if len(m.Stack) == 0 {
		return 0, ErrNotInRootStack
	}
	id := m.Stack[len(m.Stack)-1]
	m.Stack = m.Stack[:len(m.Stack)-1]
	return id, nil
}

// ReleaseHolder forgets every resurrected object.
func (m *Model) ReleaseHolder() { m.Holder = nil }

// SetFinalizer registers a finalizer on id and returns its registration.
func (m *Model) SetFinalizer(id ID, b FinBehavior) (*Finalizer, error) {
	o, err := m.live(id)
	if err != nil {
		return nil, err
	}
	if o.Fin != nil {
		return nil, ErrFinalizerSet
	}
	f := &Finalizer{Reg: len(m.Finalizers) + 1, Obj: id, Behavior: b}
	m.Finalizers = append(m.Finalizers, f)
	o.Fin = f
	return f, nil
}

// ClearFinalizer unregisters id's finalizer, if any.
func (m *Model) ClearFinalizer(id ID) error {
	o, err := m.live(id)
	if err != nil {
		return err
	}
	if o.Fin != nil {
		o.Fin.State = Cleared
		o.Fin = nil
	}
	return nil
}

// AddCleanup registers a cleanup on id whose argument refers to arg (0:
// none). bare says the argument is the reference itself, so arg == id is
// rejected; an argument that only contains a reference to id is accepted
// (and the cleanup never runs before Close).
func (m *Model) AddCleanup(id, arg ID, panics, bare bool) (*Cleanup, error) {
	if bare && arg == id {
		return nil, ErrCleanupSelf
	}
	o, err := m.live(id)
	if err != nil {
		return nil, err
	}
	if arg != 0 {
		if _, err := m.live(arg); err != nil {
			return nil, fmt.Errorf("model: cleanup argument: %w", err)
		}
	}
	c := &Cleanup{CID: len(m.Cleanups) + 1, Obj: id, Arg: arg, Panics: panics}
	m.Cleanups = append(m.Cleanups, c)
	o.Cleanups = append(o.Cleanups, c)
	return c, nil
}

// Stop cancels cleanup cid if it is still registered, and reports whether
// it did.
func (m *Model) Stop(cid int) bool {
	c := m.Cleanups[cid-1]
	if c.State != Registered {
		return false
	}
	c.State = Cleared
	o := m.Object(c.Obj)
	o.Cleanups = slices.DeleteFunc(o.Cleanups, func(x *Cleanup) bool { return x == c })
	return true
}

// MakeWeak returns a weak reference to id.
func (m *Model) MakeWeak(id ID, long bool) (Weak, error) {
	o, err := m.live(id)
	if err != nil {
		return Weak{}, err
	}
	w := Weak{Obj: id, Long: long}
	if !long {
		w.Epoch = o.ShortEpoch
	}
	return w, nil
}

// Value returns what w's Value returns: its object, or 0.
func (m *Model) Value(w Weak) ID {
	o := m.Object(w.Obj)
	if o == nil || !o.Alive {
		return 0
	}
	if !w.Long && w.Epoch != o.ShortEpoch {
		return 0
	}
	return w.Obj
}

// WeakEqual reports whether the real weak references of a and b compare
// equal: made from the same object, of the same kind, and (short) in the
// same epoch.
func WeakEqual(a, b Weak) bool { return a == b }

// CollectResult is what one collection did.
type CollectResult struct {
	Finalizers []*Finalizer // queued
	Cleanups   []*Cleanup   // queued
	Freed      []ID
	Revived    []ID // kept for their finalizer
}

// roots returns the collection's roots (step 1 of the package comment).
func (m *Model) roots() []ID {
	var roots []ID
	for _, o := range m.Objects {
		if !o.Alive {
			continue
		}
		if o.Pins > 0 {
			roots = append(roots, o.ID)
		}
		if o.Fin != nil {
			roots = append(roots, o.Out...)
		}
	}
	roots = append(roots, m.Stack...)
	roots = append(roots, m.Holder...)
	for _, f := range m.Finalizers {
		if f.State == Queued {
			roots = append(roots, f.Obj)
		}
	}
	for _, c := range m.Cleanups {
		if c.State == Registered || c.State == Queued {
			roots = append(roots, c.Arg)
		}
	}
	return roots
}

// Reachable returns the set of objects reachable from the roots.
func (m *Model) Reachable() map[ID]bool {
	marked := make(map[ID]bool)
	stack := m.roots()
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if id == 0 || marked[id] {
			continue
		}
		o := m.Object(id)
		if !o.Alive {
			panic(fmt.Sprintf("model: internal error: dead object %d reachable", id))
		}
		marked[id] = true
		stack = append(stack, o.Out...)
	}
	return marked
}

// Collect runs one collection (the package comment's steps).
func (m *Model) Collect() CollectResult {
	var res CollectResult
	marked := m.Reachable()
	for _, o := range m.Objects {
		if !o.Alive || marked[o.ID] {
			continue
		}
		o.ShortEpoch++
		if f := o.Fin; f != nil {
			f.State = Queued
			o.Fin = nil
			res.Finalizers = append(res.Finalizers, f)
			res.Revived = append(res.Revived, o.ID)
			continue
		}
		for _, c := range o.Cleanups {
			c.State = Queued
			res.Cleanups = append(res.Cleanups, c)
		}
		o.Cleanups = nil
		o.Alive = false
		clear(o.Out)
		if o.Pins != 0 {
			panic(fmt.Sprintf("model: internal error: pinned object %d freed", o.ID))
		}
		res.Freed = append(res.Freed, o.ID)
	}
	m.Freed += len(res.Freed)
	m.Cycles++
	return res
}

// FinalizerRan records that finalizer reg ran.
func (m *Model) FinalizerRan(reg int) error {
	if reg <= 0 || reg > len(m.Finalizers) {
		return fmt.Errorf("model: finalizer %d never registered ran", reg)
	}
	f := m.Finalizers[reg-1]
	if f.State != Queued {
		return fmt.Errorf("model: finalizer %d (object %d) ran while %v", reg, f.Obj, f.State)
	}
	f.State = Ran
	m.finalizerEffects(f)
	return nil
}

func (m *Model) finalizerEffects(f *Finalizer) {
	switch f.Behavior {
	case FinResurrect:
		m.Holder = append(m.Holder, f.Obj)
	case FinPanic:
		m.Panics++
	}
}

// CleanupRan records that cleanup cid ran.
func (m *Model) CleanupRan(cid int) error {
	if cid <= 0 || cid > len(m.Cleanups) {
		return fmt.Errorf("model: cleanup %d never registered ran", cid)
	}
	c := m.Cleanups[cid-1]
	if c.State != Queued {
		return fmt.Errorf("model: cleanup %d (object %d) ran while %v", cid, c.Obj, c.State)
	}
	c.State = Ran
	if c.Panics {
		m.Panics++
	}
	return nil
}

// Pending returns the finalizers and cleanups queued and not yet run.
func (m *Model) Pending() (fins []*Finalizer, cleanups []*Cleanup) {
	for _, f := range m.Finalizers {
		if f.State == Queued {
			fins = append(fins, f)
		}
	}
	for _, c := range m.Cleanups {
		if c.State == Queued {
			cleanups = append(cleanups, c)
		}
	}
	return fins, cleanups
}

// Close predicts what closing the heap runs: every finalizer registered or
// queued, then every cleanup registered or queued. It marks them all run,
// applies the finalizers' effects, and returns them.
func (m *Model) Close() (fins []*Finalizer, cleanups []*Cleanup) {
	for _, f := range m.Finalizers {
		if f.State == Registered || f.State == Queued {
			f.State = Ran
			m.Object(f.Obj).Fin = nil
			m.finalizerEffects(f)
			fins = append(fins, f)
		}
	}
	for _, c := range m.Cleanups {
		if c.State == Registered || c.State == Queued {
			c.State = Ran
			if c.Panics {
				m.Panics++
			}
			cleanups = append(cleanups, c)
		}
	}
	for _, o := range m.Objects {
		o.Cleanups = nil
	}
	return fins, cleanups
}
