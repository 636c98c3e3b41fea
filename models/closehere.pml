/*
 * closehere.pml: Close against the finalizers mutators run at their
 * safepoints (FinalizersAtSafepoints).
 *
 * The code it models is internal/heap/close.go (Close,
 * waitFinalizersHere, takeQueuedFinalizers, closeRelease) and
 * internal/heap/final.go (runFinalizersHere, retireHere), with the idle
 * event of internal/heap/util.go. See closehere.md.
 *
 * Actors:
 *
 *   Mutator  two of them, each at a safepoint: under fin.mu it takes a
 *            record from the queue unless closing is set (then, or when
 *            the queue is empty, it returns), adding it to inflight;
 *            then it calls the finalizer, which reads its object; then,
 *            under fin.mu, it takes the record out of inflight and notes
 *            whether Close waits (closing set, inflight now empty), and
 *            if so broadcasts the idle event.
 *   Closer   Close: it takes the event's generation, then under fin.mu
 *            sets closing and reads inflight; if none is in flight it
 *            goes on, else it waits for the generation to change and
 *            looks again. Then it takes what is queued (under fin.mu),
 *            runs it, and releases the spans: no object may be read
 *            after that.
 *
 * Every record must run exactly once, no call may read its object after
 * the release, and Close must not wait for ever (an invalid end state).
 *
 * Variants in broken/ define one BROKEN_* macro and include this file;
 * each must fail verification.
 */

#define NREC 3

byte q = NREC;       /* records queued on fin.mu.q */
byte inflight = 0;   /* fin.mu.inflight */
bit closing = 0;     /* fin.mu.closing */
bit released = 0;    /* Close has released the spans */
byte ran = 0;        /* finalizer calls made */
byte ev = 0;         /* the idle event's generation: broadcast advances it */
bit lock = 0;        /* fin.mu */

inline acquire() { atomic { lock == 0 -> lock = 1 } }
inline release() { lock = 0 }

proctype Mutator() {
	bit wake;
	do
	:: acquire();
#ifndef BROKEN_NO_CLOSING_CHECK
	   if
	   :: closing == 1 -> release(); break
	   :: else -> skip
	   fi;
#endif
	   if
	   :: q > 0 -> q--; inflight++; release();
	      assert(released == 0);        /* the call reads its object */
	      ran++;
	      acquire(); inflight--;
	      wake = (closing == 1 && inflight == 0);
	      release();
#ifndef BROKEN_NO_WAKE
	      if
	      :: wake -> ev++
	      :: else -> skip
	      fi
#endif
	   :: else -> release(); break
	   fi
	od
}

proctype Closer() {
	byte g, n, taken;
#ifndef BROKEN_NO_WAIT
	do
	:: g = ev;
	   acquire(); closing = 1; n = inflight; release();
	   if
	   :: n == 0 -> break
	   :: else -> ev != g                /* wait for the next broadcast */
	   fi
	od;
#endif
	/* takeQueuedFinalizers, then the round's calls */
	acquire(); taken = q; q = 0; release();
	do
	:: taken > 0 -> ran++; taken--
	:: else -> break
	od;
	released = 1
}

init {
	atomic {
		run Mutator();
		run Mutator();
		run Closer()
	}
	/* once the others have ended, each record ran exactly once */
	_nr_pr == 1 -> assert(ran == NREC)
}
