package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

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

func simScreen(t *testing.T, w, h int) tcell.SimulationScreen {
	s := tcell.NewSimulationScreen("")
	if err := s.Init(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Fini)
	s.SetSize(w, h)
	return s
}

// row returns the text of screen row y.
func row(s tcell.SimulationScreen, y int) string {
	w, _ := s.Size()
	var b strings.Builder
	for x := range w {
		str, _, _ := s.Get(x, y)
		b.WriteString(str)
	}
	return strings.TrimRight(b.String(), " ")
}

// TestTooSmall: a terminal smaller than the game says so, with the size it
// needs, and draws no board; at the size it needs, the board is drawn.
func TestTooSmall(t *testing.T) {
	h := newHub(t)
	w := h.add(1, "ann", 1)
	for _, size := range [][2]int{{needWidth - 1, needRows}, {needWidth, needRows - 1}, {20, 5}} {
		s := simScreen(t, size[0], size[1])
		draw(s, w, nil)
		text := row(s, 0) + "\n" + row(s, 1) + "\n" + row(s, 2)
		if want := fmt.Sprintf("terminal too small:\nneed 66x23,\nhave %dx%d.", size[0], size[1]); text != want {
			t.Errorf("at %dx%d: %q", size[0], size[1], text)
		}
		if strings.Contains(row(s, 1), "+---") {
			t.Errorf("at %dx%d a board was drawn", size[0], size[1])
		}
	}
	s := simScreen(t, needWidth, needRows)
	draw(s, w, nil)
	if text := row(s, 0); strings.Contains(text, "too small") || !strings.HasPrefix(row(s, 1), "+---") {
		t.Errorf("at %dx%d: %q, %q", needWidth, needRows, text, row(s, 1))
	}
}

// TestDraw: players, coins and walls where they are, the score table with
// every player's glyph, and a hostile name made harmless.
func TestDraw(t *testing.T) {
	h := newHub(t)
	a, b := h.add(1, "zoe", 1), h.add(2, "\x1b]0;pwned\x07max", 1)
	h.deliver()
	h.put(a, 3, 0)
	h.put(b, 5, 1)
	walkOnto(b, 0)
	h.deliver()
	s := simScreen(t, 80, 30)
	draw(s, a, []string{"12:00:00 join max"})
	at := func(x, y int) string { str, _, _ := s.Get(x+1, y+2); return str }
	g := a.glyphs()
	if at(a.me.x, a.me.y) != "Z" || at(b.me.x, b.me.y) != string(g[b.me.id]) {
		t.Errorf("board: %q at zoe's place, %q at max's", at(a.me.x, a.me.y), at(b.me.x, b.me.y))
	}
	if at(10, 3) != "█" || at(0, 15) != "·" {
		t.Errorf("walls: %q at 10,3, %q at 0,15", at(10, 3), at(0, 15))
	}
	for _, i := range a.coins() {
		if x, y := coinAt(a.round, i); at(x, y) != "$" {
			t.Errorf("coin %d: %q at %d,%d", i, at(x, y), x, y)
		}
	}
	var table []string
	for y := range 4 {
		r := row(s, y+1)
		if len([]rune(r)) > boardW+4 {
			table = append(table, strings.TrimSpace(string([]rune(r)[boardW+4:])))
		}
	}
	joined := strings.Join(table, "|")
	if !strings.Contains(joined, string(g[b.me.id])+` \x1b]0;pwned\x…  1`) || !strings.Contains(joined, "Z zoe") {
		t.Errorf("score table: %q", joined)
	}
	if !strings.Contains(row(s, 0), "round 1: 9 coins left") {
		t.Errorf("title: %q", row(s, 0))
	}
	for y := range 30 {
		if strings.ContainsRune(row(s, y), 0x1b) {
			t.Errorf("row %d has an escape: %q", y, row(s, y))
		}
	}
}

// TestPlay runs the screen's loop on a simulated terminal with a node on
// loopback and no other player: an arrow moves the player, q ends the game.
func TestPlay(t *testing.T) {
	leaktest.Check(t)
	node, err := newNode(nodeOptions{mesh: "game-play-test", name: "ann", codec: "binary", beaconPort: freeUDPPort(t),
		loopback: true, logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	w := newWorld(node.ID(), node.Name(), 1, 10, netSender{node: node, log: slog.New(slog.DiscardHandler)}, func(string, ...any) {})
	dx := 1
	if w.blocked(w.me.x+1, w.me.y, &w.me) {
		dx = -1
	}
	x := w.me.x
	s := simScreen(t, 80, 25)
	key := tcell.KeyRight
	if dx < 0 {
		key = tcell.KeyLeft
	}
	// Keys pressed before the loop runs wait for it, in order.
	s.InjectKey(key, 0, 0)
	s.InjectKey(tcell.KeyRune, 'q', 0)
	done := make(chan error, 1)
	go func() {
		done <- play(context.Background(), func() error { return pump(node, w) }, w, s, 5*time.Millisecond)
	}()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("q did not end the game")
	}
	if err != nil || w.me.x != x+dx {
		t.Errorf("play: %v; at %d, was at %d, stepped %d", err, w.me.x, x, dx)
	}
}
