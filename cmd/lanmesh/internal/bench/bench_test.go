package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testNodeEnv makes the test binary a namespace node (see TestMain).
const testNodeEnv = "LANMESH_BENCH_TEST_NODE"

// TestMain runs the test binary as a namespace node when the namespace
// test re-executes it so; otherwise it runs the tests.
func TestMain(m *testing.M) {
	if os.Getenv(testNodeEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := RunNode(ctx, os.Args[len(os.Args)-1:], os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want Stat
	}{
		{nil, Stat{}},
		{[]float64{3}, Stat{3, 3, 3, 1}},
		{[]float64{5, 1, 3}, Stat{3, 1, 5, 3}},
		{[]float64{4, 1, 3, 10}, Stat{3.5, 1, 10, 4}},
	} {
		in := append([]float64(nil), tc.in...)
		if got := Summarize(tc.in); got != tc.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Fatalf("Summarize reordered its input: %v", tc.in)
			}
		}
	}
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 1000; i++ {
		s = append(s, time.Duration(i))
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 500}, {0.99, 990}, {0.999, 999}, {1, 1000}, {0.0001, 1}} {
		if got := Percentile(s, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := Percentile([]time.Duration{7}, 0.999); got != 7 {
		t.Errorf("one sample: %v", got)
	}
	if got := Percentile(nil, 0.5); got != 0 {
		t.Errorf("no samples: %v", got)
	}
}

func TestFormatValue(t *testing.T) {
	for _, tc := range []struct {
		x    float64
		unit string
		want string
	}{
		{11.23e6, UnitMsgsPerSec, "11.2 M msgs/s"},
		{375_400, UnitMsgsPerSec, "375 k msgs/s"},
		{12.8e-6, UnitSeconds, "12.8 µs"},
		{1.0, UnitSeconds, "1 s"},
		{0.000396, UnitSeconds, "396 µs"},
		{47e-3, UnitSeconds, "47 ms"},
		{54.2 * 1024, UnitBytes, "54.2 KiB"},
		{6, UnitGoroutines, "6 goroutines"},
		{0, UnitAllocs, "0.00 allocs/msg"},
		{1.004, UnitAllocs, "1.00 allocs/msg"},
		{1951.4, UnitMBPerSec, "1951 MB/s"},
	} {
		if got := formatValue(tc.x, tc.unit); got != tc.want {
			t.Errorf("formatValue(%v, %q) = %q, want %q", tc.x, tc.unit, got, tc.want)
		}
	}
	if got := formatStat(Stat{Median: 4.1e6, Min: 3.14e6, Max: 5.14e6, N: 3}, UnitMsgsPerSec); got != "4.10 M msgs/s [3.14 M – 5.14 M]" {
		t.Errorf("formatStat: %q", got)
	}
	if got := formatStat(Stat{Median: 0.0001, Min: 0, Max: 0.0002, N: 3}, UnitAllocs); got != "0.00 allocs/msg" {
		t.Errorf("formatStat of equal-looking values: %q", got)
	}
}

// sampleReport is a small report with one of each kind of part.
func sampleReport() *Report {
	tp := Result{Name: "32 B binary", Unit: UnitMsgsPerSec, Stat: Stat{8e6, 7e6, 9e6, 3}, Higher: true, Note: "Send, Xfer every 64"}.
		withBaseline("raw TCP, 2-byte prefix, buffered writes", Stat{16e6, 15e6, 17e6, 3})
	rtt := Result{Name: "32 B, Node.Request/Reply, p50", Unit: UnitSeconds, Stat: Stat{15e-6, 14e-6, 16e-6, 3}}.
		withBaseline(rawPingName, Stat{12e-6, 11e-6, 13e-6, 3})
	return &Report{
		Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), GOOS: "linux", GOARCH: "amd64", CPUs: 2,
		GoVersion: "go1.26", Reps: 3, Seconds: 12,
		Parts: []PartResult{
			{Name: "throughput", Title: "one-way throughput", Results: []Result{tp}},
			{Name: "rtt", Title: "round trip", Results: []Result{rtt}},
			{Name: "keyed", Title: "with a key", Skipped: "not measured here"},
			{Name: "cost", Title: "cost", Error: "boom", Results: []Result{{Name: "allocations per message sent", Unit: UnitAllocs, Stat: Stat{0, 0, 0, 3}}}},
		},
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"median [min – max] of 3 reps",
		"== throughput: one-way throughput",
		"32 B binary",
		"8 M msgs/s [7 M – 9 M]",
		"16 M msgs/s [15 M – 17 M]",
		"50 %",
		"15 µs [14 µs – 16 µs]",
		"1.25×",
		"skipped: not measured here",
		"FAILED: boom",
		"0.00 allocs/msg",
		"Baselines: raw TCP, 2-byte prefix, buffered writes; raw TCP ping-pong",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := WriteMarkdown(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	if md := b.String(); !strings.Contains(md, "| throughput | 32 B binary | 8 M msgs/s [7 M – 9 M] | 16 M msgs/s [15 M – 17 M] | 50 % | Send, Xfer every 64 |") ||
		!strings.Contains(md, "| keyed | skipped: not measured here |") {
		t.Errorf("markdown:\n%s", md)
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	r := back.Parts[0].Results[0]
	if r.Median != 8e6 || r.Baseline == nil || r.Baseline.Median != 16e6 || r.Ratio != 0.5 || !r.Higher || r.Unit != UnitMsgsPerSec {
		t.Errorf("round trip through JSON: %+v", r)
	}
	if back.Parts[2].Skipped != "not measured here" || back.Parts[3].Error != "boom" {
		t.Errorf("parts: %+v", back.Parts)
	}
	// The figures are flat in JSON: Median beside Name, as a reader expects.
	if !strings.Contains(b.String(), `"Median": 8000000`) {
		t.Errorf("JSON:\n%s", b.String())
	}
}

func TestWriteChart(t *testing.T) {
	var b bytes.Buffer
	if err := WriteChart(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	// Well-formed XML, with an svg root.
	d := xml.NewDecoder(strings.NewReader(svg))
	rects, root := 0, ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			if se.Name.Local == "rect" {
				rects++
			}
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q", root)
	}
	// Background, two legend squares, two bars for each of two pairs.
	if rects != 1+2+4 {
		t.Errorf("%d rects, want 7", rects)
	}
	for _, want := range []string{"Throughput", "Round trip", "32 B binary", "Node.Request/Reply, p50",
		"8 M msgs/s  (50 % of raw)", "15 µs  (1.25× raw)", "16 M msgs/s"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	b.Reset()
	if err := WriteChart(&b, &Report{}); err != nil || !strings.Contains(b.String(), "No throughput or round-trip figures") {
		t.Errorf("empty chart: %v\n%s", err, b.String())
	}
}

func TestRunUnknownPart(t *testing.T) {
	_, err := Run(context.Background(), Options{Only: []string{"nope"}})
	if !errors.Is(err, ErrUnknownPart) || !strings.Contains(err.Error(), "throughput") {
		t.Fatalf("err %v", err)
	}
}

// TestRunKeyed runs the keyed part briefly: it measures, with a mesh key,
// what the throughput and rtt parts measure without.
func TestRunKeyed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Quick: true, Reps: 1, Only: []string{"keyed"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Parts) != 1 || rep.Parts[0].Skipped != "" || len(rep.Parts[0].Results) == 0 {
		t.Fatalf("parts %+v", rep.Parts)
	}
}

// TestRunResume runs the resume part briefly: each figure with resume on,
// beside the same with resume off as its baseline.
func TestRunResume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Quick: true, Reps: 1, Only: []string{"resume"}})
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Parts[0]
	if p.Name != "resume" || len(p.Results) != 2+len(rttPercentiles) {
		t.Fatalf("part %+v", p)
	}
	for _, r := range p.Results {
		if r.Median <= 0 || r.Baseline == nil || r.Baseline.Median <= 0 || r.N != 1 ||
			!strings.Contains(r.Name, "resume on") || !strings.Contains(r.BaselineName, "resume off") {
			t.Errorf("result %+v", r)
		}
	}
}

// TestRunRTT runs one cheap in-process part for real, briefly.
func TestRunRTT(t *testing.T) {
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Quick: true, Reps: 1, Only: []string{"rtt"}, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Parts[0]
	if p.Name != "rtt" || len(p.Results) != 6 {
		t.Fatalf("part %+v", p)
	}
	for _, r := range p.Results {
		if r.Median <= 0 || r.Baseline == nil || r.Baseline.Median <= 0 || r.N != 1 {
			t.Errorf("result %+v", r)
		}
	}
	if !strings.Contains(progress.String(), "[rtt] 32 B round trip: rep 1/1") {
		t.Errorf("progress:\n%s", progress.String())
	}
}

// TestRunCancelled: a run whose context has ended stops and says so.
func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Options{Quick: true, Only: []string{"throughput"}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}
