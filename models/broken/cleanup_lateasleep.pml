/*
 * cleanup_lateasleep.pml: a worker re-checks workUnits before incrementing asleep, not after (S3 and S4 swapped),
 * with a pool of one worker.
 * Must fail verification; see ../cleanup.md.
 */
#define BROKEN_LATE_ASLEEP
/* The window between the re-check and asleep++ is inside mu, so only one
 * worker can be in it; any other worker is awake and would see the unit.
 * The loss needs that worker to be the only one. */
#define MAXW 1
#include "../cleanup.pml"
