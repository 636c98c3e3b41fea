package cleanupq

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/quick"
)

// testNodes is a fixed arena of link words for lfstack tests.
type testNodes []atomic.Uint32

func (t testNodes) link(i uint32) *atomic.Uint32 { return &t[i] }

// intStack is what the tests drive: the lock-free stack or the reference.
type intStack interface {
	push(i uint32)
	pop() (uint32, bool)
}

// lfAdapter drives an lfstack over testNodes.
type lfAdapter struct {
	s     lfstack
	nodes testNodes
}

func (a *lfAdapter) push(i uint32)       { a.s.push(i, a.nodes.link(i)) }
func (a *lfAdapter) pop() (uint32, bool) { return a.s.pop(a.nodes) }

// refStack is the mutex-based reference implementation.
type refStack struct {
	mu struct {
		sync.Mutex
		s []uint32
	}
}

func (r *refStack) push(i uint32) {
	r.mu.Lock()
	r.mu.s = append(r.mu.s, i)
	r.mu.Unlock()
}

func (r *refStack) pop() (uint32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.mu.s) == 0 {
		return 0, false
	}
	i := r.mu.s[len(r.mu.s)-1]
	r.mu.s = r.mu.s[:len(r.mu.s)-1]
	return i, true
}

// TestLFStackSequential compares single-goroutine operation sequences
// against the reference stack: same results, in the same LIFO order.
func TestLFStackSequential(t *testing.T) {
	const nodes = 64
	f := func(ops []byte) bool {
		lf := &lfAdapter{nodes: make(testNodes, nodes)}
		ref := &refStack{}
		var out []uint32 // nodes not on the stacks
		for i := range uint32(nodes) {
			out = append(out, i)
		}
		for _, op := range ops {
			if op%3 != 0 && len(out) > 0 {
				// Push a node that is not on the stack.
				k := int(op) % len(out)
				n := out[k]
				out = append(out[:k], out[k+1:]...)
				lf.push(n)
				ref.push(n)
				continue
			}
			a, aok := lf.pop()
			b, bok := ref.pop()
			if a != b || aok != bok {
				t.Logf("pop: lfstack (%d, %v), reference (%d, %v)", a, aok, b, bok)
				return false
			}
			if aok {
				out = append(out, a)
			}
		}
		for {
			a, aok := lf.pop()
			b, bok := ref.pop()
			if a != b || aok != bok {
				t.Logf("drain: lfstack (%d, %v), reference (%d, %v)", a, aok, b, bok)
				return false
			}
			if !aok {
				return lf.s.empty()
			}
		}
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 2000}); err != nil {
		t.Fatal(err)
	}
}

// TestLFStackConcurrent runs the same randomized concurrent workload on the
// lock-free stack and on the reference: goroutines pop nodes, hold them for
// a while and push them back. Every node must always have exactly one owner
// (the stack or one goroutine): a pop that returns a node already held by
// someone, or a node lost at the end, is a failure.
func TestLFStackConcurrent(t *testing.T) {
	for _, impl := range []string{"lfstack", "reference"} {
		t.Run(impl, func(t *testing.T) {
			const nodes = 32
			var s intStack
			if impl == "lfstack" {
				s = &lfAdapter{nodes: make(testNodes, nodes)}
			} else {
				s = &refStack{}
			}
			testStackOwnership(t, s, nodes)
		})
	}
}

func testStackOwnership(t *testing.T, s intStack, nodes int) {
	const onStack = -1
	goroutines, ops := 8, 200000
	if testing.Short() {
		ops = 20000
	}
	owner := make([]atomic.Int32, nodes)
	for i := range nodes {
		owner[i].Store(onStack)
		s.push(uint32(i))
	}
	var wg sync.WaitGroup
	var failures atomic.Int32
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			var held []uint32
			for range ops {
				if len(held) > 0 && (rng.IntN(2) == 0 || len(held) > 4) {
					k := rng.IntN(len(held))
					n := held[k]
					held = append(held[:k], held[k+1:]...)
					if !owner[n].CompareAndSwap(int32(g), onStack) {
						failures.Add(1)
					}
					s.push(n)
					continue
				}
				n, ok := s.pop()
				if !ok {
					continue
				}
				if !owner[n].CompareAndSwap(onStack, int32(g)) {
					failures.Add(1)
				}
				held = append(held, n)
			}
			for _, n := range held {
				owner[n].Store(onStack)
				s.push(n)
			}
		})
	}
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d ownership violations", f)
	}
	seen := make([]bool, nodes)
	for {
		n, ok := s.pop()
		if !ok {
			break
		}
		if seen[n] {
			t.Fatalf("node %d on the stack twice", n)
		}
		seen[n] = true
	}
	for i, ok := range seen {
		if !ok {
			t.Errorf("node %d lost", i)
		}
	}
}

// TestLFStackABA replays the ABA interleaving deterministically: a popper
// reads head A with link B, then A and B are popped and A is pushed back.
// The stale pop must fail; without the tag it would install B, which is no
// longer on the stack.
func TestLFStackABA(t *testing.T) {
	nodes := make(testNodes, 3)
	var s lfstack
	const a, b, c = 0, 1, 2
	s.push(c, nodes.link(c))
	s.push(b, nodes.link(b))
	s.push(a, nodes.link(a))

	old := s.head.Load()
	top, next := s.popStep(old, nodes)
	if top != a {
		t.Fatalf("popStep took %d, want %d", top, a)
	}

	for _, want := range []uint32{a, b} {
		if got, ok := s.pop(nodes); !ok || got != want {
			t.Fatalf("pop = %d, %v; want %d", got, ok, want)
		}
	}
	s.push(a, nodes.link(a))
	if uint32(s.head.Load()) != uint32(old) {
		t.Fatalf("test setup: top index changed")
	}
	if s.head.CompareAndSwap(old, next) {
		t.Fatal("stale pop succeeded after A was popped and pushed again")
	}
	for _, want := range []uint32{a, c} {
		if got, ok := s.pop(nodes); !ok || got != want {
			t.Fatalf("pop = %d, %v; want %d", got, ok, want)
		}
	}
	if !s.empty() {
		t.Fatal("stack not empty")
	}
}
