package bench

import (
	"fmt"
	"html"
	"io"
	"strings"
)

// chartGroup is one pair of bars: lanmesh and its baseline.
type chartGroup struct {
	label string
	r     Result
}

// chartPanel is a titled list of pairs.
type chartPanel struct {
	title  string
	groups []chartGroup
}

// Geometry of the chart, in pixels.
const (
	chartWidth  = 900
	chartLabelX = 16  // left edge of the group labels
	chartBarX   = 250 // left edge of the bars
	chartBarW   = 420 // the longest bar of a pair
	chartBarH   = 14
	chartGap    = 4  // between the two bars of a pair
	chartGroupG = 14 // between pairs
	colLanmesh  = "#2b6cb0"
	colBaseline = "#a0aec0"
)

// chartPanels picks what the chart shows: the throughput of each message
// size and the round-trip percentiles, each beside its baseline.
func chartPanels(rep *Report) []chartPanel {
	tp := chartPanel{title: "Throughput, one way, loopback TCP: messages per second (higher is better)"}
	rtt := chartPanel{title: "Round trip of a 32-byte message, loopback TCP (lower is better)"}
	keyed := chartPanel{title: "With a mesh key"}
	for _, p := range rep.Parts {
		for _, r := range p.Results {
			if r.Baseline == nil {
				continue
			}
			switch {
			case p.Name == "throughput" && r.Unit == UnitMsgsPerSec:
				tp.groups = append(tp.groups, chartGroup{r.Name, r})
			case p.Name == "rtt":
				rtt.groups = append(rtt.groups, chartGroup{strings.TrimPrefix(r.Name, "32 B, "), r})
			case p.Name == "keyed" && r.Unit != UnitMBPerSec:
				keyed.groups = append(keyed.groups, chartGroup{r.Name, r})
			}
		}
	}
	var out []chartPanel
	for _, p := range []chartPanel{tp, rtt, keyed} {
		if len(p.groups) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// WriteChart writes a self-contained SVG chart of the report: horizontal
// bars of lanmesh's throughput and round trip beside the raw-TCP baseline,
// each bar the median with a thin line from min to max. Each pair of bars
// has its own scale (the figures span six orders of magnitude), so bars
// compare within a pair, and the labels carry the values.
func WriteChart(w io.Writer, rep *Report) error {
	panels := chartPanels(rep)
	var b strings.Builder
	y := 0
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	text := func(x, y int, size int, weight, anchor, fill, s string) {
		line(`<text x="%d" y="%d" font-size="%d" font-weight="%s" text-anchor="%s" fill="%s">%s</text>`,
			x, y, size, weight, anchor, fill, html.EscapeString(s))
	}
	y = 30
	text(chartLabelX, y, 18, "bold", "start", "#1a202c", "lanmesh bench: lanmesh against raw TCP on this machine")
	y += 20
	reps := fmt.Sprintf("median of %d reps after a warm-up; thin line: min to max; each pair of bars drawn to its own scale", rep.Reps)
	text(chartLabelX, y, 12, "normal", "start", "#4a5568", reps)
	y += 18
	line(`<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`, chartLabelX, y-10, colLanmesh)
	text(chartLabelX+18, y, 12, "normal", "start", "#1a202c", "lanmesh")
	line(`<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`, chartLabelX+90, y-10, colBaseline)
	text(chartLabelX+108, y, 12, "normal", "start", "#1a202c", "raw TCP baseline, same run")
	y += 14
	if len(panels) == 0 {
		y += 24
		text(chartLabelX, y, 14, "normal", "start", "#1a202c", "No throughput or round-trip figures in this run (see --only).")
	}
	for _, p := range panels {
		y += 30
		text(chartLabelX, y, 14, "bold", "start", "#1a202c", p.title)
		y += 12
		for _, g := range p.groups {
			y += chartGroupG
			r := g.r
			top := max(r.Max, r.Baseline.Max, r.Median, r.Baseline.Median)
			if top <= 0 {
				top = 1
			}
			scale := func(v float64) float64 { return float64(chartBarW) * v / top }
			text(chartLabelX, y+chartBarH+chartGap/2+4, 12, "normal", "start", "#1a202c", g.label)
			bars := []struct {
				s     Stat
				color string
				label string
			}{
				{r.Stat, colLanmesh, formatValue(r.Median, r.Unit) + ratioWords(r)},
				{*r.Baseline, colBaseline, formatValue(r.Baseline.Median, r.Unit)},
			}
			for _, bar := range bars {
				wid := scale(bar.s.Median)
				line(`<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`, chartBarX, y, wid, chartBarH, bar.color)
				mid := y + chartBarH/2
				x0, x1 := float64(chartBarX)+scale(bar.s.Min), float64(chartBarX)+scale(bar.s.Max)
				if bar.s.N > 1 && x1 > x0 {
					line(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#1a202c" stroke-width="1"/>`, x0, mid, x1, mid)
					line(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#1a202c" stroke-width="1"/>`, x0, mid-4, x0, mid+4)
					line(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#1a202c" stroke-width="1"/>`, x1, mid-4, x1, mid+4)
				}
				end := max(float64(chartBarX)+wid, x1)
				text(int(end)+8, y+chartBarH-3, 11, "normal", "start", "#1a202c", bar.label)
				y += chartBarH + chartGap
			}
		}
	}
	y += 30
	foot := fmt.Sprintf("%s/%s, %d CPUs, %s, %s", rep.GOOS, rep.GOARCH, rep.CPUs, rep.GoVersion, rep.Started.Format("2006-01-02"))
	if rep.Quick {
		foot += " (--quick: rough figures)"
	}
	text(chartLabelX, y, 11, "normal", "start", "#4a5568", foot)
	y += 16
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
<rect width="100%%" height="100%%" fill="white"/>
`, chartWidth, y, chartWidth, y)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	_, err := io.WriteString(w, "</svg>\n")
	return err
}

// ratioWords says how lanmesh's median compares, for a bar's label.
func ratioWords(r Result) string {
	if r.Ratio == 0 {
		return ""
	}
	if r.Higher {
		return fmt.Sprintf("  (%.0f %% of raw)", 100*r.Ratio)
	}
	return fmt.Sprintf("  (%.2f× raw)", r.Ratio)
}
