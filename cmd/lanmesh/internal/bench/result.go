package bench

import (
	"slices"
	"time"
)

// Stat summarises repeated measurements of one figure.
type Stat struct {
	Median float64
	Min    float64
	Max    float64
	N      int // how many repetitions
}

// Summarize returns the median, min and max of xs (the mean of the two
// middle values for an even count). The zero Stat for no values.
func Summarize(xs []float64) Stat {
	if len(xs) == 0 {
		return Stat{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Stat{Median: med, Min: s[0], Max: s[n-1], N: n}
}

// Percentile returns the p-th quantile (0 < p <= 1) of sorted samples by the
// nearest-rank method: the smallest sample with at least p of them at or
// below it.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Units of Result.Unit.
const (
	UnitMsgsPerSec = "msgs/s"
	UnitMBPerSec   = "MB/s" // 10^6 bytes of message a second
	UnitSeconds    = "s"
	UnitBytes      = "B"
	UnitGoroutines = "goroutines"
	UnitAllocs     = "allocs/msg"
)

// Result is one figure: lanmesh's measurement (the embedded Stat) and,
// when there is one, the baseline measured in the same run.
type Result struct {
	Name string // what was measured, e.g. "32 B binary"
	Unit string
	Stat
	// Higher says that a higher value is better (throughput); else lower
	// is (latency, cost).
	Higher bool `json:",omitempty"`
	// Baseline is the same figure for the baseline, BaselineName says
	// what it is ("raw TCP, 2-byte prefix, buffered writes").
	Baseline     *Stat  `json:",omitempty"`
	BaselineName string `json:",omitempty"`
	// Ratio is Median / Baseline.Median (0 without a baseline).
	Ratio float64 `json:",omitempty"`
	Note  string  `json:",omitempty"`
}

// withBaseline returns r with the baseline b (and the ratio) set.
func (r Result) withBaseline(name string, b Stat) Result {
	r.Baseline, r.BaselineName = &b, name
	if b.Median != 0 {
		r.Ratio = r.Median / b.Median
	}
	return r
}

// PartResult is what one part of the suite produced.
type PartResult struct {
	Name  string
	Title string
	// Skipped says why the part did not run ("" if it ran).
	Skipped string `json:",omitempty"`
	// Error is the part's failure ("" if none); results measured before it
	// are kept.
	Error   string `json:",omitempty"`
	Seconds float64
	Results []Result `json:",omitempty"`
}

// Report is a whole run.
type Report struct {
	Command   string `json:",omitempty"` // how the run was started, for the record
	Started   time.Time
	Seconds   float64
	GoVersion string
	GOOS      string
	GOARCH    string
	CPUs      int
	Quick     bool
	Reps      int
	Parts     []PartResult
}

// Failed returns the parts that ended with an error.
func (r *Report) Failed() []PartResult {
	var out []PartResult
	for _, p := range r.Parts {
		if p.Error != "" {
			out = append(out, p)
		}
	}
	return out
}
