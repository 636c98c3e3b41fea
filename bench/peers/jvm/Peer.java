/*
 * Peer.java: the JVM peer of `reclaim bench`.
 *
 * Build and run: javac -d OUT Peer.java && java -cp OUT Peer WORKLOAD [N [RUNS]]
 * or, without a build step: java Peer.java WORKLOAD [N [RUNS]]
 *
 * Measurement. Each workload runs once untimed as a warm-up (which also
 * lets the JIT compile it), then RUNS timed times. A run is timed with
 * System.nanoTime() around the whole run and prints one JSON line:
 *
 *   {"system":"jvm","workload":W,"n":N,"ns_per_op":X,"ops":K}
 *
 * where ns_per_op = elapsed ns / ops. The workloads:
 *
 *   finalizer-setclear  N live 32-byte objects; per round, a PhantomReference
 *                       (with a ReferenceQueue) is made for all N, then all N
 *                       are cleared. Java cannot remove a finalize() method or
 *                       cancel a Cleanable without running it, so a phantom
 *                       reference is the registration that can be undone.
 *                       Rounds = ceil(1e6/N); an op is one object set+clear.
 *   finalizer-run       allocate N objects of a class with finalize(), which
 *                       counts down a latch, drop them, then System.gc() until
 *                       the finalizer thread has run all N. An op is one object.
 *   cleanup-run         as finalizer-run, with Cleaner.register and a cleaning
 *                       action that counts down the latch.
 *   cleanup-stop        N live objects; per object, Cleaner.register then
 *                       Cleanable.clean(). clean() is the only way to cancel a
 *                       Cleanable and it runs the action, so the action is a
 *                       no-op. An op is one register+clean pair.
 *   weak                N live objects; per object, new WeakReference(o) is
 *                       kept in an array and read back with get(). An op is
 *                       one object.
 *   binary-trees        the Benchmarks Game program at depth N (single thread);
 *                       ops = 1, plus "peak_rss_kib" (VmHWM of the process).
 */

import java.lang.ref.Cleaner;
import java.lang.ref.PhantomReference;
import java.lang.ref.ReferenceQueue;
import java.lang.ref.WeakReference;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

public class Peer {
    static final long OPS_TARGET = 1_000_000;
    static final Cleaner CLEANER = Cleaner.create();
    static final ReferenceQueue<Obj> QUEUE = new ReferenceQueue<>();
    static final Runnable NOOP = () -> {};

    /** Obj is 32 bytes with compressed oops: a 12-byte header, two references, a long. */
    static class Obj {
        Object a, b;
        long pad;
    }

    /** Fin counts down its run's latch when finalized. */
    static final class Fin extends Obj {
        final CountDownLatch done;

        Fin(CountDownLatch done) {
            this.done = done;
        }

        @Override
        @SuppressWarnings({"deprecation", "removal"})
        protected void finalize() {
            done.countDown();
        }
    }

    static final class Failure extends RuntimeException {
        Failure(String msg) {
            super(msg);
        }
    }

    static String workload;
    static int n;

    static Obj[] live() {
        Obj[] objs = new Obj[n];
        for (int i = 0; i < n; i++) objs[i] = new Obj();
        return objs;
    }

    static long rounds() {
        return (OPS_TARGET + n - 1) / n;
    }

    static long setClear() {
        Obj[] objs = live();
        @SuppressWarnings("unchecked")
        PhantomReference<Obj>[] refs = new PhantomReference[n];
        long r = rounds();
        for (long k = 0; k < r; k++) {
            for (int i = 0; i < n; i++) refs[i] = new PhantomReference<>(objs[i], QUEUE);
            for (int i = 0; i < n; i++) refs[i].clear();
        }
        return r * n;
    }

    static long stop() {
        Obj[] objs = live();
        long r = rounds();
        for (long k = 0; k < r; k++) {
            for (int i = 0; i < n; i++) CLEANER.register(objs[i], NOOP).clean();
        }
        return r * n;
    }

    /** garbage allocates n objects whose finalizers or cleanups count down done. */
    static void garbage(boolean finalizer, CountDownLatch done) {
        for (int i = 0; i < n; i++) {
            if (finalizer) {
                new Fin(done);
            } else {
                CLEANER.register(new Obj(), done::countDown);
            }
        }
    }

