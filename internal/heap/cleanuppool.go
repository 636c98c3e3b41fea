package heap

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/layout"
)

// CleanupType is what every cleanup record of one type (one argument type,
// in the root package) shares: the argument's reference map and the pool
// of retired records. The root package makes one per type and keeps it;
// Layout is immutable, the pool synchronizes itself.
type CleanupType struct {
	Layout *layout.Type // the argument's reference map
	pool   CleanupPool
}

// Pool returns the pool of t's retired records.
func (t *CleanupType) Pool() *CleanupPool { return &t.pool }

// cleanupBatchLen is the number of records in a batch: a batch is a
// little over 1 KiB, and a full cleanup queue block fills one.
const cleanupBatchLen = 126

// cleanupBatch is an array of retired records of one type. Whoever holds a
// batch owns it and its fields: the worker filling it (CleanupRetire), the
// pool's full stack, the mutator emptying it (CleanupStock), the pool's
// empty list.
type cleanupBatch struct {
	next *cleanupBatch // link on the full stack, the empty list or a stock
	n    int
	recs [cleanupBatchLen]*CleanupSpecial
}

// CleanupPool holds the retired records of one CleanupType, for reuse:
// records that ran, whose Cleanup handles can stop nothing any more (the
// generation moved on). Cleanup workers retire records a batch at a time
// (CleanupRetire), and mutators take every batch at once (CleanupStock),
// then hand the records out with no synchronization. The records travel
// in arrays rather than linked through themselves, so that the mutator
// reads their addresses from one line and can fetch the records ahead,
// where walking a linked list would wait for each record's line in turn.
//
// The full stack is lock-free: workers push (CAS), mutators take it whole
// (Swap); nothing pops one batch from the shared head, so no batch comes
// back under a CAS in flight (no ABA). The empty list recycles the arrays
// under mu: one lock per batch on either side.
type CleanupPool struct {
	full atomic.Pointer[cleanupBatch] // the stack of filled batches, linked by next
	mu   struct {
		sync.Mutex
		empty *cleanupBatch // emptied batches, linked by next
	}
}

// emptyBatch returns an empty batch, from the empty list or new.
func (p *CleanupPool) emptyBatch() *cleanupBatch {
	p.mu.Lock()
	b := p.mu.empty
	if b != nil {
		p.mu.empty, b.next = b.next, nil
	}
	p.mu.Unlock()
	if b == nil {
		b = new(cleanupBatch)
	}
	return b
}

// push adds the filled batch b to the full stack.
func (p *CleanupPool) push(b *cleanupBatch) {
	for {
		old := p.full.Load()
		b.next = old
		if p.full.CompareAndSwap(old, b) {
			return
		}
	}
}

// CleanupRetire gathers retired records for one pool: Add each, then
// Flush. Owned by the goroutine that declared it (a cleanup worker).
type CleanupRetire struct {
	p *CleanupPool
	b *cleanupBatch
}

// Retire returns a CleanupRetire for p.
func (p *CleanupPool) Retire() CleanupRetire { return CleanupRetire{p: p} }

// Add retires the record c: it has run, is on no list and is no longer
// read by anyone but its Cleanup handles' Stop, which fails.
func (r *CleanupRetire) Add(c *CleanupSpecial) {
	b := r.b
	if b == nil {
		b = r.p.emptyBatch()
		r.b = b
	}
	b.recs[b.n] = c
	b.n++
	if b.n == len(b.recs) {
		r.p.push(b)
		r.b = nil
	}
}

// Flush publishes the records added since the last full batch.
func (r *CleanupRetire) Flush() {
	if r.b != nil {
		r.p.push(r.b)
		r.b = nil
	}
}

// CleanupStock is a mutator's supply of retired records of one type,
// taken from the type's pool. Owned by the mutator.
type CleanupStock struct {
	b *cleanupBatch // records b.recs[i:b.n] are not handed out yet; b.next are more batches
	i int
}

// stockAhead is how many records ahead of the next one Take asks the CPU
// for; records are fetched stockAhead at a time.
const stockAhead = 16

// Take returns a retired record of the pool p, or nil if there is none.
// The record's special is unlinked and its embedding record zeroed.
func (s *CleanupStock) Take(p *CleanupPool) *CleanupSpecial {
	b := s.b
	if b == nil || s.i == b.n {
		if b = s.refill(p); b == nil {
			return nil
		}
	}
	i := s.i
	if i%stockAhead == 0 && i+stockAhead < b.n {
		// Ask for the next stockAhead records, exclusive: AddCleanup
		// writes them. Records are cold, last written by a worker.
		lo, hi := i+stockAhead, min(i+2*stockAhead, b.n)
		prefetchw(unsafe.Slice((*uintptr)(unsafe.Pointer(&b.recs[lo])), hi-lo))
	}
	s.i = i + 1
	return b.recs[i]
}

// refill moves s to its next batch, taking the pool's full stack when s
// has none left, and returns it (nil if the pool is empty too). The
// emptied batch goes back to the pool.
func (s *CleanupStock) refill(p *CleanupPool) *cleanupBatch {
	var next *cleanupBatch
	if b := s.b; b != nil {
		next = b.next
		clear(b.recs[:b.n])
		b.n = 0
		p.mu.Lock()
		b.next, p.mu.empty = p.mu.empty, b
		p.mu.Unlock()
	}
	if next == nil && p.full.Load() != nil {
		next = p.full.Swap(nil)
	}
	s.b, s.i = next, 0
	if next != nil {
		prefetchw(unsafe.Slice((*uintptr)(unsafe.Pointer(&next.recs[0])), min(stockAhead, next.n)))
	}
	return next
}
