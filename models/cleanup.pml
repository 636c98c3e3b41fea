/*
 * cleanup.pml: the cleanup queue's sleep/wake protocol and worker pool
 * (internal/cleanupq, queue.go, steps S1-S5 and W1-W4 of the package
 * comment).
 *
 * Actors (see cleanup.md for what is abstracted and why):
 *
 *   Producer(rounds, k)  a sweeper: each round pushes k full blocks, adds k
 *                        work units (W1) and calls wake (W2-W4). k = 1 is a
 *                        sweeper whose Local block filled; k = 2 is the last
 *                        sweeper's Flush.
 *   Worker(me)           created on demand by wake, up to MAXW. Takes a work
 *                        unit lock-free and pops a block, or goes to sleep
 *                        (S1-S5) until a waker hands it a token.
 *   Closer               first picks a mode. Mode 1 waits until nothing else
 *                        can move (timeout) and checks that no wake-up was
 *                        lost; mode 2 calls Close as soon as the producers are
 *                        done, while blocks may still be queued. Either way it
 *                        then runs Close (wake every sleeper, wait for ng ==
 *                        0) and checks that every block ran.
 *   Invariant            blocked until an invariant breaks, then fails.
 *
 * Variants in broken/ define one BROKEN_* macro and include this file;
 * each must fail verification.
 */

#ifndef MAXW
#define MAXW 2
#endif
#define NPROD 3
#define NBLOCKS 6 /* 2*1 + 2*1 + 1*2, see init */

/* The full stack, abstracted to its size (lfstack is tested on its own).
 * Atomic. */
byte onFull;
/* workUnits: atomic; incremented after a push to full, decremented (never
 * below 0) before a pop. */
short workUnits;
/* q.mu. */
bool mu;
/* asleep and ng: read without the lock, written only with mu held. */
byte asleep;
byte ng;
/* q.mu.sleeping as a set; under mu. */
bool sleeping[MAXW];
/* w.wake: a channel of capacity 1 per worker. */
bool token[MAXW];
/* q.mu.closing; under mu. */
bool closing;

/* Bookkeeping for the checks. */
byte produced;  /* blocks pushed */
byte consumed;  /* blocks run to the end */
byte producersDone;

#define LOCK   atomic { !mu -> mu = true }
#define UNLOCK mu = false

proctype Worker(byte me)
{
looking:
	/* tryTakeWork: a CAS loop that never goes below 0 is one atomic
	 * decrement-if-positive. */
	if
	:: atomic { workUnits > 0 -> workUnits-- } ->
		/* A unit guarantees a block on full. Pop it and run it. */
		atomic { assert(onFull > 0); onFull--; consumed++ };
		goto looking
	:: else -> skip
	fi;

	/* S1-S3: lock; exit if closing and no work; announce the sleep. */
	atomic {
		!mu -> mu = true;
		if
		:: closing && workUnits == 0 ->  /* S2: exit */
			ng--;
			mu = false;
			goto exit
#ifndef BROKEN_SLEEP_WHILE_CLOSING
		:: closing && workUnits > 0 ->  /* S2: never sleep once closing */
			mu = false;
			goto looking
#endif
		:: else -> skip
		fi;
#ifndef BROKEN_LATE_ASLEEP
		asleep++  /* S3 */
#endif
	};
#if defined(BROKEN_LATE_ASLEEP)
	/* Broken: re-check first, announce the sleep in a later step. */
	atomic {
		if
		:: workUnits > 0 -> mu = false; goto looking
		:: else -> skip
		fi
	};
	atomic { asleep++; sleeping[me] = true; mu = false };
#elif defined(BROKEN_NO_RECHECK)
	/* Broken: sleep without re-checking workUnits. */
	atomic { sleeping[me] = true; mu = false };
#else
	/* S4, S5: re-check, then sleep; unlock. */
	atomic {
		if
		:: workUnits > 0 ->  /* S4 */
			asleep--;
			mu = false;
			goto looking
		:: else -> skip
		fi;
		sleeping[me] = true;  /* S5 */
		mu = false
	};
#endif
end_sleep:
	atomic { token[me] -> token[me] = false };
	goto looking;
exit:
	skip
}

