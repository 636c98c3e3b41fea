package heap

import (
	"context"
	"fmt"
	"math/bits"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/reclaimgc/reclaim/internal/cleanupq"
	"github.com/reclaimgc/reclaim/internal/handle"
)

// The mark phase (heap.go, step 4), span-batched after the runtime's green
// tea marker (mgcmark_greenteagc.go). The world is stopped; the leader
// gathers the roots, greys them, and MarkWorkers workers drain the grey
// objects in parallel.
//
// Greying an object sets its bit in its span's markBits. What is queued is
// the span, not the object: the first worker to find the span unqueued
// (markSpan.queued 0 -> 1) queues it, and every object greyed there until a
// worker takes it rides along for free. A worker that takes a span clears
// queued, claims the grey objects (markBits &^ scanBits, with one atomic
// Or per 64 slots on scanBits) and scans them in slot order, so the objects
// it reads are read in address order, and each scan batch touches one span's
// metadata. Queues are FIFO, which leaves a span waiting long enough to
// gather many grey objects (the runtime found the same).
//
// Why this is cheap per object. A 1M-object heap is larger than the caches
// and its objects are reached in random order, so the mark is a matter of
// memory latency: each object is read once, and each handle found in it is
// checked against its slot's mark tag (span.markTags, a byte a slot, read
// at random; see markTag). Three things keep those misses off the critical
// path:
//
//   - Read-ahead of objects, in a heap whose objects outgrow the caches
//     (objectsAheadBytes): before scanning a span, the worker prefetches
//     the grey objects of the next span in its queue (prefetchGrey: the
//     lines from an object's first handle to its last), so they arrive
//     while it scans this one (the runtime's scanObjectSmall prefetches
//     too; prefetch_amd64.s is its sys.Prefetch). Computing the addresses
//     costs as much CPU as scanning, so the loop is kept free of branches
//     on the data.
//   - Read-ahead of tags, in a heap whose tags outgrow the caches
//     (tagsAheadSlots): the handles one span's objects hold are not
//     checked at once; pipeline prefetches their tags and checks them
//     after the next span's scan, when the tags are in the cache.
//   - The mark's own span table (markSpan, indexed by span index: tags,
//     markBits, the span and whether it is queued; a cache line each),
//     built when the mark begins: checking and marking a handle touches
//     that small dense table, not span structs spread over the Go heap a
//     page apart (TLB misses). The queued flag was a field of the span, on
//     a line of its own, and reading it after each mark missed the cache
//     more often than anything the mark reads but the objects and the
//     handle words the check read then.
//
// Checking with atomics is done in batches of greyBatch, in two passes:
// loads first, then comparing and marking, whose atomic Or would otherwise
// wait for every load still in flight (with plain stores, in one pass:
// greyPlain). A stale or foreign handle is caught before anything
// is marked: it is counted and never marks a slot; but for a stale handle
// whose generation is a multiple of 256 behind that of its slot's object,
// which has the object's tag and is taken for it (docs/DESIGN.md, "Mark
// tags": the price of reading a byte a slot where the whole handle word
// was eight). No handle can mark a free slot (its allocation bit is
// clear); a stale one can mark a retired slot (tag 0), whose memory is
// zeroed and which the sweep keeps retired.
//
// Parallel marking. Spans are owned in groups of consecutive indexes:
// span idx belongs to worker (idx >> shift) mod MarkWorkers, where shift
// (ownShift) makes the groups as large as 64 spans while every worker
// still owns 16 groups or more. The handles a worker finds in the objects
// it scans that name another worker's spans are not marked by it: they are
// sent to the owner, in buffers of mailLen (the pool's mail), and the
// owner checks and marks them like those it finds itself. So are the roots
// (the leader routes them before the workers start) and the referents of
// finalizable objects.
// With each span's mark bits written by one worker, the cache lines
// holding them stay with it; with every worker marking everywhere, every
// mark moved a line between cores, and two workers were slower than one.
// The exception is the values of ephemeron entries, which the worker that
// finds them live marks wherever they are (traceEph). Groups, not single
// spans, because what belongs to spans of neighbouring indexes lies side
// by side in memory: their entries in the mark's table, their tags, their
// slabs and the page table entries that map them. Owning every other span,
// each worker read lines, pages and page table lines half filled with the
// other's, and the CPU's adjacent-line prefetcher pulled into its cache
// the table entries the other worker writes. In groups of 64 spans,
// checking and marking a handle took 7.7-9.5 ns where it took 10.4-11.9,
// and two workers marked the mark workload's 1M-node graph 1.77-1.80x as
// fast as one by the mean (mark-speedup), against 1.55-1.64
// (docs/BENCHMARKS.md). Many groups each, rather than a half of the span
// table each, keep the work even where live objects crowd some part of
// the heap.
//
// Marking without atomics. The atomic forms of the mark's writes are
// locked instructions (~10 ns each here, and on amd64 each waits for every
// load in flight), and where only one worker touches a span's mark state
// they are not needed. The race detector's build marks with plain stores
// too, so that it checks the claim that one worker alone touches them
// (dropping the shared check from scanSpan's plain, say, is reported as a
// race by the tests).
//
//   - With MarkWorkers 1 (markWorker.solo) nothing but the worker reads or
//     writes mark bits, scan bits or queued flags while it runs (the world
//     is stopped): every write is plain.
//   - With several workers and no ephemeron tables in the heap
//     (markWorker.ownPlain), every mark bit is set by its span's owner, and
//     until the owner gives a span away to balance the work (below), the
//     owner is the only worker that scans it or queues it, too: the owner's
//     writes to it are plain, and the Dekker argument below is about one
//     worker's program order. Before it gives a span away the owner sets
//     markSpan.shared (read only by itself), and from then on in this mark
//     both sides use atomics on it: the taker on every span it does not
//     own, the owner on its shared spans. Ephemeron tables rule it out
//     because scanTable reads the mark bits of any span and relies on the
//     marker's store-then-load order (ephemeron.go).
//
// Marking with plain stores, each handle is checked and marked on its own
// in one pass (greyPlain), with no branch on whether its object was marked
// already (a coin toss in a graph reached at random, which the CPU
// mispredicted half the time); the branch it takes is on whether the span
// is queued, which it mostly is. The mark is bound by memory more than by
// the CPU: one worker marks a 10,000-node graph of the mark workload,
// which fits in the caches, at about 84M objects/s, and a 1M-node one at
// 20-25M (best of 40 collections each, minutes apart). The loops over
// handles are kept short of live values: the Go compiler keeps what does
// not fit in registers on the stack, and stores and loads it around every
// handle.
//
// Handles into the span being scanned. A tree's or a list's cells are
// allocated together, so most handles a scan finds in them name the span
// it scans. A worker that marks with plain stores (solo, or ownPlain on a
// span it owns and has not shared) and has no ephemeron tables to mind
// marks those itself, as it scans (scanSpan, with markWorker.local):
// checked against the tags and marked there, an object ahead of the scan in the
// word being scanned is scanned when the scan's loop reaches its slot,
// one in a later word when the scan reaches that word, one behind it in
// the same word in another wave of that word, and one in a word it has
// left in another pass over the span. Sent through route, pipeline and
// greyAll, each queued the span again and was scanned in a later trip
// through the queue, with the machinery built for handles read at random.
// The loop goes slot by slot and tests each slot's bit, a branch the CPU
// predicts, so that the loads of the objects ahead do not wait for the
// marks that make them grey (scanLinear says what else was tried). With
// this, binary-trees' collections took two fifths less time. A random graph,
// whose handles seldom name the span they are found in, would pay a tenth
// of its mark for sorting them; localWorth turns it off while few do.
//
// Balancing is the runtime's gcWork pattern at span granularity: a worker
// whose queue holds two spans or more while another waits gives the newest
// half away to the pool, and a worker with nothing to do takes its mail or
// a buffer of spans from it. But a worker that has mail to send when
// another waits sends only that: the waiter has work again, and spans
// given away are scanned by a worker that does not own them, with atomics
// on both sides from then on and a shorter queue for the giver, whose
// spans then gather fewer grey objects before they are scanned. A worker sends its partial mail buffers when
// another worker waits and before it waits itself. A worker that waits
// polls for work for up to spinFor before it sleeps: the others send it
// mail after every span they scan, and a sleeper's wake-up took from 0.1
// ms to several while its mail piled up. Termination: a worker
// that finds neither mail nor spans waits; when every worker waits and no
// mail is left, marking is complete (a waiting worker has scanned all it
// queued and sent all it found). No grey object is lost in between: a
// greyer sets the mark bit and then reads queued; a taker stores
// queued 0 and then reads markBits. With sequentially consistent
// atomics, either the greyer sees 0 and queues the span again, or the taker
// sees the bit (Dekker, as in ephemeron.go); queued is markSpan.queued.

var bgctx = context.Background()

// markStats is what one mark found.
type markStats struct {
	// objects and bytes are what the mark's bits count when it ends
	// (countMarked); the workers do not count as they mark.
	objects, bytes int64
	stale          int64 // handles to freed objects found in live ones
	foreign        int64 // handles of another heap found in live ones
	roots          int
	finRoots       int64 // finalizable objects scanned as roots: those unmarked when scanFinRoots came to them
	pruned         int   // ephemeron entries deleted
	duration       time.Duration
}

// greyBatch is how many handles one pass of greyRefs checks: enough
// independent loads to keep the CPU's miss buffers busy.
const greyBatch = 64

// pipeLen is the number of found handles past which a span's scan hands
// them to pipeline before it ends.
const pipeLen = 512

