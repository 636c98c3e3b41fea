package reclaim_test

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

// goroutineLabels returns the label lines of the goroutine profile's
// records (debug=1) whose stack mentions every one of funcs.
func goroutineLabels(t *testing.T, funcs ...string) []string {
	t.Helper()
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rec := range strings.Split(b.String(), "\n\n") {
		match := true
		for _, f := range funcs {
			if !strings.Contains(rec, f) {
				match = false
			}
		}
		if !match {
			continue
		}
		labels := ""
		for _, line := range strings.Split(rec, "\n") {
			if strings.HasPrefix(line, "# labels: ") {
				labels = line
			}
		}
		out = append(out, labels)
	}
	return out
}

// wantWorkerLabels fails t unless every label line names the worker and a heap.
func wantWorkerLabels(t *testing.T, what string, lines []string, worker string) {
	t.Helper()
	if len(lines) == 0 {
		t.Errorf("%s: no goroutine found in the profile", what)
	}
	for _, l := range lines {
		if !strings.Contains(l, `"reclaim.worker":"`+worker+`"`) || !strings.Contains(l, `"reclaim.heap":"`) {
			t.Errorf("%s goroutine labels %q; want reclaim.worker=%s and reclaim.heap", what, l, worker)
		}
	}
}

type obsLeaf struct{ v int }

//go:noinline
func obsBlockingFinalizer(in chan<- struct{}, release <-chan struct{}) {
	in <- struct{}{}
	<-release
}

//go:noinline
func obsBlockingCleanup(in chan<- struct{}, release <-chan struct{}) {
	in <- struct{}{}
	<-release
}

// TestFinalizerAndCleanupGoroutineLabels: the finalizer goroutine and a
// cleanup goroutine, caught while they run the embedder's function, carry
// the pprof labels reclaim.worker and reclaim.heap.
func TestFinalizerAndCleanupGoroutineLabels(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, Logger: quietLogger()})
	m := h.Attach()
	defer m.Detach()
	in := make(chan struct{})
	release := make(chan struct{})
	func() {
		r := reclaim.New[obsLeaf](m)
		reclaim.SetFinalizer(m, r, func(*reclaim.Mutator, reclaim.Ref[obsLeaf]) { obsBlockingFinalizer(in, release) })
		c := reclaim.New[obsLeaf](m)
		reclaim.AddCleanup(m, c, func(int) { obsBlockingCleanup(in, release) }, 0)
	}()
	// One collection queues both. A second would wait for the finalizer
	// goroutine, a mutator held in the blocked call, to reach a safepoint.
	m.Collect()
	<-in
	<-in
	wantWorkerLabels(t, "finalizer", goroutineLabels(t, "obsBlockingFinalizer"), "finalizer")
	wantWorkerLabels(t, "cleanup", goroutineLabels(t, "obsBlockingCleanup"), "cleanup")
	close(release)
	if err := m.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// recHandler records the records it handles.
type recHandler struct {
	mu   *sync.Mutex
	recs *[]string
	attr []slog.Attr
}

func newRecHandler() recHandler {
	return recHandler{mu: new(sync.Mutex), recs: new([]string)}
}

func (r recHandler) Enabled(context.Context, slog.Level) bool { return true }
func (r recHandler) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	*r.recs = append(*r.recs, rec.Level.String()+" "+rec.Message)
	r.mu.Unlock()
	return nil
}
func (r recHandler) WithAttrs(as []slog.Attr) slog.Handler {
	r.attr = append(append([]slog.Attr(nil), r.attr...), as...)
	return r
}
func (r recHandler) WithGroup(string) slog.Handler { return r }
func (r recHandler) records() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), *r.recs...)
}

type obsCyc struct {
	next reclaim.Ref[obsCyc]
}

