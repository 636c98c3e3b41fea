package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/reclaimgc/reclaim"
)

// The demo's object graph: an in-memory full-text index.
//
//	index (pinned) ──docs──▶ document ──body──▶ blob (finalizer: releases its external bytes)
//	      │                     └──words──▶ term
//	      └──terms──▶ term ──postings (weak)──▶ document
//
//	cursor (cleanup: closes its handle) ──first──▶ hit ──next──▶ hit ... ──doc──▶ document
//
// Documents come and go; terms live as long as the index. A query builds a
// cursor over a list of hits, which lives until the next safepoint or two;
// the cursors of recent queries are cached through weak refs, so a repeated
// query is answered from the cache as long as its cursor is still alive.

// index is the root of the long-lived graph.
type index struct {
	docs  []reclaim.Ref[document] // live documents; a deleted one is swap-removed
	terms []reclaim.Ref[term]     // the vocabulary, never shrinks
}

// document is one indexed text. Its blob holds the text outside the heap.
type document struct {
	id    int64
	title string
	words []reclaim.Ref[term]
	body  reclaim.Ref[blob]
}

// blob stands for a resource held outside the heap (a file, a C buffer): its
// size is counted with AddExternal while it is open, and its finalizer
// closes it.
type blob struct {
	id   int64
	size int64
}

// term is one word of the vocabulary with the documents that contain it.
// Postings are weak: deleting a document from the index is enough to let
// it go, and a query drops the postings it finds cleared.
type term struct {
	word     string
	postings []reclaim.Weak[document]
}

// hit is one query result.
type hit struct {
	doc   reclaim.Ref[document]
	score float64
	next  reclaim.Ref[hit]
}

// cursor is a query's result set. It stands for a handle (a database
// cursor, say) that must be closed: explicitly with close, or by its cleanup
// once it is unreachable.
type cursor struct {
	id    int64
	first reclaim.Ref[hit]
	hits  int
}

var vocabulary = []string{
	"heap", "span", "mark", "sweep", "root", "pin", "finalizer", "cleanup", "weak",
	"handle", "mutator", "safepoint", "pacer", "limit", "cycle", "pause", "queue",
	"goroutine", "worker", "slab", "generation", "special", "resurrect", "ephemeron",
	"trace", "layout", "object", "ref", "graph", "churn", "drain", "close",
}

// demoCounters are the demo's own counts, next to the heap's Stats. The
// finalizer goroutine and the cleanup pool update them concurrently with
// the churning mutator, so they are atomics.
type demoCounters struct {
	blobsOpen     atomic.Int64 // incremented by the mutator on open, decremented by the blob finalizer
	blobsClosed   atomic.Int64 // blob finalizers run
	bytesReleased atomic.Int64 // external bytes given back by blob finalizers
	cursorsOpen   atomic.Int64 // incremented on open, decremented by close or the cursor cleanup
	cursorsByGC   atomic.Int64 // cursors closed by their cleanup
}

// demoTally holds counts only the churning goroutine touches.
type demoTally struct {
	allocated     int64 // objects allocated by the churn
	docsAdded     int64
	docsDeleted   int64
	queries       int64
	cacheHits     int64
	cacheCleared  int64 // cached cursors found gone
	postsCleared  int64 // weak postings found cleared
	cursorsClosed int64 // cursors closed explicitly (cleanup stopped)
	limitRefused  int64 // allocations refused by the memory limit, even after a collection
	collects      int64 // collections the demo asked for after hitting the limit
}