// spillMin is the queue length from which a worker gives half of its spans
// to the pool when another worker waits.
const spillMin = 2

// mailLen is the size of the handle buffers workers send each other. A
// send takes the pool's mutex, whose line the other worker last held, and
// each buffer is one more trip through get and pipeline for the receiver:
// with buffers of 256 handles, two workers marked the mark workload's 1M-node
// graph 6% slower than with 1024 (best of 40 collections each, taking
// turns in one process); 512 to 4096 did as well as 1024, 64 a quarter
// worse (docs/BENCHMARKS.md).
const mailLen = 1024

// workPool is what workers share: spans given away to balance the work,
// and the handles each worker finds for spans another owns (mail). One
// pool per mark, made by the leader before the workers start.
type workPool struct {
	// mu protects the fields grouped in it. A buffer in bufs or mail
	// belongs to the pool until get hands it to one worker.
	mu struct {
		sync.Mutex
		bufs  [][]*span           // queued spans given away, for any worker
		mail  [][][]handle.Handle // mail[k]: handles naming worker k's spans
		nmail int                 // buffers in mail, all workers
		nwait int                 // workers waiting in get
		done  bool                // marking is complete, or aborted
	}
	cond sync.Cond // on mu; broadcast when work arrives and a worker waits, or marking ends
	// waiting mirrors mu.nwait and hasMail[k] len(mu.mail[k]) > 0; both are
	// written with mu held and read lock-free as hints between spans.
	waiting atomic.Int32
	hasMail []atomic.Bool
	// nbufs mirrors len(mu.bufs) and done mu.done, for a worker that
	// spins waiting for work (spin); written with mu held.
	nbufs    atomic.Int32
	done     atomic.Bool
	nworkers int // immutable
}

// tagsAheadSlots is the number of slots in the heap, and bytes of mark
// tags, from which pipeline reads the tags of the handles found ahead. On
// smaller heaps the tags stay in the caches, and reading them ahead cost
// more than it saved: without it one worker marked a 10,000-node graph 22%
// faster, a 1M-node one 4-9% and a 2M-node one 2-3%, and a 4M-node one 7%
// slower by the mean (docs/BENCHMARKS.md). A variable for the tests,
// which set it to 0 to mark small heaps with the tags read ahead. Read by
// a mark's leader as the mark begins; written only by tests, while none of
// their heaps marks.
var tagsAheadSlots = 3 << 20

// objectsAheadBytes is the size of the slabs of the spans a mark may scan
// from which drain reads the grey objects of the next span ahead. Of the
// mark workload's graph (40-byte nodes), one worker marked 10,000 to
// 100,000 nodes (up to 4 MiB) 15-23% faster without, 300,000 (12 MiB) as
// fast either way, and 1M (40 MiB) 13% slower (docs/BENCHMARKS.md). A
// variable for the tests, which set it to 0; read and written as
// tagsAheadSlots is.
var objectsAheadBytes = 8 << 20

// spinFor is how long a worker with nothing to do polls for work before
// it sleeps on the pool's cond: long enough to see the mail a busy worker
// sends after each span it scans (a few microseconds apart), short
// enough not to burn much of a CPU the process may share. 1 ms did no
// better on the mark and binary-trees workloads.
const spinFor = 200 * time.Microsecond

// spin returns when worker k has mail, spans are in the pool or marking
// is complete, or after spinFor.
func (p *workPool) spin(k int) {
	var start time.Time
	for i := 0; ; i++ {
		if p.hasMail[k].Load() || p.nbufs.Load() > 0 || p.done.Load() {
			return
		}
		if i%64 == 63 {
			if start.IsZero() {
				start = time.Now()
			} else if time.Since(start) > spinFor {
				return
			}
			runtime.Gosched() // if workers outnumber Ps, let one with work run
		}
	}
}

func newWorkPool(nw int) *workPool {
	p := &workPool{nworkers: nw, hasMail: make([]atomic.Bool, nw)}
	p.cond.L = &p.mu.Mutex
	p.mu.mail = make([][][]handle.Handle, nw)
	return p
}

// put gives queued spans away.
func (p *workPool) put(buf []*span) {
	p.mu.Lock()
	p.mu.bufs = append(p.mu.bufs, buf)
	p.nbufs.Store(int32(len(p.mu.bufs)))
	wake := p.mu.nwait > 0
	p.mu.Unlock()
	if wake {
		p.cond.Broadcast()
	}
}

// send sends handles to worker to.
func (p *workPool) send(to int, buf []handle.Handle) {
	p.mu.Lock()
	p.mu.mail[to] = append(p.mu.mail[to], buf)
	p.mu.nmail++
	p.hasMail[to].Store(true)
	wake := p.mu.nwait > 0
	p.mu.Unlock()
	if wake {
		p.cond.Broadcast()
	}
}

// abort ends the mark early, after a worker's panic: get returns nothing
// to a worker that has no mail or spans left, and waiting workers wake.
func (p *workPool) abort() {
	p.mu.Lock()
	p.mu.done = true
	p.done.Store(true)
	p.mu.Unlock()
	p.cond.Broadcast()
}

// get returns worker k's mail, or else a buffer of spans given away. If
// there is neither it returns nothing, after waiting for some if wait is
// set; then nothing means marking is complete: every worker waits, and no
// mail and no spans are left (a waiting worker has scanned everything it
// queued and sent everything it found).
func (p *workPool) get(k int, wait bool) ([][]handle.Handle, []*span) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if m := p.mu.mail[k]; len(m) > 0 {
			p.mu.mail[k] = nil
			p.mu.nmail -= len(m)
			p.hasMail[k].Store(false)
			return m, nil
		}
		if n := len(p.mu.bufs); n > 0 {
			b := p.mu.bufs[n-1]
			p.mu.bufs = p.mu.bufs[:n-1]
			p.nbufs.Store(int32(n - 1))
			return nil, b
		}
		if !wait || p.mu.done {
			return nil, nil
		}
		p.mu.nwait++
		p.waiting.Store(int32(p.mu.nwait))
		if p.mu.nwait == p.nworkers && p.mu.nmail == 0 {
			p.mu.done = true
			p.done.Store(true)
			p.cond.Broadcast()
			return nil, nil
		}
		// Spin before sleeping: waking a sleeping worker took from a
		// tenth of a millisecond to several (the futex, and the runtime
		// finding an idle P to run it), while the others kept sending it
		// mail it did not read.
		p.mu.Unlock()
		p.spin(k)
		p.mu.Lock()
		if len(p.mu.mail[k]) == 0 && len(p.mu.bufs) == 0 && !p.mu.done {
			p.cond.Wait()
		}
		p.mu.nwait--
		p.waiting.Store(int32(p.mu.nwait))
	}
}

// spanQueue is a worker's private FIFO of queued spans: a ring whose
// length is a power of two. Owned by its worker; the leader takes the
// ring back between marks (markBuffers).
type spanQueue struct {
	ring []*span
	head int // index of the oldest span
	n    int // number of spans queued
}

func (q *spanQueue) push(s *span) {
	if q.n == len(q.ring) {
		ring := make([]*span, max(64, 2*len(q.ring)))
		for i := range q.n {
			ring[i] = q.ring[(q.head+i)&(len(q.ring)-1)]
		}
		q.ring, q.head = ring, 0
	}
	q.ring[(q.head+q.n)&(len(q.ring)-1)] = s
	q.n++
}

// peek returns the oldest span without removing it, or nil.
func (q *spanQueue) peek() *span { return q.at(0) }

// at returns the k-th oldest span (0 is the oldest), or nil.
func (q *spanQueue) at(k int) *span {
	if k >= q.n {
		return nil
	}
	return q.ring[(q.head+k)&(len(q.ring)-1)]
}

func (q *spanQueue) pop() *span {
	if q.n == 0 {
		return nil
	}
	s := q.ring[q.head]
	q.ring[q.head] = nil
	q.head = (q.head + 1) & (len(q.ring) - 1)
	q.n--
	return s
}

// takeNewest removes the k most recently queued spans and returns them.
func (q *spanQueue) takeNewest(k int) []*span {
	out := make([]*span, k)
	for i := range out {
		j := (q.head + q.n - k + i) & (len(q.ring) - 1)
		out[i] = q.ring[j]
		q.ring[j] = nil
	}
	q.n -= k
	return out
}

// markSpan is a span's entry in the mark's own span table, indexed by span
// index: what checking and marking a handle reads, in one place, one cache
// line to a span. The table is small and dense, so the random accesses of
// checking handles touch it instead of span structs spread over the Go
// heap, a page each. Built by the leader before the workers start (the
// go statements order its writes before their reads); only queued and
// shared change while they run, and every other field is read-only then.
// A line to an entry keeps a worker's writes to queued (the owner's; see
// ownShift) off the lines of the entries other workers read.
type markSpan struct {
	tags      *uint8         // &s.markTags[0]
	allocBits *uint64        // &s.allocBits[0]
	markBits  *atomic.Uint64 // &s.markBits[0]
	s         *span
	elemSize  uintptr // s.elemSize
	nslots    uint32  // s.nslots: len(s.hv), at most 64*len(s.markBits)
	// queued is 1 while the span waits in a worker's queue or the shared
	// pool (the runtime's spanScanOwnership), and always for a noScan
	// span. A worker that marks an object here and finds it 0 sets it
	// (CAS 0 -> 1; a plain store when solo, or by the owner with ownPlain
	// while the span is not shared) and queues the span; the worker that
	// takes the span stores 0 (plain under the same conditions) before it
	// reads markBits. The table is cleared by the leader when a mark
	// begins.
	queued atomic.Uint32
	noScan bool // s.noScan
	// shared is set by the span's owner, with ownPlain, before it gives
	// the span to the pool; from then on in this mark every worker uses
	// atomics on the span's mark state. Written and read only by the owner.
	shared bool
	_      [64 - 5*unsafe.Sizeof(uintptr(0)) - 10]byte // to 64 bytes: five words, then 10 bytes of fields
}

