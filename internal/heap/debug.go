package heap

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/layout"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// Debug checks (Config.DebugCycles), run with the world stopped after a
// mark. They walk the object graph privately, so they cost time
// proportional to what is reachable from finalizable objects and cleanup
// arguments; they are meant for tests and debugging sessions.

// maxDebugVisit bounds one walk.
const maxDebugVisit = 1 << 20

// pathTo reports whether target is reachable from the handles in from, and
// the chain of type names that leads there. A WeakMap leads to the values
// of its entries whose keys are live (keyLive), and a key to the values of
// its entries in the tables byKey lists for it (entriesByKey) that are live
// (tableLive); pathTo runs after the mark, with the world stopped. The
// target's own entries lead nowhere: were the target unreachable, its
// entries would wait on it, and it would be doomed (ephemeron.go), not
// kept alive by them. viaEntries reports whether the walk followed any
// entry at all: then the path found may hold only because the keys and
// tables it took as live were so through target (see findCycle).
func (h *Heap) pathTo(from []handle.Handle, target handle.Handle, byKey map[handle.Handle][]keyedEntry, keyLive, tableLive func(handle.Handle) bool) (names []string, ok, viaEntries bool) {
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
			for j := i; j >= 0; j = q[j].parent {
				names = append(names, h.spans.get(q[j].x.Span()).typ.Name)
			}
			return names, true, viaEntries
		}
		buf = h.scanInto(q[i].x, buf[:0])
		n := len(buf)
		buf = h.liveEntryValues(q[i].x, target, keyLive, buf)
		for _, e := range byKey[q[i].x] {
			if tableLive(e.table) {
				buf = append(buf, e.vals...)
			}
		}
		viaEntries = viaEntries || len(buf) > n
		for _, c := range buf {
			if h.Valid(c) && !seen[c] {
				seen[c] = true
				q = append(q, item{c, i})
			}
		}
	}
	return nil, false, viaEntries
}

// liveEntryValues appends to buf the handles held by the values of the
// entries of x, if x is a WeakMap, whose keys are live (keyLive), other
// than skip: what the mark traced from x, but for skip's entry, which would
// wait on skip were skip unreachable. REQUIRES: world stopped.
func (h *Heap) liveEntryValues(x, skip handle.Handle, keyLive func(handle.Handle) bool, buf []handle.Handle) []handle.Handle {
	s := h.spans.get(x.Span())
	if s == nil || s.typ.EphEach == nil {
		return buf
	}
	s.typ.EphEach(s.ptr(x.Slot()), func(key handle.Handle, val unsafe.Pointer, lay *layout.Type) {
		if !lay.NoRefs && key != skip && keyLive(key) {
			buf = lay.Scan(val, buf)
		}
	})
	return buf
}

// findCycle reports whether target leads back to itself from from (the
// handles its fields hold, or a cleanup's argument), by the mark's rules,
// and the chain of type names on the way. If target is a finalizable
// WeakMap (ownEntries), its entries are among its referents, as the mark
// traces them.
//
// A first walk takes a key or table as live if the mark marked it. That
// may be so only through target: a key that target's own entry leads to,
// say, whose entry leads back to target. So a path found over entries is
// checked by a second walk, with keys and tables live only if the mark's
// rules reach them with target taken out of the heap (reachable). That
// walk costs a walk of the heap, and runs only for such paths.
// REQUIRES: world stopped, after a mark.
func (h *Heap) findCycle(from []handle.Handle, target handle.Handle, ownEntries bool, byKey map[handle.Handle][]keyedEntry) ([]string, bool) {
	walk := func(keyLive, tableLive func(handle.Handle) bool) ([]string, bool, bool) {
		start := from
		if ownEntries {
			start = h.liveEntryValues(target, target, keyLive, slices.Clip(from))
		}
		path, ok, viaEntries := h.pathTo(start, target, byKey, keyLive, tableLive)
		return path, ok, viaEntries || len(start) > len(from)
	}
	path, ok, viaEntries := walk(h.marked, func(handle.Handle) bool { return true })
	if !ok || !viaEntries {
		return path, ok
	}
	without, _ := h.reachable(target)
	live := func(x handle.Handle) bool {
		_, ok := without[x]
		return ok
	}
	path, ok, _ = walk(live, live)
	return path, ok
}

