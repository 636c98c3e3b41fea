package osmem

import (
	"sync"
	"testing"
	"time"
	"unsafe"
)

func needEnabled(t *testing.T) {
	t.Helper()
	if !Enabled {
		t.Skip("memory outside the Go heap is not used in this build (race detector, or not Linux): callers take the Go heap, which the heap's tests cover")
	}
}

func bytesOf(b unsafe.Pointer, n uintptr) []byte { return unsafe.Slice((*byte)(b), n) }

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// TestReuseIsZeroed checks that blocks are page-aligned and zeroed, and that
// a freed block is handed out again for its size, zeroed again.
func TestReuseIsZeroed(t *testing.T) {
	needEnabled(t)
	for _, n := range []uintptr{1, 16 << 10, 24<<10 + 8, largeBlock, largeBlock + 1} {
		var p Pool
		a := p.Alloc(n)
		if a == nil {
			t.Fatalf("Alloc(%d) = nil", n)
		}
		if uintptr(a)%pageSize != 0 {
			t.Errorf("Alloc(%d) = %p, not page-aligned", n, a)
		}
		b := bytesOf(a, n)
		if !allZero(b) {
			t.Fatalf("Alloc(%d): fresh block not zero", n)
		}
		for i := range b {
			b[i] = byte(i) | 1
		}
		p.Free(a, n)
		if in, _, _ := p.Usage(); in != 0 {
			t.Errorf("after Free(%d): %d bytes in use, want 0", n, in)
		}
		c := p.Alloc(n)
		if c != a {
			t.Errorf("Alloc(%d) after Free = %p, want the freed block %p", n, c, a)
		}
		if !allZero(bytesOf(c, n)) {
			t.Errorf("Alloc(%d): reused block not zero", n)
		}
		if in, _, mapped := p.Usage(); in != roundPage(n) || mapped < in {
			t.Errorf("Usage after one Alloc(%d) = %d in use, %d mapped", n, in, mapped)
		}
	}
}

// TestBlocksDisjoint checks that live blocks never overlap, across arenas.
func TestBlocksDisjoint(t *testing.T) {
	needEnabled(t)
	var p Pool
	const n = 24 << 10
	count := 3 * arenaSize / roundPage(n) // several arenas
	seen := make(map[uintptr]bool)
	var blocks []unsafe.Pointer
	for i := range count {
		b := p.Alloc(n)
		if b == nil {
			t.Fatalf("Alloc %d = nil", i)
		}
		bytesOf(b, n)[n-1] = byte(i) // the whole block is writable
		for pg := uintptr(0); pg < roundPage(n); pg += pageSize {
			if seen[uintptr(b)+pg] {
				t.Fatalf("block %d at %p overlaps an earlier one", i, b)
			}
			seen[uintptr(b)+pg] = true
		}
		blocks = append(blocks, b)
	}
	for i, b := range blocks {
		if got := bytesOf(b, n)[n-1]; got != byte(i) {
			t.Fatalf("block %d's last byte %d, want %d: blocks overlap", i, got, byte(i))
		}
		p.Free(b, n)
	}
}

// TestConcurrent allocates, writes, checks and frees from several
// goroutines at once: every block a goroutine holds keeps what it wrote.
func TestConcurrent(t *testing.T) {
	needEnabled(t)
	var p Pool
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var held []unsafe.Pointer
			for i := range 2000 {
				n := uintptr(4096 * (1 + i%5))
				b := p.Alloc(n)
				if b == nil {
					t.Error("Alloc = nil")
					return
				}
				*(*uint64)(b) = uint64(g)<<32 | uint64(len(held))
				held = append(held, b)
				if len(held) == 8 {
					for j, h := range held {
						if got := *(*uint64)(h); got != uint64(g)<<32|uint64(j) {
							t.Errorf("goroutine %d block %d holds %#x: another goroutine's block overlaps it", g, j, got)
						}
						p.Free(h, uintptr(4096*(1+(i-7+j)%5)))
					}
					held = held[:0]
				}
			}
		}()
	}
	wg.Wait()
	p.Flush()
	if in, dirty, _ := p.Usage(); in != 0 || dirty != 0 {
		t.Errorf("everything freed and flushed: %d bytes in use, %d dirty; want 0 and 0", in, dirty)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for sz, l := range p.free {
		for _, b := range l {
			if !allZero(bytesOf(b, sz)) {
				t.Fatalf("a returned block of %d bytes is not zero", sz)
			}
		}
	}
}

// TestScavengerReturnsMemory frees blocks and checks that the scavenger
// returns them to the OS by itself (the freed memory, still mapped, reads
// as zeros), that they are handed out again, and that Flush returns a
// freed block at once.
func TestScavengerReturnsMemory(t *testing.T) {
	needEnabled(t)
	var p Pool
	const n = 16 << 10
	var blocks []unsafe.Pointer
	for range 64 {
		b := p.Alloc(n)
		for i := range bytesOf(b, n) {
			bytesOf(b, n)[i] = 0xa5
		}
		blocks = append(blocks, b)
	}
	batch := blocks[:48]
	for _, b := range batch {
		p.Free(b, n)
	}
	// Liveness, not speed: the scavenger must finish; the deadline only
	// keeps a hang from hanging the test.
	deadline := time.Now().Add(time.Minute)
	for {
		p.mu.Lock()
		done := !p.scavenging
		p.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the scavenger did not return the freed blocks within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, dirty, _ := p.Usage(); dirty != 0 {
		t.Fatalf("the scavenger exited with %d dirty bytes left", dirty)
	}
	for i, b := range batch {
		if !allZero(bytesOf(b, n)) {
			t.Fatalf("freed block %d still holds its contents after the scavenger ran: not returned to the OS", i)
		}
	}
	reused := map[unsafe.Pointer]bool{}
	for range batch {
		reused[p.Alloc(n)] = true
	}
	for i, b := range batch {
		if !reused[b] {
			t.Errorf("returned block %d (%p) not handed out again", i, b)
		}
	}
	last := blocks[len(blocks)-1]
	p.Free(last, n)
	p.Flush()
	if _, dirty, _ := p.Usage(); dirty != 0 || !allZero(bytesOf(last, n)) {
		t.Errorf("after Flush: %d bytes dirty, or the block not returned", dirty)
	}
}

func TestWorth(t *testing.T) {
	for _, c := range []struct {
		n    uintptr
		want bool
	}{
		{0, false}, {8, false}, {pageSize/2 - 8, false}, {pageSize / 2, true},
		{pageSize, true}, {pageSize + 8, true}, {3 * pageSize / 2, true}, {4*pageSize - 1, true},
	} {
		if got := Worth(c.n); got != c.want {
			t.Errorf("Worth(%d) = %v, want %v (page %d)", c.n, got, c.want, pageSize)
		}
	}
}
