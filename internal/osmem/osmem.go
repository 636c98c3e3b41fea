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
// valid (it reads as zeros), and kept on a free list for its size. So a
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
	"sync"
	"unsafe"
)

// arenaSize is the size of one mapping that small blocks are carved from.
const arenaSize = 4 << 20

// largeBlock is the size from which a block gets a mapping of its own.
const largeBlock = arenaSize / 4

// Pool hands out page-aligned, zeroed blocks outside the Go heap. The zero
// Pool is ready to use; its methods are safe for concurrent use.
type Pool struct {
	mu sync.Mutex
	// All fields are guarded by mu.
	free  map[uintptr][]unsafe.Pointer // freed blocks by rounded size, given back to the OS
	arena unsafe.Pointer               // the arena being carved; nil before the first
	left  uintptr                      // bytes of arena not yet carved
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

// Free gives the block b of n bytes, from Alloc, back to the OS and keeps
// its address for a later Alloc of the same size. The caller must not use
// b again; a stale read of it sees zeros or a later block's contents.
func (p *Pool) Free(b unsafe.Pointer, n uintptr) {
	sz := roundPage(n)
	release(b, sz)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.free == nil {
		p.free = make(map[uintptr][]unsafe.Pointer)
	}
	p.free[sz] = append(p.free[sz], b)
	p.inUse -= sz
}

// Usage returns the bytes of blocks handed out and not freed, and the
// bytes mapped (address space, of which only what is in use is resident).
func (p *Pool) Usage() (inUse, mapped uintptr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse, p.mapped
}

func roundPage(n uintptr) uintptr { return (n + pageSize - 1) &^ (pageSize - 1) }
