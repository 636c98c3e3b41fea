/*
 * ephemeron_npending_late.pml: the registrar counts its entry in npending
 * after it re-reads the key's mark bit. A marker that sets the bit after
 * the re-read and reads npending before the count skips the key, and the
 * entry waits on a marked key for ever.
 * Must fail verification; see ../ephemeron.md.
 */
#define BROKEN_NPENDING_LATE
#include "../ephemeron.pml"
