package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sample returns results with every kind of entry: a workload where
// reclaim is fastest, one where a peer beats it, one that failed on a
// peer, a workload without a Go side, and scaling series.
func sample() *Results {
	r := &Results{
		Command:   "reclaim bench -quick",
		Machine:   Machine{GoVersion: "go1.26.0", GOOS: "linux", GOARCH: "amd64", NumCPU: 2, CPUModel: "Test CPU"},
		Started:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Count:     3,
		Quick:     true,
		BenchTime: "50ms",
		Workloads: []Workload{
			{Name: "finalizer-setclear", Doc: "set | clear", Peer: "finalizer-setclear", PeerN: 1000, Measures: []Measurement{
				{System: "boehm", N: 1000, Runs: []float64{40, 50, 45}},
				{System: "go", Runs: []float64{300, 400, 350}},
				{System: SystemReclaim, Runs: []float64{20, 10, 30}, Extra: map[string]float64{"B/op": 0.5}},
			}},
			{Name: "cleanup-stop", Doc: "add and stop", Peer: "cleanup-stop", PeerN: 1000, Measures: []Measurement{
				{System: SystemReclaim, Runs: []float64{100, 100}},
				{System: "boehm", N: 1000, Runs: []float64{25, 25}},
				{System: "v8", N: 1000, Error: "unknown workload"},
			}},
			{Name: "mark-1w", Doc: "one mark", Measures: []Measurement{
				{System: SystemReclaim, Runs: []float64{1e6}},
			}},
		},
		Scaling: []Series{
			{Kind: "finalizer-run", System: "go", Points: []Point{{N: 1e4, Runs: []float64{900}}, {N: 1e3, Runs: []float64{1200, 1000}}}},
			{Kind: "alloc", System: SystemReclaim, Points: []Point{{N: 1e3, Runs: []float64{20}}, {N: 1e4, Runs: []float64{18}}}},
			{Kind: "finalizer-run", System: SystemReclaim, Points: []Point{{N: 1e3, Runs: []float64{300}}, {N: 1e4, Error: "failed"}}},
		},
		Skipped: []Skip{{System: "jvm", Reason: "no java in PATH"}},
	}
	r.Finish()
	return r
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		runs          []float64
		med, min, max float64
	}{
		{[]float64{3}, 3, 3, 3},
		{[]float64{5, 1, 3}, 3, 1, 5},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
		{[]float64{math.NaN(), 2, 4}, 3, 2, 4},
	} {
		med, lo, hi := Summarize(tc.runs)
		if med != tc.med || lo != tc.min || hi != tc.max {
			t.Errorf("Summarize(%v) = %v, %v, %v; want %v, %v, %v", tc.runs, med, lo, hi, tc.med, tc.min, tc.max)
		}
	}
	if med, lo, hi := Summarize(nil); !math.IsNaN(med) || !math.IsNaN(lo) || !math.IsNaN(hi) {
		t.Errorf("Summarize(nil) = %v, %v, %v; want NaNs", med, lo, hi)
	}
}

func TestFinish(t *testing.T) {
	r := sample()
	w := r.Workloads[0]
	var systems []string
	for _, m := range w.Measures {
		systems = append(systems, m.System)
	}
	if got, want := strings.Join(systems, ","), "reclaim,go,boehm"; got != want {
		t.Errorf("systems in order %s, want %s", got, want)
	}
	want := map[string][4]float64{ // median, min, max, ratio
		"reclaim": {20, 10, 30, 1},
		"go":      {350, 300, 400, 17.5},
		"boehm":   {45, 40, 50, 2.25},
	}
	for _, m := range w.Measures {
		got := [4]float64{m.Median, m.Min, m.Max, m.Ratio}
		if got != want[m.System] {
			t.Errorf("%s: median, min, max, ratio = %v, want %v", m.System, got, want[m.System])
		}
	}
	if v8 := r.Workloads[1].Measures[2]; v8.System != "v8" || v8.Ratio != 0 || !math.IsNaN(v8.Median) {
		t.Errorf("failed v8 measurement = %+v, want no ratio and a NaN median", v8)
	}
	if got := r.Kinds(); strings.Join(got, ",") != "alloc,finalizer-run" {
		t.Errorf("Kinds() = %v", got)
	}
	if s := r.Scaling[1]; s.Kind != "finalizer-run" || s.System != SystemReclaim {
		t.Errorf("scaling order: second series is %s/%s, want finalizer-run/reclaim", s.Kind, s.System)
	}
	if p := r.Scaling[2].Points; p[0].N != 1e3 || p[0].Median != 1100 || p[1].Median != 900 {
		t.Errorf("go finalizer-run points = %+v, want sorted by N with medians 1100, 900", p)
	}
	if got := r.Systems(); strings.Join(got, ",") != "reclaim,go,boehm,v8" {
		t.Errorf("Systems() = %v", got)
	}
}

