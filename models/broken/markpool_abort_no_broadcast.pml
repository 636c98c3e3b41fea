/*
 * markpool_abort_no_broadcast.pml: abort sets done but does not broadcast: a worker asleep
 * on cond when another panics sleeps for ever.
 * Must fail verification; see ../markpool.md.
 */
#define BROKEN_ABORT_NO_BROADCAST
#include "../markpool.pml"
