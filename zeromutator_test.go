package reclaim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// TestZeroMutator: a zero Mutator, one that Attach never made, is refused
// as a detached one is, and Get through it panics for a ref of any span
// index, the highest included. Get's panic is the runtime's nil
// dereference (the mutator has no span table: Get makes no check of its
// own); a fault past the zero page would kill the process instead.
func TestZeroMutator(t *testing.T) {
	panics := func(what string, f func()) (msg string) {
		t.Helper()
		defer func() {
			r := recover()
			if r == nil {
				t.Errorf("%s through a zero Mutator did not panic", what)
			}
			msg = fmt.Sprint(r)
		}()
		f()
		return ""
	}
	for _, idx := range []uint32{0, 1, 1 << 19, handle.MaxSpans - 1} {
		r := Ref[int]{handle.Pack(1, idx, 0, 1)}
		var m Mutator
		panics(fmt.Sprintf("Get of a ref of span %d", idx), func() { _ = *r.Get(&m) })
	}
	var m Mutator
	for what, f := range map[string]func(){
		"New":       func() { New[int](&m) },
		"Safepoint": func() { m.Safepoint() },
		"Collect":   func() { m.Collect() },
	} {
		if msg := panics(what, f); !strings.Contains(msg, "reclaim: "+what+" on a detached mutator") {
			t.Errorf("%s through a zero Mutator: panic %q, want reclaim: %s on a detached mutator", what, msg, what)
		}
	}
}
