package heap

import (
	"strings"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// Debug checks (Config.DebugCycles), run with the world stopped after a
// mark. They walk the object graph privately, so they cost time
// proportional to what is reachable from finalizable objects and cleanup
// arguments; they are meant for tests and debugging sessions.

// maxDebugVisit bounds one walk.
const maxDebugVisit = 1 << 20

// pathTo reports whether target is reachable from the handles in from, and
// the chain of type names that leads there.
func (h *Heap) pathTo(from []handle.Handle, target handle.Handle) ([]string, bool) {
	type item struct {
		x      handle.Handle
		parent int
	}
	seen := make(map[handle.Handle]bool)
	var q []item
	for _, x := range from {
		if h.Valid(x) && !seen[x] {
			seen[x] = true
			q = append(q, item{x, -1})
		}
	}
	var buf []handle.Handle
	for i := 0; i < len(q) && i < maxDebugVisit; i++ {
		if q[i].x == target {
			var names []string
			for j := i; j >= 0; j = q[j].parent {
				names = append(names, h.spans.get(q[j].x.Span()).typ.Name)
			}
			return names, true
		}
		buf = h.scanInto(q[i].x, buf[:0])
		for _, c := range buf {
			if h.Valid(c) && !seen[c] {
				seen[c] = true
				q = append(q, item{c, i})
			}
		}
	}
	return nil, false
}

// reportFinalizerCycles logs every finalizable object that can reach itself
// (it will never be collected), and every registered cleanup whose argument
// leads back to its object (it can never run).
// REQUIRES: world stopped.
func (h *Heap) reportFinalizerCycles() {
	h.mu.Lock()
	spans := append([]*span(nil), h.mu.allspans...)
	h.mu.Unlock()
	for _, s := range spans {
		if s.released || s.sp.n.Load() == 0 {
			continue
		}
		s.sp.mu.Lock()
		for i := range s.sp.mu.fin {
			if s.sp.mu.fin[i].fn == nil {
				continue
			}
			x := s.handleAt(uint32(i))
			if path, ok := h.pathTo(h.scanInto(x, nil), x); ok {
				h.stats.finCycles.Add(1)
				h.log.Warn("reclaim: finalizable object is part of a reference cycle and will never be collected",
					"type", s.typ.Name, "cycle", s.typ.Name+" -> "+strings.Join(reverse(path), " -> "))
			}
		}
		for i := range s.sp.mu.cleanups {
			x := s.handleAt(uint32(i))
			for c := s.sp.mu.cleanups[i]; c != nil; c = c.next {
				if path, ok := h.pathTo(c.r.Scan(nil), x); ok {
					h.stats.badCleanups.Add(1)
					h.log.Warn("reclaim: cleanup can never run: its argument leads back to its object",
						"type", s.typ.Name, "path", "arg -> "+strings.Join(reverse(path), " -> "))
				}
			}
		}
		s.sp.mu.Unlock()
	}
}

func reverse(s []string) []string {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
	return s
}
