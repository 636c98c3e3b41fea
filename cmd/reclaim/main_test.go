package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim/internal/report"
	"github.com/reclaimgc/reclaim/internal/workload"
)

// runCmd runs the command line in process and returns its exit status and
// output.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsage(t *testing.T) {
	if code, _, stderr := runCmd(t); code != 2 || !strings.Contains(stderr, "Usage:") {
		t.Errorf("no arguments: exit %d, stderr %q; want 2 and the usage", code, stderr)
	}
	if code, stdout, _ := runCmd(t, "help"); code != 0 || !strings.Contains(stdout, "reclaim bench") {
		t.Errorf("help: exit %d, stdout %q; want 0 and the usage", code, stdout)
	}
	code, stdout, stderr := runCmd(t, "frobnicate")
	if code != 2 || stdout != "" || !strings.Contains(stderr, `unknown command "frobnicate"`) || !strings.Contains(stderr, "Usage:") {
		t.Errorf("unknown command: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", code, stdout, stderr)
	}
	if code, _, _ := runCmd(t, "demo", "-objects", "0"); code != 2 {
		t.Errorf("demo -objects 0: exit %d, want 2", code)
	}
	if code, _, _ := runCmd(t, "bench", "-count", "0"); code != 2 {
		t.Errorf("bench -count 0: exit %d, want 2", code)
	}
	code, _, stderr = runCmd(t, "bench", "-h")
	if code != 0 || !strings.Contains(stderr, "-quick") || strings.Contains(stderr, "-only") {
		t.Errorf("bench -h: exit %d, stderr %q; want 0 and the flags without hidden ones", code, stderr)
	}
}

func TestDemo(t *testing.T) {
	objects := "100000"
	if testing.Short() {
		objects = "30000"
	}
	code, stdout, stderr := runCmd(t, "demo", "-duration", "5s", "-objects", objects, "-live", "300")
	if code != 0 {
		t.Fatalf("demo: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, re := range []string{
		`(?m)^reclaim demo: a document index churned for .* \(\d+ objects allocated`,
		`(?m)^collections +[1-9]\d* cycles, pause total`,
		`(?m)^finalizers +(\d+) queued, (\d+) run: \d+ blobs closed`,
		`(?m)^cleanups +\d+ queued, \d+ run: cursors closed by cleanup \d+, explicitly [1-9]\d*`,
		`(?m)^weak refs +\d+ postings found cleared`,
		`(?m)^memory limit +48.0 MiB: \d+ allocations refused`,
		`(?m)^panics +0 in finalizers and cleanups`,
		`(?m)^released +external bytes 0, blobs open 0, cursors open 0$`,
	} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("demo output does not match %s:\n%s", re, stdout)
		}
	}
	// Before Close, every blob queued its finalizer and it ran (the index
	// was dropped and collected twice): queued == run, and not zero.
	m := regexp.MustCompile(`(?m)^finalizers +(\d+) queued, (\d+) run:`).FindStringSubmatch(stdout)
	if m == nil || m[1] != m[2] || m[1] == "0" {
		t.Errorf("finalizers queued and run before Close differ or are zero: %v", m)
	}
	if !strings.Contains(stderr, `msg="demo starting"`) || !strings.Contains(stderr, `msg="demo done"`) {
		t.Errorf("demo did not log through slog on stderr:\n%s", stderr)
	}
}

// benchJSON runs bench with -json and decodes its results.
func benchJSON(t *testing.T, args ...string) (*report.Results, string) {
	t.Helper()
	code, stdout, stderr := runCmd(t, append([]string{"bench", "-json", "-progress", "off"}, args...)...)
	if code != 0 {
		t.Fatalf("bench %v: exit %d\nstderr:\n%s", args, code, stderr)
	}
	var r report.Results
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("bench -json printed invalid JSON: %v\n%s", err, stdout)
	}
	return &r, stderr
}

