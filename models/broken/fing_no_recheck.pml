/*
 * Broken on purpose: the finalizer goroutine finds finq empty under
 * finlock, releases finlock, and only then sets Wait (check, then set).
 * A record queued in between sees Wait clear, so the last sweeper's
 * wakefing does nothing, and the goroutine then sets Wait and parks with
 * the record still queued.
 *
 * Must fail verification: run.sh expects errors > 0.
 */
#define BROKEN_NO_RECHECK
#include "../fing.pml"
