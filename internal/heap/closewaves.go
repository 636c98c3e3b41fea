package heap

import (
	"fmt"

	"github.com/reclaimgc/reclaim/internal/cleanupq"
	"github.com/reclaimgc/reclaim/internal/handle"
)

// cleanupLevels orders the cleanups a round of Close queues: those of the
// objects that have registered cleanups, no finalizer, and are not in
// held. An object's level is 0 if no such cleanup's argument reaches it,
// and otherwise 1 more than the largest level of the objects whose
// cleanups' arguments reach it, through any path of fields (as
// walkForClose follows them) and further cleanup arguments. The round
// runs the cleanups of level 0, waits for them, then those of level 1,
// and so on: a cleanup runs before those of the objects its argument
// reaches, as in a collection, where the argument keeps them alive until
// the cleanup has run. The result holds the objects with cleanups whose
// level is not 0.
//
// It is one depth-first walk (Tarjan's, for the strongly connected
// components) over the graph whose edges are an object's fields (weight
// 0) and what its registered cleanups' arguments hold (weight 1), from
// every object whose cleanups the round queues and whose arguments hold
// refs, in slot order; then the levels, the longest paths, follow the
// components in topological order.
// Objects in one component reach each other: on a cycle through cleanup
// arguments, no order is right, and they share a level (each cleanup
// still runs once). held is closed (walkForClose): what a held object
// reaches is held, so the walk does not enter held objects.
//
// REQUIRES: what closeOrder says; it runs the embedder's Trace methods,
// so on a goroutine whose end Close survives (cleanupLevelsOnOwnGoroutine).
func (h *Heap) cleanupLevels(spans []*span, held map[handle.Handle]struct{}) map[handle.Handle]int32 {
	g := h.newCloseGraph(spans)
	type edge struct {
		to handle.Handle
		t  int32 // the node to names, once the walk has looked; -1: none
		w  int32
	}
	var (
		num        = make(map[*span][]uint32) // by span, by slot: node number + 1; 0 if not visited
		adj        []edge                     // every node's edges, node by node
		start, end []int32                    // by node: its edges are adj[start:end]
		low        []int32                    // by node: Tarjan's lowlink
		comp       []int32                    // by node: its component; -1 while on Tarjan's stack
		nodes      []handle.Handle            // by node: its object
		tstack     []int32                    // Tarjan's stack
		members    []int32                    // the components' nodes, component by component
		compStart  []int32                    // by component: its nodes are members[compStart:next one's]
		buf        []handle.Handle
	)
	// node returns the number of x, in s, a new node if the walk has not
	// visited it: its edges are read then.
	var lastSpan *span
	var lastNum []uint32
	node := func(x handle.Handle, s *span) (int32, bool) {
		sc := lastNum
		if s != lastSpan {
			sc = num[s]
			if sc == nil {
				sc = make([]uint32, s.nslots)
				num[s] = sc
			}
			lastSpan, lastNum = s, sc
		}
		if n := sc[x.Slot()]; n != 0 {
			return int32(n - 1), false
		}
		v := int32(len(nodes))
		sc[x.Slot()] = uint32(v) + 1
		nodes = append(nodes, x)
		low = append(low, v)
		comp = append(comp, -1)
		start = append(start, int32(len(adj)))
		buf = g.children(x, s, buf[:0])
		fields := len(buf)
		buf = cleanupArgs(s, x.Slot(), buf)
		for k, y := range buf {
			w := int32(0)
			if k >= fields {
				w = 1
			}
			adj = append(adj, edge{to: y, t: -1, w: w})
		}
		end = append(end, int32(len(adj)))
		tstack = append(tstack, v)
		return v, true
	}
	type frame struct{ v, pos int32 }
	var frames []frame
	for _, s := range spans {
		cl := s.sp.cl.Load()
		if s.released || cl == nil || !cl.argRefs.Load() {
			continue // no argument holds a ref: no level starts here
		}
		fin := s.sp.fin.Load()
		for i := range cl.head {
			if cleanupsWait(fin, held, s, i) || !hasRegisteredCleanup(cl, i) {
				continue
			}
			x := s.handleAt(uint32(i))
			if g.h.liveSpan(x) == nil {
				continue
			}
			if buf = cleanupArgs(s, uint32(i), buf[:0]); len(buf) == 0 {
				// Levels start at cleanups' arguments: the walk
				// reaches this object from one, or it stays at 0.
				continue
			}
			v, fresh := node(x, s)
			if !fresh {
				continue
			}
			frames = append(frames[:0], frame{v: v, pos: start[v]})
			for len(frames) > 0 {
				f := &frames[len(frames)-1]
				if f.pos < end[f.v] {
					k := f.pos
					f.pos++
					y := adj[k].to
					ys := g.h.liveSpan(y)
					if ys == nil || isHeld(held, ys, int(y.Slot())) {
						continue
					}
					w, fresh := node(y, ys) // may grow adj and frames: f is not used after
					adj[k].t = w
					if fresh {
						frames = append(frames, frame{v: w, pos: start[w]})
					} else if comp[w] < 0 {
						v := frames[len(frames)-1].v
						low[v] = min(low[v], w) // on the stack: numbers are the walk's order
					}
					continue
				}
				v := f.v
				frames = frames[:len(frames)-1]
				if len(frames) > 0 {
					p := frames[len(frames)-1].v
					low[p] = min(low[p], low[v])
				}
				if low[v] == v {
					c := int32(len(compStart))
					compStart = append(compStart, int32(len(members)))
					for {
						u := tstack[len(tstack)-1]
						tstack = tstack[:len(tstack)-1]
						comp[u] = c
						members = append(members, u)
						if u == v {
							break
						}
					}
				}
			}
		}
	}
	// Tarjan's walk finishes a component after every component it
	// reaches: the last one finished is a source. Longest paths, from
	// the sources on.
	level := make([]int32, len(compStart))
	for c := len(compStart) - 1; c >= 0; c-- {
		stop := int32(len(members))
		if c+1 < len(compStart) {
			stop = compStart[c+1]
		}
		for _, u := range members[compStart[c]:stop] {
			for _, e := range adj[start[u]:end[u]] {
				if e.t < 0 || comp[e.t] == int32(c) {
					continue
				}
				level[comp[e.t]] = max(level[comp[e.t]], level[c]+e.w)
			}
		}
	}
	var levels map[handle.Handle]int32
	for v, x := range nodes {
		if l := level[comp[v]]; l != 0 && hasCleanups(g.h.liveSpan(x), x.Slot()) {
			if levels == nil {
				levels = make(map[handle.Handle]int32)
			}
			levels[x] = l
		}
	}
	return levels
}

