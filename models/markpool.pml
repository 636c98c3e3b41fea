/*
 * markpool.pml: the parallel mark's work pool, and how its workers decide
 * that marking is complete.
 *
 * The code it models is internal/heap/mark.go: workPool (mu with bufs,
 * mail, nmail, nwait and done; cond; the hints waiting, hasMail[k], nbufs
 * and done), its put, send, abort and get (with the spin before the
 * sleep), and markWorker.drain with sendAll, giveAway and route's send of
 * a full outbox. See markpool.md.
 *
 * Actors:
 *
 *   Worker   NW of them (3; -DNW=2 for two). Worker 0 starts with Q0
 *            spans queued (and worker 1 with M1 handles of mail, the
 *            leader's routing of the roots, if -DM1=1). Scanning a span may find, while the budget lasts, a
 *            handle into a span of its own (queued: one more span) or
 *            into another worker's (put in its outbox for that worker,
 *            sent when the outbox holds MAILLEN). Mail a worker takes
 *            queues one span per handle. Between spans, as drain does, a
 *            worker takes its mail if the hint says it has some, and
 *            after a span, if the hint says a worker waits, it sends its
 *            outboxes, or if it had none to send and holds spillMin spans
 *            or more, gives half of them away (put). With its queue empty
 *            it sends its outboxes and calls get(wait): what it gets it
 *            takes; nothing means it returns. A worker may also panic
 *            instead of scanning (at most one, once): it calls abort and
 *            returns (not with -DNOPANIC).
 *
 * sync.Cond is modelled as Go implements it: Wait registers the waiter
 * while mu is held (notifyListAdd), releases mu, blocks until a Broadcast
 * made after it registered, and takes mu again; Broadcast wakes every
 * registered waiter at once; there are no spurious wake-ups.
 *
 * Checked: when a worker's get(wait) gives nothing and no worker panicked,
 * marking is complete: no mail in the pool, no spans given away, no span
 * queued and nothing in any worker's outbox, and every span found has been
 * scanned (assert). No worker waits for ever: a worker asleep on cond when
 * nothing else can move is an invalid end state, with or without a panic.
 *
 * Variants in broken/ define one BROKEN_* macro and include this file;
 * each must fail verification.
 */

#ifndef NW
#define NW 3
#endif
#ifndef Q0
#define Q0 2        /* spans worker 0 starts with */
#endif
#ifndef M1
#define M1 0        /* handles the leader routed to worker 1, in one buffer */
#endif
#ifndef BUDGET
#define BUDGET 3    /* handles the scans find, in all */
#endif
#define MAILLEN 2   /* an outbox is sent when it holds this many */
#define SPILLMIN 2  /* spillMin */
#define NBUF 4      /* room for buffers of spans in the pool */

/* workPool.mu and what it guards */
bit lock = 0;
byte mail[NW];      /* buffers in mu.mail[k] */
byte mailh[NW];     /* handles in those buffers */
byte nmail = 0;     /* mu.nmail */
byte bufs[NBUF];    /* mu.bufs: the size of each buffer of spans */
byte nb = 0;        /* len(mu.bufs) */
byte nwait = 0;     /* mu.nwait */
bit done = 0;       /* mu.done */

/* the hints: written with mu held, read without it */
byte waiting = 0;   /* workPool.waiting */
bit hasMail[NW];    /* workPool.hasMail */
byte nbufs = 0;     /* workPool.nbufs */
bit pdone = 0;      /* workPool.done */

/* cond: asleep[k] is worker k registered with the cond and not yet woken */
bit asleep[NW];

/* each worker's own state, kept global so that assertions can read it */
byte q[NW];         /* spans in its queue */
byte out[NW * NW];  /* out[k*NW+o]: handles in k's outbox for worker o */

byte budget = BUDGET;
byte found = Q0 + M1; /* spans to scan, in all: the first, one per handle found */
byte scanned = 0;   /* spans scanned */
bit panicked = 0;

inline acquire() { atomic { lock == 0 -> lock = 1 } }
inline release() { lock = 0 }

