package report

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Chart is one rendered SVG chart.
type Chart struct {
	Title string // what it shows, also its alt text
	File  string // its file name in a report directory, e.g. "ratios.svg"
	SVG   []byte
}

// Charts renders the results' charts: the ratio of every system to reclaim
// per workload (ratios.svg), and one log-log scaling chart per kind
// (scaling-KIND.svg). A chart with nothing to show is left out.
func Charts(r *Results) ([]Chart, error) {
	var charts []Chart
	if c, ok, err := RatioChart(r); err != nil {
		return nil, err
	} else if ok {
		charts = append(charts, c)
	}
	for _, kind := range r.Kinds() {
		c, ok, err := ScalingChart(r, kind)
		if err != nil {
			return nil, err
		}
		if ok {
			charts = append(charts, c)
		}
	}
	return charts, nil
}

// systemColor gives each system the same color in every chart.
func systemColor(system string) color.Color {
	return plotutil.Color(systemRank(system))
}

// RatioChart draws, per workload, one bar per system other than reclaim:
// its median time over reclaim's, on a log scale, the bars growing up
// from 1 when reclaim is faster and down from 1 when it is not. ok is false
// when no workload has a ratio to draw.
func RatioChart(r *Results) (c Chart, ok bool, err error) {
	p, n, err := ratioPlot(r)
	if err != nil || p == nil {
		return Chart{}, false, err
	}
	svg, err := renderSVG(p, vg.Length(max(480, 70*n)), 360)
	if err != nil {
		return Chart{}, false, err
	}
	return Chart{Title: "ratio to reclaim per workload", File: "ratios.svg", SVG: svg}, true, nil
}

// ratioPlot builds RatioChart's plot, and returns the number of workloads
// on it; the plot is nil when there is nothing to draw.
func ratioPlot(r *Results) (*plot.Plot, int, error) {
	type bar struct {
		x     int
		ratio float64
	}
	bars := map[string][]bar{}
	var names []string
	lo, hi := 1.0, 1.0
	for _, w := range r.Workloads {
		any := false
		for _, m := range w.Measures {
			if m.System == SystemReclaim || !(m.Ratio > 0) || math.IsInf(m.Ratio, 0) {
				continue
			}
			bars[m.System] = append(bars[m.System], bar{len(names), m.Ratio})
			lo, hi = math.Min(lo, m.Ratio), math.Max(hi, m.Ratio)
			any = true
		}
		if any {
			names = append(names, w.Name)
		}
	}
	if len(names) == 0 {
		return nil, 0, nil
	}
	var systems []string
	for _, s := range r.Systems() {
		if len(bars[s]) > 0 {
			systems = append(systems, s)
		}
	}

	p := plot.New()
	p.Title.Text = "time relative to reclaim (log scale; above 1: reclaim is faster)"
	p.Y.Label.Text = "median / reclaim's median"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = ticks125{}
	p.Y.Min, p.Y.Max = lo/1.5, hi*4 // headroom for the legend
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = false

	// The bars stand on an invisible chart of height 1, so that on the log
	// scale they start at ratio 1 rather than at 0.
	width := vg.Points(60 / float64(max(len(systems), 1)))
	one, err := plotter.NewBarChart(plotter.Values{1}, width)
	if err != nil {
		return nil, 0, err
	}
	for i, s := range systems {
		offset := (vg.Length(i) - vg.Length(len(systems)-1)/2) * width
		for j, b := range bars[s] {
			base := *one
			base.XMin = float64(b.x)
			base.Offset = offset
			bc, err := plotter.NewBarChart(plotter.Values{b.ratio - 1}, width)
			if err != nil {
				return nil, 0, err
			}
			bc.StackOn(&base)
			bc.Color = systemColor(s)
			bc.LineStyle.Width = vg.Points(0.5)
			p.Add(bc)
			if j == 0 {
				p.Legend.Add(s, bc)
			}
		}
	}
	line := plotter.NewFunction(func(float64) float64 { return 1 })
	line.Color = color.Black
	line.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
	p.Add(line)
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(names))-0.4
	p.X.Tick.Label.Rotation = math.Pi / 5
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	return p, len(names), nil
}