type demoConfig struct {
	duration time.Duration
	objects  int64
	limit    int64
	live     int
	seed     uint64
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reclaim demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg demoConfig
	fs.DurationVar(&cfg.duration, "duration", 2*time.Second, "churn for at most this long")
	fs.Int64Var(&cfg.objects, "objects", 300_000, "churn until this many objects were allocated")
	fs.Int64Var(&cfg.limit, "limit", 48<<20, "the heap's memory limit in bytes, external bytes included (0: none)")
	fs.IntVar(&cfg.live, "live", 1000, "documents kept in the index")
	fs.Uint64Var(&cfg.seed, "seed", 1, "random seed")
	verbose := fs.Bool("v", false, "log the heap's debug messages: every cycle, every memory-limit hit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: reclaim demo [flags]\n\n"+
			"Builds a heap holding a document index, churns it, and prints what the collector did.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || cfg.duration <= 0 || cfg.objects <= 0 || cfg.live <= 0 || cfg.limit < 0 {
		fmt.Fprintf(stderr, "reclaim demo: bad arguments\n")
		fs.Usage()
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := demo(ctx, cfg, log, stdout); err != nil {
		log.Error("demo failed", "err", err)
		return 1
	}
	return 0
}

// demo runs the churn and prints its report to w.
func demo(ctx context.Context, cfg demoConfig, log *slog.Logger, w io.Writer) error {
	var c demoCounters
	var panics atomic.Int64
	h := reclaim.NewHeap(reclaim.Options{
		MemoryLimit: cfg.limit,
		Logger:      log,
		OnPanic: func(p *reclaim.CallbackPanic) {
			panics.Add(1)
			log.Error("callback panicked", "kind", p.Kind, "value", p.Value)
		},
	})
	var goBefore runtime.MemStats
	runtime.ReadMemStats(&goBefore)
	log.Info("demo starting", "duration", cfg.duration, "objects", cfg.objects, "limit", cfg.limit, "live_docs", cfg.live)

	m := h.Attach()
	d := &demoRun{h: h, m: m, c: &c, log: log, rng: rand.New(rand.NewPCG(cfg.seed, 0x5eed)),
		cache: make(map[string]reclaim.Weak[cursor])}
	// The index and its vocabulary are allocated with TryNew: a memory
	// limit too small for them is an error, not a panic.
	tooSmall := func(err error) error {
		m.Detach()
		_ = h.Close()
		return fmt.Errorf("the memory limit (%d bytes) is too small for the index: %w", cfg.limit, err)
	}
	root, err := reclaim.TryNew[index](m)
	if err != nil {
		return tooSmall(err)
	}
	d.root = root
	h.Pin(d.root.Object())
	for _, word := range vocabulary {
		t, err := reclaim.TryNew[term](m)
		if err != nil {
			return tooSmall(err)
		}
		t.Get(m).word = word
		d.root.Get(m).terms = append(d.root.Get(m).terms, t)
	}

	start := time.Now()
	deadline := start.Add(cfg.duration)
	for iter := 0; d.t.allocated < cfg.objects && ctx.Err() == nil; iter++ {
		if iter%64 == 0 && time.Now().After(deadline) {
			break
		}
		m.Safepoint() // no refs are held in Go variables from here on
		if len(d.root.Get(m).docs) < cfg.live || d.rng.IntN(3) == 0 {
			d.addDocument()
		}
		if len(d.root.Get(m).docs) > cfg.live {
			d.deleteDocument()
		}
		d.query()
	}
	churn := time.Since(start)
	// Stats brings a mutator's allocation counts up to date when it
	// detaches (or at a collection), not at every allocation.
	m.Detach()
	during := h.Stats()
	m = h.Attach()
	d.m = m

	// Drop the index: every document becomes garbage, then collect twice
	// (the second cycle frees the blobs whose finalizers the first queued)
	// and wait for the finalizers and cleanups to run.
	h.Unpin(d.root.Object())
	d.root = reclaim.Ref[index]{}
	m.Collect()
	m.Detach()
	if err := drain(ctx, h); err != nil {
		return err
	}
	m = h.Attach()
	m.Collect()
	m.Detach()
	if err := drain(ctx, h); err != nil {
		return err
	}
	before := h.Stats()
	var goAfter runtime.MemStats
	runtime.ReadMemStats(&goAfter)

	if err := h.Close(); err != nil {
		return err
	}
	after := h.Stats()
	log.Info("demo done", "churn", churn.Round(time.Millisecond), "cycles", after.Cycles)

	printDemo(w, cfg, churn, &d.t, &c, during, before, after, goAfter.NumGC-goBefore.NumGC,
		time.Duration(goAfter.PauseTotalNs-goBefore.PauseTotalNs), panics.Load())
	if after.ExternalBytes != 0 || c.blobsOpen.Load() != 0 || c.cursorsOpen.Load() != 0 {
		return fmt.Errorf("not everything was released: external bytes %d, blobs open %d, cursors open %d",
			after.ExternalBytes, c.blobsOpen.Load(), c.cursorsOpen.Load())
	}
	return nil
}

// drain waits for queued finalizers and cleanups, for at most 10 seconds.
func drain(ctx context.Context, h *reclaim.Heap) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return h.Drain(ctx)
}

