// Package osmem hands out memory outside the Go heap, for the slabs and
// handle words of reclaim's spans whose type holds no Go pointer.
//
// Such memory is invisible to Go's collector: it does not count toward
// Go's heap goal, Go's cycles neither scan nor sweep it, and what a span
// gives back leaves the process's resident set at once (madvise), instead
// of waiting, as a slab on the Go heap does, for Go's next cycle, which its
// pacing puts off until Go's heap has doubled. A heap whose objects are
// all pointer-free thus holds about what its spans hold, where the same
// spans on the Go heap could hold up to twice that between Go's cycles.
//
// Memory is mapped in arenas and never unmapped: a block that is freed is
// returned to the OS with madvise(MADV_DONTNEED), which leaves its address
// valid (it reads as zeros), and kept on a free list for its size. Freed
// blocks wait in a batch before they are returned: a block of the same size
// allocated meanwhile takes one of them, cleared, without a system call or
// a page fault. Once the batch reaches flushBytes, a goroutine of the
// Pool's (the scavenger, after the Go runtime's background scavenger)
// returns it, sorted, with one madvise per run of adjacent blocks, and
// exits when no batch is left: madvise is not cheap (it frees each page
// and shoots down the TLB of every core running the process, tens of
// milliseconds for the forty megabytes of spans a heap's Close may free),
// and the goroutine that frees, a sweeper or Close, need not wait for it.
// So a
// stale read of freed memory (a Get racing with the sweep that frees its
// object, which fails its handle check) never faults. A Pool keeps apart
// what it is used for: slabs are reused only as slabs, handle words only
// as handle words, so a stale *T written through after its object was
// freed (a misuse: Get's pointer is valid until the next safepoint) can
// only reach other objects' pointer-free memory, as it could on the Go
// heap, and never the handle words that check every ref.
//
// It is used on Linux, whose MADV_DONTNEED gives back zero pages, and not
// under the race detector, whose shadow memory covers only Go's own
// memory: there, and where a mapping fails, the caller allocates on the
// Go heap instead (Enabled, and a nil from Alloc).
package osmem

import (
	"cmp"
	"context"
	"runtime/pprof"
	"slices"
	"sync"
	"unsafe"
)

// arenaSize is the size of one mapping that small blocks are carved from.
const arenaSize = 4 << 20

// largeBlock is the size from which a block gets a mapping of its own.
const largeBlock = arenaSize / 4

// flushBytes is the freed memory at which a Pool's scavenger starts to
// return it to the OS.
const flushBytes = 1 << 20

// block is a freed block not yet returned to the OS.
type block struct {
	p unsafe.Pointer
	n uintptr // rounded size
}

// Pool hands out page-aligned, zeroed blocks outside the Go heap. The zero
// Pool is ready to use; its methods are safe for concurrent use.
type Pool struct {
	mu sync.Mutex
	// All fields are guarded by mu.
	free map[uintptr][]unsafe.Pointer // freed blocks by rounded size, given back to the OS
	// pending are freed blocks still resident, pendingBytes their size:
	// returned to the OS by the scavenger, and moved to free, once it
	// reaches flushBytes.
	pending      []block
	pendingBytes uintptr
	// scavenging is set while the scavenger goroutine runs (started by
	// Free, which sets it; cleared by the scavenger when it finds nothing
	// pending, as it exits). Free's test and the scavenger's last look at
	// pending are made under mu, so a batch is never left without a
	// scavenger: either the scavenger still runs and sees it, or Free
	// starts one. idle is signalled then (cond on mu; Flush
	// waits on it). The blocks the scavenger is returning are in neither
	// pending nor free: no Alloc hands them out meanwhile.
	scavenging bool
	idle       sync.Cond
	arena      unsafe.Pointer // the arena being carved; nil before the first
	left       uintptr        // bytes of arena not yet carved
	// mapped is the bytes mapped (arenas and large blocks), inUse the
	// rounded bytes of blocks handed out and not freed.
	mapped, inUse uintptr
}

// Slabs is the pool for span slabs; Words the pool for spans' handle
// words. They are kept apart (see the package comment).
var Slabs, Words Pool

