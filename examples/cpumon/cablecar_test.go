package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/message"
)

func jsonCodec(t *testing.T) codec.Codec {
	t.Helper()
	c, err := codec.New("json", message.Default)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func goldenLines(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	return lines[:len(lines)-1] // after the last "\n": nothing
}

// TestPyStatsGolden: the lines cpu_mon.py writes (Python's json.dumps with
// compact separators, its MsgStats's fields in their order) read as
// Stats, and this monitor's Stats are written as such lines, key for key.
func TestPyStatsGolden(t *testing.T) {
	c := jsonCodec(t)
	want := []Stats{
		{Host: "pybox", CPU: 12.5, Load1: 0.5, Load5: 0.25, Load15: 0.12, MemPercent: 41.2, MemTotal: 8254312448,
			SwapTotal: 2147479552, Temp: 47},
		{Host: "pibox", CPU: 3, Load1: 1.07, Load5: 0.9, Load15: 0.85, MemPercent: 77.9, MemTotal: 4023406592,
			SwapPercent: 12.4, SwapTotal: 104853504},
	}
	for i, line := range goldenLines(t, "cpu_mon.golden") {
		v, _, err := c.NewDecoder(strings.NewReader(line)).Decode()
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		p, ok := v.(*pyStats)
		if !ok {
			t.Fatalf("line %d: a %T", i, v)
		}
		if got := fromPy(p); got != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, got, want[i])
		}
	}
	out := []Stats{
		{Host: "gobox", CPU: 12.5, Load1: 0.5, Load5: 1, Load15: 2, MemPercent: 40, MemTotal: 16 << 30,
			SwapPercent: 1.5, SwapTotal: 2 << 30, Temp: 55},
		{Host: "cold", CPU: 0.1, MemPercent: 33.333333, MemTotal: 1024},
	}
	for i, line := range goldenLines(t, "go_stats.golden") {
		got, err := c.AppendFrame(nil, toPy(out[i]))
		if err != nil || string(got) != line {
			t.Errorf("stats %d: %q, %v\nwant %q", i, got, err, line)
		}
		checkPyKeys(t, got)
	}
	// What a hostile peer may send reads as zeros, not as a crash.
	for _, line := range []string{
		`["MsgStats",{"host":"x","load_avg":[]}]` + "\n",
		`["MsgStats",{"host":"x","load_avg":[1,2,3,4,5],"cpu_percent":-5,"memory_percent":1e300}]` + "\n",
	} {
		v, _, err := c.NewDecoder(strings.NewReader(line)).Decode()
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if s := fromPy(v.(*pyStats)); s.CPU != 0 || s.MemPercent != 0 || s.Host != "x" {
			t.Errorf("%s: %+v", line, s)
		}
	}
}

// pyKeys are cpu_mon.py's MsgStats attributes, in the order it sets them.
var pyKeys = []string{"host", "cpu_percent", "load_avg", "memory_percent", "memory_total", "swap_percent", "swap_total", "temp"}

// checkPyKeys checks that a line is ["MsgStats",{...}] with cpu_mon.py's
// keys in its order (temp optional) and a load_avg of three numbers.
func checkPyKeys(t *testing.T, line []byte) {
	t.Helper()
	if !bytes.HasPrefix(line, []byte(`["MsgStats",{`)) || !bytes.HasSuffix(line, []byte("}]\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("not a MsgStats line: %q", line)
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(line, &parts); err != nil || len(parts) != 2 {
		t.Fatalf("%q: %v", line, err)
	}
	dec := json.NewDecoder(bytes.NewReader(parts[1]))
	dec.Token() // {
	var keys []string
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var v json.RawMessage
		dec.Decode(&v)
		if k == "load_avg" {
			var l []float64
			if json.Unmarshal(v, &l) != nil || len(l) != 3 {
				t.Errorf("load_avg %s", v)
			}
		}
	}
	if want := pyKeys[:len(keys)]; len(keys) < 7 || !reflect.DeepEqual(keys, want) {
		t.Errorf("keys %v, want %v", keys, pyKeys)
	}
}

// readLines reads JSON lines from r into ch until it fails.
func readLines(r *bufio.Reader, ch chan<- []byte) {
	defer close(ch)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		ch <- line
	}
}
