/*
 * drain.pml: Drain's check that the heap is drained, against work that
 * starts other work.
 *
 * The code it models is internal/heap/close.go (Heap.Drain, drained,
 * drainEpoch), with the counters of internal/heap/final.go (publish,
 * runFinq) and internal/cleanupq (account), and the idle event of
 * internal/heap/util.go. See drain.md.
 *
 * Actors:
 *
 *   Cleanup    one queued cleanup (counted in cq_q) that, when a worker
 *              runs it, collects: the flip advances sweepgen and clears
 *              sweepDone; the sweep queues one finalizer (counted in
 *              fin_q, then linked: finq) and the last sweeper sets
 *              sweepDone and broadcasts; then the cleanup returns, is
 *              counted in cq_x, and the queue broadcasts (OnIdle).
 *   Fing       the finalizer goroutine: it takes the queue (busy), runs
 *              the finalizer, counts it in fin_x, clears busy and
 *              broadcasts as it goes back to wait.
 *   Drainer    Heap.Drain: takes the idle event's generation, reads the
 *              epoch, reads sweepDone, the finalizers' idleness (finq
 *              and busy, under fin.mu) and the cleanups' pending count
 *              one at a time, reads the epoch again; if all were idle and
 *              the epoch did not move it returns, else it waits for the
 *              event's generation to change and tries again. When it
 *              returns, the cleanup, its collection's sweep and the
 *              finalizer must all be done: nothing else makes work.
 *
 * Every step on a shared variable is one sequentially consistent atomic
 * operation, as Go's sync/atomic are; fin.mu is a lock.
 *
 * Variants in broken/ define one BROKEN_* macro and include this file;
 * each must fail verification.
 */

byte sweepgen = 0;
bit sweepDone = 1;   /* no cycle yet: nothing to sweep */
byte fin_q = 0;      /* finalizers queued */
byte fin_x = 0;      /* finalizers executed */
bit finq = 0;        /* a block is linked on fin.mu.q */
bit busy = 0;        /* fin.mu.busy */
byte cq_q = 1;       /* cleanups queued: the one */
byte cq_x = 0;       /* cleanups executed */
byte ev = 0;         /* the idle event's generation: broadcast advances it */
bit lock = 0;        /* fin.mu */

inline acquire() { atomic { lock == 0 -> lock = 1 } }
inline release() { lock = 0 }

proctype Cleanup() {
	/* the cleanup's collection: the flip, with the world stopped */
	atomic { sweepgen = sweepgen + 2; sweepDone = 0 };
	/* the sweep queues its finalizer: counted, then linked (publish) */
	fin_q++;
	acquire(); finq = 1; release();
	/* the last sweeper */
	sweepDone = 1;
	ev++;
	/* the cleanup returns: account, then OnIdle */
	cq_x++;
	ev++
}

proctype Fing() {
end:
	do
	:: acquire();
	   if
	   :: finq == 1 -> finq = 0; busy = 1; release();
	      fin_x++;                     /* the call, then flushRan */
	      acquire(); busy = 0; release();
	      ev++                          /* back to wait: broadcast */
	   :: else -> release()
	   fi
	od
}

proctype Drainer() {
	byte g, sg1, fq1, fx1, cq1, cx1;
	bit idle, finIdle;
	do
	:: g = ev;
#ifndef BROKEN_NO_EPOCH
	   sg1 = sweepgen; fq1 = fin_q; fx1 = fin_x; cq1 = cq_q; cx1 = cq_x;
#endif
	   idle = sweepDone;
	   acquire(); finIdle = (finq == 0 && busy == 0); release();
	   idle = idle && finIdle && (cq_q == cq_x);
#ifndef BROKEN_NO_EPOCH
	   idle = idle && sg1 == sweepgen && fq1 == fin_q && fx1 == fin_x && cq1 == cq_q && cx1 == cq_x;
#endif
	   if
	   :: idle -> break
	   :: else -> ev != g               /* wait for the next broadcast */
	   fi
	od;
	assert(cq_x == 1 && sweepDone == 1 && fin_x == 1)
}

init {
	atomic {
		run Cleanup();
		run Fing();
		run Drainer()
	}
}
