package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/reclaimgc/reclaim/internal/report"
	"github.com/reclaimgc/reclaim/internal/workload"
)

// benchConfig is the bench command's configuration, from its flags.
type benchConfig struct {
	count       int
	quick       bool
	json        bool
	out         string
	peers       bool
	peersDir    string
	benchtime   benchTime
	peerTimeout time.Duration
	only        []string // hidden: run only these workloads and scaling kinds
	scalingMax  int      // hidden: the largest scaling N; 0 turns scaling off
	progress    string   // hidden: "auto", "on" or "off"
	verbose     bool     // log every step and how long it took
}

// scalingKinds are the kinds of workload.Scaling, and scalingNs the Ns of
// the full run.
var (
	scalingKinds = []string{"alloc", "finalizer-run", "cleanup-run"}
	scalingNs    = []int{1e3, 1e4, 1e5, 1e6, 1e7}
)

// hiddenFlags are left out of the usage text: they exist for tests and
// for narrowing a run while working on one workload.
var hiddenFlags = map[string]bool{"only": true, "scaling-max": true, "progress": true}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reclaim bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg benchConfig
	var only string
	fs.IntVar(&cfg.count, "count", 5, "runs per workload and system (-quick: 3)")
	fs.BoolVar(&cfg.quick, "quick", false, "smaller sizes (the suite's testing.Short sizes, scaling up to 1e5) and 3 runs: under a minute")
	fs.BoolVar(&cfg.json, "json", false, "print the full results as JSON instead of the table")
	fs.StringVar(&cfg.out, "out", "", "write report.md, report.html, results.json and SVG charts into this `directory`")
	fs.BoolVar(&cfg.peers, "peers", true, "run the peers under bench/peers whose toolchains are present")
	fs.StringVar(&cfg.peersDir, "peers-dir", "", "the peers' sources (default: bench/peers in the working directory or a parent)")
	cfg.benchtime = benchTime{d: 500 * time.Millisecond}
	fs.Var(&cfg.benchtime, "benchtime", "target time of each reclaim and Go run, a `duration` or a count of iterations Nx (100x), like go test's -benchtime (-quick: 50ms)")
	fs.DurationVar(&cfg.peerTimeout, "peer-timeout", 10*time.Minute, "give up on one peer invocation after this long")
	fs.StringVar(&only, "only", "", "comma-separated workload names and scaling kinds to run")
	fs.IntVar(&cfg.scalingMax, "scaling-max", 0, "largest scaling N (default 1e7, -quick 1e5; -1: no scaling)")
	fs.BoolVar(&cfg.verbose, "v", false, "log every run and how long it took, on stderr")
	fs.StringVar(&cfg.progress, "progress", "auto", "progress bar: auto (when stderr is a terminal), on or off")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: reclaim bench [flags]\n\n"+
			"Runs the workload suite on reclaim, on the Go runtime in the same process, and on the\n"+
			"peers under bench/peers whose toolchains are present, and prints a table of the results.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			if hiddenFlags[f.Name] {
				return
			}
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(stderr, "  -%s %s\n    \t%s", f.Name, name, usage)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				fmt.Fprintf(stderr, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(stderr)
		})
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.quick {
		if !set["count"] {
			cfg.count = 3
		}
		if !set["benchtime"] {
			cfg.benchtime = benchTime{d: 50 * time.Millisecond}
		}
	}
	if cfg.scalingMax == 0 {
		cfg.scalingMax = 1e7
		if cfg.quick {
			cfg.scalingMax = 1e5
		}
	}
	if only != "" {
		cfg.only = splitList(only)
	}
	if fs.NArg() > 0 || cfg.count < 1 || cfg.peerTimeout <= 0 || len(cfg.only) == 0 && only != "" ||
		!slices.Contains([]string{"auto", "on", "off"}, cfg.progress) {
		fmt.Fprintf(stderr, "reclaim bench: bad arguments\n")
		fs.Usage()
		return 2
	}

	if cfg.out != "" {
		// Make the report's directory first: a run can take an hour, and
		// its results would be lost to a directory that cannot be made.
		if err := os.MkdirAll(cfg.out, 0o755); err != nil {
			fmt.Fprintf(stderr, "reclaim bench: %v\n", err)
			return 1
		}
	}
	res, err := bench(ctx, cfg, strings.TrimSpace(commandName()+" bench "+quoteArgs(args)), stderr)
	if err != nil {
		fmt.Fprintf(stderr, "reclaim bench: %v\n", err)
		return 1
	}
	if cfg.out != "" {
		paths, err := report.WriteDir(cfg.out, res)
		if err != nil {
			fmt.Fprintf(stderr, "reclaim bench: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "wrote %s\n", strings.Join(paths, ", "))
	}
	if cfg.json {
		err = report.WriteJSON(stdout, res)
	} else {
		err = report.WriteTable(stdout, res)
	}
	if err != nil {
		fmt.Fprintf(stderr, "reclaim bench: %v\n", err)
		return 1
	}
	return 0
}

// benchTime is the -benchtime flag: a duration, or a count of iterations
// written as go test writes it ("100x"). Exactly one of d and n is set.
type benchTime struct {
	d time.Duration
	n int
}

// String formats t as go test's -benchtime flag takes it.
func (t *benchTime) String() string {
	if t.n > 0 {
		return strconv.Itoa(t.n) + "x"
	}
	return t.d.String()
}

// Set parses a positive duration or a positive count of iterations "Nx".
func (t *benchTime) Set(s string) error {
	if c, ok := strings.CutSuffix(s, "x"); ok {
		n, err := strconv.Atoi(c)
		if err != nil || n <= 0 {
			return fmt.Errorf("invalid count of iterations %q: want a positive integer followed by x, such as 100x", s)
		}
		*t = benchTime{n: n}
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("invalid benchtime %q: want a positive duration (500ms) or a count of iterations (100x)", s)
	}
	*t = benchTime{d: d}
	return nil
}

// splitList splits a comma-separated list, dropping the spaces around each
// name and the empty names ("get, weak," is get and weak).
func splitList(s string) []string {
	var names []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			names = append(names, f)
		}
	}
	return names
}