// A markSpan is one cache line.
var _ [0]struct{} = [unsafe.Sizeof(markSpan{}) - 64]struct{}{}

// tagAt returns s.markTags[i]. REQUIRES: i < e.nslots.
func (e *markSpan) tagAt(i uint32) uint8 { return *(*uint8)(unsafe.Add(unsafe.Pointer(e.tags), i)) }

// markTag is the mark tag of a handle, and of the slot whose handle word
// it is: the low byte of its generation, one shift. Two handles of one
// slot whose generations differ by less than 256 have different tags. A
// retired slot's is 0, which a stale handle of its slot may have too; it
// can mark nothing but the slot's zeroed memory, which the sweep keeps
// retired (see "Mark tags" in docs/DESIGN.md).
func markTag(x handle.Handle) uint8 { return uint8(x.Gen()) }

// localOK reports whether x, a handle into span s (x.Span() == s.idx), passes
// the mark's check (greyAll's): of this heap (hid), a slot in range, its
// tag the slot's, and the slot allocated. markLocal's form, from the
// span's slices; scanLinear checks the same with unsafe loads and one
// compare of x against localKey for the heap id and span at once.
func localOK(tags []uint8, alloc []uint64, hid uint32, x handle.Handle) bool {
	j := x.Slot()
	return j < uint32(len(tags)) && tags[j] == markTag(x) && x.Heap() == hid && alloc[j/64]&(1<<(j%64)) != 0
}

// localKeyMask selects a handle's span index and heap id, and localKey
// returns what those bits are for a handle into span idx of heap hid.
const localKeyMask = uint64(handle.MaxSpans-1)<<(handle.HeapBits+handle.GenBits+handle.SlotBits) | handle.MaxHeaps

func localKey(hid, idx uint32) uint64 { return uint64(handle.Pack(hid, idx, 0, 0)) }

// takes reports whether the mark's check takes x, a handle of slot i of
// e's span (i < e.nslots), for that slot's object: of heap hid, with the
// slot's tag, and the slot allocated. greyAll's and greyPlain's check;
// localOK and scanLinear make the same from the span's own slices.
func (e *markSpan) takes(x handle.Handle, i, hid uint32) bool {
	return e.tagAt(i) == markTag(x) && x.Heap() == hid && e.allocAt(i)
}

// allocAt reports whether slot i of e's span is allocated. REQUIRES: i <
// e.nslots, the world stopped (the caches flushed: allocBits exact).
func (e *markSpan) allocAt(i uint32) bool {
	return *(*uint64)(unsafe.Add(unsafe.Pointer(e.allocBits), uintptr(i/64)*8))&(1<<(i%64)) != 0
}

// markWord returns &s.markBits[wi]. REQUIRES: wi < (e.nslots+63)/64.
func (e *markSpan) markWord(wi uint32) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Add(unsafe.Pointer(e.markBits), uintptr(wi)*8))
}

// markWorker is one mark worker's state. The leader fills it in before
// the worker starts (worker 0 runs on the leader's own goroutine, the
// others on goroutines it starts), and reads st and the buffers back
// (keepBuffers) after every worker has ended (wg.Wait); in between, every
// field is owned by the worker's goroutine, except that tab is shared
// (see markSpan) and pool synchronizes itself. h, id, nw, solo,
// ownPlain, local, tagsAhead, objectsAhead, ownMask, ownShift and tab are not
// changed during the mark; pool is set
// by the leader before each of the mark's two phases starts its workers
// (the go statements order the write before their reads).
type markWorker struct {
	h    *Heap
	pool *workPool
	id   int // this worker owns the spans idx with (idx >> ownShift) mod nw == id
	nw   int
	// solo is set when this is the mark's only worker:
	// then nothing else reads or writes any span's mark bits, scan bits or
	// queued flags until the mark ends (the world is stopped), so the worker
	// sets them with plain loads and stores. The atomic forms are locked
	// instructions, which on amd64 also wait for every load in flight.
	solo bool
	// ownPlain is set when the mark has several workers and no ephemeron
	// tables: then a span's mark bits are written only by
	// its owner, and until the owner gives the span away (markSpan.shared)
	// nothing else reads or writes its scan bits or queued flag either, so
	// the owner uses plain loads and stores on them. See the top of the
	// file.
	ownPlain bool
	// local is set when the worker marks with plain stores (solo or
	// ownPlain) and the heap has no ephemeron tables: then scanSpan marks
	// the handles an object holds into the span being scanned itself,
	// in the scan's own pass (see scanSpan).
	local bool
	// tagsAhead is set when the heap's mark tags are more than the caches
	// hold (tagsAheadSlots): then pipeline reads ahead the tags of the
	// handles it holds.
	tagsAhead bool
	// objectsAhead is set when the objects the mark may scan are more than
	// the caches hold (objectsAheadBytes): then drain reads the grey
	// objects of the next span ahead (prefetchGrey).
	objectsAhead bool
	loc          []handle.Handle // markLocal's scratch: the handles into the span it marks in
	// locSpans, locSeen and locHit are localWorth's counts: spans asked
	// about, and handles found in the spans scanned with local, of them
	// those naming the span scanned (for scanLinear, and passing the check
	// against the tags).
	locSpans, locSeen, locHit uint32
	q                         spanQueue
	// out[k] collects the handles found for worker k's spans, sent when
	// full, when another worker waits, and before this one waits; its
	// array comes from newOutboxes, apart from what other workers write.
	// free holds emptied buffers for reuse.
	out     [][]handle.Handle
	free    [][]handle.Handle
	other   []handle.Handle // route's scratch
	ownMask uint32          // nw-1 if nw is a power of two above 1, else 0
	// ownShift is the log2 of the number of consecutive span indexes a
	// worker owns together (see ownShift, the function): set by the
	// leader with the other fields, the same in every worker of a mark.
	ownShift uint32
	// refs collects the handles found by scanning, checked and greyed by
	// greyRefs; gspan, gword and gmark are greyAll's per-batch scratch
	// when it marks with atomics.
	refs  []handle.Handle
	gspan [greyBatch]*markSpan
	one   [1]handle.Handle // grey's argument, as a batch
	tab   []markSpan       // the mark's span table; shared (see markSpan)
	gword [greyBatch]uint64
	gmark [greyBatch]uint64
	// held are handles found by the span scanned before the current one,
	// their tags prefetched, to be checked after it (pipeline).
	held []handle.Handle
	// pf holds the addresses prefetchGrey prefetches.
	pf []uintptr
	// ephq holds ephemeron values whose keys are live, to trace
	// (ephemeron.go); scratchEph is their scan buffer.
	ephq       []ephEntry
	scratchEph []handle.Handle
	st         markStats
}

// markBuffers are a worker's buffers, kept by the heap between marks
// (Heap.markReuse: owned by the leader with the world stopped).
type markBuffers struct {
	free             [][]handle.Handle
	other, refs      []handle.Handle
	held, scratchEph []handle.Handle
	pf               []uintptr
	ring             []*span
}

func (w *markWorker) reuseBuffers(b *markBuffers) {
	w.free, w.other, w.refs = b.free, b.other[:0], b.refs[:0]
	w.held, w.scratchEph, w.pf = b.held[:0], b.scratchEph[:0], b.pf[:0]
	w.q.ring = b.ring
}

func (w *markWorker) keepBuffers(b *markBuffers) {
	for _, o := range w.out {
		if cap(o) >= mailLen {
			w.free = append(w.free, o[:0])
		}
	}
	*b = markBuffers{w.free, w.other, w.refs, w.held, w.scratchEph, w.pf, nil}
	if w.q.n == 0 {
		clear(w.q.ring)
		b.ring = w.q.ring
	}
}

// keepMail is the most free mail buffers a worker keeps from one mark to
// the next: 16 of mailLen handles, the 128 KiB that 64 buffers of 256 held.
const keepMail = 16

// balanceFree shares the workers' free mail buffers out evenly, at most
// keepMail each, and returns spare, emptied, for the next call. A buffer
// ends a mark on the free list of the worker that received it: a worker
// that sent more than it received made new buffers at every mark while
// the other's list grew without bound.
func balanceFree(kept []markBuffers, spare [][]handle.Handle) [][]handle.Handle {
	if len(kept) < 2 {
		return spare
	}
	all := spare[:0]
	for i := range kept {
		all = append(all, kept[i].free...)
		clear(kept[i].free)
		kept[i].free = kept[i].free[:0]
	}
	per := min((len(all)+len(kept)-1)/len(kept), keepMail)
	rest := all
	for i := range kept {
		n := min(per, len(rest))
		kept[i].free = append(kept[i].free, rest[:n]...)
		rest = rest[n:]
	}
	clear(all) // what is left over goes to Go's collector
	return all[:0]
}

// grey greys one handle.
func (w *markWorker) grey(x handle.Handle) {
	w.one[0] = x
	w.greyAll(w.one[:])
}

// greyRefs greys every handle in w.refs and empties it.
func (w *markWorker) greyRefs() {
	w.greyAll(w.refs)
	w.refs = w.refs[:0]
}

