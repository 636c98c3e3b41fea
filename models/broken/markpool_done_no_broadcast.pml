/*
 * markpool_done_no_broadcast.pml: the worker that finds every worker waiting and no mail
 * sets done but does not broadcast: the others sleep on cond for ever.
 * Must fail verification; see ../markpool.md.
 */
#define BROKEN_DONE_NO_BROADCAST
#include "../markpool.pml"
