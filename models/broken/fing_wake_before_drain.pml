/*
 * Broken on purpose: the wake decision is taken when the pool of spans is
 * empty (by the sweeper whose markDrained set the bit), not when sweeping
 * has completed (by the last sweeper to end). A sweeper still sweeping a
 * span it claimed earlier queues its record after that decision, and the
 * finalizer goroutine sleeps on it. This is the bug the Go runtime fixed
 * in 2014 ("bgsweep finishes before all spans have been swept").
 *
 * Must fail verification: run.sh expects errors > 0.
 */
#define BROKEN_WAKE_BEFORE_DRAIN
#include "../fing.pml"
