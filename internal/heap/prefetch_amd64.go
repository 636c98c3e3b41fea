package heap

// prefetch asks the CPU to bring the cache line of each address into its
// caches, without waiting for them (PREFETCHT0, as the runtime's
// sys.Prefetch). The mark uses it to read ahead: a plain load would hold
// its place in the CPU's reorder buffer until the miss is served.
//
//go:noescape
func prefetch(addrs []uintptr)

// prefetchw is prefetch for lines about to be written (PREFETCHW): it asks
// for them exclusive, so that a CAS on a line another core wrote last
// does not wait twice, once to read it and once to own it.
//
//go:noescape
func prefetchw(addrs []uintptr)