proctype Producer(byte rounds; byte k)
{
	byte i, ns, j, nwake, create;
	bool skipWake;

	do
	:: i < rounds ->
		/* W1: push k blocks, then publish k units. */
		atomic { onFull = onFull + k; produced = produced + k };
		workUnits = workUnits + k;

		/* W2: fast check without the lock. */
		/* Two separate loads, as in Go. */
#ifdef BROKEN_FAST_CHECK
		skipWake = true;
#else
		skipWake = (asleep == 0);
#endif
		skipWake = skipWake && (ng >= MAXW);
		if
		:: skipWake -> skipWake = false; goto next
		:: else -> skip
		fi;

		/* W3, W4 under mu. The section reads one lock-free variable,
		 * workUnits, once; everything else it touches is guarded by
		 * mu, so it is modelled as one step. */
		atomic {
			!mu -> mu = true;
			ns = 0;
			j = 0;
			do
			:: j < MAXW -> if :: sleeping[j] -> ns++ :: else -> skip fi; j++
			:: else -> break
			od;
			assert(asleep == ns);  /* asleep == len(sleeping) under mu */
			if
			:: workUnits > 0 ->
				nwake = (workUnits < ns -> workUnits : ns);
				create = ((workUnits - nwake) < (MAXW - ng) -> (workUnits - nwake) : (MAXW - ng));
				/* W4: hand wake-ups to specific sleepers. */
				j = 0;
				do
				:: nwake > 0 && j < MAXW && sleeping[j] ->
					sleeping[j] = false;
					asleep--;
					assert(!token[j]);  /* the send never blocks */
					token[j] = true;
					nwake--;
					j++
				:: nwake > 0 && j < MAXW && !sleeping[j] -> j++
				:: else -> break
				od;
				assert(nwake == 0);
				do
				:: create > 0 ->
					run Worker(ng);
					ng++;
					create--
				:: else -> break
				od
			:: else -> skip
			fi;
			ns = 0;
			j = 0;
			mu = false
		};
next:
		i++
	:: else -> break
	od;
	producersDone++
}

active proctype Closer()
{
	byte j;

	/* Choose the mode first: if mode 2's guard were offered alongside
	 * timeout, it would keep timeout from ever firing once the producers
	 * are done, and Close would hide a lost wake-up. */
	if
	:: j = 1
	:: j = 2
	fi;
	if
	:: j == 1 && timeout ->
		/* Mode 1: nothing else can move. No wake-up was lost: every
		 * block pushed has been taken and run. */
		assert(producersDone == NPROD);
		assert(workUnits == 0 && onFull == 0 && consumed == produced)
	:: j == 2 && producersDone == NPROD -> skip  /* mode 2: Close right away */
	fi;

	/* Close: set closing, wake every sleeper, wait for the workers. */
	LOCK;
	closing = true;
	j = 0;
	do
	:: j < MAXW ->
		if
		:: sleeping[j] -> sleeping[j] = false; assert(!token[j]); token[j] = true
		:: else -> skip
		fi;
		j++
	:: else -> break
	od;
	asleep = 0;
	UNLOCK;
	ng == 0;  /* wg.Wait */

	/* Close returned: every block ran. */
	assert(workUnits == 0 && onFull == 0 && consumed == produced && produced == NBLOCKS)
}

active proctype Invariant()
{
end_inv:
	atomic {
		(workUnits < 0 || workUnits > onFull || ng > MAXW || asleep > ng) ->
		assert(false)
	}
}

init
{
	atomic {
		run Producer(2, 1);
		run Producer(2, 1);
		run Producer(1, 2)
	}
}
