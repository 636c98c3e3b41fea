package reclaim_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/reclaimgc/reclaim"
)

// Point is a plain value stored in a heap.
type Point struct{ X, Y int }

// Node links to other nodes through refs, which the collector follows.
type Node struct {
	Next  reclaim.Ref[Node]
	Value int
}

func Example() {
	h := reclaim.NewHeap(reclaim.Options{})
	defer h.Close()
	m := h.Attach() // this goroutine becomes a mutator of h
	defer m.Detach()

	p := reclaim.New[Point](m) // a zeroed Point
	fmt.Println(*p.Get(m))
	*p.Get(m) = Point{X: 1, Y: 2}
	fmt.Println(*p.Get(m))
	// Output:
	// {0 0}
	// {1 2}
}

func ExampleHeap_Pin() {
	h := reclaim.NewHeap(reclaim.Options{})
	defer h.Close()
	m := h.Attach()
	defer m.Detach()

	// A list of three nodes; only its head is a root.
	var head reclaim.Ref[Node]
	for i := range 3 {
		n := reclaim.New[Node](m)
		*n.Get(m) = Node{Next: head, Value: i}
		head = n
	}
	h.Pin(head.Object())
	garbage := reclaim.New[Node](m)

	m.Collect() // only what roots reach survives

	for n := head; !n.IsNil(); n = n.Get(m).Next {
		fmt.Print(n.Get(m).Value, " ")
	}
	_, ok := reclaim.As[Node](garbage.Object())
	fmt.Println("| garbage alive:", ok, "| objects:", h.Stats().HeapObjects)
	h.Unpin(head.Object())
	// Output: 2 1 0 | garbage alive: false | objects: 3
}

func ExampleSetFinalizer() {
	h := reclaim.NewHeap(reclaim.Options{})
	defer h.Close()
	m := h.Attach()
	defer m.Detach()

	r := reclaim.New[Point](m)
	*r.Get(m) = Point{X: 42}
	reclaim.SetFinalizer(m, r, func(fm *reclaim.Mutator, r reclaim.Ref[Point]) {
		// The object is reachable again while its finalizer runs.
		fmt.Println("finalizing", r.Get(fm).X)
	})

	m.Collect()                   // r is unreachable: its finalizer is queued
	m.Drain(context.Background()) // wait for it to run (m stays at a safepoint meanwhile)
	m.Collect()                   // now it is freed
	st := h.Stats()
	fmt.Println("finalizers run:", st.FinalizersExecuted, "objects:", st.HeapObjects)
	// Output:
	// finalizing 42
	// finalizers run: 1 objects: 0
}

func ExampleAddCleanup() {
	h := reclaim.NewHeap(reclaim.Options{})
	defer h.Close()
	m := h.Attach()
	defer m.Detach()

	// A cleanup gets an argument, never the object itself: here, the name
	// of an external resource the object owned.
	file := reclaim.New[Point](m)
	reclaim.AddCleanup(m, file, func(name string) { fmt.Println("closing", name) }, "data.txt")
	stopped := reclaim.New[Point](m)
	c := reclaim.AddCleanup(m, stopped, func(name string) { fmt.Println("closing", name) }, "never.txt")
	c.Stop()

	m.Collect()
	m.Drain(context.Background())
	// Output: closing data.txt
}

func ExampleMakeWeak() {
	h := reclaim.NewHeap(reclaim.Options{})
	defer h.Close()
	m := h.Attach()
	defer m.Detach()

	r := reclaim.New[Point](m)
	w := reclaim.MakeWeak(m, r)
	fmt.Println("same object:", w.Value(m) == r, "| equal weak refs:", w == reclaim.MakeWeak(m, r))

	m.Collect() // nothing keeps r alive
	fmt.Println("after a collection, nil:", w.Value(m).IsNil())
	// Output:
	// same object: true | equal weak refs: true
	// after a collection, nil: true
}

func ExampleTryNew() {
	h := reclaim.NewHeap(reclaim.Options{MemoryLimit: 256 << 10})
	defer h.Close()
	m := h.Attach()
	defer m.Detach()

	type Block [4096]byte
	n := 0 // blocks allocated
	var err error
	for {
		if _, err = reclaim.TryNew[Block](m); err != nil {
			break
		}
		n++
	}
	fmt.Println(errors.Is(err, reclaim.ErrMemoryLimit), n*4096 <= 256<<10)

	// The heap stays usable: the blocks were garbage, so a collection
	// makes room.
	m.Collect()
	_, err = reclaim.TryNew[Block](m)
	fmt.Println(err)
	// Output:
	// true true
	// <nil>
}

// Scope is a variable scope of an interpreter: its bindings live in a Go
// map, which the collector cannot see, so Scope implements Tracer.
type Scope struct {
	Vars   map[string]reclaim.Object
	Parent reclaim.Ref[Scope] // reported by Trace too: for a Tracer, Trace replaces the type's layout
}

// Trace reports every ref the scope holds.
func (s *Scope) Trace(visit func(reclaim.Object)) {
	for _, v := range s.Vars {
		visit(v)
	}
	visit(s.Parent.Object())
}