// pipeline greys the handles held since the previous call and holds those
// in w.refs in their place, prefetching their slots' mark tags: the tags
// are read from memory while the worker scans the next span, and are in
// the cache when the next call checks them. Without tagsAhead it holds
// the handles all the same, unread: greyed at once, they queued spans
// sooner, with fewer grey objects gathered when they were scanned, and
// two workers marked a binary tree a quarter slower.
func (w *markWorker) pipeline() {
	held := w.held
	w.held = w.refs
	if w.tagsAhead {
		w.prefetchTags(w.held)
	}
	w.greyAll(held)
	w.refs = held[:0]
}

// flushHeld greys the handles pipeline holds.
func (w *markWorker) flushHeld() {
	w.greyAll(w.held)
	w.held = w.held[:0]
}

// prefetchTags prefetches the mark tags of the slots refs name. A line is
// asked for once when consecutive handles name it: handles found together
// often name neighbouring slots (a tree's nodes, a list's cells), 64 tags
// to a line.
func (w *markWorker) prefetchTags(refs []handle.Handle) {
	tab := w.tab
	addrs := w.pf[:0]
	prev := uintptr(0)
	for _, x := range refs {
		if idx := x.Span(); idx < uint32(len(tab)) {
			if e, i := &tab[idx], x.Slot(); i < e.nslots {
				if line := uintptr(unsafe.Add(unsafe.Pointer(e.tags), i)) &^ 63; line != prev {
					addrs = append(addrs, line)
					prev = line
				}
			}
		}
	}
	prefetch(addrs)
	w.pf = addrs[:0]
}

// greyAll greys every handle in refs: with plain stores greyPlain does;
// with atomics, batches of greyBatch in two passes (see the top of the
// file).
func (w *markWorker) greyAll(refs []handle.Handle) {
	if w.solo || w.ownPlain {
		w.greyPlain(refs)
		return
	}
	tab, hid := w.tab, w.h.id
	for len(refs) > 0 {
		b := refs[:min(len(refs), greyBatch)]
		refs = refs[len(b):]
		// Pass 1: independent loads, overlapped by the CPU. A handle
		// passes the check if it is of this heap, its tag is its
		// slot's (markTag) and its slot is allocated; then word is the
		// handle itself, and
		// otherwise 0, which no handle is: so is a handle whose span
		// index names no span, or whose slot is out of range.
		// The slot's mark word is loaded here too, so that its miss
		// overlaps the others instead of waiting behind the previous
		// handle's Or (a locked instruction) in pass 2; a bit found set
		// stays set for the rest of the mark.
		for k, x := range b {
			var e *markSpan
			var word, mark uint64
			if idx := x.Span(); idx < uint32(len(tab)) {
				e = &tab[idx]
				if i := x.Slot(); i < e.nslots {
					if e.takes(x, i, hid) {
						word = uint64(x)
					}
					mark = e.markWord(i / 64).Load()
				}
			}
			w.gspan[k], w.gword[k], w.gmark[k] = e, word, mark
		}
		// Pass 2: compare, then mark by runs: consecutive handles whose
		// slots share a mark word (a parent's children, the children of
		// neighbouring objects: scans find handles in slot order) are
		// marked with one atomic Or, whose old value says which of them
		// this worker marked. The Or is the costly step of marking an
		// object; one per run instead of one per handle is most of what
		// batching saves.
		var (
			run *markSpan // the run's span; nil before the first handle
			rw  uint32    // the run's mark word
			set uint64    // the run's slots in that word
		)
		for k, x := range b {
			e, word := w.gspan[k], w.gword[k]
			// One comparison of the whole word checks heap id, span,
			// slot and generation.
			if word != uint64(x) || word == 0 {
				w.checkFailed(x)
				continue
			}
			i := x.Slot()
			if w.gmark[k]&(1<<(i%64)) != 0 {
				continue // marked already
			}
			if e != run || i/64 != rw {
				if set != 0 {
					w.markRun(run, rw, set)
				}
				run, rw, set = e, i/64, 0
			}
			set |= 1 << (i % 64)
		}
		if set != 0 {
			w.markRun(run, rw, set)
		}
	}
}

// markRun marks the slots set names in mark word wi of e's span, and
// queues the span if this worker marked one.
func (w *markWorker) markRun(e *markSpan, wi uint32, set uint64) {
	mw := e.markWord(wi)
	old := mw.Load()
	if set &^= old; set == 0 {
		return // all marked already: no Or
	}
	if set &^= mw.Or(set); set == 0 {
		return
	}
	s := e.s
	// The mark bits are set; now read queued (see the Dekker argument at
	// the top of the file). It, the span's size and noScan come from the
	// mark's table, so a span that is already queued costs no read of its
	// struct.
	if !e.noScan && e.queued.Load() == 0 && e.queued.CompareAndSwap(0, 1) {
		w.q.push(s)
	}
	if w.h.eph.npending.Load() > 0 {
		w.releaseWaiting(s, wi, set)
	}
}

// releaseWaiting releases the ephemeron entries waiting on the slots set
// names in mark word wi of s, which this worker has just marked
// (ephemeron.go). Its callers check eph.npending first, inline: mostly
// nothing waits.
func (w *markWorker) releaseWaiting(s *span, wi uint32, set uint64) {
	if k := s.ephKeys.Load(); k != nil {
		for keys := (*k)[wi].Load() & set; keys != 0; keys &= keys - 1 {
			w.released(s, wi*64+uint32(bits.TrailingZeros64(keys)))
		}
	}
}

// greyPlain is greyAll for a worker that marks with plain stores (w.solo,
// or w.ownPlain: then every handle in refs names one of its own spans, and
// it marks a shared one with markRun). With no locked instruction to wait
// for the loads in flight, checking and marking go in one pass: two, with
// the check's results kept in gspan and gword between them, cost an eighth
// more time per object on a graph in the cache. Each handle is marked
// without a branch on whether its object was marked already, which in a
// graph reached at random is a coin toss the CPU mispredicts half the
// time. The branch taken is on whether the span is queued, which it is
// for most objects marked.
func (w *markWorker) greyPlain(refs []handle.Handle) {
	tab, hid := w.tab, w.h.id
	eph := w.h.eph.npending.Load() > 0
	for _, x := range refs {
		idx, i := x.Span(), x.Slot()
		if idx >= uint32(len(tab)) {
			w.checkFailed(x)
			continue
		}
		e := &tab[idx]
		if i >= e.nslots || !e.takes(x, i, hid) {
			w.checkFailed(x)
			continue
		}
		if invariantsBuild && w.ownPlain && w.owner(idx) != w.id {
			// A plain store to another worker's mark word could lose a
			// bit it sets at the same time: route sends such handles to
			// their owner, and nothing else may bring them here.
			panic(fmt.Sprintf("reclaim: internal error: mark worker %d of %d marks %v, a handle of worker %d's span, with plain stores", w.id, w.nw, x, w.owner(idx)))
		}
		if e.shared {
			w.markRun(e, i/64, 1<<(i%64))
			continue
		}
		mw := e.markWord(i / 64)
		old := mw.Load()
		plainStore(mw, old|1<<(i%64))
		if (e.queued.Load() == 0 || eph) && old&(1<<(i%64)) == 0 {
			w.markedPlain(e, i)
		}
	}
}

// markedPlain queues the span of slot i, which greyPlain just marked, if
// it is not queued, and releases the ephemeron entries waiting on the
// slot.
func (w *markWorker) markedPlain(e *markSpan, i uint32) {
	s := e.s
	if !e.noScan && e.queued.Load() == 0 {
		plainStore32(&e.queued, 1)
		w.q.push(s)
	}
	if w.h.eph.npending.Load() > 0 {
		w.releaseWaiting(s, i/64, 1<<(i%64))
	}
}

// checkFailed counts x, a handle that names no live object of this heap.
func (w *markWorker) checkFailed(x handle.Handle) {
	if x.Heap() != w.h.id {
		w.st.foreign++
	} else {
		w.st.stale++
	}
}

// scanSpan scans the grey objects of s, a span the worker took from a
// queue (the runtime's scanSpan).
func (w *markWorker) scanSpan(s *span) {
	// Release the span before reading its mark bits: an object greyed from
	// now on queues it again (see the top of the file).
	e := &w.tab[s.idx]
	plain := w.solo || w.ownPlain && w.owner(s.idx) == w.id && !e.shared // shared is the owner's to read
	if plain {
		plainStore32(&e.queued, 0)
	} else {
		e.queued.Store(0)
	}
	lay := s.typ.Layout
	isTable := s.typ.EphEach != nil
	offs, fixed := lay.Fixed()
	// w.local implies a heap without ephemeron tables, so isTable is false
	// whenever local is set: scanLinear need not register tables.
	local := plain && w.local && w.localWorth()
	again := false // local marked an object in a word the pass has left
pass:
	for wi := range s.markBits {
		m := s.markBits[wi].Load()
		sb := &s.scanBits[wi]
		scanned := sb.Load()
		if m&^scanned == 0 {
			continue
		}
		var grey uint64
		if plain {
			grey = m &^ scanned
			plainStore(sb, m|scanned)
		} else {
			// Another worker may be scanning this span too: the Or's
			// old value says which of the grey objects are this
			// worker's.
			grey = m &^ sb.Or(m)
		}
		for grey != 0 {
			// One wave: scan the objects of grey and mark what
			// they hold. With local, the handles into s are marked
			// here, and those of this word not scanned yet make the
			// next wave.
			var next uint64
			var back bool
			if fixed && local {
				next, back = w.scanLinear(s, wi, grey, offs)
			} else if fixed && !isTable {
				// One loop over the wave, with room made for its
				// handles once: growing w.refs and storing it back
				// around each object cost the mark of a 1M-node graph
				// a tenth of its time.
				w.refs = scanFixedAll(w.refs, s, wi, grey, offs)
			} else {
				n0 := len(w.refs)
				for g := grey; g != 0; g &= g - 1 {
					i := uint32(wi*64 + bits.TrailingZeros64(g))
					if isTable {
						w.scanTable(s.handleAt(i), s)
					}
					if fixed {
						w.refs = scanFixed(slices.Grow(w.refs, len(offs)), s.ptr(i), offs)
					} else if !lay.NoRefs {
						w.refs = lay.Scan(s.ptr(i), w.refs)
					}
				}
				if local {
					next, back = w.markLocal(s, wi, n0)
				}
			}
			again = again || back
			if grey = next; grey != 0 {
				plainStore(sb, sb.Load()|grey)
			}
			if len(w.refs) >= pipeLen {
				w.route()
				w.pipeline()
			}
		}
	}
	if again {
		// Another pass, instead of queueing s again: only its owner
		// marks in it (local), so nothing else scans it meanwhile, and
		// a list linked backwards across words costs a pass per word
		// it crosses, not a trip through the queue.
		again = false
		goto pass
	}
	w.route()
	w.pipeline()
}