func TestBenchQuick(t *testing.T) {
	out := filepath.Join(t.TempDir(), "report")
	r, stderr := benchJSON(t, "-quick", "-benchtime", "20ms", "-count", "2", "-only", "get,alloc",
		"-scaling-max", "1000", "-peers=false", "-out", out)

	if !r.Quick || r.Count != 2 || r.Machine.NumCPU < 1 || r.Machine.GOOS == "" || !strings.Contains(r.Command, "bench -json") {
		t.Errorf("results header = %+v", r)
	}
	if len(r.Workloads) != 1 || r.Workloads[0].Name != "get" {
		t.Fatalf("workloads = %+v, want get only", r.Workloads)
	}
	ms := r.Workloads[0].Measures
	if len(ms) != 2 || ms[0].System != "reclaim" || ms[1].System != "go" {
		t.Fatalf("get measured on %+v, want reclaim and go", ms)
	}
	for _, m := range ms {
		if len(m.Runs) != 2 || !(m.Median > 0) || m.Min > m.Median || m.Median > m.Max || m.Error != "" {
			t.Errorf("%s: %+v, want 2 runs, min ≤ median ≤ max, no error", m.System, m)
		}
	}
	if ms[0].Ratio != 1 || !(ms[1].Ratio > 0) {
		t.Errorf("ratios %v, %v; want 1 for reclaim and positive for go", ms[0].Ratio, ms[1].Ratio)
	}
	if len(r.Scaling) != 2 {
		t.Fatalf("scaling = %+v, want alloc on reclaim and go", r.Scaling)
	}
	for _, s := range r.Scaling {
		if s.Kind != "alloc" || len(s.Points) != 1 || s.Points[0].N != 1000 || !(s.Points[0].Median > 0) {
			t.Errorf("scaling series %+v, want alloc at N=1000 only", s)
		}
	}
	if len(r.Skipped) != 0 || strings.Contains(stderr, "skip ") {
		t.Errorf("-peers=false reported skipped peers: %v, %q", r.Skipped, stderr)
	}

	for _, name := range []string{"report.md", "report.html", "results.json", "ratios.svg", "scaling-alloc.svg"} {
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if strings.HasSuffix(name, ".svg") && !bytes.Contains(data, []byte("<svg")) {
			t.Errorf("%s is not an SVG", name)
		}
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	for _, want := range []string{"| `get` | reclaim |", r.Command, "go version " + r.Machine.GoVersion, "![", "| alloc | go |"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	html, _ := os.ReadFile(filepath.Join(out, "report.html"))
	if !bytes.Contains(html, []byte("<svg")) || !bytes.Contains(html, []byte("<code>get</code>")) {
		t.Errorf("report.html lacks the charts or the table")
	}
}

func TestBenchTable(t *testing.T) {
	code, stdout, stderr := runCmd(t, "bench", "-quick", "-benchtime", "20ms", "-count", "1", "-only", "get",
		"-scaling-max", "-1", "-peers=false", "-progress", "on")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "100%") || !strings.Contains(stderr, "(2/2)") {
		t.Errorf("-progress on drew no finished bar on stderr:\n%q", stderr)
	}
	for _, want := range []string{"WORKLOAD", "get", "reclaim", "go", "1.00x", "ratio = "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "scaling:") {
		t.Errorf("-scaling-max -1 still ran scaling:\n%s", stdout)
	}
	if code, _, stderr := runCmd(t, "bench", "-only", "nonesuch", "-peers=false"); code != 1 || !strings.Contains(stderr, "nothing to run") {
		t.Errorf("-only nonesuch: exit %d, %q; want 1 and nothing to run", code, stderr)
	}
}

func TestBenchPeersMissing(t *testing.T) {
	empty := t.TempDir()
	r, stderr := benchJSON(t, "-quick", "-benchtime", "20ms", "-count", "1", "-only", "weak",
		"-scaling-max", "-1", "-peers-dir", empty)
	for _, name := range peerNames {
		want := "skip " + name + ": no " + empty
		if strings.Count(stderr, "skip "+name+":") != 1 || !strings.Contains(stderr, want) {
			t.Errorf("stderr does not say once that %s is skipped for want of its sources (%q):\n%s", name, want, stderr)
		}
	}
	if len(r.Skipped) != len(peerNames) {
		t.Errorf("skipped = %+v, want every peer", r.Skipped)
	}
	if ms := r.Workloads[0].Measures; len(ms) != 2 {
		t.Errorf("weak measured on %+v, want reclaim and go only", ms)
	}
}

// fakePeers makes a peers directory with the three sources, and a PATH
// holding only a fake node that speaks the protocol: result lines (with a
// field the command does not know) for "weak", an error line for anything
// else.
func fakePeers(t *testing.T) (dir, path string) {
	dir, path = t.TempDir(), t.TempDir()
	for _, f := range []string{"boehm/peer.c", "jvm/Peer.java", "v8/peer.js"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	node := `#!/bin/sh
# args: --expose-gc peer.js WORKLOAD N RUNS
if [ "$3" != weak ]; then
	echo '{"system":"v8","workload":"'"$3"'","error":"unknown workload"}'
	exit 1
fi
echo 'warming up: not a result line'
i=0
while [ $i -lt "$5" ]; do
	i=$((i+1))
	echo '{"system":"v8","workload":"weak","n":'"$4"',"ns_per_op":'"$((40+i))"'.5,"ops":1000000,"peak_rss_kib":100,"note":"x"}'
done
`
	if err := os.WriteFile(filepath.Join(path, "node"), []byte(node), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, path
}

func TestBenchFakePeer(t *testing.T) {
	dir, path := fakePeers(t)
	t.Setenv("PATH", path)
	r, stderr := benchJSON(t, "-quick", "-benchtime", "20ms", "-count", "3", "-only", "weak,cleanup-stop",
		"-scaling-max", "-1", "-peers-dir", dir)
	for _, want := range []string{"skip boehm: no gcc in PATH", "skip jvm: no java in PATH"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "skip v8") {
		t.Errorf("v8 skipped although node is in PATH:\n%s", stderr)
	}
	byName := map[string]report.Workload{}
	for _, w := range r.Workloads {
		byName[w.Name] = w
	}
	weak := byName["weak"].Measures
	if len(weak) != 3 || weak[2].System != "v8" {
		t.Fatalf("weak measured on %+v, want reclaim, go, v8", weak)
	}
	v8 := weak[2]
	if v8.N != 1000 || len(v8.Runs) != 3 || v8.Runs[0] != 41.5 || v8.Median != 42.5 || v8.Min != 41.5 || v8.Max != 43.5 {
		t.Errorf("v8 weak = %+v, want N 1000 and runs 41.5, 42.5, 43.5", v8)
	}
	if v8.Extra["peak_rss_kib"] != 100 || len(v8.Extra) != 1 || v8.Error != "" {
		t.Errorf("v8 weak extra %v, error %q; want peak_rss_kib only", v8.Extra, v8.Error)
	}
	stop := byName["cleanup-stop"].Measures
	if len(stop) != 3 || stop[2].System != "v8" || stop[2].Error != "unknown workload" || len(stop[2].Runs) != 0 {
		t.Errorf("cleanup-stop on v8 = %+v, want the peer's error line", stop)
	}
}

func TestParsePeerOutput(t *testing.T) {
	out := []byte(`{"system":"boehm","workload":"cleanup-run","n":100000,"ns_per_op":202.49,"ops":100000,"unfinalized":1}
garbage
{"system":"jvm","workload":"cleanup-run","n":100000,"ns_per_op":1,"ops":1}
{"system":"boehm","workload":"finalizer-run","n":100000,"ns_per_op":1,"ops":1}
{"system":"boehm","workload":"cleanup-run","n":100000,"ns_per_op":190,"ops":100000,"future":"text","extra":[1]}
{"system":"boehm","workload":"cleanup-run","n":100000,"ns_per_op":-1,"ops":100000}
`)
	res := parsePeerOutput("boehm", "cleanup-run", out)
	if len(res.runs) != 2 || res.runs[0] != 202.49 || res.runs[1] != 190 || res.err != "" {
		t.Errorf("runs %v, err %q; want 202.49 and 190", res.runs, res.err)
	}
	if got := res.extra["unfinalized"]; len(got) != 1 || got[0] != 1 || len(res.extra) != 1 {
		t.Errorf("extra = %v, want unfinalized [1] only", res.extra)
	}
	res = parsePeerOutput("v8", "bogus", []byte(`{"system":"v8","workload":"bogus","error":"unknown workload"}`+"\n"))
	if res.err != "unknown workload" || len(res.runs) != 0 {
		t.Errorf("error line parsed as %+v", res)
	}
}

// A memory limit too small for the demo's index is an error, with a
// message and exit status 1, not a panic.
func TestDemoLimitTooSmall(t *testing.T) {
	code, stdout, stderr := runCmd(t, "demo", "-limit", "1000", "-objects", "100")
	if code != 1 || !strings.Contains(stderr, "memory limit") || strings.Contains(stderr, "goroutine") {
		t.Errorf("demo -limit 1000: exit %d\nstdout:\n%s\nstderr:\n%s\nwant 1 and an error naming the memory limit", code, stdout, stderr)
	}
}

// A metric a run leaves out is zero for that run: the protocol prints
// unfinalized only when it is not zero, and B/op and allocs/op are left out
// when zero. The median is taken over every run, not over those that
// reported the metric.
func TestExtraMedianCountsOmittedAsZero(t *testing.T) {
	script := filepath.Join(t.TempDir(), "peer.sh")
	err := os.WriteFile(script, []byte(`#!/bin/sh
# args: WORKLOAD N RUNS
echo '{"system":"boehm","workload":"'"$1"'","n":'"$2"',"ns_per_op":100,"ops":1}'
echo '{"system":"boehm","workload":"'"$1"'","n":'"$2"',"ns_per_op":110,"ops":1}'
echo '{"system":"boehm","workload":"'"$1"'","n":'"$2"',"ns_per_op":120,"ops":1,"unfinalized":3}'
`), 0o755)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{cfg: benchConfig{count: 1, peerTimeout: time.Minute}, ctx: context.Background(), stderr: io.Discard,
		peers: []*peer{{name: "boehm", argv: []string{"/bin/sh", script}}}}
	w := workload.Workload{Name: "fake", Peer: "cleanup-run", PeerN: 10, Reclaim: func(b *testing.B) {
		for range b.N {
		}
	}}
	res := r.runWorkload(w)
	if len(res.Measures) != 2 || res.Measures[1].System != "boehm" || len(res.Measures[1].Runs) != 3 {
		t.Fatalf("measures %+v, want reclaim and boehm with 3 runs", res.Measures)
	}
	if got := res.Measures[1].Extra["unfinalized"]; got != 0 {
		t.Errorf("boehm unfinalized = %v, want 0: the median of 0, 0 and 3", got)
	}

	var ms measure
	ms.add(10, map[string]float64{"allocs/op": 1}, nil)
	ms.add(11, nil, nil)
	ms.add(12, nil, nil)
	if got := ms.finish().Extra["allocs/op"]; got != 0 {
		t.Errorf("allocs/op = %v, want 0: the median of 1, 0 and 0", got)
	}
}

// soak -h prints its flags and exits 0, like demo -h and bench -h.
func TestSoakHelp(t *testing.T) {
	code, _, stderr := runCmd(t, "soak", "-h")
	if code != 0 || !strings.Contains(stderr, "-mutators") {
		t.Errorf("soak -h: exit %d, stderr %q; want 0 and the flags", code, stderr)
	}
}

// soak refuses flag values it would otherwise replace by its defaults
// while printing the values given.
func TestSoakBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"-duration", "50ms", "-mutators", "0"},
		{"-duration", "50ms", "-mutators", "-1"},
		{"-duration", "0s"},
		{"-duration", "50ms", "-limit", "-1"},
		{"-duration", "50ms", "-limit", "0"},
		{"-duration", "50ms", "extra"},
	} {
		code, stdout, stderr := runCmd(t, append([]string{"soak"}, args...)...)
		if code != 2 || !strings.Contains(stderr, "bad arguments") {
			t.Errorf("soak %v: exit %d\nstdout:\n%s\nstderr:\n%s\nwant 2 and bad arguments", args, code, stdout, stderr)
		}
	}
}