    static long run(boolean finalizer) throws InterruptedException {
        CountDownLatch done = new CountDownLatch(n);
        garbage(finalizer, done);
        // Finalizers and cleanups run on their own thread once a collection
        // has found the objects unreachable: collect, wait while they make
        // progress, collect again when they make none, and give up after 100
        // such collections in a row.
        System.gc();
        long before = n;
        for (int stalled = 0; !done.await(10, TimeUnit.MILLISECONDS); ) {
            long left = done.getCount();
            if (left < before) {
                before = left;
                stalled = 0;
                continue;
            }
            if (++stalled == 100) throw new Failure("finalizers stalled before reaching n");
            System.gc();
        }
        return n;
    }

    static long weak() {
        Obj[] objs = live();
        @SuppressWarnings("unchecked")
        WeakReference<Obj>[] refs = new WeakReference[n];
        long r = rounds(), miss = 0;
        for (long k = 0; k < r; k++) {
            for (int i = 0; i < n; i++) {
                refs[i] = new WeakReference<>(objs[i]);
                if (refs[i].get() != objs[i]) miss++;
            }
        }
        if (miss != 0) throw new Failure("weak reference lost a live object");
        return r * n;
    }

    static final class Node {
        Node left, right;
    }

    static Node tree(int d) {
        Node t = new Node();
        if (d > 0) {
            t.left = tree(d - 1);
            t.right = tree(d - 1);
        }
        return t;
    }

    static long check(Node t) {
        return t.left == null ? 1 : 1 + check(t.left) + check(t.right);
    }

    /**
     * binaryTrees follows the Benchmarks Game program without its output; the
     * node counts are verified instead, which also keeps the work observable.
     */
    static long binaryTrees() {
        int max = Math.max(6, n);
        long want = 0, got = 0;
        got += check(tree(max + 1));
        want += (2L << (max + 1)) - 1;
        Node longLived = tree(max);
        for (int d = 4; d <= max; d += 2) {
            long iters = 1L << (max - d + 4);
            for (long i = 0; i < iters; i++) got += check(tree(d));
            want += iters * ((2L << d) - 1);
        }
        got += check(longLived);
        want += (2L << max) - 1;
        if (got != want) throw new Failure("binary-trees check mismatch");
        return 1;
    }

    static long vmHWM() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        } catch (Exception e) {
            // not Linux: no figure
        }
        return -1;
    }

    static long once() throws InterruptedException {
        switch (workload) {
            case "finalizer-setclear": return setClear();
            case "finalizer-run": return run(true);
            case "cleanup-run": return run(false);
            case "cleanup-stop": return stop();
            case "weak": return weak();
            case "binary-trees": return binaryTrees();
            default: throw new Failure("unknown workload");
        }
    }

    public static void main(String[] args) throws InterruptedException {
        if (args.length < 1 || args.length > 3) {
            System.err.println("usage: Peer WORKLOAD [N [RUNS]]");
            System.exit(2);
        }
        workload = args[0];
        boolean trees = workload.equals("binary-trees");
        try {
            n = args.length > 1 ? Integer.parseInt(args[1]) : trees ? 18 : 1000;
            int runs = args.length > 2 ? Integer.parseInt(args[2]) : 1;
            if (n <= 0 || runs <= 0) throw new Failure("N and RUNS must be positive");
            once(); // warm-up
            for (int i = 0; i < runs; i++) {
                long t0 = System.nanoTime();
                long ops = once();
                double ns = System.nanoTime() - t0;
                String line = String.format(Locale.ROOT,
                        "{\"system\":\"jvm\",\"workload\":\"%s\",\"n\":%d,\"ns_per_op\":%.2f,\"ops\":%d",
                        workload, n, ns / ops, ops);
                if (trees) line += ",\"peak_rss_kib\":" + vmHWM();
                System.out.println(line + "}");
            }
        } catch (Failure | NumberFormatException e) {
            System.out.printf("{\"system\":\"jvm\",\"workload\":\"%s\",\"error\":\"%s\"}%n",
                    workload, e instanceof Failure ? e.getMessage() : "N and RUNS must be integers");
            System.exit(1);
        }
    }
}