// route moves the handles in w.refs that name spans of other workers to
// their outboxes, keeping the rest. Which worker marks an object does not
// matter for correctness (marking is atomic), but with each span's mark
// bits set by one worker only, the lines holding them stay in that
// worker's cache instead of moving between cores at every mark.
func (w *markWorker) route() {
	if w.nw == 1 {
		return
	}
	// Skip the leading handles this worker owns: scans find mostly
	// handles into the span they scan (a tree's or a list's neighbours are
	// allocated together), so often every handle is this worker's and
	// nothing needs to move.
	refs := w.refs
	k := 0
	for k < len(refs) && w.owner(refs[k].Span()) == w.id {
		k++
	}
	if k == len(refs) {
		return
	}
	if w.nw == 2 {
		w.route2(k)
		return
	}
	// Split the rest without branching on the owner (which is random in a
	// shuffled graph): every handle is written to both lists and only one
	// of the two advances.
	other := slices.Grow(w.other[:0], len(refs)-k)[:len(refs)-k]
	n, m := k, 0
	for _, x := range refs[k:] {
		refs[n], other[m] = x, x
		mine := 0
		if w.owner(x.Span()) == w.id {
			mine = 1
		}
		n += mine
		m += 1 - mine
	}
	w.refs = refs[:n]
	for _, x := range other[:m] {
		o := w.owner(x.Span())
		if w.out[o] == nil {
			w.out[o] = w.newBuf()
		}
		w.out[o] = append(w.out[o], x)
		if len(w.out[o]) == mailLen {
			w.pool.send(o, w.out[o])
			w.out[o] = nil
		}
	}
	w.other = other[:0]
}

// route2 is route's split for two workers, from w.refs[k], which is the
// other worker's: every handle is written both to its place in w.refs
// and to the end of the other worker's outbox, and only one of the two
// advances, so there is no branch on the owner and no second copy.
func (w *markWorker) route2(k int) {
	refs := w.refs
	o, me, sh := 1-w.id, uint32(w.id), w.ownShift
	n := k
	for rest := refs[k:]; len(rest) > 0; {
		ob := w.out[o]
		if ob == nil {
			ob = w.newBuf()
		}
		if cap(ob) < mailLen {
			ob = slices.Grow(ob, mailLen-len(ob))
		}
		// At most room handles go to the outbox: take that many.
		c := min(mailLen-len(ob), len(rest))
		m := len(ob)
		ob = ob[:m+c]
		for _, x := range rest[:c] {
			refs[n], ob[m] = x, x // n never passes the handle read
			mine := int(x.Span()>>sh&1 ^ me ^ 1)
			n += mine
			m += 1 - mine
		}
		rest = rest[c:]
		if ob = ob[:m]; m == mailLen {
			w.pool.send(o, ob)
			ob = nil
		}
		w.out[o] = ob
	}
	w.refs = refs[:n]
}

// owner returns the worker that owns span index idx.
func (w *markWorker) owner(idx uint32) int {
	if w.ownMask != 0 {
		return int(idx >> w.ownShift & w.ownMask)
	}
	return int(idx >> w.ownShift % uint32(w.nw))
}

// maxOwnShift and minOwnGroups bound the groups of spans the workers own
// (see the top of the file): at most 1<<maxOwnShift spans to a group, and
// at least minOwnGroups groups to a worker. The mark workload's 1M-node
// graph (2,564 spans) marked with two workers as fast in groups of 64 and
// 256 spans, both well ahead of single spans; in groups of 1024, which
// left each worker one or two, one worker often ran out of work.
const maxOwnShift = 6

// minOwnGroups is a variable for the tests, which set it to 1 to mark
// small heaps in groups of several spans. Read by a mark's leader as the
// mark begins; written only by tests, while none of their heaps marks.
var minOwnGroups = 16

// ownShift returns the shift of the span index that gives the groups of
// spans the workers own, for a mark of nspans span indexes by nw workers:
// span idx belongs to worker (idx >> shift) mod nw.
func ownShift(nspans, nw int) uint32 {
	s := uint32(0)
	for s < maxOwnShift && nspans>>(s+1) >= nw*minOwnGroups {
		s++
	}
	return s
}

// sendAll sends every non-empty outbox.
func (w *markWorker) sendAll() (sent bool) {
	for o, b := range w.out {
		if len(b) > 0 {
			w.pool.send(o, b)
			w.out[o] = nil
			sent = true
		}
	}
	return sent
}

// newOutboxes makes a worker's outboxes (markWorker.out), one for each of
// nw workers. Their slice headers are rewritten after every span scanned
// (route), so they must not share cache lines with what another worker
// writes: made with the length they need, two workers' arrays of 48 bytes
// come one after the other from one size class, in one line, and each
// worker's writes took the line from the other (two workers marked the
// mark workload's 1M-node graph 1-4% faster with them apart, by the mean
// of 40 collections, taking turns in one process). So the array has
// outboxGuard unused headers on each side, 128 bytes or more: neither the
// lines of the headers nor the lines the CPU fetches in pairs with them
// (128-byte pairs) hold anything else.
func newOutboxes(nw int) [][]handle.Handle {
	b := make([][]handle.Handle, outboxGuard+nw+outboxGuard)
	return b[outboxGuard : outboxGuard+nw : outboxGuard+nw]
}

// outboxGuard is the number of slice headers that make 128 bytes or more.
const outboxGuard = (128 + sliceHeader - 1) / sliceHeader

// sliceHeader is the size of a slice header: 24 bytes, 12 where a word is
// 32 bits.
const sliceHeader = int(unsafe.Sizeof([]handle.Handle{}))

func (w *markWorker) newBuf() []handle.Handle {
	if n := len(w.free); n > 0 {
		b := w.free[n-1]
		w.free = w.free[:n-1]
		return b
	}
	return make([]handle.Handle, 0, mailLen)
}

// readMail takes the handles other workers sent this one through
// pipeline, like those its own scans find.
func (w *markWorker) readMail(mail [][]handle.Handle) {
	for _, b := range mail {
		// Copy b into w.refs (pipeline leaves it empty) and keep b for
		// this worker's own mail. Taking b in the place of w.refs, as a
		// buffer of mailLen, made the scans that later filled it past
		// mailLen grow it anew (slices.Grow), a new array at every mark.
		w.refs = append(w.refs, b...)
		w.free = append(w.free, b[:0])
		w.pipeline()
	}
}

// prefetchBits starts reading the mark and scan bits of s, which
// prefetchGrey reads when s is next in the queue.
func (w *markWorker) prefetchBits(s *span) {
	addrs := w.pf[:0]
	for _, b := range [...][]atomic.Uint64{s.markBits, s.scanBits} {
		for i := 0; i < len(b); i += 8 { // 8 words to a cache line
			addrs = append(addrs, uintptr(unsafe.Pointer(&b[i])))
		}
		// A bitmap that starts inside a line (scanBits, after markBits
		// in the lines markBitmaps makes) may end in a line the loop
		// skipped.
		addrs = append(addrs, uintptr(unsafe.Pointer(&b[len(b)-1])))
	}
	prefetch(addrs)
	w.pf = addrs[:0]
}

// prefetchGrey starts reading the objects of s that are grey now, so that
// they are in the cache when the worker scans s next (the queue's next
// span): their misses overlap the scan of the span before.
func (w *markWorker) prefetchGrey(s *span) {
	lay := s.typ.Layout
	if lay.NoRefs {
		return
	}
	// The lines from the first handle's to the last's: what the scan
	// reads of an object whose handles are at fixed offsets. Of others,
	// the first and last words.
	first, last := uintptr(0), s.elemSize-8
	if offs, fixed := lay.Fixed(); fixed && len(offs) > 0 {
		first, last = offs[0], offs[len(offs)-1]
	}
	// Room for two lines per slot, so the loop appends without checks.
	addrs := slices.Grow(w.pf[:0], 2*len(s.markBits)*64)
	addrs = addrs[:cap(addrs)]
	n, prev := 0, uintptr(0)
	base, size := uintptr(s.base), s.elemSize
	for wi := range s.markBits {
		for g := s.markBits[wi].Load() &^ s.scanBits[wi].Load(); g != 0; g &= g - 1 {
			p := base + uintptr(wi*64+bits.TrailingZeros64(g))*size
			// The second line only if it is another: with no branch on
			// it, since about half of small objects cross a line.
			// Nor a first line the previous object's asked for: grey
			// neighbours (a tree's nodes) share lines.
			a, b := (p+first)&^63, (p+last)&^63
			addrs[n] = a
			if a != prev {
				n++
			}
			addrs[n] = b
			if b != a {
				n++
			}
			prev = b
		}
	}
	prefetch(addrs[:n])
	w.pf = addrs[:0]
}

