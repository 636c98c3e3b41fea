// Package osmem hands out memory outside the Go heap, for the slabs and
// handle words of reclaim's spans whose type holds no Go pointer.
//
// Such memory is invisible to Go's collector: it does not count toward
// Go's heap goal, Go's cycles neither scan nor sweep it, and what a span
// gives back leaves the process's resident set within a fraction of a
// second (madvise), instead of waiting, as a slab on the Go heap does, for
// Go's next cycle, which its pacing puts off until Go's heap has doubled.
// A heap whose objects are all pointer-free thus holds about what its
// spans hold, where the same spans on the Go heap could hold up to twice
// that between Go's cycles.
//
// Memory is mapped in arenas and never unmapped: a block that is freed is
// returned to the OS with madvise(MADV_DONTNEED), which leaves its address
// valid (it reads as zeros), and kept on a free list for its size. So a
// stale read of freed memory (a Get racing with the sweep that frees its
// object, which fails its handle check) never faults.
//
// A freed block is not returned at once. It stays resident, dirty, for
// one to two scavenger periods (agePeriod), and an Alloc of its size
// meanwhile takes it, cleared: a heap that grows back after a collection,
// or a new heap made after another was closed (a script per request),
// reuses memory without a system call or a page fault. A goroutine of the
// Pool's, the scavenger (after the Go runtime's background scavenger,
// which likewise keeps freed pages for a while), wakes once a period
// while dirty blocks remain, returns those freed before its last wake and
// not reused since, sorted, with one madvise per run of adjacent blocks,
// and exits when none remain. madvise is not cheap (it frees each page and
// shoots down the TLB of every core running the process: tens of
// milliseconds for the forty megabytes of spans a heap's Close may free),
// and the goroutine that frees, a sweeper or Close, need not wait for it.
// A block handed out from fresh or returned memory is populated for
// writing first (MADV_POPULATE_WRITE, one system call), where its pages
// would otherwise fault once when read (the zero page) and again when
// first written.
//
// A Pool keeps apart what it is used for: slabs are reused only as slabs,
// handle words only as handle words, so a stale *T written through after
// its object was freed (a misuse: Get's pointer is valid until the next
// safepoint) can only reach other objects' pointer-free memory, as it
// could on the Go heap, and never the handle words that check every ref.
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
	"time"
	"unsafe"
)

// arenaSize is the size of one mapping that small blocks are carved from.
const arenaSize = 4 << 20

// largeBlock is the size from which a block gets a mapping of its own.
const largeBlock = arenaSize / 4

// agePeriod is the scavenger's period: a freed block not reused is
// returned to the OS one to two periods after it was freed.
const agePeriod = 100 * time.Millisecond

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

	free map[uintptr][]unsafe.Pointer // returned to the OS, by rounded size
	// dirty[0] holds the blocks freed since the scavenger's last wake,
	// dirty[1] those freed in the period before, not reused since: by
	// rounded size, resident. dirtyBytes is their total size.
	dirty      [2]map[uintptr][]unsafe.Pointer
	dirtyBytes uintptr
	// scavenging is set while the scavenger goroutine runs: set by Free,
	// which starts it when it is not running; cleared by the scavenger as
	// it exits, when it finds no dirty block. Both look at dirty and at
	// scavenging with mu held, so a dirty block is never left without a
	// scavenger. releasing is set while the scavenger returns a batch
	// with mu released: those blocks are in no list meanwhile. idle is
	// broadcast when either is cleared (a cond on mu; Flush waits on it).
	scavenging, releasing bool
	idle                  sync.Cond

	arena unsafe.Pointer // the arena being carved; nil before the first
	left  uintptr        // bytes of arena not yet carved
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
	for g := range p.dirty {
		if b, ok := pop(p.dirty[g], sz); ok {
			p.dirtyBytes -= sz
			p.inUse += sz
			p.mu.Unlock()
			clear(unsafe.Slice((*byte)(b), sz))
			return b
		}
	}
	b, ok := pop(p.free, sz)
	if !ok {
		b = p.carveLocked(sz)
	}
	if b != nil {
		p.inUse += sz
	}
	p.mu.Unlock()
	if b != nil {
		populate(b, sz)
	}
	return b
}