/* cond.Broadcast: wakes every worker registered so far */
inline broadcast() {
	atomic {
		i = 0;
		do
		:: i < NW -> asleep[i] = 0; i++
		:: else -> break
		od
	}
}

/*
 * cond.Wait, with mu held: register, release mu, sleep until a broadcast,
 * take mu again. Inside an atomic step, the step ends where the worker
 * blocks.
 */
inline condWait(k) {
	asleep[k] = 1;
	release();
	asleep[k] == 0;
	acquire()
}

/*
 * A critical section on mu is one atomic step: it reads and writes only
 * what mu guards and the hints, each hint at most once, and whoever reads
 * a hint without mu takes mu before it acts on what it read. The
 * broadcasts of put, send and abort come after the unlock, as separate
 * steps, as in Go.
 */

/* workPool.send(o, buf): a buffer of n handles for worker o */
inline send(o, n) {
	atomic {
		acquire();
		mail[o]++;
		mailh[o] = mailh[o] + n;
		nmail++;
		hasMail[o] = 1;
		wake = (nwait > 0);
		release();
		n = 0
	};
#ifndef BROKEN_SEND_NO_BROADCAST
	if
	:: wake -> broadcast()
	:: else -> skip
	fi;
#endif
	wake = 0
}

/* workPool.put(buf): a buffer of n spans given away */
inline put(n) {
	atomic {
		acquire();
		assert(nb < NBUF);
		bufs[nb] = n;
		nb++;
		nbufs = nb;
		wake = (nwait > 0);
		release();
		n = 0
	};
#ifndef BROKEN_PUT_NO_BROADCAST
	if
	:: wake -> broadcast()
	:: else -> skip
	fi;
#endif
	wake = 0
}

/* workPool.abort */
inline abort() {
	atomic {
		acquire();
		done = 1;
		pdone = 1;
		release()
	};
#ifndef BROKEN_ABORT_NO_BROADCAST
	broadcast()
#endif
}

/*
 * One pass of get's loop, with mu held; it releases mu. res is set if get
 * returns (gm handles of mail, or else gs spans; both 0 is nothing),
 * clear if it goes on to spin.
 */
inline getPass(k, wt) {
	if
	:: mail[k] > 0 ->
		gm = mailh[k];
		nmail = nmail - mail[k];
		mail[k] = 0;
		mailh[k] = 0;
		hasMail[k] = 0;
		res = 1
	:: else ->
		if
		:: nb > 0 ->
			nb--;
			gs = bufs[nb];
			bufs[nb] = 0;
			nbufs = nb;
			res = 1
		:: else ->
			if
			:: !wt || done -> res = 1
			:: else ->
				nwait++;
				waiting = nwait;
#ifdef BROKEN_NO_NMAIL_CHECK
				if
				:: nwait == NW ->
#else
				if
				:: nwait == NW && nmail == 0 ->
#endif
					done = 1;
					pdone = 1;
#ifndef BROKEN_DONE_NO_BROADCAST
					broadcast();
#endif
					res = 1
				:: else -> skip
				fi
			fi
		fi
	fi;
	release()
}

/*
 * workPool.get(k, wt). Between a pass that does not return and the next,
 * the worker spins with mu released (polling the hints for up to spinFor:
 * it may stop at any time, so the model lets others run and goes on), then
 * takes mu, sleeps on cond if it still has no mail, no spans are in the
 * pool and marking is not done, and takes one off nwait.
 */
inline get(k, wt) {
	atomic {
		gm = 0;
		gs = 0;
		res = 0;
		acquire();
		getPass(k, wt)
	};
	do
	:: res -> res = 0; break
	:: else ->
		/* the spin is the gap between these two steps */
		atomic {
			acquire();
#ifdef BROKEN_NO_RECHECK
			condWait(k);
#else
#ifdef BROKEN_RECHECK_MAIL_ONLY
			if
			:: mail[k] == 0 && !done -> condWait(k)
			:: else -> skip
			fi;
#else
			if
			:: mail[k] == 0 && nb == 0 && !done -> condWait(k)
			:: else -> skip
			fi;
#endif
#endif
			nwait--;
			waiting = nwait;
			getPass(k, wt)
		}
	od
}