// scanInto appends the handles held by the live object x to buf.
func (h *Heap) scanInto(x handle.Handle, buf []handle.Handle) []handle.Handle {
	s := h.spans.get(x.Span())
	if s == nil || s.typ.Layout.NoRefs {
		return buf
	}
	return s.typ.Layout.Scan(s.ptr(x.Slot()), buf)
}

func (w *markWorker) drain() {
	for {
		for {
			if w.nw > 1 && w.pool.hasMail[w.id].Load() {
				w.take(w.pool.get(w.id, false))
			}
			if s := w.q.pop(); s != nil {
				if next := w.q.peek(); next != nil && w.objectsAhead {
					w.prefetchGrey(next)
					if after := w.q.at(1); after != nil {
						w.prefetchBits(after)
					}
				}
				w.scanSpan(s)
				if w.nw > 1 && w.pool.waiting.Load() > 0 {
					// Mail first; spans only if there was none.
					if !w.sendAll() && w.q.n >= spillMin {
						w.giveAway(w.q.n / 2)
					}
				}
				continue
			}
			if len(w.held) > 0 {
				w.flushHeld()
				continue
			}
			if len(w.ephq) > 0 {
				w.traceEph()
				continue
			}
			break
		}
		if w.nw == 1 {
			return
		}
		w.sendAll()
		mail, spans := w.pool.get(w.id, true)
		if mail == nil && spans == nil {
			return
		}
		w.take(mail, spans)
	}
}

// giveAway gives the k most recently queued spans to the pool. With
// ownPlain, the worker marks those it owns shared first: another worker
// will scan them, so from now on their mark state is written with atomics
// by both (the pool's mutex orders the plain stores before).
func (w *markWorker) giveAway(k int) {
	buf := w.q.takeNewest(k)
	if w.ownPlain {
		for _, s := range buf {
			if w.owner(s.idx) == w.id {
				w.tab[s.idx].shared = true
			}
		}
	}
	w.pool.put(buf)
}

// scanFinRoots greys the referents of the finalizable objects in the
// spans w owns that the mark has not reached: each such object is scanned
// as a root of what it points to, and not marked itself (seed 003). It
// runs once the other roots have been traced (the mark's second phase), so
// a finalizable object that they reach, marked and scanned already, is
// skipped: the runtime, whose mark runs beside the mutator and cannot wait
// for that, scans every finalizer's object as a root (markrootSpans), and
// a heap of live finalizable objects pays twice for each at every cycle.
// The set marked is the same either way: marking is monotone, and every
// object a finalizable one reaches is marked, scanned from it here or from
// the object itself in the first phase. A skipped object's mark bit was
// set in the first phase, which ended (wg.Wait) before this began.
//
// An ephemeron table (a WeakMap) is scanned as scanSpan scans one: its
// entries are registered (scanTable), so that the values of its live keys
// are marked and survive the cycle that queues its finalizer, which may
// read them.
//
// The finalizer tables are only read: the world is stopped, and no
// sweeper runs during a mark.
func (w *markWorker) scanFinRoots() {
	for idx := range w.tab {
		if w.owner(uint32(idx)) != w.id {
			continue
		}
		e := &w.tab[idx]
		s := e.s
		if s == nil || s.noScan {
			continue
		}
		fin := s.sp.fin.Load()
		if fin == nil {
			continue
		}
		lay := s.typ.Layout
		isTable := s.typ.EphEach != nil
		offs, fixed := lay.Fixed()
		for i, fn := range fin.fn {
			if fn == nil || e.markWord(uint32(i)/64).Load()&(1<<(i%64)) != 0 {
				continue
			}
			w.st.finRoots++
			if isTable {
				w.scanTable(s.handleAt(uint32(i)), s)
			}
			switch {
			case fixed:
				w.refs = scanFixed(slices.Grow(w.refs, len(offs)), s.ptr(uint32(i)), offs)
			case !lay.NoRefs:
				w.refs = lay.Scan(s.ptr(uint32(i)), w.refs)
			}
			if len(w.refs) >= greyBatch {
				w.route()
				w.greyRefs()
			}
		}
	}
	w.route()
	w.greyRefs()
}

// countMarked returns the objects marked in the spans of the mark's table,
// and their bytes: a population count of each span's mark bits, when the
// mark has ended. Counting them as they were marked took an add, a load and
// a multiply on every handle checked, and two registers the mark's loops
// had none to spare for: 5-8% of the mark of a 1M-node graph.
func countMarked(tab []markSpan) (objects, bytes int64) {
	for k := range tab {
		e := &tab[k]
		if e.s == nil {
			continue
		}
		var n int
		for wi := range (e.nslots + 63) / 64 {
			n += bits.OnesCount64(e.markWord(wi).Load())
		}
		objects += int64(n)
		bytes += int64(n) * int64(e.elemSize)
	}
	return objects, bytes
}

// scanFixedAll appends the non-zero handles held by the objects grey
// names in mark word wi of s, a span of a type whose handles sit at fixed
// offsets offs, to refs, in slot order.
func scanFixedAll(refs []handle.Handle, s *span, wi int, grey uint64, offs []uintptr) []handle.Handle {
	refs = slices.Grow(refs, bits.OnesCount64(grey)*len(offs))
	base, size := s.base, s.elemSize
	for g := grey; g != 0; g &= g - 1 {
		refs = scanFixed(refs, unsafe.Add(base, uintptr(wi*64+bits.TrailingZeros64(g))*size), offs)
	}
	return refs
}

// scanFixed appends the non-zero handles at offsets offs of the object at
// p (a layout's Fixed offsets) to buf, whose capacity must hold len(offs)
// more: Layout.Scan without the call, for the loops that scan many objects
// (scanSpan, scanFinRoots). Every handle word is stored and the zero ones
// overwritten, with no branch on the values. Small enough to inline; the
// caller's slices.Grow is what keeps it so.
func scanFixed(buf []handle.Handle, p unsafe.Pointer, offs []uintptr) []handle.Handle {
	n := len(buf)
	buf = buf[:n+len(offs)]
	for _, off := range offs {
		x := *(*handle.Handle)(unsafe.Add(p, off))
		buf[n] = x
		if x != 0 {
			n++
		}
	}
	return buf[:n]
}

// markLocal marks the handles into s, the span scanSpan is scanning, that
// the wave it has just scanned in mark word wi found, for a layout without
// fixed offsets (scanLinear does it for the others as it scans): those in
// w.refs from n0 on, which it takes out. It returns the slots of word wi
// it marked (the next wave), whether it marked one in an earlier word
// (another pass). A handle that fails the
// check against the tags goes back to w.refs, for greyAll to count. One in a
// later word is scanned when scanSpan's loop reads that word.
// REQUIRES: scanSpan's local (plain stores on s are this worker's alone).
func (w *markWorker) markLocal(s *span, wi, n0 int) (grey uint64, again bool) {
	w.locSeen += uint32(len(w.refs) - n0)
	loc := w.loc[:0]
	refs := w.refs
	k := n0
	for _, x := range refs[n0:] {
		if x.Span() == s.idx {
			loc = append(loc, x)
			continue
		}
		refs[k] = x
		k++
	}
	w.refs = refs[:k]
	w.locHit += uint32(len(loc))
	tags, alloc, hid := s.markTags, s.allocBits, w.h.id
	for _, x := range loc {
		if !localOK(tags, alloc, hid, x) {
			w.refs = append(w.refs, x)
			continue
		}
		j := x.Slot()
		jw, bit := int(j/64), uint64(1)<<(j%64)
		mw := &s.markBits[jw]
		old := mw.Load()
		if old&bit != 0 {
			continue
		}
		plainStore(mw, old|bit)
		switch {
		case jw == wi:
			grey |= bit
		case jw < wi:
			again = true
		}
	}
	w.loc = loc[:0]
	return grey, again
}

