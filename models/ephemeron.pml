/*
 * ephemeron.pml: registering an ephemeron entry against marking its key.
 *
 * The code it models is internal/heap/ephemeron.go (scanTable, released)
 * and internal/heap/mark.go (markRun, releaseWaiting). See ephemeron.md.
 *
 * Actors:
 *
 *   Registrar(e)  NREG mark workers, each scanning a table with one entry
 *                 waiting on key K (entry e). Under eph.mu: count the
 *                 entry in npending, set K's ephKeys bit, re-read K's
 *                 mark bit; if marked, uncount the entry and trace its
 *                 value at once; else add it to K's waiting list.
 *   Marker(id)    NMARK mark workers that reach K. Or K's mark bit; the
 *                 one whose Or set it reads npending and, if some entry
 *                 waits anywhere, K's ephKeys bit; if that is set, it
 *                 takes eph.mu and traces every value on K's list.
 *   Other         a registrar of an entry on another key, never marked:
 *                 it makes npending nonzero at any moment, or not.
 *   Checker       fires only when no other process can move (timeout), so
 *                 in every final state: K is marked, so every entry on it
 *                 must have had its value traced, and none may still wait.
 *
 * Every step on a shared variable is one sequentially consistent atomic
 * operation, as Go's sync/atomic are. eph.mu is a lock.
 *
 * Variants in broken/ define one BROKEN_* macro and include this file;
 * each must fail verification.
 */

#ifndef NREG
#define NREG 2
#endif
#ifndef NMARK
#define NMARK 2
#endif

bit mark = 0;        /* K's mark bit (markBits) */
bit ephKey = 0;      /* K's ephKeys bit */
byte npending = 0;   /* eph.npending: entries waiting, all keys */
bit waiting[NREG];   /* entry e is on K's waiting list (ephHeads) */
bit traced[NREG];    /* entry e's value was traced */
bit lock = 0;        /* eph.mu */
byte done = 0;       /* actors that have ended */

inline acquire() { atomic { lock == 0 -> lock = 1 } }
inline release() { lock = 0 }

proctype Registrar(byte e) {
	acquire();
#ifndef BROKEN_NPENDING_LATE
	npending++;          /* counted before the re-read (see ephemeron.md) */
#endif
	ephKey = 1;
	if
	:: mark == 1 ->
#ifndef BROKEN_NPENDING_LATE
		npending--;
#endif
		traced[e] = 1
	:: else ->
		waiting[e] = 1;
#ifdef BROKEN_NPENDING_LATE
		npending++;      /* counted after the re-read: the old order */
#endif
		skip
	fi;
	release();
	done++
}

proctype Marker(byte id) {
	bit old, key;
	byte e, np;
	atomic { old = mark; mark = 1 };  /* Or: old says who set the bit */
	np = npending;                     /* one load each */
	key = ephKey;
	if
	:: old == 0 && np > 0 && key == 1 ->
		/* released: the values waiting on K */
		acquire();
		e = 0;
		do
		:: e < NREG ->
			if
			:: waiting[e] == 1 -> waiting[e] = 0; traced[e] = 1; npending--
			:: else -> skip
			fi;
			e++
		:: else -> break
		od;
		release()
	:: else -> skip
	fi;
	done++
}

/* Other registers, and maybe releases, an entry on another key: npending
 * is nonzero for a while, or never. */
proctype Other() {
	if
	:: acquire(); npending++; release();
	   acquire(); npending--; release()
	:: skip
	fi;
	done++
}

proctype Checker() {
	byte e;
	timeout ->
	assert(done == NREG + NMARK + 1);
	assert(mark == 1);
	e = 0;
	do
	:: e < NREG ->
		assert(waiting[e] == 0); /* no entry left waiting on a marked key */
		assert(traced[e] == 1);  /* every value traced */
		e++
	:: else -> break
	od;
	assert(npending == 0)
}

init {
	byte i;
	atomic {
		i = 0;
		do
		:: i < NREG -> run Registrar(i); i++
		:: else -> break
		od;
		i = 0;
		do
		:: i < NMARK -> run Marker(i); i++
		:: else -> break
		od;
		run Other();
		run Checker()
	}
}
