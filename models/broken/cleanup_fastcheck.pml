/*
 * cleanup_fastcheck.pml: the waker's lock-free fast check skips the wake whenever the pool is at MaxWorkers, without looking at asleep (W2).
 * Must fail verification; see ../cleanup.md.
 */
#define BROKEN_FAST_CHECK
#include "../cleanup.pml"
