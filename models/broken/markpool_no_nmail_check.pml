/*
 * markpool_no_nmail_check.pml: get declares marking complete when every worker waits,
 * without checking that no mail is left. A worker sends its last outbox to
 * one that waits and then waits itself: it returns with the mail unread.
 * Must fail verification; see ../markpool.md.
 */
#define BROKEN_NO_NMAIL_CHECK
#include "../markpool.pml"
