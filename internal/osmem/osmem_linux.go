//go:build linux && !race

package osmem

import (
	"syscall"
	"unsafe"
)

// Enabled reports whether Alloc maps memory outside the Go heap here.
const Enabled = true

var pageSize = uintptr(syscall.Getpagesize())

// mapAnon maps n bytes of private anonymous memory, or returns nil.
func mapAnon(n uintptr) unsafe.Pointer {
	b, err := syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil
	}
	return unsafe.Pointer(unsafe.SliceData(b))
}

// release gives the pages of b back to the OS; they read as zeros after.
func release(b unsafe.Pointer, n uintptr) {
	if err := syscall.Madvise(unsafe.Slice((*byte)(b), n), syscall.MADV_DONTNEED); err != nil {
		// The block stays resident with its contents: zero it, so that
		// the next Alloc still hands out zeroed memory.
		clear(unsafe.Slice((*byte)(b), n))
	}
}
