package osmem

import (
	"sync"
	"testing"
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
		if in, _ := p.Usage(); in != 0 {
			t.Errorf("after Free(%d): %d bytes in use, want 0", n, in)
		}
		c := p.Alloc(n)
		if c != a {
			t.Errorf("Alloc(%d) after Free = %p, want the freed block %p", n, c, a)
		}
		if !allZero(bytesOf(c, n)) {
			t.Errorf("Alloc(%d): reused block not zero", n)
		}
		if in, mapped := p.Usage(); in != roundPage(n) || mapped < in {
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
}
