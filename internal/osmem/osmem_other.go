//go:build !linux || race

package osmem

import "unsafe"

// Enabled reports whether Alloc maps memory outside the Go heap here.
const Enabled = false

const pageSize = 4096

func mapAnon(uintptr) unsafe.Pointer { return nil }

func populate(unsafe.Pointer, uintptr) {}

func release(unsafe.Pointer, uintptr) {
	panic("reclaim: internal error: osmem.Free with osmem disabled")
}
