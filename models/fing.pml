/*
 * fing.pml: the finalizer goroutine's wake protocol.
 *
 * Actors (see fing.md for the protocol table and what is abstracted):
 *
 *   SetFinalizer  two mutators racing to start the finalizer goroutine
 *                 (fingStatus CAS Uninitialized -> Created; the winner
 *                 starts it).
 *   Sweeper(id)   NSWEEPERS sweepers; id 0 plays the background sweeper
 *                 (sweeps until the span pool is empty), the others play
 *                 lazy mutator sweepers (may stop after any span).
 *                 Sweeping a span may queue one finalizer record.
 *   Fing          the finalizer goroutine: takes the whole finq under
 *                 finlock; parks if it was empty, else runs the records.
 *   init          the collector: NCYCLES cycles; between cycles the world
 *                 is stopped, the sweep state is reset, a new pool of
 *                 NSPANS spans is to be swept. At each cycle's end it
 *                 checks that no wake-up of the cycle was lost.
 *   Checker       fires only when no other process can move (timeout), so
 *                 in every final state, and checks no wake-up was lost.
 *
 * Variants in broken/ define one BROKEN_* macro and include this file;
 * each must fail verification.
 */

#ifndef NSWEEPERS
#define NSWEEPERS 2
#endif
#ifndef NSPANS
#define NSPANS 2
#endif
#ifndef NCYCLES
#define NCYCLES 2
#endif
#define NREC (NCYCLES * NSPANS)  /* record id = cycle*NSPANS + span */
#define NOSPAN 255

/* fingStatus bits. */
#define fingUninitialized 0
#define fingCreated 1
#define fingRunningFinalizer 2
#define fingWait 4
#define fingWake 8

/* activeSweep state: count of active sweepers | sweepDrained. */
#define sweepDrained 128

/* fingStatus: atomic; changed only by the CAS / Or / And steps below. */
byte fingStatus = fingUninitialized;

/* finlock protects finq, queued, nqueued. */
bool finlock;
/* finq: set of queued, not yet taken records (bit per record id). */
int finq;
/* queued[r]: record r was queued (written under finlock). */
bit queued[NREC];
byte nqueued;
/* ran[r]: times record r was run (written by Fing only). */
byte ran[NREC];
byte nran;

/* ready(fing): a buffered channel of capacity 1; a token sent before the
 * park is kept, a token sent when one is already there is dropped. */
chan wake = [1] of { bit };
#ifdef BROKEN_READY_UNBUFFERED
/* fingBlocked: Fing has reached its receive (an unbuffered send would
 * only be taken now). */
bool fingBlocked;
#endif
byte ndropped;

/* fingParked: Fing is at (or about to block at) its park. */
bool fingParked;
/* nFingStarted: times the finalizer goroutine was started. */
byte nFingStarted;
/* nSetFin: SetFinalizer calls that returned. */
byte nSetFin;

/* activeSweep state word; reset only with the world stopped. */
byte sweepState;
/* nextSpan: cursor into the pool of spans of this cycle; a sweeper claims
 * span nextSpan by advancing the cursor (a CAS). */
byte nextSpan;
/* swept[s]: times span s was swept in this cycle. */
byte swept[NSPANS];
/* nlast: sweepers that saw themselves the last one in this cycle. */
byte nlast;

/* epoch: the cycle whose sweep may run (world started); ndone: sweeper
 * cycle-sessions finished over all cycles (world may stop when all are). */
byte epoch;
byte ndone;

inline lock() {
	atomic { !finlock -> finlock = true }
}

inline unlock() {
	assert(finlock);
	finlock = false
}

/* ready(fing): non-blocking send on the capacity-1 channel. */
inline ready() {
	atomic {
#ifndef BROKEN_READY_UNBUFFERED
		if
		:: nfull(wake) -> wake!1
		:: full(wake) -> ndropped++
		fi
#else
		/* BUG: a non-blocking send on an unbuffered channel: the
		 * token is dropped unless Fing is already blocked in the park. */
		if
		:: fingBlocked -> wake!1
		:: else -> ndropped++
		fi
#endif
	}
}

/* wakefing (finState.wake): s := load; if both Wait and Wake are set and
 * the CAS clearing both succeeds, ready the finalizer goroutine; a failed
 * CAS loads again and retries, as the code's loop does. */
