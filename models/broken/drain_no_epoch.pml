/*
 * drain_no_epoch.pml: Drain reads the sweep, the finalizers and the
 * cleanups one at a time and trusts the three readings. It can read the
 * sweep done and the finalizers idle before a running cleanup collects and
 * queues a finalizer, and the cleanups done after, and return with the
 * finalizer still to run.
 * Must fail verification; see ../drain.md.
 */
#define BROKEN_NO_EPOCH
#include "../drain.pml"
