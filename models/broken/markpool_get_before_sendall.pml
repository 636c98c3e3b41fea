/*
 * markpool_get_before_sendall.pml: drain calls get(wait) without sending its partial
 * outboxes first. The last worker to wait finds nwait == nworkers and no
 * mail in the pool, and marking ends with handles still in an outbox.
 * Must fail verification; see ../markpool.md.
 */
#define BROKEN_GET_BEFORE_SENDALL
#include "../markpool.pml"
