/*
 * closehere_no_wake.pml: BROKEN_NO_WAKE.
 * Must fail verification; see ../closehere.md.
 */
#define BROKEN_NO_WAKE
#include "../closehere.pml"