// reportFinalizerCycles logs every finalizable object that can reach itself
// (it will never be collected), and every registered cleanup whose argument
// leads back to its object (it can never run). Each is reported once: the
// pass remembers what it found, and reports only what the previous pass
// had not (an object whose cycle was broken and formed again is reported
// again).
// REQUIRES: world stopped.
func (h *Heap) reportFinalizerCycles() {
	fins := make(map[handle.Handle]bool)
	cleanups := make(map[cleanupReg]bool)
	spans := h.spanSnapshot()
	byKey := h.entriesByKey(spans)
	for _, s := range spans {
		if s.released || !s.sp.any() {
			continue
		}
		if t := s.sp.fin.Load(); t != nil {
			for i := range t.fn {
				if t.fn[i] == nil {
					continue
				}
				x := s.handleAt(uint32(i))
				path, ok := h.findCycle(h.scanInto(x, nil), x, s.typ.EphEach != nil, byKey)
				if !ok || !firstReport(fins, h.debugReported.fins, x) {
					continue
				}
				h.stats.finCycles.Add(1)
				h.log.Warn("reclaim: finalizable object is part of a reference cycle and will never be collected",
					"type", s.typ.Name, "cycle", s.typ.Name+" -> "+strings.Join(reverse(path), " -> "),
					"finalizer", funcLocation(t.fn[i].fn))
			}
		}
		cl := s.sp.cl.Load()
		if cl == nil || !cl.argRefs.Load() {
			continue // no argument here can lead anywhere
		}
		for i := range cl.head {
			for c := cl.head[i]; c != nil; c = c.next {
				if !c.registered() {
					continue
				}
				path, ok := h.findCycle(c.r.Scan(nil), s.handleAt(uint32(i)), false, byKey)
				if !ok || !firstReport(cleanups, h.debugReported.cleanups, cleanupReg{c, c.lgen}) {
					continue
				}
				h.stats.badCleanups.Add(1)
				h.log.Warn("reclaim: cleanup can never run: its argument leads back to its object",
					"type", s.typ.Name, "path", "arg -> "+strings.Join(reverse(path), " -> "),
					"cleanup", funcLocation(c.r.FuncPC()))
			}
		}
	}
	h.debugReported.fins, h.debugReported.cleanups = fins, cleanups
}

// keyedEntry is what entriesByKey records of one entry: its table and the
// handles its value holds.
type keyedEntry struct {
	table handle.Handle
	vals  []handle.Handle
}

// entriesByKey returns, for each key of an entry of a WeakMap that the last
// mark found live (marked, or finalizable: a finalizable table's entries
// are its referents), the entry's table and the handles its value holds.
// Once the mark reaches a key, it traces its entries as if they were the
// key's fields, so a path from a finalizable object may go through a key
// to its entries' values; the cycle report follows these edges (pathTo).
// REQUIRES: world stopped, marking complete.
func (h *Heap) entriesByKey(spans []*span) map[handle.Handle][]keyedEntry {
	byKey := make(map[handle.Handle][]keyedEntry)
	for _, s := range spans {
		if s.released || s.typ.EphEach == nil {
			continue
		}
		for i := range s.nslots {
			if !s.isMarked(i) && s.sp.finAt(i) == nil {
				continue
			}
			t := s.handleAt(i)
			s.typ.EphEach(s.ptr(i), func(key handle.Handle, val unsafe.Pointer, lay *layout.Type) {
				if !lay.NoRefs {
					byKey[key] = append(byKey[key], keyedEntry{t, lay.Scan(val, nil)})
				}
			})
		}
	}
	return byKey
}

// firstReport records k as found by this pass (now) and reports whether the
// previous pass (before) had not found it.
func firstReport[K comparable](now, before map[K]bool, k K) bool {
	now[k] = true
	return !before[k]
}

func reverse(s []string) []string {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
	return s
}

