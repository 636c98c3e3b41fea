// Package report holds the results of `reclaim bench` and renders them: a
// table for the terminal, a Markdown report, an HTML page, and SVG charts
// drawn with gonum.org/v1/plot.
//
// Results is also the JSON the command prints with -json; its field names
// are the format's contract.
package report

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// SystemReclaim is the system every ratio is taken against.
const SystemReclaim = "reclaim"

// Results is everything one bench run measured.
type Results struct {
	Command   string     `json:"command"`   // the command line that produced the results
	Machine   Machine    `json:"machine"`   // where they were measured
	Started   time.Time  `json:"started"`   // when the run began
	ElapsedS  float64    `json:"elapsed_s"` // the run's wall time in seconds
	Count     int        `json:"count"`     // runs per workload and system
	Quick     bool       `json:"quick"`     // smaller sizes (testing.Short) and fewer runs
	BenchTime string     `json:"benchtime"` // testing's -test.benchtime for each Go-side run
	Workloads []Workload `json:"workloads"` // in suite order
	Scaling   []Series   `json:"scaling"`   // one per (kind, system)
	Skipped   []Skip     `json:"skipped,omitempty"`
	// CoreToCoreNs is the round trip of a cache line between two cores
	// (workload.CoreToCore), measured before the run and after it; empty
	// if it was not measured. The run workloads' figures move with it on a
	// virtual machine.
	CoreToCoreNs []float64 `json:"core_to_core_ns,omitempty"`
}

// CoreToCoreNote says, in a sentence, what CoreToCoreNs holds; "" if it is
// empty.
func (r *Results) CoreToCoreNote() string {
	if len(r.CoreToCoreNs) == 0 {
		return ""
	}
	parts := make([]string, len(r.CoreToCoreNs))
	for i, ns := range r.CoreToCoreNs {
		parts[i] = fmt.Sprintf("%.0f ns", ns)
	}
	return "Core-to-core round trip (a cache line handed between two threads), before and after the run: " + strings.Join(parts, ", ") + "."
}

// Machine describes the computer a run was measured on.
type Machine struct {
	GoVersion string `json:"go_version"` // as `go version` prints it, e.g. "go1.26.0"
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	NumCPU    int    `json:"nproc"`
	CPUModel  string `json:"cpu_model,omitempty"` // /proc/cpuinfo's "model name"
}

// String formats m on one line.
func (m Machine) String() string {
	s := fmt.Sprintf("go version %s %s/%s, %d CPUs", m.GoVersion, m.GOOS, m.GOARCH, m.NumCPU)
	if m.CPUModel != "" {
		s += ", " + m.CPUModel
	}
	return s
}

// Workload is one workload's measurements on every system that ran it.
type Workload struct {
	Name     string        `json:"name"`
	Doc      string        `json:"doc"`
	Peer     string        `json:"peer,omitempty"`   // the peers' name for it, if they run it
	PeerN    int           `json:"peer_n,omitempty"` // N given to the peers
	Measures []Measurement `json:"systems"`          // reclaim first, then go, then peers
}

// Measurement is one system's runs of one workload.
type Measurement struct {
	System string    `json:"system"`         // "reclaim", "go", "boehm", "jvm", "v8"
	N      int       `json:"n,omitempty"`    // the N a peer was given
	Runs   []float64 `json:"runs_ns_per_op"` // ns/op of each run
	Median float64   `json:"median_ns_per_op"`
	Min    float64   `json:"min_ns_per_op"`
	Max    float64   `json:"max_ns_per_op"`
	// Ratio is Median over reclaim's median for the same workload: above 1,
	// reclaim is faster. 0 when there is no reclaim figure.
	Ratio float64 `json:"ratio_to_reclaim,omitempty"`
	// Extra holds the median of each other metric the runs reported: the
	// workload's own (b.ReportMetric), B/op and allocs/op of Go-side runs,
	// and peak_rss_kib or unfinalized of peers.
	Extra map[string]float64 `json:"extra,omitempty"`
	Error string             `json:"error,omitempty"` // why there are no (or fewer) runs
}