// scanLinear is scanSpan's wave for a layout with fixed offsets offs,
// with local: it scans the objects grey names in mark word wi of s in
// slot order, and marks the handles they hold into s as it finds them,
// with word wi's mark bits kept in a register. An object it marks ahead of
// the slot it is at in word wi is scanned when the loop reaches it, so a
// tree's or a list's cells, allocated in order, are scanned in one wave.
// The loop steps slot by slot and tests each slot's bit, a branch the CPU
// predicts (in a tree's span most slots are grey), so the loads of the
// objects ahead are issued before the marks that make them grey are
// known. Taking the next slot from the mask with TrailingZeros64 made
// each object wait for its parent's loads; scanning a wave of the mask
// before marking anything (the objects of a wave are independent) waited
// once per level of the tree, and cost binary-trees' collections a sixth
// more time. It returns the slots of word wi marked behind the slot the
// loop was at (the next wave), whether it marked one in an earlier word
// (another pass). The handles into other
// spans, and those that fail the check against the tags (for greyAll to count),
// go to w.refs.
// REQUIRES: scanSpan's local (plain stores on s are this worker's alone).
func (w *markWorker) scanLinear(s *span, wi int, grey uint64, offs []uintptr) (back uint64, again bool) {
	// The loop keeps few values live: the Go compiler spilled to the stack
	// around every handle when it held the span's slices and the counts
	// (see localOK for the check).
	refs := w.refs
	n0 := len(refs)
	base, size := s.base, s.elemSize
	key := localKey(w.h.id, s.idx)
	nslots := uint32(len(s.markTags))
	tags, alloc := unsafe.Pointer(unsafe.SliceData(s.markTags)), unsafe.Pointer(unsafe.SliceData(s.allocBits))
	mb := unsafe.Pointer(unsafe.SliceData(s.markBits))
	m, g := s.markBits[wi].Load(), grey
	hit := uint32(0)
	for i := bits.TrailingZeros64(g); i < 64; i++ {
		if g&(1<<i) == 0 {
			if g>>i == 0 {
				break // nothing grey ahead
			}
			continue
		}
		p := unsafe.Add(base, uintptr(wi*64+i)*size)
		for _, off := range offs {
			x := *(*handle.Handle)(unsafe.Add(p, off))
			if x == 0 {
				continue
			}
			j := x.Slot()
			if uint64(x)&localKeyMask != key || j >= nslots ||
				*(*uint8)(unsafe.Add(tags, j)) != markTag(x) ||
				*(*uint64)(unsafe.Add(alloc, uintptr(j/64)*8))&(1<<(j%64)) == 0 {
				refs = append(refs, x)
				continue
			}
			hit++
			jw, bit := int(j/64), uint64(1)<<(j%64)
			if jw == wi {
				if m&bit != 0 {
					continue
				}
				m |= bit
				if int(j%64) > i {
					g |= bit
				} else {
					back |= bit
				}
				continue
			}
			mw := (*atomic.Uint64)(unsafe.Add(mb, uintptr(jw)*8))
			old := mw.Load()
			if old&bit != 0 {
				continue
			}
			plainStore(mw, old|bit)
			if jw < wi {
				again = true
			}
		}
	}
	plainStore(&s.markBits[wi], m)
	plainStore(&s.scanBits[wi], s.scanBits[wi].Load()|g)
	w.refs = refs
	w.locSeen += hit + uint32(len(refs)-n0)
	w.locHit += hit
	return back, again
}

// localProbe is how often localWorth says yes whatever the counts: one
// span in localProbe, to measure again.
const localProbe = 32

// localWorth reports whether scanSpan should mark the handles into the
// span it scans itself (markWorker.local) in the next span: when a
// quarter or more of the handles found in the spans scanned so then
// named their own span (trees, lists), and in one span of localProbe
// whatever the counts. Splitting the handles costs a random graph, where
// hardly any name their own span, a tenth of its mark.
func (w *markWorker) localWorth() bool {
	w.locSpans++
	if w.locSeen >= 1<<14 { // forget the distant past
		w.locSeen, w.locHit = w.locSeen/2, w.locHit/2
	}
	return w.locSpans%localProbe == 0 || w.locHit*4 >= w.locSeen
}

// take takes what workPool.get returned.
func (w *markWorker) take(mail [][]handle.Handle, spans []*span) {
	if len(mail) > 0 {
		w.readMail(mail)
	}
	for _, s := range spans {
		w.q.push(s)
	}
}

// mark runs the mark phase. REQUIRES: world stopped.
func (h *Heap) mark(ctx context.Context) markStats {
	start := time.Now()
	// Build the mark's span table and reset the span-batching state. The
	// state is clean after a completed mark; resetting it here keeps a mark
	// that was cut short (a panicking ScanRoots or custom scan function)
	// from leaving objects claimed as scanned, or spans as queued, into the
	// next one. No span is made or released while the world is stopped.
	h.mu.Lock()
	n := int(h.mu.nextIdx)
	h.mu.Unlock()
	// The table and the workers' buffers are kept from one mark to the
	// next: made anew each time, they were most of the Go garbage a
	// collection made, and raised the process's peak RSS.
	tab := h.markReuse.tab
	if cap(tab) < n {
		tab = make([]markSpan, n, n+n/4)
	}
	tab = tab[:n]
	clear(tab)
	h.markReuse.tab = tab
	ephTables, finTables, finKeys := false, false, false
	slots := 0     // the heap's mark tags, a byte a slot
	scanBytes := 0 // the slabs of the spans the mark may scan
	for idx := range tab {
		s := h.spans.get(uint32(idx))
		if s == nil {
			continue
		}
		slots += len(s.hv)
		if !s.noScan {
			scanBytes += len(s.hv) * int(s.elemSize)
		}
		ephTables = ephTables || s.typ.EphEach != nil
		finTables = finTables || !s.noScan && s.sp.fin.Load() != nil
		// Keys without refs can be doomed too: their spans are not
		// scanned, but their entries' values must be traced.
		finKeys = finKeys || s.sp.fin.Load() != nil
		tab[idx] = markSpan{tags: &s.markTags[0], allocBits: &s.allocBits[0], markBits: &s.markBits[0], s: s, elemSize: s.elemSize, nslots: uint32(len(s.hv)), noScan: s.noScan}
		if s.noScan {
			tab[idx].queued.Store(1) // never queued: marking it queues nothing
		}
		if !s.noScan {
			// Load first, store only what is set: an atomic store is an
			// XCHG, and after a mark that completed only the scanned
			// words are non-zero.
			for i := range s.scanBits {
				if s.scanBits[i].Load() != 0 {
					s.scanBits[i].Store(0)
				}
			}
		}
	}
	// The referents of finalizable objects are roots too, but each worker
	// finds those of its own spans (scanFinRoots), in a second phase: the
	// first traces from the other roots, and the second scans the
	// finalizable objects the first did not reach. Scanning every object
	// that has a finalizer is most of the roots' cost when there are many,
	// as the runtime's markrootSpans, which its workers share in shards;
	// scanning only those not reached makes live ones cost nothing more.
	roots := h.gatherRoots(nil, false)
	nw := h.cfg.MarkWorkers
	pool := newWorkPool(nw)
	workers := make([]*markWorker, nw)
	kept := h.markReuse.bufs
	h.markReuse.bufs = nil // taken: a mark cut short leaves none behind
	var mask uint32
	if nw > 1 && nw&(nw-1) == 0 {
		mask = uint32(nw - 1)
	}
	shift := ownShift(len(tab), nw)
	for i := range workers {
		w := &markWorker{h: h, pool: pool, tab: tab, id: i, nw: nw, out: newOutboxes(nw), solo: nw == 1, ownPlain: nw > 1 && !ephTables, local: !ephTables, tagsAhead: slots >= tagsAheadSlots, objectsAhead: scanBytes >= objectsAheadBytes, ownMask: mask, ownShift: shift}
		if i < len(kept) {
			w.reuseBuffers(&kept[i])
		}
		workers[i] = w
	}

	w0 := workers[0]
	w0.refs = append(w0.refs, roots...)
	// Each worker marks the roots in the spans it owns, which gives every
	// worker work from the start.
	w0.route()
	w0.sendAll()
	w0.greyRefs()
	// A worker's scan runs the embedder's Trace methods. If one panics,
	// the worker ends the mark for all (pool.abort), and once every worker
	// has stopped the leader abandons the mark and re-panics (collect
	// restarts the world). A panic on a worker goroutine would otherwise
	// end the process, and one on the leader would leave the other workers
	// waiting, and the world stopped, for ever.
	var failed atomic.Pointer[markFailure]
	var wg sync.WaitGroup
	work := func(w *markWorker, finPhase bool) {
		done := false
		defer func() {
			if !done { // a panic, or runtime.Goexit
				v := recover()
				if v == nil { // Goexit: recover has nothing (panic(nil) gives a PanicNilError)
					v = goexitInMark{}
				}
				if !failed.CompareAndSwap(nil, &markFailure{v}) {
					// The collection re-panics with the first; say
					// what else went wrong, which may be another bug.
					h.log.Error("reclaim: a Trace method panicked (or called runtime.Goexit) in a mark that an earlier one already abandons; the collection re-panics with the earlier one",
						"panic", fmt.Sprint(v), "heap", h.id, "worker", w.id)
				}
				w.pool.abort()
			}
		}()
		if finPhase {
			w.scanFinRoots()
		}
		w.drain()
		done = true
	}
	completed := false
	defer func() {
		if !completed { // a panic or runtime.Goexit on the leader's side
			wg.Wait() // the pool is aborted: every worker stops
			h.abandonMark(tab)
		}
	}()
	// The workers' pprof labels name the heap, as the finalizer
	// goroutine's and the cleanup goroutines' do (docs/DESIGN.md).
	labels := pprof.Labels("reclaim.heap", itoa(h.id), "reclaim.worker", "mark")
	// phase runs the workers until the pool finds them all waiting with
	// nothing left: the mark's termination, reached once per phase.
	phase := func(finPhase bool) {
		for _, w := range workers[1:] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pprof.Do(ctx, labels, func(context.Context) { work(w, finPhase) })
			}()
		}
		work(w0, finPhase)
		wg.Wait()
		if f := failed.Load(); f != nil {
			panic(f.v) // the deferred function abandons the mark
		}
	}
	phase(false)
	if finTables {
		// Every worker has drained and sent all it found, so the first
		// pool is done; the second starts empty.
		pool = newWorkPool(nw)
		for _, w := range workers {
			w.pool = pool
		}
		phase(true)
	}
	// Finalizable keys that ephemeron entries still wait on are doomed:
	// their finalizers are queued now, and the values of their entries
	// traced, in as many more phases as it takes (ephemeron.go, step 3).
	var doomed []handle.Handle
	for ephTables && finKeys {
		n := len(doomed)
		if doomed = h.doomKeys(doomed); len(doomed) == n {
			break
		}
		pool = newWorkPool(nw)
		for _, w := range workers {
			w.pool = pool
		}
		w0.refs = append(w0.refs, doomed[n:]...)
		w0.route()
		w0.sendAll()
		w0.greyRefs()
		phase(false)
	}
	if invariantsBuild && ephTables {
		h.checkEphemerons()
	}
	ms0, foreign := h.finishEphemerons()
	if remarkCheck != nil { // the invariants build tag: verify_invariants.go
		all := append(roots, doomed...)
		var buf, finTabs []handle.Handle
		for _, s := range h.spanSnapshot() {
			buf = eachFinReferent(s, buf, func(_ string, _, x handle.Handle) { all = append(all, x) })
		}
		h.eachFinTable(func(t handle.Handle, _ *span) { finTabs = append(finTabs, t) })
		remarkCheck(h, all, finTabs)
	}

	var ms markStats
	ms.objects, ms.bytes = countMarked(tab)
	for _, w := range workers {
		ms.stale += w.st.stale
		ms.foreign += w.st.foreign
		ms.finRoots += w.st.finRoots
	}
	ms.foreign += foreign // keys of WeakMap entries the prune deleted
	ms.roots = len(roots)
	ms.pruned = ms0
	ms.duration = time.Since(start)
	// Keep the workers' buffers for the next mark. Only a mark that
	// completes gets here: one cut short by a panic leaves nothing to
	// reuse.
	if len(kept) != len(workers) {
		kept = make([]markBuffers, len(workers))
	}
	for i, w := range workers {
		w.keepBuffers(&kept[i])
	}
	h.markReuse.spare = balanceFree(kept, h.markReuse.spare)
	h.markReuse.bufs = kept
	if ms.stale > 0 || ms.foreign > 0 {
		h.log.Warn("reclaim: live objects hold refs that name no live object of this heap (refs kept across a safepoint, or stored from another heap)",
			"stale", ms.stale, "foreign", ms.foreign)
	}
	if h.cfg.DebugCycles {
		trace.WithRegion(ctx, "reclaim.debugCycles", h.reportFinalizerCycles)
	}
	completed = true // from here on, the caller flips
	return ms
}

