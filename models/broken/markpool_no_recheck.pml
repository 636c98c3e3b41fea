/*
 * markpool_no_recheck.pml: after the spin, get takes mu and sleeps on cond
 * without looking again for mail, spans or done. A send (or the last
 * worker's done) that came during the spin broadcast to no one: the
 * worker sleeps for ever.
 * Must fail verification; see ../markpool.md.
 */
#define BROKEN_NO_RECHECK
#include "../markpool.pml"
