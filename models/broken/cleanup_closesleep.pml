/*
 * cleanup_closesleep.pml: a worker may go to sleep after Close has woken every sleeper, when it saw a work unit that another worker then took (S2).
 * Must fail verification; see ../cleanup.md.
 */
#define BROKEN_SLEEP_WHILE_CLOSING
#include "../cleanup.pml"