/* markWorker.sendAll: sent is whether any outbox was non-empty */
inline sendAll(k) {
	sent = 0;
	o = 0;
	do
	:: o < NW ->
		if
		:: out[k * NW + o] > 0 ->
			atomic { n = out[k * NW + o]; out[k * NW + o] = 0 };
			send(o, n);
			sent = 1
		:: else -> skip
		fi;
		o++
	:: else -> o = 0; break
	od
}

/* markWorker.take: mail greys objects and queues spans; spans are queued */
inline take(k) {
	atomic {
		q[k] = q[k] + gm + gs;
		gm = 0;
		gs = 0
	}
}

/* markWorker.scanSpan, with what route does with what it finds */
inline scan(k) {
	atomic {
		q[k]--;
		scanned++;
		if
		:: budget > 0 ->                /* a handle into its own span */
			budget--; found++; q[k]++
		:: budget > 0 ->                /* a handle into another's span */
			budget--; found++;
			if
			:: NW == 2 -> o = 1 - k
			:: NW > 2 -> o = (k + 1) % NW
			:: NW > 2 -> o = (k + 2) % NW
			fi;
			out[k * NW + o]++;
			if
			:: out[k * NW + o] == MAILLEN ->
				out[k * NW + o] = 0;
				n = MAILLEN
			:: else -> o = 0
			fi
		:: skip                         /* nothing new */
		fi
	};
	if
	:: n > 0 -> send(o, n); o = 0       /* the outbox is full */
	:: else -> skip
	fi
}

/* the set of all queues and outboxes is empty */
inline allEmpty(r) {
	r = 1;
	i = 0;
	do
	:: i < NW -> r = r && q[i] == 0 && mail[i] == 0; i++
	:: else -> break
	od;
	i = 0;
	do
	:: i < NW * NW -> r = r && out[i] == 0; i++
	:: else -> break
	od
}

proctype Worker(byte k) {
	byte gm, gs, o, n, i;
	bit res, wake, sent, clean;
	do
	:: /* one trip through drain's inner loop, or its end */
		if
		:: hasMail[k] ->
			get(k, 0);
			take(k)
		:: else -> skip
		fi;
		if
#ifndef NOPANIC
		:: atomic { q[k] > 0 && !panicked -> panicked = 1 } ->
			abort();                    /* a Trace method panicked */
			goto stopped
#endif
		:: q[k] > 0 ->
			scan(k);
			if
			:: waiting > 0 ->
				/* mail first; spans only if there was none */
				sendAll(k);
				if
				:: !sent && q[k] >= SPILLMIN ->
					atomic {
						n = q[k] / 2;   /* giveAway: the newest half */
						q[k] = q[k] - n
					};
					put(n)
				:: else -> skip
				fi
			:: else -> skip
			fi
		:: q[k] == 0 ->
#ifndef BROKEN_GET_BEFORE_SENDALL
			sendAll(k);
#endif
			get(k, 1);
			if
			:: gm == 0 && gs == 0 -> break
			:: else -> take(k)
			fi
		fi
	od;
	/* get(wait) gave nothing: marking is complete, unless aborted */
	atomic {
		allEmpty(clean);
		assert(panicked || (clean && nmail == 0 && nb == 0 && scanned == found))
	};
stopped:
	skip
}

init {
	byte k;
	atomic {
		q[0] = Q0;
		/* the leader's route and sendAll, before the workers start */
		if
		:: M1 > 0 -> mail[1] = 1; mailh[1] = M1; nmail = 1; hasMail[1] = 1
		:: else -> skip
		fi;
		k = 0;
		do
		:: k < NW -> run Worker(k); k++
		:: else -> break
		od
	}
	/* once every worker has returned: nothing is left, unless aborted */
	_nr_pr == 1 ->
	assert(panicked || (nmail == 0 && nb == 0 && scanned == found))
}