// markFailure is the first panic of a mark's workers; each later one is
// logged.
type markFailure struct{ v any }

// goexitInMark is the failure of a mark in which a Trace method called
// runtime.Goexit (t.FailNow, say) on a mark worker goroutine: the worker's
// goroutine ends, and the leader abandons the collection with a panic
// that says so. On the leader's own goroutine, Goexit ends that goroutine
// once the collection is abandoned.
type goexitInMark struct{}

func (goexitInMark) String() string {
	return "a Trace method called runtime.Goexit (t.FailNow, say) on a mark worker goroutine"
}

// abandonMark undoes what a mark cut short by a panic did, so that the
// next mark starts from clean state: every span's mark and scan bits are
// cleared (a mark bit left set would make the next mark take its object
// for scanned, and free what only that object reaches), and the ephemeron
// entries registered are dropped. The queued flags live in tab, which the
// next mark clears. REQUIRES: world stopped, no worker running.
func (h *Heap) abandonMark(tab []markSpan) {
	for i := range tab {
		s := tab[i].s
		if s == nil {
			continue
		}
		for w := range s.markBits {
			s.markBits[w].Store(0)
			s.scanBits[w].Store(0)
		}
	}
	h.resetEphemerons()
}

// Root kinds, as RetainingPath reports them.
const (
	rootPinned      = "pinned"
	rootScanRoots   = "reported by ScanRoots"
	rootFinQueue    = "queued for finalization"
	rootCleanupArg  = "argument of a cleanup"
	rootFinReferent = "referenced by a finalizable object"
	rootFinEntry    = "held by an entry of a finalizable table"
)

// gatherRoots appends every root handle: pinned objects, the embedder's
// roots, queued finalizer records, cleanup arguments (queued and
// registered), and, if finReferents, the referents of finalizable objects
// (seed 003: the object is scanned, not marked).
func (h *Heap) gatherRoots(buf []handle.Handle, finReferents bool) []handle.Handle {
	h.eachRoot(finReferents, true, func(_ string, from, x handle.Handle) { buf = append(buf, x) })
	return buf
}

// eachRoot calls add for every root, with its kind and, for the referents
// of finalizable objects, the finalizable object; those only if
// finReferents (the mark's workers find them, scanFinRoots). Without
// embedder, the embedder's roots (ScanRoots, pins) are left out, and
// ScanRoots is not called: Close's rounds order finalizers by what the
// heap's own roots reach (closeOrder).
// REQUIRES: world stopped.
func (h *Heap) eachRoot(finReferents, embedder bool, add func(kind string, from, x handle.Handle)) {
	h.mu.Lock()
	spans := h.spansLocked()
	locals := h.cleanupLocalsLocked()
	h.mu.Unlock()
	if embedder && h.cfg.ScanRoots != nil {
		h.cfg.ScanRoots(func(x handle.Handle) {
			if x != 0 {
				add(rootScanRoots, 0, x)
			}
		})
	}
	var buf []handle.Handle
	buf = h.fin.scanRoots(buf[:0])
	for _, x := range buf {
		add(rootFinQueue, 0, x)
	}
	buf = h.cq.ScanRoots(locals, buf[:0])
	for _, x := range buf {
		add(rootCleanupArg, 0, x)
	}
	// The pins last: cleanup workers run on while the world is stopped,
	// and may Pin what their argument reaches. A Pin made after this read
	// was made by a cleanup whose record the queue's scan above found (it
	// ran then, or waited in a block), so what it pins is marked through
	// the argument; read first, a Pin made between the two reads by a
	// cleanup that returned before the queue's scan was lost, and the
	// pinned object freed.
	if embedder {
		h.mu.Lock()
		for x := range h.mu.pins {
			add(rootPinned, 0, x)
		}
		h.mu.Unlock()
	}
	for _, s := range spans {
		if !s.sp.any() {
			continue
		}
		if finReferents {
			buf = eachFinReferent(s, buf, add)
		}
		if cl := s.sp.cl.Load(); cl != nil && cl.argRefs.Load() {
			for i := range cl.head {
				for c := cl.head[i]; c != nil; c = c.next {
					if !c.registered() {
						continue // stopped: its argument is not kept alive
					}
					buf = c.r.Scan(buf[:0])
					for _, x := range buf {
						add(rootCleanupArg, 0, x)
					}
				}
			}
		}
	}
}

// eachFinReferent calls add for the referents of each finalizable object
// in s, with rootFinReferent and the object; buf is scratch, returned for
// reuse. REQUIRES: world stopped.
func eachFinReferent(s *span, buf []handle.Handle, add func(kind string, from, x handle.Handle)) []handle.Handle {
	fin := s.sp.fin.Load()
	if fin == nil || s.typ.Layout.NoRefs {
		return buf
	}
	for i := range fin.fn {
		if fin.fn[i] != nil {
			buf = s.typ.Layout.Scan(s.ptr(uint32(i)), buf[:0])
			if len(buf) == 0 {
				continue // no referents: skip the slot's handle word too
			}
			from := s.handleAt(uint32(i))
			for _, x := range buf {
				add(rootFinReferent, from, x)
			}
		}
	}
	return buf
}

// REQUIRES: h.mu held.
func (h *Heap) cleanupLocalsLocked() []*cleanupq.Local {
	locals := make([]*cleanupq.Local, 0, len(h.mu.mutators)+2)
	for m := range h.mu.mutators {
		locals = append(locals, &m.local)
	}
	return append(locals, &h.bg.local, &h.stwLocal)
}

// flip ends the mark: every span now needs sweeping (heap.go, step 5).
// REQUIRES: world stopped.
func (h *Heap) flip(ms markStats) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweepgen.Add(2)
	live := h.mu.allspans[:0]
	for _, s := range h.mu.allspans {
		if !s.released {
			live = append(live, s)
		}
	}
	clear(h.mu.allspans[len(live):])
	h.mu.allspans = live
	list := slices.Clone(live)
	var cs []*central
	if p := h.centrals.Load(); p != nil {
		cs = *p
	}
	for _, c := range cs {
		if c == nil {
			continue
		}
		c.mu.Lock()
		for _, s := range c.mu.partial {
			s.inPartial = false
		}
		c.mu.partial = c.mu.partial[:0]
		c.mu.unswept = c.mu.unswept[:0]
		c.mu.Unlock()
	}
	for _, s := range list {
		c := cs[s.typ.ID]
		c.mu.Lock()
		c.mu.unswept = append(c.mu.unswept, s)
		c.mu.Unlock()
	}
	h.sweep.next.Store(0)
	h.sweep.list.Store(&list)
	h.sweep.done.Store(false)
	h.sweep.active.state.Store(0)

	ext := h.external.Load()
	h.mu.pacer.EndCycle(ms.bytes, ext, h.mu.spanBytes, h.mu.metaBytes)
	h.extBase.Store(ext)
	h.goal.Store(h.mu.pacer.Goal())
	h.trimSparesLocked(h.mu.pacer.Goal())
	h.heapLive.Store(ms.bytes)
	h.stats.endCycle(ms)
}

// plainStore stores v in *p with a plain store; see markWorker.solo.
func plainStore(p *atomic.Uint64, v uint64) { *(*uint64)(unsafe.Pointer(p)) = v }

// plainStore32 stores v in *p with a plain store; see markWorker.solo.
func plainStore32(p *atomic.Uint32, v uint32) { *(*uint32)(unsafe.Pointer(p)) = v }