// RetainingPath stops the world and looks for a chain of references from a
// root to x. It returns the chain, root first, as lines such as
// "pinned main.Root" and "-> main.Node", and whether x is reachable at
// all. Reachability is the mark's: a WeakMap entry's value is reached
// through its table once the table and the entry's key are both reached,
// whichever is found first, or the key is being finalized (the mark keeps
// the entries of a finalizable key that only they reach for its finalizer,
// doomKeys; such a key is itself reported unreachable, as any finalizable
// object that nothing reaches); a finalizable WeakMap's entries are
// followed as its referents are (seed 003). It is a
// debugging aid: it walks the reachable graph with the world stopped.
func (m *Mutator) RetainingPath(x handle.Handle) ([]string, bool) {
	h := m.enter("RetainingPath")
	defer m.leave()
	h.check(x, "RetainingPath")
	h.mu.Lock()
	if h.mu.stw {
		h.parkLocked(m)
	}
	h.stopTheWorldLocked(time.Now(), false)
	h.mu.Unlock()
	defer h.startTheWorld()
	// Sweepers are not mutators: the world stopped, they sweep on, and
	// the search reads what a sweep writes (finalizer tables, cleanup
	// lists, the objects it frees). Finish the sweep first, as a
	// collection does; none starts again before the next flip.
	h.finishSweep()
	// The search runs the embedder's ScanRoots and Trace methods. A panic
	// in them reaches the caller as a reclaim: panic, as it does from
	// Collect (the deferred startTheWorld still runs); runtime.Goexit goes on.
	defer func() {
		if v := recover(); v != nil {
			panic(fmt.Sprintf("reclaim: RetainingPath abandoned, the heap unchanged: the ScanRoots or a Trace method panicked: %v", v))
		}
	}()
	return h.retainingPath(x)
}

// retainingPath is RetainingPath's search. It first finds what is
// reachable, by the mark's rules (reachable), and then walks breadth first
// from the roots, over references and over the entries of WeakMaps whose
// keys are live, so the chain it returns is one of fewest references. (One
// walk cannot give both: an entry's value is found reachable only once its
// key is, which may be long after its table, and the search would have
// gone on in the meantime by longer ways.) REQUIRES: world stopped.
func (h *Heap) retainingPath(x handle.Handle) ([]string, bool) {
	live, doomed := h.reachable(0)
	if _, ok := live[x]; !ok {
		return nil, false
	}
	if _, ok := doomed[x]; ok {
		// Kept for its finalizer, which the next collection queues, like
		// any finalizable object that nothing reaches.
		return nil, false
	}
	keyLive := func(key handle.Handle) bool {
		_, ok := live[key]
		return ok
	}
	type node struct {
		parent handle.Handle // 0 for a root
		kind   string        // root kind, for roots
	}
	seen := make(map[handle.Handle]node)
	var q []handle.Handle
	add := func(parent, c handle.Handle, kind string) {
		if _, ok := seen[c]; !ok && h.Valid(c) {
			seen[c] = node{parent: parent, kind: kind}
			q = append(q, c)
		}
	}
	h.eachRoot(true, true, func(kind string, from, y handle.Handle) {
		if from != 0 {
			kind += " " + h.spans.get(from.Span()).typ.Name
		}
		add(0, y, kind)
	})
	var vals []handle.Handle
	h.eachFinTable(func(t handle.Handle, s *span) {
		vals = h.entryValues(t, s, keyLive, vals[:0])
		for _, v := range vals {
			add(0, v, rootFinEntry+" "+s.typ.Name)
		}
	})
	var buf []handle.Handle
	for i := 0; i < len(q); i++ {
		y := q[i]
		if y == x {
			break
		}
		s := h.spans.get(y.Span())
		buf = h.scanInto(y, buf[:0])
		if s.typ.EphEach != nil {
			buf = h.entryValues(y, s, keyLive, buf)
		}
		for _, c := range buf {
			add(y, c, "")
		}
	}
	var chain []string
	for y := x; ; {
		n := seen[y]
		name := h.spans.get(y.Span()).typ.Name
		if n.parent == 0 {
			chain = append(chain, n.kind+": "+name)
			break
		}
		chain = append(chain, "-> "+name)
		y = n.parent
	}
	return reverse(chain), true
}