// ScalingChart draws the cost per object against N of one kind of
// workload, log-log, one line per system. ok is false when no series of the
// kind has a point.
func ScalingChart(r *Results, kind string) (c Chart, ok bool, err error) {
	p, err := scalingPlot(r, kind)
	if err != nil || p == nil {
		return Chart{}, false, err
	}
	svg, err := renderSVG(p, 480, 360)
	if err != nil {
		return Chart{}, false, err
	}
	return Chart{Title: "cost per object against N: " + kind, File: "scaling-" + kind + ".svg", SVG: svg}, true, nil
}

// scalingPlot builds ScalingChart's plot; nil when there is nothing to
// draw.
func scalingPlot(r *Results, kind string) (*plot.Plot, error) {
	ok := false
	p := plot.New()
	p.Title.Text = "scaling: " + kind
	p.X.Label.Text = "N (objects per batch)"
	p.Y.Label.Text = "ns per object"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = ticks125{pow10Only: true}, ticks125{}
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	lo, hi := math.Inf(1), math.Inf(-1)
	xlo, xhi := math.Inf(1), math.Inf(-1)
	for _, s := range r.Scaling {
		if s.Kind != kind {
			continue
		}
		var pts plotter.XYs
		for _, pt := range s.Points {
			if pt.Median > 0 && pt.N > 0 {
				pts = append(pts, plotter.XY{X: float64(pt.N), Y: pt.Median})
				lo, hi = math.Min(lo, pt.Median), math.Max(hi, pt.Median)
				xlo, xhi = math.Min(xlo, float64(pt.N)), math.Max(xhi, float64(pt.N))
			}
		}
		if len(pts) == 0 {
			continue
		}
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		l.Color = systemColor(s.System)
		l.Width = vg.Points(1.5)
		sc.Color = systemColor(s.System)
		sc.Shape = draw.CircleGlyph{}
		p.Add(l, sc)
		p.Legend.Add(s.System, l, sc)
		ok = true
	}
	if !ok {
		return nil, nil
	}
	p.Y.Min, p.Y.Max = lo/2, hi*5 // headroom for the legend
	p.X.Min, p.X.Max = xlo/2, xhi*2
	return p, nil
}

// renderSVG draws p on an SVG canvas of w×h points.
func renderSVG(p *plot.Plot, w, h vg.Length) ([]byte, error) {
	c := vgsvg.NewWith(vgsvg.UseWH(w, h), vgsvg.EmbedFonts(false))
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("report: rendering SVG: %w", err)
	}
	return buf.Bytes(), nil
}

// ticks125 marks a log axis at 1, 2 and 5 times each power of ten,
// labelling all of them when the range is under three decades and the
// powers of ten otherwise (or always, with pow10Only).
type ticks125 struct{ pow10Only bool }

// Ticks implements plot.Ticker.
func (t ticks125) Ticks(lo, hi float64) []plot.Tick {
	if !(lo > 0) || !(hi > lo) {
		return nil
	}
	labelAll := !t.pow10Only && hi/lo < 1000
	var out []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			tk := plot.Tick{Value: v}
			if m == 1 || labelAll {
				tk.Label = tickLabel(v)
			}
			out = append(out, tk)
		}
	}
	return out
}

// tickLabel formats a tick value compactly: 0.5, 20, 1000, 1e4, 2e6.
func tickLabel(v float64) string {
	if v >= 1e4 {
		e := math.Floor(math.Log10(v) + 1e-9)
		mant := math.Round(v/math.Pow(10, e)*100) / 100
		return strconv.FormatFloat(mant, 'f', -1, 64) + "e" + strconv.Itoa(int(e))
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
