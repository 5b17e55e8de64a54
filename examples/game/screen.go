package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/safetext"
)

var palette = []tcell.Color{tcell.ColorRed, tcell.ColorGreen, tcell.ColorYellow, tcell.ColorBlue, tcell.ColorFuchsia, tcell.ColorAqua}

func colorOf(id uuid.UUID) tcell.Color { return palette[int(id[15])%len(palette)] }

// The screen's layout: a title row, the board in a frame, the score table
// right of it, and the last few events below.
const (
	tableW    = 24 // "G name........ 10" and a gap
	noteRows  = 4
	needWidth = boardW + 2 + tableW
	needRows  = 1 + boardH + 2 + noteRows
)

// play runs the game on screen s, initialized, until q, Esc or Ctrl-C.
// Each tick: read the keys pressed since the last, move, tick the world,
// pump the network, draw.
func play(ctx context.Context, pump func() error, w *world, s tcell.Screen, tick time.Duration) error {
	events := make(chan tcell.Event, 64)
	quit := make(chan struct{})
	defer close(quit)
	go s.ChannelEvents(events, quit)

	var notes []string
	w.note = func(format string, args ...any) {
		notes = append(notes, time.Now().Format("15:04:05 ")+fmt.Sprintf(format, args...))
		if len(notes) > noteRows {
			notes = notes[1:]
		}
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		for more := true; more; {
			select {
			case ev := <-events:
				switch ev := ev.(type) {
				case *tcell.EventKey:
					dx, dy, stop := keyMove(ev)
					if stop {
						return nil
					}
					w.move(dx, dy)
				case *tcell.EventResize:
					s.Sync()
				}
			default:
				more = false
			}
		}
		w.tick()
		if err := pump(); err != nil {
			return err
		}
		draw(s, w, notes)
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return nil
		}
	}
}

// keyMove maps a key to a step, or to the end of the game.
func keyMove(ev *tcell.EventKey) (dx, dy int, stop bool) {
	switch ev.Key() {
	case tcell.KeyEscape, tcell.KeyCtrlC:
		return 0, 0, true
	case tcell.KeyLeft:
		return -1, 0, false
	case tcell.KeyRight:
		return 1, 0, false
	case tcell.KeyUp:
		return 0, -1, false
	case tcell.KeyDown:
		return 0, 1, false
	case tcell.KeyRune:
		switch ev.Rune() {
		case 'q':
			return 0, 0, true
		case 'a', 'h':
			return -1, 0, false
		case 'd', 'l':
			return 1, 0, false
		case 'w', 'k':
			return 0, -1, false
		case 's', 'j':
			return 0, 1, false
		}
	}
	return 0, 0, false
}

func put(s tcell.Screen, x, y int, text string, st tcell.Style) {
	for _, r := range text {
		s.SetContent(x, y, r, nil, st)
		x++
	}
}

// cut shortens text to n runes.
func cut(text string, n int) string {
	r := []rune(text)
	if len(r) > n {
		r = append(r[:n-1], '…')
	}
	return string(r)
}

func draw(s tcell.Screen, w *world, notes []string) {
	s.Clear()
	defer s.Show()
	plain := tcell.StyleDefault
	dim := plain.Dim(true)
	if cols, rows := s.Size(); cols < needWidth || rows < needRows {
		// Short lines, so that a narrow terminal shows them whole.
		msg := []string{"terminal too small:", fmt.Sprintf("need %dx%d,", needWidth, needRows),
			fmt.Sprintf("have %dx%d.", cols, rows), "enlarge it,", "or q quits"}
		for i, m := range msg {
			put(s, 0, i, m, plain.Bold(i == 0))
		}
		return
	}
	glyphs := w.glyphs()
	status := "waiting for players"
	switch {
	case w.round > 0 && w.pauseLeft > 0:
		status = fmt.Sprintf("round %d is over", w.round)
	case w.round > 0:
		status = fmt.Sprintf("round %d: %d coins left", w.round, coinsPerRound-w.taken())
	}
	put(s, 0, 0, cut(fmt.Sprintf("You are %c. Arrows or WASD move, q quits. %s", glyphs[w.me.id], status), needWidth), plain.Bold(true))
	// The board, in a frame, from row 1.
	put(s, 0, 1, "+"+strings.Repeat("-", boardW)+"+", dim)
	put(s, 0, boardH+2, "+"+strings.Repeat("-", boardW)+"+", dim)
	for y := range boardH {
		put(s, 0, y+2, "|", dim)
		put(s, boardW+1, y+2, "|", dim)
		for x := range boardW {
			if wall(x, y) {
				s.SetContent(x+1, y+2, '█', nil, plain)
			} else {
				s.SetContent(x+1, y+2, '·', nil, dim)
			}
		}
	}
	for _, i := range w.coins() {
		x, y := coinAt(w.round, i)
		s.SetContent(x+1, y+2, '$', nil, plain.Foreground(tcell.ColorYellow).Bold(true))
	}
	for id, p := range w.players {
		if p.known {
			s.SetContent(p.x+1, p.y+2, glyphs[id], nil, plain.Foreground(colorOf(id)).Bold(true))
		}
	}
	s.SetContent(w.me.x+1, w.me.y+2, glyphs[w.me.id], nil, plain.Foreground(colorOf(w.me.id)).Reverse(true).Bold(true))

	// The score table, right of the board.
	col := boardW + 4
	put(s, col, 1, "score", plain.Bold(true))
	row := 2
	for _, sc := range w.scores(w.round) {
		if row >= boardH+2 {
			break
		}
		g, here := glyphs[sc.id]
		if !here {
			g = ' ' // left the game; its coins stay its own
		}
		st := plain.Foreground(colorOf(sc.id))
		if !here {
			st = dim
		}
		put(s, col, row, fmt.Sprintf("%c %-15s %2d", g, cut(safetext.Line(sc.name), 15), sc.coins), st)
		row++
	}
	for i, n := range notes {
		put(s, 0, boardH+3+i, cut(n, needWidth), dim)
	}
}
