/*
 * closehere_no_wait.pml: BROKEN_NO_WAIT.
 * Must fail verification; see ../closehere.md.
 */
#define BROKEN_NO_WAIT
#include "../closehere.pml"