func TestGaps(t *testing.T) {
	gaps := sample().Gaps()
	if len(gaps) != 1 || gaps[0].Workload != "cleanup-stop" || gaps[0].System != "boehm" || gaps[0].Ratio != 0.25 {
		t.Fatalf("Gaps() = %+v, want cleanup-stop beaten by boehm at 0.25", gaps)
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		ns   float64
		want string
	}{
		{1.234, "1.23 ns"}, {24.12, "24.1 ns"}, {374, "374 ns"}, {1218, "1.22 µs"},
		{1.94e9, "1.94 s"}, {0.5, "0.500 ns"}, {math.NaN(), "—"}, {0, "—"},
	} {
		if got := FormatNs(tc.ns); got != tc.want {
			t.Errorf("FormatNs(%v) = %q, want %q", tc.ns, got, tc.want)
		}
	}
	if got := FormatRatio(0.321); got != "0.321x" {
		t.Errorf("FormatRatio(0.321) = %q", got)
	}
	for n, want := range map[int]string{1000: "1e3", 10000000: "1e7", 1500: "1500", 100: "100"} {
		if got := nLabel(n); got != want {
			t.Errorf("nLabel(%d) = %q, want %q", n, got, want)
		}
	}
	for v, want := range map[float64]string{0.5: "0.5", 20: "20", 1000: "1000", 1e4: "1e4", 2e6: "2e6"} {
		if got := tickLabel(v); got != want {
			t.Errorf("tickLabel(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, sample()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"WORKLOAD", "finalizer-setclear", "17.5x", "0.250x", "error: unknown workload",
		"KIND", "1e3", "1e4", "it is not on cleanup-stop (boehm is faster: 0.250x of reclaim's time)",
		"skipped jvm: no java in PATH",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteMarkdown(t *testing.T) {
	r := sample()
	charts, err := Charts(r)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteMarkdown(&b, r, charts); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"```\nreclaim bench -quick\n```",
		"go version go1.26.0 linux/amd64, 2 CPUs, Test CPU",
		"| `finalizer-setclear` | reclaim |  | 20.0 ns | 10.0 ns – 30.0 ns | 1.00x | B/op=0.500 |",
		"|  | boehm | 1000 | 25.0 ns |", // the workload's name only on its first row
		"**0.250x**",
		`set \| clear`,
		"| kind | system | 1e3 | 1e4 |",
		"![ratio to reclaim per workload](ratios.svg)",
		"- jvm: no java in PATH",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
}

// TestCoreToCoreNote: the core-to-core round trips measured around a run
// are in the Markdown and HTML reports, and nothing is said when none was
// measured.
func TestCoreToCoreNote(t *testing.T) {
	r := sample()
	var md, page bytes.Buffer
	if err := WriteMarkdown(&md, r, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(md.String(), "Core-to-core") {
		t.Errorf("markdown mentions a core-to-core round trip none was measured for:\n%s", md.String())
	}
	r.CoreToCoreNs = []float64{131.4, 502.6}
	md.Reset()
	if err := WriteMarkdown(&md, r, nil); err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(&page, r, nil); err != nil {
		t.Fatal(err)
	}
	const want = "before and after the run: 131 ns, 503 ns."
	for name, out := range map[string]string{"markdown": md.String(), "html": page.String()} {
		if !strings.Contains(out, want) {
			t.Errorf("%s lacks %q:\n%s", name, want, out)
		}
	}
}

func TestCharts(t *testing.T) {
	charts, err := Charts(sample())
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, c := range charts {
		files = append(files, c.File)
		if err := wellFormed(bytes.NewReader(c.SVG)); err != nil {
			t.Errorf("%s is not well-formed XML: %v", c.File, err)
		}
		if !bytes.Contains(c.SVG, []byte("<svg")) {
			t.Errorf("%s has no <svg> element", c.File)
		}
	}
	if got, want := strings.Join(files, ","), "ratios.svg,scaling-alloc.svg,scaling-finalizer-run.svg"; got != want {
		t.Errorf("charts %s, want %s", got, want)
	}

	// Nothing to compare: no ratio chart; no scaling: no scaling charts.
	r := &Results{Workloads: []Workload{{Name: "x", Measures: []Measurement{{System: SystemReclaim, Runs: []float64{1}}}}}}
	r.Finish()
	if charts, err := Charts(r); err != nil || len(charts) != 0 {
		t.Errorf("Charts of a lone reclaim figure = %d charts, %v; want none", len(charts), err)
	}
}

func wellFormed(r io.Reader) error {
	d := xml.NewDecoder(r)
	for {
		if _, err := d.Token(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

func TestWriteDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	r := sample()
	r.Workloads[0].Measures[0].Extra["nan"] = math.NaN()
	paths, err := WriteDir(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ratios.svg", "scaling-alloc.svg", "scaling-finalizer-run.svg", "report.md", "report.html", "results.json"}
	if len(paths) != len(want) {
		t.Fatalf("wrote %v, want %v", paths, want)
	}
	for i, p := range paths {
		if filepath.Base(p) != want[i] {
			t.Errorf("path %d = %s, want %s", i, p, want[i])
		}
	}
	html, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "<pre>reclaim bench -quick</pre>", `class="faster"`, "set | clear", "no java in PATH"} {
		if !bytes.Contains(html, []byte(want)) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if len(back.Workloads) != 3 || back.Workloads[0].Measures[0].Ratio != 1 || back.Machine.NumCPU != 2 {
		t.Errorf("results.json round trip lost data: %+v", back)
	}
	if v8 := back.Workloads[1].Measures[2]; v8.Median != 0 || v8.Error != "unknown workload" {
		t.Errorf("NaN median not written as 0: %+v", v8)
	}
	if r.Workloads[1].Measures[2].Median == 0 {
		t.Errorf("WriteDir changed the results it wrote")
	}
}

// A workload counts as measured on more than one system only when reclaim
// and another system both have a figure: one whose other systems all
// failed, or on which reclaim failed, says nothing about who is fastest.
func TestVerdictCountsOnlyCompared(t *testing.T) {
	r := &Results{Workloads: []Workload{
		{Name: "others-failed", Measures: []Measurement{
			{System: SystemReclaim, Runs: []float64{10}},
			{System: "go", Error: "the benchmark failed"},
			{System: "v8", Error: "unknown workload"},
		}},
		{Name: "reclaim-failed", Measures: []Measurement{
			{System: SystemReclaim, Error: "1 of 1 runs failed: panic: x"},
			{System: "go", Runs: []float64{5}},
			{System: "boehm", Runs: []float64{4}},
		}},
		{Name: "compared", Measures: []Measurement{
			{System: SystemReclaim, Runs: []float64{10}},
			{System: "go", Runs: []float64{20}},
		}},
	}}
	r.Finish()
	want := "reclaim is the fastest system on all 1 workloads measured on more than one system."
	if got := verdict(r); got != want {
		t.Errorf("verdict = %q, want %q", got, want)
	}
}