// demoRun is the churning goroutine's state. Only refs reachable from root
// survive a safepoint; the cache holds weak refs only.
type demoRun struct {
	h     *reclaim.Heap
	m     *reclaim.Mutator
	c     *demoCounters
	t     demoTally
	log   *slog.Logger
	rng   *rand.Rand
	root  reclaim.Ref[index]              // pinned
	cache map[string]reclaim.Weak[cursor] // query word -> its last cursor
	ids   int64
}

// alloc allocates a T. When the memory limit refuses, it collects once (the
// blobs of deleted documents give their bytes back as their finalizers run)
// and tries again; ok is false if the limit still refuses.
//
// A collection is a safepoint: callers must not hold refs across alloc
// except through root.
func alloc[T any](d *demoRun) (r reclaim.Ref[T], ok bool) {
	r, err := reclaim.TryNew[T](d.m)
	if err == nil {
		d.t.allocated++
		return r, true
	}
	if !errors.Is(err, reclaim.ErrMemoryLimit) {
		panic(err)
	}
	d.log.Debug("memory limit hit; collecting", "err", err)
	d.t.collects++
	d.m.Collect()
	r, err = reclaim.TryNew[T](d.m)
	if err != nil {
		d.t.limitRefused++
		return r, false
	}
	d.t.allocated++
	return r, true
}

// addDocument indexes a new document with a blob of 4–64 KiB.
func (d *demoRun) addDocument() {
	m := d.m
	// alloc may collect, so each new object is stored under root before the
	// next allocation.
	doc, ok := alloc[document](d)
	if !ok {
		return
	}
	d.ids++
	idx := d.root.Get(m)
	idx.docs = append(idx.docs, doc)
	dp := doc.Get(m)
	dp.id = d.ids
	dp.title = fmt.Sprintf("doc-%d", d.ids)
	for range 3 + d.rng.IntN(6) {
		t := idx.terms[d.rng.IntN(len(idx.terms))]
		dp.words = append(dp.words, t)
		tp := t.Get(m)
		tp.postings = append(tp.postings, reclaim.MakeWeak(m, doc))
	}
	d.t.docsAdded++

	b, ok := alloc[blob](d)
	if !ok {
		return // a document without a body; the index still holds it
	}
	dp = doc.Get(m) // alloc may have collected; doc is reachable from root
	dp.body = b
	bp := b.Get(m)
	bp.id = d.ids
	bp.size = int64(4<<10 + d.rng.IntN(60<<10))
	d.h.AddExternal(bp.size)
	d.c.blobsOpen.Add(1)
	c := d.c
	h := d.h
	reclaim.SetFinalizer(m, b, func(m *reclaim.Mutator, r reclaim.Ref[blob]) {
		size := r.Get(m).size
		h.AddExternal(-size)
		c.blobsOpen.Add(-1)
		c.blobsClosed.Add(1)
		c.bytesReleased.Add(size)
	})
}

// deleteDocument drops a random document from the index. Its postings go
// stale on their own: they are weak.
func (d *demoRun) deleteDocument() {
	idx := d.root.Get(d.m)
	i := d.rng.IntN(len(idx.docs))
	last := len(idx.docs) - 1
	idx.docs[i] = idx.docs[last]
	idx.docs[last] = reclaim.Ref[document]{}
	idx.docs = idx.docs[:last]
	d.t.docsDeleted++
}

// query looks a word up: from the cache if its last cursor is still alive,
// otherwise by walking the term's postings into a new cursor. Half the
// cursors are closed explicitly; the rest are left to their cleanups.
func (d *demoRun) query() {
	m := d.m
	d.t.queries++
	idx := d.root.Get(m)
	t := idx.terms[d.rng.IntN(len(idx.terms))]
	word := t.Get(m).word
	if w, ok := d.cache[word]; ok {
		if cur := w.Value(m); !cur.IsNil() {
			d.t.cacheHits++
			_ = cur.Get(m).hits
			return
		}
		d.t.cacheCleared++
		delete(d.cache, word)
	}

	// Nothing allocated below is reachable from root, so only the first
	// allocation may collect; the hits are allocated with TryNew, which is
	// not a safepoint. If the limit refuses a hit, the list stays short.
	cur, ok := alloc[cursor](d)
	if !ok {
		return
	}
	// alloc may have collected (only when the limit was hit): t is a term,
	// reachable from root, so it is still valid; pointers from Get are not,
	// and are taken again below.
	d.ids++
	id := d.ids
	cur.Get(m).id = id
	d.c.cursorsOpen.Add(1)
	c := d.c
	cleanup := reclaim.AddCleanup(m, cur, func(int64) {
		c.cursorsOpen.Add(-1)
		c.cursorsByGC.Add(1)
	}, id)

	tp := t.Get(m)
	live := tp.postings[:0]
	for _, p := range tp.postings {
		doc := p.Value(m)
		if doc.IsNil() {
			d.t.postsCleared++
			continue
		}
		live = append(live, p)
		if d.rng.IntN(4) != 0 {
			continue
		}
		hr, err := reclaim.TryNew[hit](m) // never collects: TryNew is not a safepoint
		if err != nil {
			d.t.limitRefused++
			break
		}
		d.t.allocated++
		hp := hr.Get(m)
		hp.doc = doc
		hp.score = d.rng.Float64()
		cp := cur.Get(m)
		hp.next = cp.first
		cp.first = hr
		cp.hits++
	}
	clear(tp.postings[len(live):])
	tp.postings = live

	if d.rng.IntN(2) == 0 {
		cleanup.Stop()
		d.c.cursorsOpen.Add(-1)
		d.t.cursorsClosed++
		return
	}
	d.cache[word] = reclaim.MakeWeak(m, cur)
}

