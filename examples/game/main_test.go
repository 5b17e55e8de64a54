package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/mesh"
)

func TestMoveBinary(t *testing.T) {
	in := Move{X: 39, Y: 15, Step: 0x01020304}
	b, _ := in.AppendBinary(nil)
	var out Move
	if err := out.UnmarshalBinary(b); err != nil || out != in || len(b) != 6 {
		t.Fatalf("% x -> %+v, %v", b, out, err)
	}
	if out.UnmarshalBinary(b[:5]) == nil {
		t.Error("short move accepted")
	}
}

// TestPathStaysOnBoard: from every start a name can get, the scripted walk
// moves at every step (never into a wall).
func TestPathStaysOnBoard(t *testing.T) {
	for i := range 1000 {
		x, y := startAt(fmt.Sprint("player", i))
		for _, d := range path {
			x, y = x+d[0], y+d[1]
			if x < 0 || x >= boardW || y < 0 || y >= boardH {
				t.Fatalf("player%d walks off the board at %d,%d", i, x, y)
			}
		}
	}
}

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		ev     *tcell.EventKey
		dx, dy int
		stop   bool
	}{
		{tcell.NewEventKey(tcell.KeyLeft, 0, 0), -1, 0, false},
		{tcell.NewEventKey(tcell.KeyDown, 0, 0), 0, 1, false},
		{tcell.NewEventKey(tcell.KeyRune, 'w', 0), 0, -1, false},
		{tcell.NewEventKey(tcell.KeyRune, 'l', 0), 1, 0, false},
		{tcell.NewEventKey(tcell.KeyRune, 'q', 0), 0, 0, true},
		{tcell.NewEventKey(tcell.KeyEscape, 0, 0), 0, 0, true},
		{tcell.NewEventKey(tcell.KeyRune, 'z', 0), 0, 0, false},
	} {
		dx, dy, stop := keyMove(tc.ev)
		if dx != tc.dx || dy != tc.dy || stop != tc.stop {
			t.Errorf("%s: %d,%d,%v", tc.ev.Name(), dx, dy, stop)
		}
	}
}

// lines is a player's stdout, read while it is written.
type lines struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// lastWith returns the last line that starts with prefix.
func lastWith(out, prefix string) string {
	last := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			last = l
		}
	}
	return last
}

// TestHeadlessOnLoopback: two headless players in this process see each
// other join, appear, and make every move, in order, where it was made.
func TestHeadlessOnLoopback(t *testing.T) {
	leaktest.Check(t)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(c.LocalAddr().(*net.UDPAddr).Port)
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const moves = 7
	outs := map[string]*lines{"ann": {}, "bob": {}}
	var wg sync.WaitGroup
	for name, out := range outs {
		wg.Go(func() {
			var errOut bytes.Buffer
			code := run(ctx, []string{"-headless", "-loopback", "-beacon-port", port, "-mesh", "game-test",
				"-name", name, "-moves", fmt.Sprint(moves), "-tick", "5ms", "-limit", "20s"}, out, &errOut)
			if code != 0 {
				t.Errorf("%s: exit %d: %s\n%s", name, code, errOut.String(), out.String())
			}
		})
	}
	wg.Wait()
	for name, other := range map[string]string{"ann": "bob", "bob": "ann"} {
		mine, theirs := outs[name].String(), outs[other].String()
		if n := strings.Count(theirs, "\nmove "+name+" "); n != moves {
			t.Errorf("%s saw %d moves of %s, want %d:\n%s", other, n, name, moves, theirs)
		}
		// The last move seen is where the mover says it went last.
		last := strings.TrimPrefix(lastWith(mine, "self "), "self ")
		if seen := strings.TrimPrefix(lastWith(theirs, "move "+name+" "), "move "); last == "" || seen != last {
			t.Errorf("%s's last move %q, %s saw %q", name, last, other, seen)
		}
		for _, want := range []string{"join " + name, "at " + name + " "} {
			if !strings.Contains(theirs, want) {
				t.Errorf("%s's output lacks %q:\n%s", other, want, theirs)
			}
		}
		if !strings.Contains(mine, "done: 7 moves made, 7 from each of 1 players seen") {
			t.Errorf("%s did not finish:\n%s", name, mine)
		}
	}
}

// TestDraw draws a game on tcell's simulated screen: both players are on
// the board, where they stand.
func TestDraw(t *testing.T) {
	leaktest.Check(t)
	cfg := mesh.DefaultNodeConfig()
	cfg.Name = "zoe"
	cfg.Link.Transport = mesh.NewMemNetwork()
	cfg.Net.Listen = []string{"zoe:1"}
	cfg.Discovery.Off = true
	node, err := mesh.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	g := newGame(node, 3, 4, func(string, ...any) {})
	g.others[[16]byte{1}] = &player{name: "max", x: 10, y: 5, known: true}
	s := tcell.NewSimulationScreen("")
	if err := s.Init(); err != nil {
		t.Fatal(err)
	}
	defer s.Fini()
	s.SetSize(80, 30)
	draw(s, g, []string{"12:00:00 join max"})
	at := func(x, y int) string { str, _, _ := s.Get(x+1, y+2); return str }
	if at(3, 4) != "Z" || at(10, 5) != "M" || at(0, 0) != "·" {
		t.Errorf("board: %q at 3,4, %q at 10,5, %q at 0,0", at(3, 4), at(10, 5), at(0, 0))
	}
	if !g.step(-1, 0) {
		t.Error("a step left refused")
	}
	draw(s, g, nil)
	if at(2, 4) != "Z" || at(3, 4) != "·" {
		t.Errorf("after a step left: %q at 2,4, %q at 3,4", at(2, 4), at(3, 4))
	}
	g.me.y = 0
	if g.step(0, -1) || g.me.step != 1 {
		t.Errorf("a step into the wall taken: step %d", g.me.step)
	}
}
