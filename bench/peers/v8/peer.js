// peer.js: the V8 (Node.js) peer of `reclaim bench`.
//
// Run: node --expose-gc peer.js WORKLOAD [N [RUNS]]
//
// Measurement. Each workload runs once untimed as a warm-up (which also
// lets the JIT compile it), then RUNS timed times. A run is timed with
// process.hrtime.bigint() (monotonic) around the whole run and prints one
// JSON line:
//
//   {"system":"v8","workload":W,"n":N,"ns_per_op":X,"ops":K}
//
// where ns_per_op = elapsed ns / ops. The workloads:
//
//   finalizer-setclear  N live objects; per round, registry.register(o, i, o)
//                       for all N, then registry.unregister(o) for all N (the
//                       object is its own unregister token). Rounds =
//                       ceil(1e6/N); an op is one object register+unregister.
//   finalizer-run       allocate N objects registered with a
//                       FinalizationRegistry whose callback counts, drop them,
//                       then gc() and yield to the event loop (setImmediate),
//                       where the callbacks run, until the count is N; gc()
//                       again whenever a turn brings no progress. An op is one
//                       object.
//   cleanup-run         the same as finalizer-run: FinalizationRegistry is the
//                       only flavor JavaScript has.
//   cleanup-stop        N live objects; per object, register then unregister
//                       at once. An op is one pair.
//   weak                N live objects; per object, new WeakRef(o).deref().
//                       An op is one object.
//   binary-trees        the Benchmarks Game program at depth N (single thread);
//                       ops = 1, plus "peak_rss_kib" (VmHWM of the process).
//
// The smallest plain object with two fields takes 40 bytes in V8 without
// pointer compression (map, properties, elements, two fields), the closest
// to the 32-byte objects of the other peers.
'use strict';

const fs = require('fs');

const OPS_TARGET = 1e6;

class Failure extends Error {}

let workload;
let n;
let counted = 0; // objects of the current run finalized so far

// The callback counts objects of the current run only; the held value is
// the run's generation, so an object of an earlier run finalized late does
// not count.
let gen = 0;
const registry = new FinalizationRegistry((held) => {
  if (held === gen) counted++;
});
const noop = new FinalizationRegistry(() => {});

function obj() {
  return { a: null, b: null };
}

function live() {
  const objs = new Array(n);
  for (let i = 0; i < n; i++) objs[i] = obj();
  return objs;
}

function rounds() {
  return Math.ceil(OPS_TARGET / n);
}

function setClear() {
  const objs = live();
  const r = rounds();
  for (let k = 0; k < r; k++) {
    for (let i = 0; i < n; i++) noop.register(objs[i], i, objs[i]);
    for (let i = 0; i < n; i++) noop.unregister(objs[i]);
  }
  return r * n;
}

function stop() {
  const objs = live();
  const r = rounds();
  for (let k = 0; k < r; k++) {
    for (let i = 0; i < n; i++) {
      noop.register(objs[i], i, objs[i]);
      noop.unregister(objs[i]);
    }
  }
  return r * n;
}

function garbage() {
  for (let i = 0; i < n; i++) registry.register(obj(), gen);
}

const turn = () => new Promise(setImmediate);

// run collects, then yields to the event loop, where the callbacks run,
// until all n have run; it collects again after a turn without progress and
// gives up after 100 such turns in a row.
async function run() {
  gen++;
  counted = 0;
  garbage();
  global.gc();
  for (let stalled = 0; counted < n; ) {
    const before = counted;
    await turn();
    if (counted > before) {
      stalled = 0;
      continue;
    }
    if (++stalled === 100) throw new Failure('finalizers stalled before reaching n');
    global.gc();
  }
  return n;
}

function weak() {
  const objs = live();
  const r = rounds();
  let miss = 0;
  for (let k = 0; k < r; k++) {
    for (let i = 0; i < n; i++) {
      if (new WeakRef(objs[i]).deref() !== objs[i]) miss++;
    }
  }
  if (miss !== 0) throw new Failure('weak reference lost a live object');
  return r * n;
}

class Node {
  constructor(left, right) {
    this.left = left;
    this.right = right;
  }
}

function tree(d) {
  return d > 0 ? new Node(tree(d - 1), tree(d - 1)) : new Node(null, null);
}

function check(t) {
  return t.left === null ? 1 : 1 + check(t.left) + check(t.right);
}

// binaryTrees follows the Benchmarks Game program without its output; the
// node counts are verified instead, which also keeps the work observable.
function binaryTrees() {
  const max = Math.max(6, n);
  let want = 0;
  let got = 0;
  got += check(tree(max + 1));
  want += 2 ** (max + 2) - 1;
  const longLived = tree(max);
  for (let d = 4; d <= max; d += 2) {
    const iters = 2 ** (max - d + 4);
    for (let i = 0; i < iters; i++) got += check(tree(d));
    want += iters * (2 ** (d + 1) - 1);
  }
  got += check(longLived);
  want += 2 ** (max + 1) - 1;
  if (got !== want) throw new Failure('binary-trees check mismatch');
  return 1;
}

function vmHWM() {
  try {
    const m = /^VmHWM:\s*(\d+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]);
  } catch {
    // not Linux: fall back below
  }
  return process.resourceUsage().maxRSS;
}

async function once() {
  switch (workload) {
    case 'finalizer-setclear': return setClear();
    case 'finalizer-run': return run();
    case 'cleanup-run': return run();
    case 'cleanup-stop': return stop();
    case 'weak': return weak();
    case 'binary-trees': return binaryTrees();
    default: throw new Failure('unknown workload');
  }
}

async function main(args) {
  if (args.length < 1 || args.length > 3) {
    console.error('usage: node --expose-gc peer.js WORKLOAD [N [RUNS]]');
    process.exit(2);
  }
  workload = args[0];
  const trees = workload === 'binary-trees';
  try {
    if (typeof global.gc !== 'function') throw new Failure('run node with --expose-gc');
    n = args.length > 1 ? Number(args[1]) : trees ? 18 : 1000;
    const runs = args.length > 2 ? Number(args[2]) : 1;
    if (!(Number.isInteger(n) && n > 0 && Number.isInteger(runs) && runs > 0)) {
      throw new Failure('N and RUNS must be positive integers');
    }
    await once(); // warm-up
    for (let i = 0; i < runs; i++) {
      const t0 = process.hrtime.bigint();
      const ops = await once();
      const ns = Number(process.hrtime.bigint() - t0);
      const line = { system: 'v8', workload, n, ns_per_op: Math.round((ns / ops) * 100) / 100, ops };
      if (trees) line.peak_rss_kib = vmHWM();
      console.log(JSON.stringify(line));
    }
  } catch (e) {
    if (!(e instanceof Failure)) throw e;
    console.log(JSON.stringify({ system: 'v8', workload, error: e.message }));
    process.exit(1);
  }
}

main(process.argv.slice(2));
