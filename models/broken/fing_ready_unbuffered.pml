/*
 * Broken on purpose: ready(fing) is a non-blocking send on an unbuffered
 * channel, so a wake that arrives after the goroutine set Wait but before
 * it blocked in the park is dropped, and the goroutine then sleeps with
 * Wait and Wake already cleared by the waker.
 *
 * Must fail verification: run.sh expects errors > 0.
 */
#define BROKEN_READY_UNBUFFERED
#include "../fing.pml"
