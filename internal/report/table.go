package report

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes the results as plain-text tables for a terminal.
func WriteTable(w io.Writer, r *Results) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "WORKLOAD\tSYSTEM\tN\tMEDIAN\tMIN – MAX\tRATIO\tEXTRA\n")
	for _, wl := range r.Workloads {
		for i, m := range wl.Measures {
			name := wl.Name
			if i > 0 {
				name = ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, m.System, nOf(m.N),
				FormatNs(m.Median), rangeOf(m.Min, m.Max), FormatRatio(m.Ratio), notes(m))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nratio = the system's median over reclaim's: above 1, reclaim is faster. Median of %d run%s.\n", r.Count, plural(r.Count))

	if len(r.Scaling) > 0 {
		ns := scalingNs(r)
		fmt.Fprintf(w, "\nscaling: median cost per object against N\n")
		fmt.Fprintf(tw, "KIND\tSYSTEM")
		for _, n := range ns {
			fmt.Fprintf(tw, "\t%s", nLabel(n))
		}
		fmt.Fprintf(tw, "\n")
		for _, s := range r.Scaling {
			fmt.Fprintf(tw, "%s\t%s", s.Kind, s.System)
			for _, n := range ns {
				fmt.Fprintf(tw, "\t%s", pointCell(s, n))
			}
			fmt.Fprintf(tw, "\n")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintf(w, "\n%s\n", verdict(r))
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "skipped %s: %s\n", s.System, s.Reason)
	}
	return nil
}

// WriteMarkdown writes the results as a Markdown report. charts are SVG
// file names, relative to the report, shown in order.
func WriteMarkdown(w io.Writer, r *Results, charts []Chart) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# reclaim bench\n\n")
	fmt.Fprintf(&b, "Measured %s with\n\n```\n%s\n```\n\n", r.Started.UTC().Format(time.DateTime+" MST"), r.Command)
	fmt.Fprintf(&b, "on %s (%s).\n", r.Machine, runsNote(r))
	if note := r.CoreToCoreNote(); note != "" {
		fmt.Fprintf(&b, "%s\n", note)
	}
	fmt.Fprintf(&b, "The ratio is a system's median over reclaim's median for the same workload: above 1, reclaim is faster.\n\n")
	fmt.Fprintf(&b, "%s\n\n", verdict(r))

	fmt.Fprintf(&b, "## Workloads\n\n")
	fmt.Fprintf(&b, "| workload | system | N | median | min – max | ratio | extra |\n")
	fmt.Fprintf(&b, "|---|---|--:|--:|--:|--:|---|\n")
	for _, wl := range r.Workloads {
		for i, m := range wl.Measures {
			name := ""
			if i == 0 {
				name = "`" + wl.Name + "`"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", name, m.System, nOf(m.N),
				FormatNs(m.Median), rangeOf(m.Min, m.Max), bold(m), mdEscape(notes(m)))
		}
	}
	fmt.Fprintf(&b, "\n")
	fmt.Fprintf(&b, "| workload | what one op is |\n|---|---|\n")
	for _, wl := range r.Workloads {
		fmt.Fprintf(&b, "| `%s` | %s |\n", wl.Name, mdEscape(wl.Doc))
	}
	fmt.Fprintf(&b, "\n")

	if len(r.Scaling) > 0 {
		ns := scalingNs(r)
		fmt.Fprintf(&b, "## Scaling\n\nMedian cost per object against N (objects per batch).\n\n")
		fmt.Fprintf(&b, "| kind | system |")
		for _, n := range ns {
			fmt.Fprintf(&b, " %s |", nLabel(n))
		}
		fmt.Fprintf(&b, "\n|---|---|%s\n", strings.Repeat("--:|", len(ns)))
		for _, s := range r.Scaling {
			fmt.Fprintf(&b, "| %s | %s |", s.Kind, s.System)
			for _, n := range ns {
				fmt.Fprintf(&b, " %s |", pointCell(s, n))
			}
			fmt.Fprintf(&b, "\n")
		}
		fmt.Fprintf(&b, "\n")
	}

	if len(charts) > 0 {
		fmt.Fprintf(&b, "## Charts\n\n")
		for _, c := range charts {
			fmt.Fprintf(&b, "![%s](%s)\n\n", c.Title, c.File)
		}
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(&b, "## Skipped\n\n")
		for _, s := range r.Skipped {
			fmt.Fprintf(&b, "- %s: %s\n", s.System, mdEscape(s.Reason))
		}
		fmt.Fprintf(&b, "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// verdict says in one line where reclaim was fastest and where not.
func verdict(r *Results) string {
	measured := 0
	for _, wl := range r.Workloads {
		if compared(wl) {
			measured++
		}
	}
	gaps := r.Gaps()
	if measured == 0 {
		return "No workload was measured on more than one system."
	}
	if len(gaps) == 0 {
		return fmt.Sprintf("reclaim is the fastest system on all %d workloads measured on more than one system.", measured)
	}
	parts := make([]string, len(gaps))
	for i, g := range gaps {
		parts[i] = fmt.Sprintf("%s (%s is faster: %s of reclaim's time)", g.Workload, g.System, FormatRatio(g.Ratio))
	}
	return fmt.Sprintf("reclaim is the fastest system on %d of %d workloads; it is not on %s.",
		measured-len(gaps), measured, strings.Join(parts, ", "))
}

// compared reports whether wl has a figure for reclaim and for at least
// one other system: a system that failed is not measured.
func compared(wl Workload) bool {
	if base := wl.Reclaim(); base == nil || !(base.Median > 0) {
		return false
	}
	for _, m := range wl.Measures {
		if m.System != SystemReclaim && m.Median > 0 {
			return true
		}
	}
	return false
}

func runsNote(r *Results) string {
	s := fmt.Sprintf("%d run%s per workload and system, Go-side benchtime %s", r.Count, plural(r.Count), r.BenchTime)
	if r.Quick {
		s += ", -quick sizes"
	}
	return s
}

// notes is a measurement's extra column: its metrics, or its error.
func notes(m Measurement) string {
	s := formatExtra(m.Extra)
	if m.Error != "" {
		if s != "" {
			s += " "
		}
		s += "error: " + m.Error
	}
	return s
}

// bold formats the ratio, in bold when the system beat reclaim.
func bold(m Measurement) string {
	s := FormatRatio(m.Ratio)
	if m.Ratio > 0 && m.Ratio < 1 {
		return "**" + s + "**"
	}
	return s
}

func nOf(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// nLabel formats a power of ten as "1e5", anything else as a number.
func nLabel(n int) string {
	e := 0
	for v := n; v >= 10 && v%10 == 0; v /= 10 {
		e++
	}
	if e >= 3 && n == pow10(e) {
		return fmt.Sprintf("1e%d", e)
	}
	return strconv.Itoa(n)
}

func pow10(e int) int {
	v := 1
	for range e {
		v *= 10
	}
	return v
}

// scalingNs returns every N in r's scaling series, in increasing order.
func scalingNs(r *Results) []int {
	seen := map[int]bool{}
	var ns []int
	for _, s := range r.Scaling {
		for _, p := range s.Points {
			if !seen[p.N] {
				seen[p.N] = true
				ns = append(ns, p.N)
			}
		}
	}
	slices.Sort(ns)
	return ns
}

func pointCell(s Series, n int) string {
	for _, p := range s.Points {
		if p.N == n {
			if p.Error != "" && !(p.Median > 0) {
				return "error"
			}
			return FormatNs(p.Median)
		}
	}
	return ""
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