// setTestingFlags sets testing's flags for testing.Benchmark: -benchtime,
// and -short under -quick (the workload package sizes its graphs by
// testing.Short). It returns a function restoring the previous values.
func setTestingFlags(cfg benchConfig) (restore func(), err error) {
	testing.Init()
	if !flag.Parsed() {
		// testing.Short needs the command line parsed; this program parses
		// its own flags with a FlagSet.
		if err := flag.CommandLine.Parse(nil); err != nil {
			return nil, err
		}
	}
	values := map[string]string{
		"test.benchtime": cfg.benchtime.String(),
		"test.short":     strconv.FormatBool(cfg.quick || testing.Short()),
	}
	old := map[string]string{}
	for name, v := range values {
		f := flag.Lookup(name)
		if f == nil {
			return nil, fmt.Errorf("testing flag -%s not registered", name)
		}
		old[name] = f.Value.String()
		if err := flag.Set(name, v); err != nil {
			return nil, err
		}
	}
	return func() {
		for name, v := range old {
			_ = flag.Set(name, v)
		}
	}, nil
}

// runner runs one bench: it owns the results being built and the progress
// bar. It is used by one goroutine.
type runner struct {
	cfg    benchConfig
	ctx    context.Context
	stderr io.Writer
	bar    *progressbar.ProgressBar // nil without a progress bar
	log    *slog.Logger             // nil without -v
	desc   string                   // the step running
	began  time.Time                // when it began
	peers  []*peer                  // the peers that can run
	res    *report.Results
}

