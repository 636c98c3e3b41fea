/*
 * cleanup_lostwake.pml: a worker sleeps without re-checking workUnits after announcing itself in asleep (S4 removed).
 * Must fail verification; see ../cleanup.md.
 */
#define BROKEN_NO_RECHECK
#include "../cleanup.pml"
