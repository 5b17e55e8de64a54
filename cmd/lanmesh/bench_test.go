package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchQuick runs "lanmesh bench --quick" on one cheap in-process part
// and the keyed part, writing JSON and a chart.
func TestBenchQuick(t *testing.T) {
	dir := t.TempDir()
	js, svg := filepath.Join(dir, "bench.json"), filepath.Join(dir, "bench.svg")
	code, out, errOut := runCmd(t, "bench", "--quick", "--reps", "1", "--only", "rtt,keyed", "--json", js, "--chart", svg)
	if code != 0 {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"== rtt:", "32 B, Node.Request/Reply, p50", "raw TCP ping-pong",
		"== keyed:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "[rtt] 32 B round trip: rep 1/1") {
		t.Errorf("no progress on stderr:\n%s", errOut)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Quick bool
		Parts []struct {
			Name    string
			Skipped string
			Results []struct{ Name string }
		}
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Quick || len(rep.Parts) != 2 || rep.Parts[0].Name != "rtt" || len(rep.Parts[0].Results) == 0 || rep.Parts[1].Skipped != "" || len(rep.Parts[1].Results) == 0 {
		t.Errorf("JSON: %s", b)
	}
	if b, err := os.ReadFile(svg); err != nil || !strings.Contains(string(b), "<svg") || !strings.Contains(string(b), "Round trip") {
		t.Errorf("chart: %v\n%s", err, b)
	}
}

func TestBenchUsage(t *testing.T) {
	if code, _, errOut := runCmd(t, "bench", "--only", "nope"); code != 2 || !strings.Contains(errOut, `unknown part "nope"`) {
		t.Errorf("unknown part: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, "bench", "--help"); code != 0 || !strings.Contains(errOut, "throughput, rtt, fanout") {
		t.Errorf("--help: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, "bench", "__node"); code != 1 || !strings.Contains(errOut, "want one argument") {
		t.Errorf("node without a spec: exit %d, %q", code, errOut)
	}
}