// bench runs everything cfg asks for and returns the results, finished.
func bench(ctx context.Context, cfg benchConfig, command string, stderr io.Writer) (*report.Results, error) {
	restore, err := setTestingFlags(cfg)
	if err != nil {
		return nil, err
	}
	defer restore()

	r := &runner{cfg: cfg, ctx: ctx, stderr: stderr, res: &report.Results{
		Command:   command,
		Machine:   machine(),
		Started:   time.Now(),
		Count:     cfg.count,
		Quick:     cfg.quick,
		BenchTime: cfg.benchtime.String(),
	}}

	if cfg.verbose {
		r.log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	if cfg.peers {
		tmp, err := os.MkdirTemp("", "reclaim-peers-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		r.preparePeers(tmp)
	}

	suite := selectWorkloads(workload.All(), cfg.only)
	type scalingStep struct {
		kind string
		n    int
	}
	var scaling []scalingStep
	for _, kind := range scalingKinds {
		if cfg.only != nil && !slices.Contains(cfg.only, kind) {
			continue
		}
		for _, n := range scalingNs {
			if n <= cfg.scalingMax {
				scaling = append(scaling, scalingStep{kind, n})
			}
		}
	}
	if len(suite) == 0 && len(scaling) == 0 {
		return nil, fmt.Errorf("nothing to run: -only %s matches no workload or scaling kind", strings.Join(cfg.only, ","))
	}

	// The suite's finalizer-run and cleanup-run are Scaling workloads at
	// the suite's N: a scaling step of the same name reuses their figures.
	inSuite := map[string]bool{}
	steps := 0
	for _, w := range suite {
		inSuite[w.Name] = true
		steps += r.steps(w)
	}
	for _, s := range scaling {
		if w := workload.Scaling(s.kind, s.n); !inSuite[w.Name] {
			steps += r.steps(w)
		}
	}
	r.startProgress(steps)

	r.coreToCore()
	start := time.Now()
	measured := map[string]report.Workload{}
	for _, w := range suite {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res := r.runWorkload(w)
		measured[w.Name] = res
		r.res.Workloads = append(r.res.Workloads, res)
	}
	series := map[[2]string]*report.Series{}
	for _, s := range scaling {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sw := workload.Scaling(s.kind, s.n)
		w, ok := measured[sw.Name]
		if !ok {
			w = r.runWorkload(sw)
		}
		for _, m := range w.Measures {
			key := [2]string{s.kind, m.System}
			ser := series[key]
			if ser == nil {
				ser = &report.Series{Kind: s.kind, System: m.System}
				series[key] = ser
			}
			ser.Points = append(ser.Points, report.Point{N: s.n, Runs: m.Runs, Error: m.Error})
		}
	}
	for _, ser := range series {
		r.res.Scaling = append(r.res.Scaling, *ser)
	}
	if r.bar != nil {
		_ = r.bar.Finish()
		fmt.Fprintln(stderr)
	}
	r.res.ElapsedS = time.Since(start).Seconds()
	r.coreToCore()
	r.res.Finish()
	return r.res, nil
}

// coreToCore measures the machine's core-to-core round trip
// (workload.CoreToCore) and adds it to the results; with GOMAXPROCS below
// 2 it measures nothing.
func (r *runner) coreToCore() {
	if runtime.GOMAXPROCS(0) < 2 {
		return
	}
	res := testing.Benchmark(workload.CoreToCore)
	if res.N > 0 {
		r.res.CoreToCoreNs = append(r.res.CoreToCoreNs, float64(res.T.Nanoseconds())/float64(res.N))
	}
}

// selectWorkloads keeps the workloads named in only (all when only is nil).
func selectWorkloads(all []workload.Workload, only []string) []workload.Workload {
	if only == nil {
		return all
	}
	var out []workload.Workload
	for _, w := range all {
		if slices.Contains(only, w.Name) {
			out = append(out, w)
		}
	}
	return out
}

// preparePeers builds the peers and reports those that cannot run.
func (r *runner) preparePeers(tmp string) {
	dir := r.cfg.peersDir
	if dir == "" {
		d, err := findPeersDir()
		if err != nil {
			for _, name := range peerNames {
				r.skipPeer(name, err.Error())
			}
			return
		}
		dir = d
	}
	for _, p := range preparePeers(r.ctx, dir, tmp) {
		if p.skip != "" {
			r.skipPeer(p.name, p.skip)
			continue
		}
		r.peers = append(r.peers, p)
	}
}

func (r *runner) skipPeer(name, why string) {
	fmt.Fprintf(r.stderr, "skip %s: %s\n", name, why)
	r.res.Skipped = append(r.res.Skipped, report.Skip{System: name, Reason: why})
}

// steps counts the progress steps of w: one per in-process run, one per
// peer invocation.
func (r *runner) steps(w workload.Workload) int {
	n := r.cfg.count
	if w.Go != nil {
		n += r.cfg.count
	}
	if w.Peer != "" {
		n += len(r.peers)
	}
	return n
}

func (r *runner) startProgress(steps int) {
	show := r.cfg.progress == "on"
	if r.cfg.progress == "auto" {
		if f, ok := r.stderr.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				show = true
			}
		}
	}
	if !show {
		return
	}
	r.bar = progressbar.NewOptions(steps,
		progressbar.OptionSetWriter(r.stderr),
		progressbar.OptionSetDescription("bench"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetRenderBlankState(true),
	)
}

// step describes the step about to run.
func (r *runner) step(desc string) {
	r.desc, r.began = desc, time.Now()
	if r.bar != nil {
		r.bar.Describe(fmt.Sprintf("%-36s", desc))
	}
}

func (r *runner) done() {
	if r.log != nil {
		r.log.Info("ran", "step", r.desc, "took", time.Since(r.began).Round(time.Millisecond))
	}
	if r.bar != nil {
		_ = r.bar.Add(1)
	}
}

// runWorkload measures w on reclaim and Go, runs interleaved so that a
// change in the machine's load touches both, then on every peer.
func (r *runner) runWorkload(w workload.Workload) report.Workload {
	out := report.Workload{Name: w.Name, Doc: w.Doc, Peer: w.Peer, PeerN: w.PeerN}
	rec := &measure{m: report.Measurement{System: report.SystemReclaim}}
	var gom *measure
	if w.Go != nil {
		gom = &measure{m: report.Measurement{System: "go"}}
	}
	rss := strings.HasPrefix(w.Name, "binary-trees")
	for i := range r.cfg.count {
		if r.ctx.Err() != nil {
			break
		}
		r.step(fmt.Sprintf("%s reclaim %d/%d", w.Name, i+1, r.cfg.count))
		rec.add(runBenchmark(w.Reclaim, rss))
		r.done()
		if gom != nil {
			r.step(fmt.Sprintf("%s go %d/%d", w.Name, i+1, r.cfg.count))
			gom.add(runBenchmark(w.Go, rss))
			r.done()
		}
	}
	out.Measures = append(out.Measures, rec.finish())
	if gom != nil {
		out.Measures = append(out.Measures, gom.finish())
	}
	if w.Peer == "" {
		return out
	}
	for _, p := range r.peers {
		if r.ctx.Err() != nil {
			break
		}
		r.step(fmt.Sprintf("%s %s", w.Name, p.name))
		pr := p.run(r.ctx, w.Peer, w.PeerN, r.cfg.count, r.cfg.peerTimeout)
		r.done()
		out.Measures = append(out.Measures, report.Measurement{System: p.name, N: w.PeerN, Runs: pr.runs,
			Extra: extraMedians(pr.extra, len(pr.runs)), Error: pr.err})
	}
	return out
}

// measure accumulates one system's runs of one workload.
type measure struct {
	m      report.Measurement
	extra  map[string][]float64
	errs   []string // distinct failure messages
	failed int      // runs that failed
}

func (ms *measure) add(ns float64, extra map[string]float64, err error) {
	if err != nil {
		ms.failed++
		if !slices.Contains(ms.errs, err.Error()) {
			ms.errs = append(ms.errs, err.Error())
		}
		return
	}
	ms.m.Runs = append(ms.m.Runs, ns)
	for k, v := range extra {
		if ms.extra == nil {
			ms.extra = map[string][]float64{}
		}
		ms.extra[k] = append(ms.extra[k], v)
	}
}

func (ms *measure) finish() report.Measurement {
	ms.m.Extra = extraMedians(ms.extra, len(ms.m.Runs))
	if len(ms.errs) > 0 {
		ms.m.Error = strings.Join(ms.errs, "; ")
		ms.m.Error = fmt.Sprintf("%d of %d runs failed: %s", ms.failed, ms.failed+len(ms.m.Runs), ms.m.Error)
	}
	return ms.m
}

// extraMedians returns the median of each extra metric over runs runs; nil
// if there is none. A run that left a metric out counts as zero for it: the
// peers print unfinalized only when it is not zero, and runBenchmark leaves
// B/op and allocs/op out when they are zero.
func extraMedians(extra map[string][]float64, runs int) map[string]float64 {
	var out map[string]float64
	for k, vs := range extra {
		if len(vs) == 0 {
			continue
		}
		if out == nil {
			out = map[string]float64{}
		}
		if n := runs - len(vs); n > 0 {
			vs = append(slices.Clone(vs), make([]float64, n)...)
		}
		out[k], _, _ = report.Summarize(vs)
	}
	return out
}

// runBenchmark runs fn once through testing.Benchmark and returns its cost
// per op, its extra metrics (the workload's own, B/op and allocs/op when
// not zero, and with rss the peak resident set of the run in KiB), or why
// it failed. A panic in fn is recovered and reported as a failure.
func runBenchmark(fn func(*testing.B), rss bool) (float64, map[string]float64, error) {
	if rss {
		workload.ResetPeakRSS()
	}
	var panicked any
	res := testing.Benchmark(func(b *testing.B) {
		defer func() {
			if p := recover(); p != nil {
				panicked = p
				b.Fail()
			}
		}()
		fn(b)
	})
	if panicked != nil {
		return 0, nil, fmt.Errorf("panic: %v", panicked)
	}
	if res.N == 0 {
		return 0, nil, errors.New("the benchmark failed")
	}
	ns := workload.NsPerOp(res)
	if math.IsNaN(ns) || ns <= 0 {
		return 0, nil, errors.New("no time measured")
	}
	extra := map[string]float64{}
	for k, v := range res.Extra {
		if k != "ns/op" {
			extra[k] = v
		}
	}
	if v := res.AllocedBytesPerOp(); v > 0 {
		extra["B/op"] = float64(v)
	}
	if v := res.AllocsPerOp(); v > 0 {
		extra["allocs/op"] = float64(v)
	}
	if rss {
		if kib, ok := workload.PeakRSSKiB(); ok {
			extra["peak_rss_kib"] = float64(kib)
		}
	}
	return ns, extra, nil
}

// machine describes this computer.
func machine() report.Machine {
	m := report.Machine{
		GoVersion: runtime.Version(),
		GOOS:      runtime.GOOS,
		GOARCH:    runtime.GOARCH,
		NumCPU:    runtime.NumCPU(),
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// quoteArgs joins args for display, quoting those a shell would split.
func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?;&|<>()") {
			a = strconv.Quote(a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// commandName is how the report names the program: "go run ./cmd/reclaim"
// when it was started by go run, "reclaim" otherwise.
func commandName() string {
	if exe, err := os.Executable(); err == nil && strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ./cmd/reclaim"
	}
	return "reclaim"
}
