//go:build !amd64

package heap

// prefetch is a no-op where the mark has no prefetch instruction to use;
// see prefetch_amd64.go.
func prefetch(addrs []uintptr) {}

// prefetchw is a no-op here too; see prefetch_amd64.go.
func prefetchw(addrs []uintptr) {}
