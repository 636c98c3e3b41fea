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

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14), which the
// syscall package does not name.
const madvPopulateWrite = 23

// populate faults the pages of b in for writing, in one system call. On a
// kernel without MADV_POPULATE_WRITE it does nothing: the pages fault in
// as they are touched.
func populate(b unsafe.Pointer, n uintptr) {
	_ = syscall.Madvise(unsafe.Slice((*byte)(b), n), madvPopulateWrite)
}

// release gives the pages of b back to the OS; they read as zeros after.
func release(b unsafe.Pointer, n uintptr) {
	if err := syscall.Madvise(unsafe.Slice((*byte)(b), n), syscall.MADV_DONTNEED); err != nil {
		// The block stays resident with its contents: zero it, so that
		// the next Alloc still hands out zeroed memory.
		clear(unsafe.Slice((*byte)(b), n))
	}
}
