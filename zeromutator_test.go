package reclaim

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// TestZeroMutator: a zero Mutator, one that Attach never made, is refused
// as a detached one is, and Get through it panics for a ref of any span
// index, the highest included. Get's panic is the runtime's nil
// dereference (the mutator has no span table, and Get makes no check of
// its own); a load past the zero page would kill the process instead.
// Under checkptr (-race) a ref of span index 2048 or more is left out: the
// lookup's pointer arithmetic on the nil table stops the process there.
func TestZeroMutator(t *testing.T) {
	recovered := func(f func()) (r any) {
		defer func() { r = recover() }()
		f()
		return nil
	}
	for _, idx := range []uint32{0, 1, 2047, 2048, 1 << 19, handle.MaxSpans - 1} {
		if checkptrOn && idx >= 2048 {
			continue
		}
		r := Ref[int]{handle.Pack(1, idx, 0, 1)}
		var m Mutator
		p := recovered(func() { _ = *r.Get(&m) })
		if e, ok := p.(runtime.Error); !ok || !strings.Contains(e.Error(), "nil pointer dereference") {
			t.Errorf("Get of a ref of span %d through a zero Mutator: panic %v, want a nil dereference", idx, p)
		}
	}
	r := Ref[int]{handle.Pack(1, 5, 0, 1)}
	for what, f := range map[string]func(m *Mutator){
		"New":          func(m *Mutator) { New[int](m) },
		"Safepoint":    func(m *Mutator) { m.Safepoint() },
		"Collect":      func(m *Mutator) { m.Collect() },
		"Detach":       func(m *Mutator) { m.Detach() },
		"SetFinalizer": func(m *Mutator) { SetFinalizer(m, r, func(*Mutator, Ref[int]) {}) },
		"AddCleanup":   func(m *Mutator) { AddCleanup(m, r, func(int) {}, 0) },
		"MakeWeak":     func(m *Mutator) { MakeWeak(m, r) },
	} {
		var m Mutator
		want := "reclaim: " + what + " on a detached mutator"
		if p := recovered(func() { f(&m) }); !strings.Contains(fmt.Sprint(p), want) {
			t.Errorf("%s through a zero Mutator: panic %v, want %q", what, p, want)
		}
	}
}
