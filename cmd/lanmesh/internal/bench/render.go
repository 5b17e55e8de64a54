package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// sig3 formats x with three significant digits, without exponent.
func sig3(x float64) string {
	ax := math.Abs(x)
	switch {
	case ax == 0:
		return "0"
	case ax >= 100 || math.Abs(x-math.Round(x)) < 1e-9*ax:
		return fmt.Sprintf("%.0f", x)
	case ax >= 10:
		return fmt.Sprintf("%.1f", x)
	case ax >= 1:
		return fmt.Sprintf("%.2f", x)
	case ax >= 0.1:
		return fmt.Sprintf("%.3f", x)
	}
	return fmt.Sprintf("%.2g", x)
}

// scaled picks a multiple of x for display: x/div with its prefix.
func scaled(x float64, steps []float64, names []string) (float64, string) {
	ax := math.Abs(x)
	for i := len(steps) - 1; i > 0; i-- {
		if ax >= steps[i]*0.9995 {
			return x / steps[i], names[i]
		}
	}
	return x / steps[0], names[0]
}

// formatValue formats x in unit for people: "11.2 M msgs/s", "12.8 µs",
// "4.1 KiB", "0 allocs/msg".
func formatValue(x float64, unit string) string {
	switch unit {
	case UnitSeconds:
		v, u := scaled(x, []float64{1e-9, 1e-6, 1e-3, 1}, []string{"ns", "µs", "ms", "s"})
		return sig3(v) + " " + u
	case UnitBytes:
		v, u := scaled(x, []float64{1, 1 << 10, 1 << 20, 1 << 30}, []string{"B", "KiB", "MiB", "GiB"})
		return sig3(v) + " " + u
	case UnitMsgsPerSec:
		v, u := scaled(x, []float64{1, 1e3, 1e6, 1e9}, []string{"", "k", "M", "G"})
		return strings.TrimSpace(sig3(v)+" "+u) + " " + unit
	case UnitAllocs:
		return fmt.Sprintf("%.2f %s", x, unit)
	}
	return sig3(x) + " " + unit
}

// formatStat formats "median [min – max]"; a single value alone.
func formatStat(s Stat, unit string) string {
	med := formatValue(s.Median, unit)
	lo, hi := formatValue(s.Min, unit), formatValue(s.Max, unit)
	if s.N <= 1 || lo == hi {
		return med
	}
	return fmt.Sprintf("%s [%s – %s]", med, trimUnit(lo, unit), trimUnit(hi, unit))
}

// trimUnit drops the unit word from a formatted value, keeping any scale
// prefix: "10.9 M msgs/s" -> "10.9 M", but "12.1 µs" stays.
func trimUnit(s, unit string) string {
	if unit == UnitSeconds || unit == UnitBytes {
		return s
	}
	return strings.TrimSpace(strings.TrimSuffix(s, unit))
}

// formatRatio says how lanmesh compares: a percentage of the baseline for
// a figure where higher is better, a multiple for the others.
func formatRatio(r Result) string {
	if r.Baseline == nil || r.Ratio == 0 {
		return ""
	}
	if r.Higher {
		return fmt.Sprintf("%.0f %%", 100*r.Ratio)
	}
	return fmt.Sprintf("%.2f×", r.Ratio)
}

// WriteTable writes the report as a table grouped by part: each figure's
// median [min – max], the baseline's, the ratio and a note.
func WriteTable(w io.Writer, rep *Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "lanmesh bench: %s/%s, %d CPUs, %s; median [min – max] of %d reps after a warm-up%s\n",
		rep.GOOS, rep.GOARCH, rep.CPUs, rep.GoVersion, rep.Reps, quickNote(rep))
	for _, p := range rep.Parts {
		fmt.Fprintf(tw, "\n== %s: %s\n", p.Name, p.Title)
		switch {
		case p.Skipped != "":
			fmt.Fprintf(tw, "  skipped: %s\n", p.Skipped)
			continue
		case len(p.Results) > 0:
			fmt.Fprintln(tw, "  figure\tlanmesh\tbaseline\tratio\tnote")
		}
		for _, r := range p.Results {
			base := ""
			if r.Baseline != nil {
				base = formatStat(*r.Baseline, r.Unit)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", r.Name, formatStat(r.Stat, r.Unit), base, formatRatio(r), r.Note)
		}
		if p.Error != "" {
			fmt.Fprintf(tw, "  FAILED: %s\n", p.Error)
		}
	}
	fmt.Fprintln(tw)
	if names := baselineNames(rep); len(names) > 0 {
		fmt.Fprintf(tw, "Baselines: %s.\n", strings.Join(names, "; "))
	}
	fmt.Fprintf(tw, "Total %.0fs.\n", rep.Seconds)
	return tw.Flush()
}

func quickNote(rep *Report) string {
	if rep.Quick {
		return " (--quick: rough figures)"
	}
	return ""
}

// baselineNames lists the distinct baselines of the report.
func baselineNames(rep *Report) []string {
	var names []string
	seen := map[string]bool{}
	for _, p := range rep.Parts {
		for _, r := range p.Results {
			if r.BaselineName != "" && !seen[r.BaselineName] {
				seen[r.BaselineName] = true
				names = append(names, r.BaselineName)
			}
		}
	}
	return names
}

// WriteMarkdown writes the report as a Markdown table, for the README.
func WriteMarkdown(w io.Writer, rep *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "| part | figure | lanmesh | baseline | ratio | note |\n| --- | --- | --- | --- | --- | --- |\n")
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, p := range rep.Parts {
		if p.Skipped != "" {
			fmt.Fprintf(&b, "| %s | skipped: %s | | | | |\n", p.Name, esc(p.Skipped))
			continue
		}
		for _, r := range p.Results {
			base := ""
			if r.Baseline != nil {
				base = formatStat(*r.Baseline, r.Unit)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", p.Name, esc(r.Name), formatStat(r.Stat, r.Unit), base, formatRatio(r), esc(r.Note))
		}
		if p.Error != "" {
			fmt.Fprintf(&b, "| %s | FAILED: %s | | | | |\n", p.Name, esc(p.Error))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