// An -out directory that cannot be made fails the command before it runs
// anything: the runs' results would be lost otherwise.
func TestBenchOutNotADirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(t, "bench", "-quick", "-benchtime", "1ms", "-count", "1", "-only", "get",
		"-scaling-max", "-1", "-peers=false", "-progress", "off", "-v", "-out", filepath.Join(file, "report"))
	if code != 1 || !strings.Contains(stderr, "not a directory") || strings.Contains(stderr, "msg=ran") {
		t.Errorf("bench -out under a file: exit %d, stderr:\n%s\nwant 1 and the error before any run", code, stderr)
	}
}

// The live heap printed for the end of the churn counts the objects the
// churn left: at least the index and its vocabulary, which stay pinned.
func TestDemoLiveHeapUpToDate(t *testing.T) {
	code, stdout, stderr := runCmd(t, "demo", "-objects", "10", "-live", "1", "-limit", "0")
	if code != 0 {
		t.Fatalf("demo: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	m := regexp.MustCompile(`(?m)^live heap +(\d+) objects`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no live heap line:\n%s", stdout)
	}
	if n, _ := strconv.Atoi(m[1]); n < 1+len(vocabulary) {
		t.Errorf("live heap at the end of the churn: %d objects, want at least %d (the index and its terms):\n%s", n, 1+len(vocabulary), stdout)
	}
}

