package report

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"time"
)

// WriteHTML writes the results as one HTML page with the charts inline.
func WriteHTML(w io.Writer, r *Results, charts []Chart) error {
	type row struct {
		Workload string
		Measurement
		RatioText, MedianText, RangeText, Notes string
		Faster                                  bool
	}
	type scalingRow struct {
		Kind, System string
		Cells        []string
	}
	type svgChart struct {
		Title string
		File  string
		SVG   template.HTML
	}
	var rows []row
	for _, wl := range r.Workloads {
		for i, m := range wl.Measures {
			name := ""
			if i == 0 {
				name = wl.Name
			}
			rows = append(rows, row{Workload: name, Measurement: m, RatioText: FormatRatio(m.Ratio),
				MedianText: FormatNs(m.Median), RangeText: rangeOf(m.Min, m.Max), Notes: notes(m),
				Faster: m.Ratio > 0 && m.Ratio < 1})
		}
	}
	var ns []string
	var srows []scalingRow
	for _, n := range scalingNs(r) {
		ns = append(ns, nLabel(n))
	}
	for _, s := range r.Scaling {
		sr := scalingRow{Kind: s.Kind, System: s.System}
		for _, n := range scalingNs(r) {
			sr.Cells = append(sr.Cells, pointCell(s, n))
		}
		srows = append(srows, sr)
	}
	var svgs []svgChart
	for _, c := range charts {
		// The SVG was rendered by this package from numbers and the
		// workload and system names, which the SVG encoder escapes.
		svgs = append(svgs, svgChart{Title: c.Title, File: c.File, SVG: template.HTML(c.SVG)})
	}
	return pageTmpl.Execute(w, map[string]any{
		"R":        r,
		"Started":  r.Started.UTC().Format(time.DateTime + " MST"),
		"Runs":     runsNote(r),
		"Verdict":  verdict(r),
		"Rows":     rows,
		"Ns":       ns,
		"Scaling":  srows,
		"Charts":   svgs,
		"Machine":  r.Machine.String(),
		"Workload": r.Workloads,
	})
}

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>reclaim bench</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { padding: 0.2rem 0.6rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child, td.l { text-align: left; }
td.faster { font-weight: bold; color: #a00; }
pre { background: #f4f4f4; padding: 0.6rem; overflow-x: auto; }
figure { display: inline-block; margin: 1rem; }
</style>
</head>
<body>
<h1>reclaim bench</h1>
<p>Measured {{.Started}} with</p>
<pre>{{.R.Command}}</pre>
<p>on {{.Machine}} ({{.Runs}}).
{{with .R.CoreToCoreNote}}{{.}}{{end}}
The ratio is a system's median over reclaim's median for the same workload: above 1, reclaim is faster.</p>
<p><strong>{{.Verdict}}</strong></p>
{{range .Charts}}<figure>{{.SVG}}<figcaption>{{.Title}} (<a href="{{.File}}">{{.File}}</a>)</figcaption></figure>
{{end}}
<h2>Workloads</h2>
<table>
<tr><th>workload</th><th>system</th><th>N</th><th>median</th><th>min – max</th><th>ratio</th><th>extra</th></tr>
{{range .Rows}}<tr><td><code>{{.Workload}}</code></td><td class="l">{{.System}}</td><td>{{if .N}}{{.N}}{{end}}</td><td>{{.MedianText}}</td><td>{{.RangeText}}</td><td{{if .Faster}} class="faster"{{end}}>{{.RatioText}}</td><td class="l">{{.Notes}}</td></tr>
{{end}}</table>
<table>
<tr><th>workload</th><th>what one op is</th></tr>
{{range .Workload}}<tr><td><code>{{.Name}}</code></td><td class="l">{{.Doc}}</td></tr>
{{end}}</table>
{{if .Scaling}}<h2>Scaling</h2>
<p>Median cost per object against N (objects per batch).</p>
<table>
<tr><th>kind</th><th>system</th>{{range .Ns}}<th>{{.}}</th>{{end}}</tr>
{{range .Scaling}}<tr><td>{{.Kind}}</td><td class="l">{{.System}}</td>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
{{end}}{{if .R.Skipped}}<h2>Skipped</h2>
<ul>{{range .R.Skipped}}<li>{{.System}}: {{.Reason}}</li>{{end}}</ul>
{{end}}</body>
</html>
`))

// WriteDir writes the whole report into dir, creating it: report.md,
// report.html, results.json and the charts' SVG files. It returns the paths
// written.
func WriteDir(dir string, r *Results) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	charts, err := Charts(r)
	if err != nil {
		return nil, err
	}
	var written []string
	write := func(name string, render func(io.Writer) error) error {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := render(f); err != nil {
			f.Close()
			return fmt.Errorf("report: writing %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		written = append(written, path)
		return nil
	}
	for _, c := range charts {
		if err := write(c.File, func(w io.Writer) error { _, err := w.Write(c.SVG); return err }); err != nil {
			return written, err
		}
	}
	steps := []struct {
		name   string
		render func(io.Writer) error
	}{
		{"report.md", func(w io.Writer) error { return WriteMarkdown(w, r, charts) }},
		{"report.html", func(w io.Writer) error { return WriteHTML(w, r, charts) }},
		{"results.json", func(w io.Writer) error { return WriteJSON(w, r) }},
	}
	for _, s := range steps {
		if err := write(s.name, s.render); err != nil {
			return written, err
		}
	}
	return written, nil
}

// WriteJSON writes r as indented JSON. NaN figures (no run) are written
// as 0.
func WriteJSON(w io.Writer, r *Results) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r.jsonSafe())
}
