/*
 * markpool_send_no_broadcast.pml: send does not broadcast when a worker waits. A worker
 * asleep on cond gets mail and is not woken; the sender then waits too
 * (nmail > 0 keeps it from declaring the end), and both sleep for ever.
 * Must fail verification; see ../markpool.md.
 */
#define BROKEN_SEND_NO_BROADCAST
#include "../markpool.pml"
