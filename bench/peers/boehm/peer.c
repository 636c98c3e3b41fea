/*
 * peer.c: the Boehm GC (bdw-gc) peer of `reclaim bench`.
 *
 * Build: gcc -O2 -o peer peer.c -lgc
 * Usage: peer WORKLOAD [N [RUNS]]
 *
 * Measurement. Each workload runs once untimed as a warm-up, then RUNS
 * timed times. A run is timed with clock_gettime(CLOCK_MONOTONIC) around
 * the whole run and prints one JSON line:
 *
 *   {"system":"boehm","workload":W,"n":N,"ns_per_op":X,"ops":K}
 *
 * where ns_per_op = elapsed ns / ops. The workloads:
 *
 *   finalizer-setclear  N live 32-byte objects; per round, GC_REGISTER_FINALIZER
 *                       on all N, then clear all N (register a null finalizer).
 *                       Rounds = ceil(1e6/N); an op is one object set+clear.
 *   finalizer-run       allocate N objects with GC_REGISTER_FINALIZER (ordered
 *                       finalization) counting into a counter, drop them, then
 *                       GC_gcollect + GC_invoke_finalizers until the counter is
 *                       N. Collections and finalizers also run on their own
 *                       during allocation (default settings). An op is one
 *                       object. See run for objects kept by false references.
 *   cleanup-run         as finalizer-run with GC_REGISTER_FINALIZER_NO_ORDER,
 *                       the unordered flavor closest to a cleanup.
 *   cleanup-stop        N live objects; per object, register a NO_ORDER
 *                       finalizer and clear it at once. An op is one pair.
 *   weak                N live objects; per object, register a disappearing
 *                       link holding the hidden pointer, read it back under the
 *                       allocator lock, unregister it. An op is one object.
 *   binary-trees        the Benchmarks Game program at depth N (single thread);
 *                       ops = 1, plus "peak_rss_kib" (VmHWM of the process).
 */
#include <gc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SYSTEM "boehm"
#define OPS_TARGET 1000000L

/* obj is 32 bytes: two pointer fields and padding. */
typedef struct obj {
	struct obj *a, *b;
	char pad[16];
} obj;

static const char *workload;
static long n;

/* Finalizers run on this thread, inside GC_invoke_finalizers or an
 * allocation, so these need no synchronization. A finalizer counts only
 * objects of the current run (its client data is the run's generation):
 * a stray object of an earlier run may be finalized late. */
static long gen;       /* current run of finalizer-run or cleanup-run */
static long finalized; /* objects of run gen finalized so far */
static long stray;     /* objects of run gen never finalized (see run) */
static double end_ns;  /* when set by a run, its end time */

static double now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void fail(const char *msg) {
	printf("{\"system\":\"" SYSTEM "\",\"workload\":\"%s\",\"error\":\"%s\"}\n",
	       workload, msg);
	exit(1);
}

/* live allocates n objects in a GC-scanned array so they stay reachable. */
static obj **live(void) {
	obj **objs = GC_MALLOC(n * sizeof *objs);
	for (long i = 0; i < n; i++)
		objs[i] = GC_MALLOC(sizeof(obj));
	return objs;
}

static void count(void *p, void *cd) {
	(void)p;
	if ((long)cd == gen)
		finalized++;
}

static long rounds(void) { return (OPS_TARGET + n - 1) / n; }

static long setclear(void) {
	obj **objs = live();
	long r = rounds();
	for (long k = 0; k < r; k++) {
		for (long i = 0; i < n; i++)
			GC_REGISTER_FINALIZER(objs[i], count, (void *)-1L, 0, 0);
		for (long i = 0; i < n; i++)
			GC_REGISTER_FINALIZER(objs[i], 0, 0, 0, 0);
	}
	return r * n;
}

static long stop(void) {
	obj **objs = live();
	long r = rounds();
	for (long k = 0; k < r; k++)
		for (long i = 0; i < n; i++) {
			GC_REGISTER_FINALIZER_NO_ORDER(objs[i], count, (void *)-1L, 0, 0);
			GC_REGISTER_FINALIZER_NO_ORDER(objs[i], 0, 0, 0, 0);
		}
	return r * n;
}

/* garbage allocates n finalizable objects and keeps none of them. It is
 * not inlined so that its pointers die with its frame. */
static __attribute__((noinline)) void garbage(int ordered) {
	for (long i = 0; i < n; i++) {
		obj *p = GC_MALLOC(sizeof(obj));
		if (ordered)
			GC_REGISTER_FINALIZER(p, count, (void *)gen, 0, 0);
		else
			GC_REGISTER_FINALIZER_NO_ORDER(p, count, (void *)gen, 0, 0);
	}
}