// reachable returns the set of objects the mark would mark, by its rules:
// from the roots, the referents of finalizable objects and the entries of
// finalizable WeakMaps, over references, and over a WeakMap entry once its
// table and its key are reached, whichever is found first; then, in rounds
// as the mark's phases, from the finalizable keys that entries still wait
// on, which it also returns (doomed: the mark would queue their
// finalizers, doomKeys). Like the mark, it keeps the entries whose keys
// are not reached yet in lists by key (ephemeron.go), so a table is
// visited once. A non-zero cut is taken out of the heap: never reached,
// so never scanned nor doomed, and its entries never live (its referents
// are still roots, if it is finalizable). REQUIRES: world stopped.
func (h *Heap) reachable(cut handle.Handle) (seen, doomed map[handle.Handle]struct{}) {
	seen, doomed = make(map[handle.Handle]struct{}), make(map[handle.Handle]struct{})
	var q []handle.Handle
	// waiting holds, for each key not reached yet, the handles the values
	// of its entries hold.
	waiting := make(map[handle.Handle][]handle.Handle)
	var stack []handle.Handle
	reach := func(c handle.Handle) {
		stack = append(stack[:0], c)
		for len(stack) > 0 {
			c := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if _, ok := seen[c]; ok || c == cut || !h.Valid(c) {
				continue
			}
			seen[c] = struct{}{}
			q = append(q, c)
			if ws, ok := waiting[c]; ok {
				delete(waiting, c)
				stack = append(stack, ws...)
			}
		}
	}
	reached := func(key handle.Handle) bool {
		_, ok := seen[key]
		return ok
	}
	var vals []handle.Handle
	// entries reaches the values of table t's entries whose keys are
	// reached, and leaves the others waiting on their keys.
	entries := func(t handle.Handle, s *span) {
		s.typ.EphEach(s.ptr(t.Slot()), func(key handle.Handle, val unsafe.Pointer, lay *layout.Type) {
			if lay.NoRefs {
				return
			}
			vals = lay.Scan(val, vals[:0])
			switch {
			case reached(key):
				for _, v := range vals {
					reach(v)
				}
			case h.Valid(key): // a stale or foreign key keeps nothing
				waiting[key] = append(waiting[key], vals...)
			}
		})
	}
	h.eachRoot(true, true, func(_ string, _, y handle.Handle) { reach(y) })
	h.eachFinTable(entries)
	var buf []handle.Handle
	for i := 0; ; {
		for ; i < len(q); i++ {
			y := q[i]
			s := h.spans.get(y.Span())
			buf = h.scanInto(y, buf[:0])
			for _, c := range buf {
				reach(c)
			}
			if s.typ.EphEach != nil {
				entries(y, s)
			}
		}
		// A phase has ended: doom the finalizable keys entries wait on.
		var keys []handle.Handle
		for key := range waiting {
			if key != cut && h.finalizable(key) {
				keys = append(keys, key)
			}
		}
		if len(keys) == 0 {
			return seen, doomed
		}
		for _, key := range keys {
			doomed[key] = struct{}{}
			reach(key)
		}
	}
}

// marked reports whether x names a live object of the heap that the mark
// has marked. REQUIRES: world stopped.
func (h *Heap) marked(x handle.Handle) bool {
	s := h.spans.get(x.Span())
	return s != nil && h.Valid(x) && s.isMarked(x.Slot())
}

// finalizable reports whether x names a live object of the heap that has
// a finalizer. REQUIRES: world stopped.
func (h *Heap) finalizable(x handle.Handle) bool {
	s := h.spans.get(x.Span())
	return s != nil && h.Valid(x) && s.sp.finAt(x.Slot()) != nil
}

// entryValues appends the handles held by the values of table t's entries
// whose keys are live (live(key)) to buf. REQUIRES: world stopped.
func (h *Heap) entryValues(t handle.Handle, s *span, live func(handle.Handle) bool, buf []handle.Handle) []handle.Handle {
	s.typ.EphEach(s.ptr(t.Slot()), func(key handle.Handle, val unsafe.Pointer, lay *layout.Type) {
		if !lay.NoRefs && live(key) {
			buf = lay.Scan(val, buf)
		}
	})
	return buf
}

// eachFinTable calls f for every WeakMap with a finalizer, and its span:
// the mark scans those it does not reach as tables (scanFinRoots), so
// their entries are roots as their referents are. REQUIRES: world stopped.
func (h *Heap) eachFinTable(f func(t handle.Handle, s *span)) {
	for _, s := range h.spanSnapshot() {
		fin := s.sp.fin.Load()
		if fin == nil || s.typ.EphEach == nil {
			continue
		}
		for i, fn := range fin.fn {
			if fn != nil {
				f(s.handleAt(uint32(i)), s)
			}
		}
	}
}

// cleanupReg names one registration of a cleanup: records are reused, at
// the next generation, for other cleanups.
type cleanupReg struct {
	c   *CleanupSpecial
	gen uint32
}

// funcLocation names the function whose code starts at pc, with where it
// is written ("pkg.F.func1 file.go:12"), for the debug reports: the
// finalizer or cleanup function says which registration it is, at no
// cost until a report. "" if pc names no function.
func funcLocation(pc uintptr) string {
	f := runtime.FuncForPC(pc)
	if f == nil {
		return ""
	}
	file, line := f.FileLine(f.Entry())
	return fmt.Sprintf("%s %s:%d", f.Name(), file, line)
}
