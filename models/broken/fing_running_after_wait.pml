/*
 * Broken on purpose: the finalizer goroutine, about to park, sets Wait
 * before it clears RunningFinalizer (runFinq does the And first). A
 * sweeper's wakefing in between finds Wait and Wake set on a goroutine
 * the status word still shows running a finalizer: RunningFinalizer and
 * Wait, which the protocol never sets together (Stats would name a state
 * that does not exist), meet.
 *
 * Must fail verification: run.sh expects errors > 0.
 */
#define BROKEN_RUNNING_AFTER_WAIT
#include "../fing.pml"
