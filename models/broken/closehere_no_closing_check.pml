/*
 * closehere_no_closing_check.pml: BROKEN_NO_CLOSING_CHECK.
 * Must fail verification; see ../closehere.md.
 */
#define BROKEN_NO_CLOSING_CHECK
#include "../closehere.pml"