// carveLocked maps a new block of sz bytes: from the current arena, or a
// mapping of its own for a large one. It returns nil if the OS refused.
// REQUIRES: p.mu held.
func (p *Pool) carveLocked(sz uintptr) unsafe.Pointer {
	if sz >= largeBlock {
		b := mapAnon(sz)
		if b != nil {
			p.mapped += sz
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
	return b
}

// pop removes and returns a block of size sz from m, if it has one.
func pop(m map[uintptr][]unsafe.Pointer, sz uintptr) (unsafe.Pointer, bool) {
	l := m[sz]
	if len(l) == 0 {
		return nil, false
	}
	b := l[len(l)-1]
	m[sz] = l[:len(l)-1]
	return b, true
}

// push adds the block b of size sz to *m, making the map if need be.
func push(m *map[uintptr][]unsafe.Pointer, sz uintptr, b unsafe.Pointer) {
	if *m == nil {
		*m = make(map[uintptr][]unsafe.Pointer)
	}
	(*m)[sz] = append((*m)[sz], b)
}

// Free gives the block b of n bytes, from Alloc, back: to a later Alloc of
// the same size, and to the OS one to two scavenger periods later if none
// takes it. The caller must not use b again; a stale read of it sees what
// it held, zeros, or a later block's contents.
func (p *Pool) Free(b unsafe.Pointer, n uintptr) {
	sz := roundPage(n)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inUse -= sz
	push(&p.dirty[0], sz, b)
	p.dirtyBytes += sz
	if !p.scavenging {
		p.scavenging = true
		go pprof.Do(context.Background(), pprof.Labels("reclaim.worker", "osmem-scavenger"), func(context.Context) { p.scavenge() })
	}
}

// scavenge is the scavenger goroutine: once a period it returns the blocks
// freed in the period before its last wake and not reused, and ages the
// rest; it exits when no dirty block is left.
func (p *Pool) scavenge() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.dirtyBytes > 0 {
		p.mu.Unlock()
		time.Sleep(agePeriod)
		p.mu.Lock()
		old := p.dirty[1]
		p.dirty[1], p.dirty[0] = p.dirty[0], nil
		batch := p.takeLocked(old)
		p.releasing = true
		p.mu.Unlock()
		releaseRuns(batch)
		p.mu.Lock()
		p.releasing = false
		p.addFreeLocked(batch)
		p.idleCond().Broadcast()
	}
	p.scavenging = false
	p.idleCond().Broadcast()
}

// takeLocked lists the blocks of m and takes their size off dirtyBytes.
// REQUIRES: p.mu held.
func (p *Pool) takeLocked(m map[uintptr][]unsafe.Pointer) []block {
	var batch []block
	for sz, l := range m {
		for _, b := range l {
			batch = append(batch, block{b, sz})
		}
		p.dirtyBytes -= sz * uintptr(len(l))
	}
	return batch
}

// Flush returns every freed block still resident to the OS now, and waits
// for a batch the scavenger is returning.
func (p *Pool) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.releasing {
		p.idleCond().Wait()
	}
	for g := range p.dirty {
		batch := p.takeLocked(p.dirty[g])
		p.dirty[g] = nil
		releaseRuns(batch)
		p.addFreeLocked(batch)
	}
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
	for _, b := range batch {
		push(&p.free, b.n, b.p)
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
// freed blocks still resident, waiting for reuse or for the scavenger, and
// the bytes mapped (address space, of which only the other two are
// resident).
func (p *Pool) Usage() (inUse, dirty, mapped uintptr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse, p.dirtyBytes, p.mapped
}

// Worth reports whether a block of n bytes fills at least half of the
// whole pages a Pool would round it up to. A smaller block is better taken
// from the Go heap, whose size classes lose at most an eighth: the 8-byte
// handle word of a span of one large object would hold a page of 4 KiB.
func Worth(n uintptr) bool { return n > 0 && 2*n >= roundPage(n) }

func roundPage(n uintptr) uintptr { return (n + pageSize - 1) &^ (pageSize - 1) }
