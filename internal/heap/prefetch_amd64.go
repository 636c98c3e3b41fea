package heap

// prefetch asks the CPU to bring the cache line of each address into its
// caches, without waiting for them (PREFETCHT0, as the runtime's
// sys.Prefetch). The mark uses it to read ahead: a plain load would hold
// its place in the CPU's reorder buffer until the miss is served.
//
//go:noescape
func prefetch(addrs []uintptr)