// TestLogsGoOnlyToLogger: with Options.Logger set, the heap's diagnostics
// (a panicking finalizer and cleanup, a finalizable cycle and an
// unrunnable cleanup under Debug, Close with a mutator attached, the
// cycle's debug line) all go to that Logger, and nothing to slog's default
// logger or the log package's output.
func TestLogsGoOnlyToLogger(t *testing.T) {
	def := newRecHandler()
	oldDefault := slog.Default()
	slog.SetDefault(slog.New(def))
	var logOut bytes.Buffer
	oldOut, oldFlags := log.Writer(), log.Flags()
	log.SetOutput(&logOut)
	defer func() {
		slog.SetDefault(oldDefault)
		log.SetOutput(oldOut)
		log.SetFlags(oldFlags)
	}()

	mine := newRecHandler()
	h := reclaim.NewHeap(reclaim.Options{GCPercent: -1, Debug: true, Logger: slog.New(mine)})
	m := h.Attach()
	func() {
		r := reclaim.New[obsLeaf](m)
		reclaim.SetFinalizer(m, r, func(*reclaim.Mutator, reclaim.Ref[obsLeaf]) { panic("obs: finalizer") })
		c := reclaim.New[obsLeaf](m)
		reclaim.AddCleanup(m, c, func(int) { panic("obs: cleanup") }, 0)
		a, b := reclaim.New[obsCyc](m), reclaim.New[obsCyc](m)
		a.Get(m).next, b.Get(m).next = b, a
		reclaim.SetFinalizer(m, a, func(*reclaim.Mutator, reclaim.Ref[obsCyc]) {})
		reclaim.SetFinalizer(m, b, func(*reclaim.Mutator, reclaim.Ref[obsCyc]) {})
		u, v := reclaim.New[obsCyc](m), reclaim.New[obsCyc](m)
		v.Get(m).next = u
		reclaim.AddCleanup(m, u, func(reclaim.Ref[obsCyc]) {}, v)
	}()
	m.Collect()
	if err := m.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.Collect()
	if err := h.Close(); err != nil { // m still attached: a warning
		t.Fatal(err)
	}
	got := strings.Join(mine.records(), "\n")
	for _, want := range []string{"finalizer panicked", "cleanup panicked", "reference cycle", "cleanup can never run", "mutators still attached", "reclaim: cycle"} {
		if !strings.Contains(got, want) {
			t.Errorf("Logger got no record mentioning %q; it got:\n%s", want, got)
		}
	}
	if d := def.records(); len(d) != 0 {
		t.Errorf("slog's default logger got records with Options.Logger set: %q", d)
	}
	if logOut.Len() != 0 {
		t.Errorf("the log package's output got %q with Options.Logger set", logOut.String())
	}
}

// TestStatsConsistentAfterDrain: after collections and Drain with the
// mutator detached, the counters agree with one another.
func TestStatsConsistentAfterDrain(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, Logger: quietLogger()})
	m := h.Attach()
	keep := reclaim.New[obsCyc](m)
	h.Pin(keep.Object())
	var fins, cleans atomic.Int64
	for i := 0; i < 1000; i++ {
		r := reclaim.New[obsLeaf](m)
		switch i % 3 {
		case 0:
			reclaim.SetFinalizer(m, r, func(*reclaim.Mutator, reclaim.Ref[obsLeaf]) { fins.Add(1) })
		case 1:
			reclaim.AddCleanup(m, r, func(int) { cleans.Add(1) }, i)
		}
	}
	h.AddExternal(12345)
	m.Collect() // queues the finalizers and cleanups
	if err := m.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.Collect() // frees the finalized objects
	m.Detach()
	if err := h.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := h.Stats()
	if s.FinalizersQueued != 334 || s.FinalizersExecuted != 334 || fins.Load() != 334 {
		t.Errorf("FinalizersQueued %d, FinalizersExecuted %d, ran %d; want 334 each", s.FinalizersQueued, s.FinalizersExecuted, fins.Load())
	}
	if s.CleanupsQueued != 333 || s.CleanupsExecuted != 333 || cleans.Load() != 333 {
		t.Errorf("CleanupsQueued %d, CleanupsExecuted %d, ran %d; want 333 each", s.CleanupsQueued, s.CleanupsExecuted, cleans.Load())
	}
	if s.HeapObjects != s.Allocated-s.Freed {
		t.Errorf("HeapObjects %d != Allocated %d - Freed %d", s.HeapObjects, s.Allocated, s.Freed)
	}
	if s.Allocated != 1001 {
		t.Errorf("Allocated %d, want 1001", s.Allocated)
	}
	if s.HeapObjects != 1 {
		t.Errorf("HeapObjects %d after finalizers ran and a collection, want 1 (the pinned one)", s.HeapObjects)
	}
	if s.Cycles < 2 {
		t.Errorf("Cycles %d, want >= 2", s.Cycles)
	}
	if s.PauseTotal < s.PauseLast || s.PauseLast <= 0 {
		t.Errorf("PauseTotal %v, PauseLast %v", s.PauseTotal, s.PauseLast)
	}
	if s.ExternalBytes != 12345 {
		t.Errorf("ExternalBytes %d, want 12345", s.ExternalBytes)
	}
	if s.HeapGoal != -1 {
		t.Errorf("HeapGoal %d with GCPercent -1, want -1", s.HeapGoal)
	}
	switch s.FinalizerStatus {
	case "created|waiting", "created", "created|wake", "created|waiting|wake":
	default:
		t.Errorf("FinalizerStatus %q after Drain", s.FinalizerStatus)
	}
	h.Unpin(keep.Object())
}