inline wakefing() {
	do
	:: ws = fingStatus;
		if
		:: (ws & (fingWait | fingWake)) != (fingWait | fingWake) -> break
		:: else ->
			atomic {
				if
				:: fingStatus == ws ->
					fingStatus = ws & ~(fingWait | fingWake);
					woke = true
				:: else -> woke = false
				fi
			};
			if
			:: woke ->
				assert((ws & fingRunningFinalizer) == 0);
				ready();
				break
			:: else -> skip
			fi
		fi
	od;
	ws = 0;
	woke = false
}

/* queuefinalizer: append under finlock, then Or(Wake). */
inline queuefinalizer(rec) {
	atomic {
		lock();
		assert(queued[rec] == 0);
		assert((fingStatus & fingCreated) != 0);
		finq = finq | (1 << rec);
		queued[rec] = 1;
		nqueued++;
		unlock()
	};
	fingStatus = fingStatus | fingWake   /* Or: a single atomic step */
}

proctype Fing() {
	int batch;
	byte i;

	do
	:: /* runFinq: take the whole finq under finlock. Only the steps
	    * that change fingStatus can be observed by others while finlock
	    * is held (see fing.md), so the take is one step with the lock. */
		atomic {
			lock();
			batch = finq;
			finq = 0
		};
		if
		:: batch == 0 ->
			assert((fingStatus & fingWait) == 0);
			/* Still holding finlock: And(^RunningFinalizer), kept set
			 * since the first batch after the last park, then Or(Wait):
			 * two atomics others may see apart. */
#ifndef BROKEN_RUNNING_AFTER_WAIT
			fingStatus = fingStatus & ~fingRunningFinalizer;
#endif
#ifndef BROKEN_NO_RECHECK
			/* Wait is set while finlock is held: any record appended
			 * after the take sees it. */
			atomic { fingStatus = fingStatus | fingWait; fingParked = true };
#endif
#ifdef BROKEN_RUNNING_AFTER_WAIT
			/* BUG: RunningFinalizer is cleared after Wait is set: a
			 * sweeper's wakefing in between sees Wait and Wake with the
			 * goroutine still shown as running a finalizer. */
			fingStatus = fingStatus & ~fingRunningFinalizer;
#endif
			unlock();
#ifdef BROKEN_NO_RECHECK
			/* BUG: Wait is set after finlock is released: a record
			 * queued in between sees no Wait, so the last sweeper of
			 * its cycle does not wake the finalizer goroutine. */
			atomic { fingStatus = fingStatus | fingWait; fingParked = true };
#endif
#ifdef BROKEN_READY_UNBUFFERED
			fingBlocked = true;
end_park:		atomic { wake?_ -> fingParked = false; fingBlocked = false };
#else
end_park:		atomic { wake?_ -> fingParked = false };
#endif
			assert((fingStatus & fingWait) == 0)
		:: else ->
			/* Wait is clear, and stays clear until this goroutine sets
			 * it, so RunningFinalizer never meets Wait. */
			assert((fingStatus & fingWait) == 0);
			unlock();
			/* Or(RunningFinalizer) only if it is not set: load, then Or. */
			if
			:: (fingStatus & fingRunningFinalizer) == 0 ->
				fingStatus = fingStatus | fingRunningFinalizer
			:: else -> skip
			fi;
			d_step {
				i = 0;
				do
				:: i < NREC ->
					if
					:: (batch & (1 << i)) != 0 ->
						ran[i]++;
						assert(ran[i] == 1);
						nran++
					:: else -> skip
					fi;
					i++
				:: else -> break
				od;
				i = 0;
				batch = 0
			}
		fi
	od
}

proctype SetFinalizer() {
	byte s;
	bool won;

	/* createfing: Load() == Uninitialized && CAS(Uninitialized, Created). */
	s = fingStatus;
	if
	:: s == fingUninitialized ->
		atomic {
			if
			:: fingStatus == fingUninitialized ->
				fingStatus = fingCreated;
				won = true
			:: else -> won = false
			fi
		}
	:: else -> won = false
	fi;
	if
	:: won ->
		nFingStarted++;
		run Fing()
	:: else -> skip
	fi;
	nSetFin++
}