// Alloc returns a zeroed block of n bytes (n > 0), aligned to the page
// size, or nil when memory outside the Go heap is not used here (Enabled
// is false) or the OS refused the mapping.
func (p *Pool) Alloc(n uintptr) unsafe.Pointer {
	if !Enabled || n == 0 {
		return nil
	}
	sz := roundPage(n)
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.pending) - 1; i >= 0; i-- {
		if b := p.pending[i]; b.n == sz {
			p.pending = slices.Delete(p.pending, i, i+1)
			p.pendingBytes -= sz
			p.inUse += sz
			clear(unsafe.Slice((*byte)(b.p), sz))
			return b.p
		}
	}
	if l := p.free[sz]; len(l) > 0 {
		b := l[len(l)-1]
		p.free[sz] = l[:len(l)-1]
		p.inUse += sz
		return b // zero: madvise(MADV_DONTNEED) when it was freed
	}
	if sz >= largeBlock {
		b := mapAnon(sz)
		if b != nil {
			p.mapped += sz
			p.inUse += sz
		}
		return b
	}
	if p.left < sz {
		a := mapAnon(arenaSize)
		if a == nil {
			return nil
		}
		// The old arena's tail is never touched: it costs address space,
		// not memory.
		p.arena, p.left = a, arenaSize
		p.mapped += arenaSize
	}
	b := p.arena
	p.arena = unsafe.Add(p.arena, sz)
	p.left -= sz
	p.inUse += sz
	return b
}

// Free gives the block b of n bytes, from Alloc, back: to a later Alloc of
// the same size, and to the OS once the freed blocks waiting reach
// flushBytes (by the scavenger, in the background). The caller must not
// use b again; a stale read of it sees what it held, zeros, or a later
// block's contents.
func (p *Pool) Free(b unsafe.Pointer, n uintptr) {
	sz := roundPage(n)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inUse -= sz
	p.pending = append(p.pending, block{b, sz})
	if p.pendingBytes += sz; p.pendingBytes >= flushBytes && !p.scavenging {
		p.scavenging = true
		go pprof.Do(context.Background(), pprof.Labels("reclaim.worker", "osmem-scavenger"), func(context.Context) { p.scavenge() })
	}
}

// scavenge is the scavenger goroutine: it returns the pending blocks to the
// OS, batch by batch, and exits when none is left.
func (p *Pool) scavenge() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.pending) > 0 {
		batch := p.pending
		p.pending, p.pendingBytes = nil, 0
		p.mu.Unlock()
		releaseRuns(batch)
		p.mu.Lock()
		p.addFreeLocked(batch)
	}
	p.scavenging = false
	p.idleCond().Broadcast()
}

// Flush waits for the scavenger, then returns every freed block still
// resident to the OS.
func (p *Pool) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.scavenging {
		p.idleCond().Wait()
	}
	releaseRuns(p.pending)
	p.addFreeLocked(p.pending)
	p.pending, p.pendingBytes = nil, 0
}

// idleCond returns p.idle, tied to p.mu on first use.
// REQUIRES: p.mu held.
func (p *Pool) idleCond() *sync.Cond {
	if p.idle.L == nil {
		p.idle.L = &p.mu
	}
	return &p.idle
}

// addFreeLocked puts returned blocks on the free lists.
// REQUIRES: p.mu held.
func (p *Pool) addFreeLocked(batch []block) {
	if p.free == nil {
		p.free = make(map[uintptr][]unsafe.Pointer)
	}
	for _, b := range batch {
		p.free[b.n] = append(p.free[b.n], b.p)
	}
}

// releaseRuns returns blocks to the OS, one madvise per run of adjacent
// blocks. It sorts batch.
func releaseRuns(batch []block) {
	if len(batch) == 0 {
		return
	}
	slices.SortFunc(batch, func(a, b block) int { return cmp.Compare(uintptr(a.p), uintptr(b.p)) })
	start, end := batch[0].p, unsafe.Add(batch[0].p, batch[0].n)
	for _, b := range batch[1:] {
		if b.p != end {
			release(start, uintptr(end)-uintptr(start))
			start = b.p
		}
		end = unsafe.Add(b.p, b.n)
	}
	release(start, uintptr(end)-uintptr(start))
}

// Usage returns the bytes of blocks handed out and not freed, the bytes of
// freed blocks waiting to be returned to the OS, and the bytes mapped
// (address space, of which only the other two are resident).
func (p *Pool) Usage() (inUse, pending, mapped uintptr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse, p.pendingBytes, p.mapped
}

func roundPage(n uintptr) uintptr { return (n + pageSize - 1) &^ (pageSize - 1) }
