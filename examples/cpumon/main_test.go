package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shirou/gopsutil/v4/sensors"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/mesh"
)

func TestStatsBinary(t *testing.T) {
	in := Stats{Host: "box", CPU: 12.5, Load1: 0.5, Load5: 1, Load15: 2, MemPercent: 40, MemTotal: 16 << 30,
		SwapPercent: 1.5, SwapTotal: 2 << 30, Temp: 55}
	b, err := in.AppendBinary(nil)
	if err != nil || len(b) != 1+3+statsFixed {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
	var out Stats
	if err := out.UnmarshalBinary(b); err != nil || out != in {
		t.Fatalf("%+v, %v", out, err)
	}
	for _, bad := range [][]byte{nil, b[:len(b)-1], append(b[:len(b):len(b)], 0), {0xff}} {
		if (&Stats{}).UnmarshalBinary(bad) == nil {
			t.Errorf("% x accepted", bad)
		}
	}
	long, _ := Stats{Host: strings.Repeat("é", 100)}.AppendBinary(nil)
	if len(long) > 252 || (&out).UnmarshalBinary(long) != nil || len(out.Host) != 64 {
		t.Errorf("a long host name: %d bytes, host %d bytes", len(long), len(out.Host))
	}
}

func TestCPUTemp(t *testing.T) {
	for _, tc := range []struct {
		in   []sensors.TemperatureStat
		want float64
	}{
		{nil, 0},
		{[]sensors.TemperatureStat{{SensorKey: "acpitz", Temperature: 40}, {SensorKey: "nvme_composite", Temperature: 50}}, 50},
		{[]sensors.TemperatureStat{{SensorKey: "nvme", Temperature: 60}, {SensorKey: "coretemp_package_id_0", Temperature: 45}}, 45},
		{[]sensors.TemperatureStat{{SensorKey: "cpu", Temperature: -273}, {SensorKey: "x", Temperature: 200}}, 0},
	} {
		if got := cpuTemp(tc.in); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestRender(t *testing.T) {
	a, b := uuid.MustParse("00000000-0000-4000-8000-000000000001"), uuid.MustParse("00000000-0000-4000-8000-000000000002")
	rows := map[uuid.UUID]Stats{
		b: {Host: "zed", CPU: 5, MemPercent: 50, MemTotal: 8 << 30},
		a: {Host: "amy", CPU: 99.5, Load1: 1.25, MemTotal: 512 << 20, Temp: 61.4},
	}
	c := uuid.MustParse("00000000-0000-4000-8000-000000000003")
	rows[c] = Stats{Host: "py\x1b[2J\tbox", CPU: 1}
	var buf bytes.Buffer
	render(&buf, rows, map[uuid.UUID]bool{c: true}, b, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	want := `cpumon: 3 machine(s) at 03:04:05
HOST                CPU    LOAD 1/5/15     MEM    TOTAL      SWAP  TOTAL  TEMP
amy                 99.5%  1.25 0.00 0.00  0.0%   512.0 MiB  0.0%  0 B    61°C
py\x1b[2J\x09box ~  1.0%   0.00 0.00 0.00  0.0%   0 B        0.0%  0 B    -
zed *               5.0%   0.00 0.00 0.00  50.0%  8.0 GiB    0.0%  0 B    -
`
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

// syncBuffer is a monitor's stdout, read while it is written.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// lastTableText returns the last complete table in plain output.
func lastTableText(out string) string {
	blocks := strings.Split(out, "--\n")
	if len(blocks) < 2 {
		return ""
	}
	return blocks[len(blocks)-2]
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// lastTable returns the hosts of the last complete table in plain output.
func lastTable(out string) []string {
	blocks := strings.Split(out, "--\n")
	if len(blocks) < 2 {
		return nil
	}
	var hosts []string
	for _, line := range strings.Split(blocks[len(blocks)-2], "\n")[2:] {
		if line == "" {
			break // the legend follows
		}
		if f := strings.Fields(line); len(f) > 0 {
			hosts = append(hosts, f[0])
		}
	}
	slices.Sort(hosts)
	return hosts
}

func waitTable(t *testing.T, out *syncBuffer, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(lastTable(out.String()), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no table of %v; output:\n%s", want, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMonitorsOnLoopback runs two monitors in this process, on loopback:
// each shows both, and the one that stays drops the one that leaves.
func TestMonitorsOnLoopback(t *testing.T) {
	leaktest.Check(t)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(c.LocalAddr().(*net.UDPAddr).Port)
	c.Close()
	start := func(name string) (*syncBuffer, func() int) {
		ctx, cancel := context.WithCancel(context.Background())
		out, errOut := &syncBuffer{}, &syncBuffer{}
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, []string{"-loopback", "-beacon-port", port, "-mesh", "cpumon-test",
				"-interval", "100ms", "-plain", "-name", name}, out, errOut)
		}()
		stop := sync.OnceValue(func() int {
			cancel()
			select {
			case code := <-done:
				return code
			case <-time.After(10 * time.Second):
				t.Errorf("%s did not stop: %s", name, errOut.String())
				return -1
			}
		})
		t.Cleanup(func() { stop() })
		return out, stop
	}
	alpha, _ := start("alpha")
	beta, stopBeta := start("beta")
	waitTable(t, alpha, "alpha", "beta")
	waitTable(t, beta, "alpha", "beta")
	if code := stopBeta(); code != 0 {
		t.Errorf("beta: exit %d", code)
	}
	waitTable(t, alpha, "alpha")
}

// TestDrawInPlace: the table is redrawn from the top left, each line
// cleared to its end and the rest of the screen below it cleared; only the
// first draw clears the whole screen.
func TestDrawInPlace(t *testing.T) {
	leaktest.Check(t)
	node := memNode(t, "box")
	var out bytes.Buffer
	m := monitor{node: node, rows: map[uuid.UUID]Stats{node.ID(): {Host: "box"}}, out: &out}
	m.draw()
	first := out.String()
	out.Reset()
	m.draw()
	second := out.String()
	if !strings.HasPrefix(first, "\x1b[2J\x1b[H") || !strings.HasPrefix(second, "\x1b[H") || strings.Contains(second, "\x1b[2J") {
		t.Errorf("screen control: %q, then %q", first, second)
	}
	if !strings.HasSuffix(second, "\x1b[J") || !strings.Contains(second, "box *") || strings.Count(second, "\x1b[K\n") != 6 || !strings.Contains(second, "~ cable_car's Python cpu_mon.py") {
		t.Errorf("table: %q", second)
	}
}

// TestPlainLegendOnce: plain output (for logs) starts with the legend,
// then gives each table alone, ended by "--".
func TestPlainLegendOnce(t *testing.T) {
	leaktest.Check(t)
	node := memNode(t, "box")
	var out bytes.Buffer
	m := monitor{node: node, rows: map[uuid.UUID]Stats{node.ID(): {Host: "box"}}, out: &out, plain: true}
	m.draw()
	m.draw()
	blocks := strings.Split(out.String(), "--\n")
	if len(blocks) != 4 || !strings.HasPrefix(blocks[0], "* this machine") || strings.Count(out.String(), "* this machine") != 1 ||
		!strings.HasPrefix(blocks[1], "cpumon: 1 machine(s)") || !strings.HasPrefix(blocks[2], "cpumon: 1 machine(s)") {
		t.Errorf("plain output:\n%s", out.String())
	}
}

// memNode starts a node alone on a memory network of its own: a monitor
// with nobody else, for tests of what it draws. Cleanup closes it.
func memNode(t *testing.T, name string) *mesh.Node {
	t.Helper()
	cfg := mesh.DefaultNodeConfig()
	cfg.Name = name
	cfg.Link.Transport = mesh.NewMemNetwork()
	cfg.Net.Listen = []string{name + ":1"}
	cfg.Discovery.Off = true
	node, err := mesh.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	return node
}