proctype Sweeper(byte id) {
	byte c;
	byte sp;
	bool ok;
	bool last;
	byte ws;
	bool woke;
#ifdef BROKEN_WAKE_BEFORE_DRAIN
	bool drainer;
#endif

	c = 0;
	do
	:: c < NCYCLES ->
		epoch == c + 1;  /* the world is started for cycle c */

		/* activeSweep.begin: fail if drained, else count+1 (CAS loop;
		 * its effect is the successful CAS, one atomic step). */
		atomic {
			if
			:: (sweepState & sweepDrained) != 0 -> ok = false
			:: else -> sweepState++; ok = true
			fi
		};
		if
		:: ok ->
			do
			:: /* claim a span (CAS on the pool cursor) */
				atomic {
					if
					:: nextSpan < NSPANS ->
						sp = nextSpan;
						nextSpan++;
						swept[sp]++
					:: else -> sp = NOSPAN
					fi
				};
				if
				:: sp == NOSPAN ->
					/* activeSweep.markDrained: set the bit once. */
					atomic {
						if
						:: (sweepState & sweepDrained) == 0 ->
							sweepState = sweepState | sweepDrained;
#ifdef BROKEN_WAKE_BEFORE_DRAIN
							drainer = true
#else
							skip
#endif
						:: else -> skip
						fi
					};
					break
				:: else ->
					/* sweep span sp (owned by this sweeper now); it may
					 * hold an unreachable object with a finalizer. */
					if
					:: queuefinalizer(c * NSPANS + sp);
						/* Early wake (finWakeEarly): a sweeper that
						 * finds enough queued may wake the goroutine
						 * before the sweep ends; modelled as a choice
						 * after any queueing. */
						if
						:: wakefing()
						:: skip
						fi
					:: skip
					fi;
					sp = NOSPAN;
					if
					:: id == 0 -> skip       /* background: go on */
					:: id != 0 -> skip       /* lazy: go on ... */
					:: id != 0 -> break      /* ... or stop here */
					fi
				fi
			od;
			sp = 0;

			/* activeSweep.end: count-1; the last sweeper of the cycle
			 * is the one that leaves exactly sweepDrained. */
			atomic {
				assert((sweepState & ~sweepDrained) > 0);
				sweepState--;
				last = (sweepState == sweepDrained)
			};
#ifdef BROKEN_WAKE_BEFORE_DRAIN
			/* BUG: the sweeper that found the pool empty decides on the
			 * wake; spans claimed by others may still be being swept. */
			if
			:: drainer -> wakefing()
			:: else -> skip
			fi;
			drainer = false;
			if
			:: last -> nlast++
			:: else -> skip
			fi;
#else
			if
			:: last -> nlast++; wakefing()
			:: else -> skip
			fi;
#endif
			last = false
		:: else -> skip
		fi;
		atomic {
			ok = false;
			ndone++;
			c++
		}
	:: else -> break
	od
}

init {
	byte c;
	byte i;

	atomic {
		run SetFinalizer();
		run SetFinalizer();
		i = 0;
		do
		:: i < NSWEEPERS -> run Sweeper(i); i++
		:: else -> break
		od;
		i = 0
	};

	/* Records exist only for objects whose SetFinalizer returned. */
	nSetFin == 2;
	assert(nFingStarted == 1);

	c = 0;
	do
	:: c < NCYCLES ->
		/* World stopped: reset the sweep state, new spans to sweep. */
		d_step {
			sweepState = 0;
			nextSpan = 0;
			nlast = 0;
			i = 0;
			do
			:: i < NSPANS -> swept[i] = 0; i++
			:: else -> break
			od;
			i = 0
		};
		epoch = c + 1;  /* start the world: sweeping runs */

		/* Stop the world once every sweeper is done with this cycle. */
		ndone == NSWEEPERS * (c + 1);
		d_step {
			assert(sweepState == sweepDrained);
			assert(nlast == 1);
			/* No wake-up of this cycle was lost: a parked finalizer
			 * goroutine with no wake pending has nothing to run. */
			assert(!fingParked || len(wake) > 0 || finq == 0);
			i = 0;
			do
			:: i < NSPANS -> assert(swept[i] == 1); i++
			:: else -> break
			od;
			i = 0
		};
		c++
	:: else -> break
	od
}

/* In a final state (nothing else can move) the finalizer goroutine must
 * not be parked while records wait, and every queued record ran once. */
active proctype Checker() {
	byte i;

	timeout ->
	d_step {
		assert(!fingParked || (finq == 0 && nran == nqueued));
#ifndef BROKEN_READY_UNBUFFERED
		/* At most one wake is outstanding per park: none was dropped. */
		assert(ndropped == 0);
#endif
		i = 0;
		do
		:: i < NREC -> assert(ran[i] == queued[i]); i++
		:: else -> break
		od;
		i = 0
	}
}
