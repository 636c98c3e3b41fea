//go:build invariants

package heap

import (
	"fmt"
	"strings"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/handle"
	"github.com/reclaimgc/reclaim/internal/layout"
)

// The re-mark verifier: with the invariants build tag, every mark is
// checked by tracing the heap again from the same roots, on one goroutine,
// with a plain map for the visited set, and comparing the result with the
// mark bits the parallel mark left. Any difference panics.

func init() { remarkCheck = (*Heap).verifyMark }

// verifyMark re-traces the heap from roots and panics if an object is
// reachable but unmarked, or marked but unreachable.
// REQUIRES: world stopped, marking complete (ephemeron tables pruned).
func (h *Heap) verifyMark(roots, finTables []handle.Handle) {
	seen := make(map[handle.Handle]bool)
	var stack []handle.Handle
	// A finalizable table's entries are traced whether or not the table is
	// reachable: it survives the cycle for its finalizer (scanFinRoots).
	tables := append([]handle.Handle(nil), finTables...)
	// A handle is taken for what the mark's check takes it for: the
	// current handle of a slot whose tag it has (itself, unless it is
	// stale by a multiple of 256 generations).
	push := func(x handle.Handle) {
		if x = h.markTarget(x); x != 0 && !seen[x] {
			seen[x] = true
			stack = append(stack, x)
		}
	}
	// An ephemeron entry's value is traced when its key is reachable. The
	// roots include the finalizable keys the mark doomed (doomKeys), whose
	// finalizers it queued.
	keyLive := func(k handle.Handle) bool { return seen[k] }
	for _, x := range roots {
		push(x)
	}
	var buf []handle.Handle
	for {
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			s := h.spans.get(x.Span())
			if s.typ.EphEach != nil {
				tables = append(tables, x)
			}
			if !s.typ.Layout.NoRefs {
				buf = s.typ.Layout.Scan(s.ptr(x.Slot()), buf[:0])
				for _, c := range buf {
					push(c)
				}
			}
		}
		// Trace the values of entries with live keys, until a pass finds
		// nothing new (quadratic, and simple).
		for _, t := range tables {
			s := h.spans.get(t.Span())
			s.typ.EphEach(s.ptr(t.Slot()), func(key handle.Handle, val unsafe.Pointer, lay *layout.Type) {
				if !lay.NoRefs && keyLive(key) {
					for _, c := range lay.Scan(val, nil) {
						push(c)
					}
				}
			})
		}
		if len(stack) == 0 {
			break
		}
	}

	var problems []string
	// A key with a finalizer that is left unreached with an entry whose
	// value holds refs should have been doomed: the sweep would queue its
	// finalizer with the entry pruned and its value freed.
	for _, t := range tables {
		s := h.spans.get(t.Span())
		s.typ.EphEach(s.ptr(t.Slot()), func(key handle.Handle, val unsafe.Pointer, lay *layout.Type) {
			if !lay.NoRefs && !seen[key] && h.Valid(key) && h.spans.get(key.Span()).sp.finAt(key.Slot()) != nil && len(problems) < maxVerifyProblems {
				problems = append(problems, fmt.Sprintf("finalizable key %v of an entry of table %v is not marked and was not doomed", key, t))
			}
		})
	}
	spans := h.spanSnapshot()
	for _, s := range spans {
		if s.released {
			continue
		}
		for i := uint32(0); i < s.nslots; i++ {
			x := s.handleAt(i)
			marked := s.isMarked(i)
			reach := s.isAllocated(i) && seen[x]
			if marked != reach && len(problems) < maxVerifyProblems {
				problems = append(problems, fmt.Sprintf("%v slot %d (%v): marked %v, reachable %v", s, i, x, marked, reach))
			}
		}
	}
	if len(problems) > 0 {
		panic("reclaim: internal error: the re-mark verifier disagrees with the mark:\n\t" + strings.Join(problems, "\n\t"))
	}
}
