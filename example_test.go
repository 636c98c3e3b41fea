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
	h.Drain(context.Background()) // wait for it to run
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
	h.Drain(context.Background())
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