// Series is a scaling curve: cost per object against N for one kind of
// workload on one system.
type Series struct {
	Kind   string  `json:"kind"` // "alloc", "finalizer-run", "cleanup-run"
	System string  `json:"system"`
	Points []Point `json:"points"` // by increasing N
}

// Point is one N of a Series.
type Point struct {
	N      int       `json:"n"`
	Runs   []float64 `json:"runs_ns_per_object"`
	Median float64   `json:"median_ns_per_object"`
	Min    float64   `json:"min_ns_per_object"`
	Max    float64   `json:"max_ns_per_object"`
	Error  string    `json:"error,omitempty"`
}

// Skip records a peer that did not run, and why.
type Skip struct {
	System string `json:"system"`
	Reason string `json:"reason"`
}

// Summarize returns the median, minimum and maximum of runs, ignoring NaNs;
// all three are NaN when there is no run.
func Summarize(runs []float64) (median, lo, hi float64) {
	v := make([]float64, 0, len(runs))
	for _, r := range runs {
		if !math.IsNaN(r) {
			v = append(v, r)
		}
	}
	if len(v) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		median = v[n/2]
	} else {
		median = (v[n/2-1] + v[n/2]) / 2
	}
	return median, v[0], v[n-1]
}

// Finish fills in the medians, ranges and ratios from the runs, and sorts
// each workload's systems into their canonical order.
func (r *Results) Finish() {
	for i := range r.Workloads {
		w := &r.Workloads[i]
		slices.SortStableFunc(w.Measures, func(a, b Measurement) int {
			return cmp.Compare(systemRank(a.System), systemRank(b.System))
		})
		for j := range w.Measures {
			m := &w.Measures[j]
			m.Median, m.Min, m.Max = Summarize(m.Runs)
		}
		base := w.Reclaim()
		for j := range w.Measures {
			m := &w.Measures[j]
			m.Ratio = 0
			if base != nil && base.Median > 0 && m.Median > 0 {
				m.Ratio = m.Median / base.Median
			}
		}
	}
	for i := range r.Scaling {
		s := &r.Scaling[i]
		slices.SortFunc(s.Points, func(a, b Point) int { return cmp.Compare(a.N, b.N) })
		for j := range s.Points {
			p := &s.Points[j]
			p.Median, p.Min, p.Max = Summarize(p.Runs)
		}
	}
	slices.SortStableFunc(r.Scaling, func(a, b Series) int {
		if c := cmp.Compare(kindRank(a.Kind), kindRank(b.Kind)); c != 0 {
			return c
		}
		return cmp.Compare(systemRank(a.System), systemRank(b.System))
	})
}

// Reclaim returns w's reclaim measurement, or nil.
func (w *Workload) Reclaim() *Measurement {
	for i := range w.Measures {
		if w.Measures[i].System == SystemReclaim {
			return &w.Measures[i]
		}
	}
	return nil
}

// Systems returns every system in r, in canonical order.
func (r *Results) Systems() []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, w := range r.Workloads {
		for _, m := range w.Measures {
			add(m.System)
		}
	}
	for _, s := range r.Scaling {
		add(s.System)
	}
	slices.SortStableFunc(out, func(a, b string) int { return cmp.Compare(systemRank(a), systemRank(b)) })
	return out
}

// Kinds returns the scaling kinds in r, in canonical order.
func (r *Results) Kinds() []string {
	var out []string
	for _, s := range r.Scaling {
		if !slices.Contains(out, s.Kind) {
			out = append(out, s.Kind)
		}
	}
	return out
}

// Gap is a workload on which some system beat reclaim.
type Gap struct {
	Workload string
	System   string  // the fastest system
	Ratio    float64 // its median over reclaim's: below 1
}