// TestCycleTraceRegions: a collection under runtime/trace records the
// task and regions docs/DESIGN.md names, the stop-the-world phase among
// them.
func TestCycleTraceRegions(t *testing.T) {
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Skipf("trace.Start: %v (already tracing?)", err)
	}
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, Logger: quietLogger()})
	m := h.Attach()
	for i := 0; i < 100; i++ {
		reclaim.New[obsLeaf](m)
	}
	m.Collect()
	m.Detach()
	trace.Stop()
	for _, name := range []string{"reclaim.cycle", "reclaim.stopTheWorld", "reclaim.finishSweep", "reclaim.mark", "reclaim.sweep"} {
		if !bytes.Contains(buf.Bytes(), []byte(name)) {
			t.Errorf("the trace has no %q", name)
		}
	}
}

// TestBackgroundSweepTraceRegion: the sweep after an automatic cycle, which
// the background sweeper does while the mutators run on, is in a region
// of its own (it was in none).
func TestBackgroundSweepTraceRegion(t *testing.T) {
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Skipf("trace.Start: %v (already tracing?)", err)
	}
	h := newTestHeap(t, reclaim.Options{GCPercent: 10, Logger: quietLogger()})
	m := h.Attach()
	for h.Stats().Cycles == 0 {
		reclaim.New[obsLeaf](m) // garbage: the cycle's sweep has spans to free
		m.Safepoint()
	}
	m.Detach() // no mutator left to sweep on demand: the background sweeper does it all
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	trace.Stop()
	if !bytes.Contains(buf.Bytes(), []byte("reclaim.backgroundSweep")) {
		t.Errorf("the trace has no %q", "reclaim.backgroundSweep")
	}
}

// TestBackgroundSweeperLabels: the heap's background sweeper, parked
// between sweeps, carries reclaim.worker=sweep and reclaim.heap (it was
// started inside NewHeap with no labels of its own, so it had those of
// NewHeap's caller).
func TestBackgroundSweeperLabels(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, Logger: quietLogger()})
	m := h.Attach()
	defer m.Detach()
	reclaim.New[obsLeaf](m)
	m.Collect()
	wantWorkerLabels(t, "background sweeper", goroutineLabels(t, "(*bgSweeper).start"), "sweep")
}

// TestSlowSafepointLogged: a collection that waits past
// FinalizerBlockThreshold for a mutator that does not reach a safepoint,
// with no finalizer to blame, says so in the log, once, instead of waiting
// in silence (a goroutine that calls Attach while its own mutator runs
// waits for ever so).
func TestSlowSafepointLogged(t *testing.T) {
	lb, logger := newLogBuffer()
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, Logger: logger, FinalizerBlockThreshold: 10 * time.Millisecond})
	m := h.Attach()
	defer m.Detach()
	slow := h.Attach()
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Collect()
	}()
	// slow reaches its safepoint only once the wait is logged (or after a
	// minute, and the test fails).
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(lb.String(), "waits for mutators to reach a safepoint") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	slow.Safepoint()
	<-done
	slow.Detach()
	out := lb.String()
	if n := strings.Count(out, "waits for mutators to reach a safepoint"); n != 1 {
		t.Errorf("the wait was logged %d times, want once; log:\n%s", n, out)
	}
	if !strings.Contains(out, "mutators=1") {
		t.Errorf("the log does not say one mutator was waited for:\n%s", out)
	}
}
