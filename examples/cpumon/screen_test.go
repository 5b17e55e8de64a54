package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

func screenText(s tcell.SimulationScreen) string {
	cells, w, _ := s.GetContents()
	var b strings.Builder
	for i, c := range cells {
		if i > 0 && i%w == 0 {
			b.WriteByte('\n')
		}
		if len(c.Runes) > 0 {
			b.WriteRune(c.Runes[0])
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// shownScreen keeps the text of the last Show, read on the goroutine that
// draws (the simulation's cells are not safe to read from another).
type shownScreen struct {
	tcell.SimulationScreen
	mu   sync.Mutex // guards text
	text string
}

func (s *shownScreen) Show() {
	s.SimulationScreen.Show()
	text := screenText(s.SimulationScreen)
	s.mu.Lock()
	s.text = text
	s.mu.Unlock()
}

func (s *shownScreen) shown() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.text
}

// TestScreenKeys: on a terminal the table and its legend are drawn and
// redrawn; q, Esc and Ctrl-C (a key in raw mode, not a signal) each end
// the loop, so that screen's deferred Fini gives the terminal back.
func TestScreenKeys(t *testing.T) {
	leaktest.Check(t)
	node := memNode(t, "box")
	for _, key := range []*tcell.EventKey{
		tcell.NewEventKey(tcell.KeyRune, 'q', tcell.ModNone),
		tcell.NewEventKey(tcell.KeyEscape, 0, tcell.ModNone),
		tcell.NewEventKey(tcell.KeyCtrlC, 0, tcell.ModCtrl),
	} {
		s := &shownScreen{SimulationScreen: tcell.NewSimulationScreen("UTF-8")}
		if err := s.Init(); err != nil {
			t.Fatal(err)
		}
		s.SetSize(110, 12)
		m := &monitor{node: node, name: "box", rows: map[uuid.UUID]Stats{}, py: map[uuid.UUID]bool{}, peers: map[uuid.UUID]bool{}}
		done := make(chan error, 1)
		go func() { done <- m.loop(context.Background(), s, 20*time.Millisecond) }()
		deadline := time.Now().Add(5 * time.Second)
		for text := s.shown(); !strings.Contains(text, "box *") || !strings.Contains(text, "~ cable_car's Python cpu_mon.py"); text = s.shown() {
			if time.Now().After(deadline) {
				t.Fatalf("screen:\n%s", text)
			}
			time.Sleep(10 * time.Millisecond)
		}
		s.InjectKey(key.Key(), key.Rune(), key.Modifiers())
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%v did not quit", key.Name())
		}
		s.Fini()
	}
}