// Gaps lists, for every workload, the fastest system when it is not
// reclaim.
func (r *Results) Gaps() []Gap {
	var gaps []Gap
	for _, w := range r.Workloads {
		best := bestOf(w.Measures)
		if best != nil && best.System != SystemReclaim && best.Ratio > 0 && best.Ratio < 1 {
			gaps = append(gaps, Gap{Workload: w.Name, System: best.System, Ratio: best.Ratio})
		}
	}
	return gaps
}

func bestOf(ms []Measurement) *Measurement {
	var best *Measurement
	for i := range ms {
		m := &ms[i]
		if !(m.Median > 0) {
			continue
		}
		if best == nil || m.Median < best.Median {
			best = m
		}
	}
	return best
}

var systemOrder = []string{SystemReclaim, "go", "boehm", "jvm", "v8"}

func systemRank(s string) int {
	if i := slices.Index(systemOrder, s); i >= 0 {
		return i
	}
	return len(systemOrder)
}

var kindOrder = []string{"alloc", "finalizer-run", "cleanup-run"}

func kindRank(k string) int {
	if i := slices.Index(kindOrder, k); i >= 0 {
		return i
	}
	return len(kindOrder)
}

// FormatNs formats a duration in nanoseconds with three significant digits
// and a unit: "24.1 ns", "1.22 µs", "1.94 s". NaN and non-positive values
// print as "—".
func FormatNs(ns float64) string {
	if math.IsNaN(ns) || ns <= 0 {
		return "—"
	}
	units := []struct {
		scale float64
		name  string
	}{{1e9, "s"}, {1e6, "ms"}, {1e3, "µs"}, {1, "ns"}}
	for _, u := range units {
		if ns >= u.scale || u.scale == 1 {
			return sig3(ns/u.scale) + " " + u.name
		}
	}
	panic("unreachable")
}

// FormatRatio formats a ratio to reclaim: "3.12x"; "—" when there is none.
func FormatRatio(r float64) string {
	if !(r > 0) || math.IsInf(r, 0) {
		return "—"
	}
	return sig3(r) + "x"
}

// sig3 formats v with three significant digits and no exponent.
func sig3(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// formatExtra formats the extra metrics in a stable order: "k=v k=v".
func formatExtra(extra map[string]float64) string {
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+sig3(extra[k]))
	}
	return strings.Join(parts, " ")
}

// rangeOf formats "min–max".
func rangeOf(lo, hi float64) string {
	if math.IsNaN(lo) {
		return "—"
	}
	return FormatNs(lo) + " – " + FormatNs(hi)
}

// jsonSafe returns a copy of r with every NaN or infinite figure set to 0,
// which encoding/json cannot write.
func (r *Results) jsonSafe() *Results {
	c := *r
	fix := func(v *float64) {
		if math.IsNaN(*v) || math.IsInf(*v, 0) {
			*v = 0
		}
	}
	fixAll := func(v []float64) []float64 {
		out := slices.Clone(v)
		for i := range out {
			fix(&out[i])
		}
		return out
	}
	c.Workloads = slices.Clone(r.Workloads)
	for i := range c.Workloads {
		w := &c.Workloads[i]
		w.Measures = slices.Clone(w.Measures)
		for j := range w.Measures {
			m := &w.Measures[j]
			m.Runs = fixAll(m.Runs)
			fix(&m.Median)
			fix(&m.Min)
			fix(&m.Max)
			fix(&m.Ratio)
			if m.Extra != nil {
				extra := make(map[string]float64, len(m.Extra))
				for k, v := range m.Extra {
					fix(&v)
					extra[k] = v
				}
				m.Extra = extra
			}
		}
	}
	c.Scaling = slices.Clone(r.Scaling)
	for i := range c.Scaling {
		s := &c.Scaling[i]
		s.Points = slices.Clone(s.Points)
		for j := range s.Points {
			p := &s.Points[j]
			p.Runs = fixAll(p.Runs)
			fix(&p.Median)
			fix(&p.Min)
			fix(&p.Max)
		}
	}
	return &c
}
