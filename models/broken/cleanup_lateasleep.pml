/*
 * cleanup_lateasleep.pml: a worker re-checks workUnits before incrementing asleep, not after (S3 and S4 swapped).
 * Must fail verification; see ../cleanup.md.
 */
#define BROKEN_LATE_ASLEEP
#include "../cleanup.pml"
