package cleanupq

import "sync/atomic"

// lfstack is a lock-free LIFO stack (a Treiber stack) of nodes named by a
// uint32 index into an append-only arena. Nodes are never freed, so a popper
// that reads the link of a node another goroutine has just popped reads a
// stale but harmless value; its CAS then fails.
//
// The head word packs two fields:
//
//	63            32 31             0
//	+---------------+---------------+
//	|      tag      |  top index+1  |
//	+---------------+---------------+
//
// A top of 0 means the stack is empty. The tag counts pushes. It defeats ABA:
// a popper that loaded head = (t, A) and A's link B must not install B if, in
// the meantime, A was popped, B was popped and A was pushed again. That push
// advanced the tag, so the popper's CAS fails. Pops alone only ever move the
// top down the chain, so they cannot bring back an earlier head value and
// need not advance the tag. The tag wraps after 2^32 pushes; a popper would
// have to stall across exactly a multiple of that many pushes to be fooled.
type lfstack struct {
	// head is the packed (tag, top index+1) word. Read and written only
	// with atomic operations (Load, CompareAndSwap).
	head atomic.Uint64
}

// lfLinker maps a node index to the node's link word. The link word holds
// the index+1 of the node below it on the stack (0 at the bottom). It is
// written by push before the node is published and read by pop, both
// atomically, since a racing pop may read the link of a node that is being
// pushed again.
type lfLinker interface {
	link(i uint32) *atomic.Uint32
}

const lfTopMask = 1<<32 - 1

// push puts node i on top of the stack. The caller must own node i: it is on
// no stack and nobody else will push it.
func (s *lfstack) push(i uint32, link *atomic.Uint32) {
	if i == lfTopMask {
		panic("reclaim: internal error: lfstack node index out of range")
	}
	for {
		old := s.head.Load()
		link.Store(uint32(old & lfTopMask))
		next := (old>>32+1)<<32 | uint64(i+1)
		if s.head.CompareAndSwap(old, next) {
			return
		}
	}
}

// pop removes the top node and returns its index; ok is false if the stack
// was empty.
func (s *lfstack) pop(nodes lfLinker) (i uint32, ok bool) {
	for {
		old := s.head.Load()
		if old&lfTopMask == 0 {
			return 0, false
		}
		top, next := s.popStep(old, nodes)
		if s.head.CompareAndSwap(old, next) {
			return top, true
		}
	}
}

// popStep computes, from a loaded non-empty head word, the node that a pop
// would take and the head word it would install. It is split out of pop so
// that tests can interleave other operations between the read and the CAS.
func (s *lfstack) popStep(old uint64, nodes lfLinker) (top uint32, next uint64) {
	top = uint32(old&lfTopMask) - 1
	below := nodes.link(top).Load()
	return top, old&^lfTopMask | uint64(below)
}

// empty reports whether the stack was empty at the moment of the load.
func (s *lfstack) empty() bool {
	return s.head.Load()&lfTopMask == 0
}