// hasCleanups reports whether slot i of s, if s is not nil, has a list
// of cleanups.
func hasCleanups(s *span, i uint32) bool {
	if s == nil {
		return false
	}
	cl := s.sp.cl.Load()
	return cl != nil && int(i) < len(cl.head) && cl.head[i] != nil
}

// cleanupLevelsOnOwnGoroutine runs cleanupLevels on a goroutine of its
// own, which it waits for, as walkOnOwnGoroutine runs closeOrder's walk.
// If the walk fails (a Trace method panicked or called runtime.Goexit),
// it logs the failure, and every cleanup of the round is at level 0.
func (h *Heap) cleanupLevelsOnOwnGoroutine(held map[handle.Handle]struct{}) map[handle.Handle]int32 {
	var levels map[handle.Handle]int32
	spans := h.spanSnapshot()
	if failure := onOwnGoroutine(func() { levels = h.cleanupLevels(spans, held) }); failure != nil {
		h.log.Error("reclaim: Close could not order this round's cleanups (the walk that orders them failed: a Trace method panicked or called runtime.Goexit): it queues them all at once",
			"failure", fmt.Sprint(failure))
		return nil
	}
	return levels
}

// cleanupWave is the records of one wave of a round's cleanups, and the
// objects they were registered on.
type cleanupWave struct {
	recs []cleanupq.Runner
	objs []handle.Handle
}

// takeCleanupWaves takes the cleanups of every object that has any and no
// finalizer, but for those in held, off their lists, and returns them by
// level (levels, nil for all at level 0). Every record is taken before the
// first runs: a queued cleanup may attach a mutator and register cleanups
// and finalizers, writing words of objects this loop has yet to read,
// which Close owns only while no callback runs (read beside those writes,
// a cleanup registered then was lost when the list was emptied after it).
// A cleanup registered while the waves run waits for the next round.
func (h *Heap) takeCleanupWaves(held map[handle.Handle]struct{}, levels map[handle.Handle]int32) []cleanupWave {
	var waves []cleanupWave
	h.eachCleanupTable(func(s *span, cl *cleanupTable) {
		fin := s.sp.fin.Load()
		for i := range cl.head {
			if cl.head[i] == nil || cleanupsWait(fin, held, s, i) {
				continue
			}
			x := s.handleAt(uint32(i))
			l := int(levels[x])
			for len(waves) <= l {
				waves = append(waves, cleanupWave{})
			}
			w := &waves[l]
			if takeCleanups(cl, uint32(i), func(r cleanupq.Runner) { w.recs = append(w.recs, r) }) > 0 {
				w.objs = append(w.objs, x)
			}
		}
	})
	return waves
}

// queueCleanupWave queues the records of w, on local. An object whose
// cleanups are queued is dead to the heap, as one whose cleanups the
// sweep queues is freed: its weak handles, short and long, are cleared
// first, so that no cleanup (nor a finalizer of a later round) gets it
// back through a Weak or LongWeak. They are cleared wave by wave: a
// cleanup of an earlier wave, whose argument keeps the object alive,
// still finds it through them, as it would in a collection.
func (h *Heap) queueCleanupWave(local *cleanupq.Local, w *cleanupWave) {
	for _, x := range w.objs {
		s, i := h.spans.get(x.Span()), x.Slot()
		if s == nil || s.sp.n.Load() == 0 {
			continue
		}
		s.sp.mu.Lock()
		h.dropWeak(s, s.sp.mu.weak, int(i/64), 1<<(i%64))
		h.dropWeak(s, s.sp.mu.long, int(i/64), 1<<(i%64))
		s.sp.mu.Unlock()
	}
	for _, r := range w.recs {
		h.cq.Enqueue(local, r)
	}
}