/* scrub overwrites the stack below the caller, where garbage left its
 * pointers; the collector scans that area conservatively. */
static __attribute__((noinline)) void scrub(void) {
	volatile long buf[2048];
	for (int i = 0; i < 2048; i++)
		buf[i] = 0;
	(void)buf;
}

/* run times allocation, registration, collection and finalization of n
 * objects. A conservative collector may find a false reference to an
 * object and keep it: after 10 collections in a row without progress, up
 * to n/1000+1 such objects are reported as "unfinalized" and the run ends
 * at the last finalizer; more is an error. */
static long run(int ordered) {
	gen++;
	finalized = 0;
	garbage(ordered);
	scrub();
	end_ns = now_ns();
	for (int stalled = 0; finalized < n && stalled < 10; ) {
		long before = finalized;
		GC_gcollect();
		GC_invoke_finalizers();
		if (finalized > before) {
			end_ns = now_ns();
			stalled = 0;
		} else {
			stalled++;
		}
	}
	stray = n - finalized;
	if (stray > n / 1000 + 1)
		fail("finalizers stalled before reaching n");
	return n;
}

static void *reveal(void *link) {
	return GC_REVEAL_POINTER(*(GC_hidden_pointer *)link);
}

static long weak(void) {
	obj **objs = live();
	/* Links live outside the GC heap; they hold hidden pointers only. */
	GC_hidden_pointer *links = malloc(n * sizeof *links);
	long r = rounds(), miss = 0;
	for (long k = 0; k < r; k++)
		for (long i = 0; i < n; i++) {
			links[i] = GC_HIDE_POINTER(objs[i]);
			GC_general_register_disappearing_link((void **)&links[i], objs[i]);
			if (GC_call_with_alloc_lock(reveal, &links[i]) != objs[i])
				miss++;
			GC_unregister_disappearing_link((void **)&links[i]);
		}
	free(links);
	if (miss)
		fail("weak link lost a live object");
	return r * n;
}

typedef struct node {
	struct node *l, *r;
} node;

static node *tree(int d) {
	node *t = GC_MALLOC(sizeof *t);
	if (d > 0) {
		t->l = tree(d - 1);
		t->r = tree(d - 1);
	}
	return t;
}

static long check(node *t) { return t->l ? 1 + check(t->l) + check(t->r) : 1; }

/* binarytrees follows the Benchmarks Game program without its output; the
 * node counts are verified instead, which also keeps the work observable. */
static long binarytrees(void) {
	int max = n < 6 ? 6 : n;
	long want = 0, got = 0;
	got += check(tree(max + 1));
	want += (2L << (max + 1)) - 1;
	node *longlived = tree(max);
	for (int d = 4; d <= max; d += 2) {
		long iters = 1L << (max - d + 4);
		for (long i = 0; i < iters; i++)
			got += check(tree(d));
		want += iters * ((2L << d) - 1);
	}
	got += check(longlived);
	want += (2L << max) - 1;
	if (got != want)
		fail("binary-trees check mismatch");
	return 1;
}

static long vmhwm(void) {
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmHWM: %ld", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

static long once(void) {
	if (!strcmp(workload, "finalizer-setclear"))
		return setclear();
	if (!strcmp(workload, "finalizer-run"))
		return run(1);
	if (!strcmp(workload, "cleanup-run"))
		return run(0);
	if (!strcmp(workload, "cleanup-stop"))
		return stop();
	if (!strcmp(workload, "weak"))
		return weak();
	if (!strcmp(workload, "binary-trees"))
		return binarytrees();
	fail("unknown workload");
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: peer WORKLOAD [N [RUNS]]\n");
		return 2;
	}
	workload = argv[1];
	int trees = !strcmp(workload, "binary-trees");
	n = argc > 2 ? atol(argv[2]) : trees ? 18 : 1000;
	long runs = argc > 3 ? atol(argv[3]) : 1;
	if (n <= 0 || runs <= 0)
		fail("N and RUNS must be positive");

	GC_INIT();
	once(); /* warm-up */
	for (long i = 0; i < runs; i++) {
		end_ns = 0;
		stray = 0;
		double t0 = now_ns();
		long ops = once();
		double ns = (end_ns ? end_ns : now_ns()) - t0;
		printf("{\"system\":\"" SYSTEM "\",\"workload\":\"%s\",\"n\":%ld,"
		       "\"ns_per_op\":%.2f,\"ops\":%ld",
		       workload, n, ns / ops, ops);
		if (trees)
			printf(",\"peak_rss_kib\":%ld", vmhwm());
		if (stray)
			printf(",\"unfinalized\":%ld", stray);
		printf("}\n");
		fflush(stdout);
	}
	return 0;
}