// printDemo writes the demo's report.
func printDemo(w io.Writer, cfg demoConfig, churn time.Duration, t *demoTally, c *demoCounters,
	during, before, after reclaim.Stats, goGCs uint32, goPause time.Duration, panics int64) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	limit := "none"
	if cfg.limit > 0 {
		limit = mib(cfg.limit)
	}
	fmt.Fprintf(w, "reclaim demo: a document index churned for %v (%d objects allocated, %.1f M objects/s)\n\n",
		churn.Round(time.Millisecond), t.allocated, float64(t.allocated)/churn.Seconds()/1e6)
	fmt.Fprintf(tw, "churn\t%d documents added, %d deleted, %d queries\n", t.docsAdded, t.docsDeleted, t.queries)
	fmt.Fprintf(tw, "collections\t%d cycles, pause total %v, last pause %v, last mark %v\n",
		before.Cycles, before.PauseTotal.Round(time.Microsecond), before.PauseLast.Round(time.Microsecond),
		before.LastMark.Round(time.Microsecond))
	fmt.Fprintf(tw, "live heap\t%d objects, %s live, goal %s, %s external, at the end of the churn\n",
		during.HeapObjects, mib(during.HeapLiveBytes), mib(during.HeapGoal), mib(during.ExternalBytes))
	fmt.Fprintf(tw, "objects\t%d allocated, %d freed; %d live once the index is dropped and collected (%s in spans)\n",
		before.Allocated, before.Freed, before.HeapObjects, mib(before.SpanBytes))
	fmt.Fprintf(tw, "finalizers\t%d queued, %d run: %d blobs closed, %s of external memory released\n",
		before.FinalizersQueued, before.FinalizersExecuted, c.blobsClosed.Load(), mib(c.bytesReleased.Load()))
	fmt.Fprintf(tw, "cleanups\t%d queued, %d run: cursors closed by cleanup %d, explicitly %d (cleanup stopped)\n",
		before.CleanupsQueued, before.CleanupsExecuted, c.cursorsByGC.Load(), t.cursorsClosed)
	fmt.Fprintf(tw, "weak refs\t%d postings found cleared; cache: %d hits, %d cursors found collected\n",
		t.postsCleared, t.cacheHits, t.cacheCleared)
	fmt.Fprintf(tw, "memory limit\t%s: %d allocations refused, %d collections forced, %d still refused after collecting\n",
		limit, before.MemoryLimitHits, t.collects, t.limitRefused)
	fmt.Fprintf(tw, "panics\t%d in finalizers and cleanups\n", panics)
	fmt.Fprintf(tw, "go runtime GC\t%d cycles, %v paused during the demo (the heap's refs are not Go pointers)\n",
		goGCs, goPause.Round(time.Microsecond))
	tw.Flush()
	fmt.Fprintf(w, "\nafter Close:\n")
	fmt.Fprintf(tw, "released\texternal bytes %d, blobs open %d, cursors open %d\n",
		after.ExternalBytes, c.blobsOpen.Load(), c.cursorsOpen.Load())
	fmt.Fprintf(tw, "finalizers\t%d queued, %d run in all\n", after.FinalizersQueued, after.FinalizersExecuted)
	fmt.Fprintf(tw, "cleanups\t%d queued, %d run in all\n", after.CleanupsQueued, after.CleanupsExecuted)
	tw.Flush()
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