func ExampleTracer() {
	h := reclaim.NewHeap(reclaim.Options{})
	defer h.Close()
	m := h.Attach()
	defer m.Detach()

	global := reclaim.New[Scope](m)
	h.Pin(global.Object())
	defer h.Unpin(global.Object())
	p := reclaim.New[Point](m)
	*p.Get(m) = Point{X: 3, Y: 4}
	global.Get(m).Vars = map[string]reclaim.Object{"origin": p.Object()}

	m.Collect()
	origin, ok := reclaim.As[Point](global.Get(m).Vars["origin"])
	fmt.Println(ok, *origin.Get(m))
	// Output: true {3 4}
}

// A goroutine that keeps its mutator attached waits for finalizers with
// Mutator.Drain; here the finalizer itself allocates on the heap.
func ExampleMutator_Drain() {
	h := reclaim.NewHeap(reclaim.Options{})
	defer h.Close()
	m := h.Attach()
	defer m.Detach()

	reclaim.SetFinalizer(m, reclaim.New[Node](m), func(fm *reclaim.Mutator, r reclaim.Ref[Node]) {
		note := reclaim.New[Point](fm) // finalizers run as a mutator
		note.Get(fm).X = r.Get(fm).Value + 1
		fmt.Println("finalized; note", note.Get(fm).X)
	})
	m.Collect()
	if err := m.Drain(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// finalized; note 1
}

// A WeakMap is an ephemeron table, JavaScript's WeakMap: an entry keeps
// its value only while its key is reachable from elsewhere, and the table
// never keeps a key alive.
func ExampleWeakMap() {
	h := reclaim.NewHeap(reclaim.Options{})
	defer h.Close()
	m := h.Attach()
	defer m.Detach()

	// The table is a heap object, reached from a root like any other.
	cache := reclaim.New[reclaim.WeakMap[Node, reclaim.Ref[Point]]](m)
	h.Pin(cache.Object())
	defer h.Unpin(cache.Object())

	kept, dropped := reclaim.New[Node](m), reclaim.New[Node](m)
	h.Pin(kept.Object())
	defer h.Unpin(kept.Object())
	for i, k := range []reclaim.Ref[Node]{kept, dropped} {
		v := reclaim.New[Point](m)
		v.Get(m).X = i + 1
		cache.Get(m).Set(k, v) // v lives as long as k does
	}

	m.Collect() // dropped is unreachable: its entry goes, and its value
	v, ok := cache.Get(m).Get(kept)
	fmt.Println("entries:", cache.Get(m).Len(), "| kept's value:", v.Get(m).X, ok)
	// Output: entries: 1 | kept's value: 1 true
}

// A long weak reference stays valid while its object is kept alive for its
// finalizer; a weak reference turns nil as soon as the finalizer is queued
// (Go's rule).
func ExampleMakeLongWeak() {
	h := reclaim.NewHeap(reclaim.Options{})
	defer h.Close()
	m := h.Attach()
	defer m.Detach()

	r := reclaim.New[Point](m)
	short, long := reclaim.MakeWeak(m, r), reclaim.MakeLongWeak(m, r)
	reclaim.SetFinalizer(m, r, func(*reclaim.Mutator, reclaim.Ref[Point]) {})

	m.Collect() // finalizer queued: the object survives this cycle
	fmt.Println("weak nil:", short.Value(m).IsNil(), "| long weak nil:", long.Value(m).IsNil())
	m.Drain(context.Background()) // the finalizer runs
	m.Collect()                   // and the object is freed
	fmt.Println("weak nil:", short.Value(m).IsNil(), "| long weak nil:", long.Value(m).IsNil())
	// Output:
	// weak nil: true | long weak nil: false
	// weak nil: true | long weak nil: true
}

// A single-threaded interpreter runs its finalizers itself, on its own
// mutator, at the safepoints it chooses, a budget at a time: Lua's __gc
// and JavaScript's FinalizationRegistry callbacks are run this way.
func ExampleOptions_finalizersAtSafepoints() {
	h := reclaim.NewHeap(reclaim.Options{FinalizersAtSafepoints: true, FinalizerBudget: 2})
	defer h.Close()
	m := h.Attach()
	defer m.Detach()

	ran := 0 // no lock: every finalizer runs on this goroutine
	for range 5 {
		reclaim.SetFinalizer(m, reclaim.New[Node](m), func(fm *reclaim.Mutator, r reclaim.Ref[Node]) {
			// fm is m: the finalizer runs inside m's Safepoint or Collect.
			ran++
		})
	}
	m.Collect() // queues the five finalizers and runs two of them
	fmt.Println("after Collect:", ran)
	for ran < 5 {
		m.Safepoint() // two more at each
		fmt.Println("after Safepoint:", ran)
	}
	// Output:
	// after Collect: 2
	// after Safepoint: 4
	// after Safepoint: 5
}

// RetainingPath answers "why is this object still alive?": the chain of
// references from a root to it.
func ExampleMutator_RetainingPath() {
	h := reclaim.NewHeap(reclaim.Options{})
	defer h.Close()
	m := h.Attach()
	defer m.Detach()

	global := reclaim.New[Scope](m)
	h.Pin(global.Object())
	defer h.Unpin(global.Object())
	closure := reclaim.New[Node](m)
	global.Get(m).Vars = map[string]reclaim.Object{"callback": closure.Object()}
	env := reclaim.New[Node](m) // expected to be garbage by now
	closure.Get(m).Next = env

	path, ok := m.RetainingPath(env.Object())
	fmt.Println(ok)
	for _, line := range path {
		fmt.Println(line)
	}
	// Output:
	// true
	// pinned: reclaim_test.Scope
	// -> reclaim_test.Node
	// -> reclaim_test.Node
}
