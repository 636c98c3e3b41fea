package cleanupq

import (
	"sync"
	"sync/atomic"
)

// blockRecords is the number of cleanup records in one block. A record is an
// interface value (two words), so with the header a block is about 2 KiB.
const blockRecords = 126

// block is a fixed-size batch of cleanup records. Records are enqueued one at
// a time into a sweeping context's local block, but blocks move between the
// free stack, the locals, the full stack and the workers only as a whole.
//
// Ownership, and so the rule for n and records, depends on where the block is:
//
//	where            owner                    n, records                     done
//	---------------  -----------------------  -----------------------------  ------------------
//	free stack       the stack                n == 0                         0
//	Local.b          the Local's sweeper      written without sync           0
//	                 (or the last sweeper's
//	                 Flush)
//	full stack       the stack                immutable                      0
//	running          one worker               immutable; reset under mu      records [0,done)
//	                                          when done == n                 have run (done
//	                                                                         trails; see done)
//
// Transfers between owners go through the lock-free stacks, whose CAS orders
// the previous owner's writes before the next owner's reads. ScanRoots reads
// n, done and records[done:n] of every block under mu while sweepers are
// stopped; workers keep running, which is why a worker never writes a record
// while the block runs and resets the block only under mu.
type block struct {
	// next is the lfstack link (index+1 of the node below). Atomic; see
	// lfLinker.
	next atomic.Uint32

	// idx is the block's arena index. Immutable.
	idx uint32

	// done is a lower bound on the records whose Run has returned: the
	// worker running the block stores it every doneEvery calls and when
	// the block ends (a store per call would be a locked instruction per
	// call), so it trails the truth by less than doneEvery and records
	// [done, n) may include some that ran; they are not retired before the
	// whole block has run, so scanning them is only conservative. Written
	// (atomically) only by that worker, and reset to 0 under mu when the
	// block is recycled; read by ScanRoots under mu.
	done atomic.Int32

	// mu orders a worker's reset of a finished block against ScanRoots.
	mu sync.Mutex

	// n is the number of records. Written by the owner (see the table);
	// read by ScanRoots under mu while no sweeper runs.
	n int32

	// records holds the queued calls. Same rule as n.
	records [blockRecords]Runner
}

// full reports whether the block has no room left. Owner only.
func (b *block) full() bool { return b.n == blockRecords }

// empty reports whether the block holds no records. Owner only.
func (b *block) empty() bool { return b.n == 0 }

// take moves as many records as fit from src into b. Afterwards b is full,
// src is empty, or both. It copies from src's tail so src's remaining records
// stay where they are. Both blocks must be owned by the caller.
func (b *block) take(src *block) {
	room := blockRecords - b.n
	k := min(room, src.n)
	copy(b.records[b.n:], src.records[src.n-k:src.n])
	clear(src.records[src.n-k : src.n])
	b.n += k
	src.n -= k
}

// arena owns every block ever allocated. Blocks are never freed; they are
// recycled through the free stack. Indices are stable, which is what lets
// the stacks name blocks by uint32 and what lets ScanRoots find every block.
type arena struct {
	// mu serializes growth.
	mu sync.Mutex

	// blocks is the current snapshot of all blocks, indexed by block.idx.
	// Loaded without a lock by anyone; replaced only with mu held. Growth
	// appends in place when capacity allows: readers of an older snapshot
	// only read indices below its length, which the append does not touch.
	blocks atomic.Pointer[[]*block]
}

// alloc returns a new empty block registered in the arena.
func (a *arena) alloc() *block {
	a.mu.Lock()
	defer a.mu.Unlock()
	var s []*block
	if p := a.blocks.Load(); p != nil {
		s = *p
	}
	if uint64(len(s)) >= lfTopMask-1 {
		panic("reclaim: internal error: too many cleanup blocks")
	}
	b := &block{idx: uint32(len(s))}
	s = append(s, b)
	a.blocks.Store(&s)
	return b
}

// at returns block i. i must have been returned by alloc (as a block's idx).
func (a *arena) at(i uint32) *block { return (*a.blocks.Load())[i] }

// link implements lfLinker.
func (a *arena) link(i uint32) *atomic.Uint32 { return &a.at(i).next }

// all returns a snapshot of every block allocated so far.
func (a *arena) all() []*block {
	if p := a.blocks.Load(); p != nil {
		return *p
	}
	return nil
}
