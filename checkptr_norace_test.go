//go:build !race

package reclaim

// checkptrOn reports whether the build checks unsafe pointer arithmetic
// (the race detector turns checkptr on).
const checkptrOn = false