// TestBenchIterationsAndSpacedOnly: -benchtime takes a count of iterations
// as go test's does, and -only's names may have spaces around them.
func TestBenchIterationsAndSpacedOnly(t *testing.T) {
	r, stderr := benchJSON(t, "-quick", "-benchtime", "3x", "-count", "1", "-only", " get , ",
		"-scaling-max", "-1", "-peers=false")
	if r.BenchTime != "3x" {
		t.Errorf("BenchTime = %q, want 3x", r.BenchTime)
	}
	if len(r.Workloads) != 1 || r.Workloads[0].Name != "get" {
		t.Fatalf("workloads = %+v, want get only; stderr:\n%s", r.Workloads, stderr)
	}
	for _, m := range r.Workloads[0].Measures {
		if len(m.Runs) != 1 || m.Runs[0] <= 0 {
			t.Errorf("%s runs = %v, want one measured run", m.System, m.Runs)
		}
	}
	for _, bad := range []string{"0x", "-2x", "x", "0s", "soon"} {
		if code, _, stderr := runCmd(t, "bench", "-benchtime", bad, "-peers=false"); code != 2 || !strings.Contains(stderr, "invalid") {
			t.Errorf("-benchtime %s: exit %d, %q; want 2 and the reason", bad, code, stderr)
		}
	}
	if code, _, stderr := runCmd(t, "bench", "-only", " , ", "-peers=false"); code != 2 || !strings.Contains(stderr, "bad arguments") {
		t.Errorf("-only of no names: exit %d, %q; want 2 and bad arguments", code, stderr)
	}
}
