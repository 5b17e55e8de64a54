package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/safetext"
)

var palette = []tcell.Color{tcell.ColorRed, tcell.ColorGreen, tcell.ColorYellow, tcell.ColorBlue, tcell.ColorFuchsia, tcell.ColorAqua}

func colorOf(id uuid.UUID) tcell.Color { return palette[int(id[15])%len(palette)] }

// play runs the game on the terminal until q, Esc or Ctrl-C. Each tick:
// read the keys pressed since the last, move, pump the network, draw.
func play(ctx context.Context, g *game, tick time.Duration) error {
	s, err := tcell.NewScreen()
	if err != nil {
		return err
	}
	if err := s.Init(); err != nil {
		return err
	}
	defer s.Fini()
	events := make(chan tcell.Event, 64)
	quit := make(chan struct{})
	defer close(quit)
	go s.ChannelEvents(events, quit)

	var notes []string
	g.note = func(format string, args ...any) {
		notes = append(notes, time.Now().Format("15:04:05 ")+fmt.Sprintf(format, args...))
		if len(notes) > 5 {
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
					if dx != 0 || dy != 0 {
						g.step(dx, dy)
					}
				case *tcell.EventResize:
					s.Sync()
				}
			default:
				more = false
			}
		}
		if err := g.pump(); err != nil {
			return err
		}
		draw(s, g, notes)
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

func draw(s tcell.Screen, g *game, notes []string) {
	s.Clear()
	plain := tcell.StyleDefault
	dim := plain.Dim(true)
	put := func(x, y int, text string, st tcell.Style) {
		for _, r := range text {
			s.SetContent(x, y, r, nil, st)
			x++
		}
	}
	put(0, 0, fmt.Sprintf("lanmesh game: you are %c (%s). Arrows or WASD move, q quits.", glyph(g.me.name), g.me.name), plain.Bold(true))
	// The board, in a frame, from row 1.
	put(0, 1, "+"+strings.Repeat("-", boardW)+"+", dim)
	put(0, boardH+2, "+"+strings.Repeat("-", boardW)+"+", dim)
	for y := range boardH {
		put(0, y+2, "|", dim)
		put(boardW+1, y+2, "|", dim)
		for x := range boardW {
			s.SetContent(x+1, y+2, '·', nil, dim)
		}
	}
	for _, p := range g.others {
		if p.known {
			s.SetContent(p.x+1, p.y+2, glyph(p.name), nil, plain.Foreground(colorOf(p.id)).Bold(true))
		}
	}
	s.SetContent(g.me.x+1, g.me.y+2, glyph(g.me.name), nil, plain.Foreground(colorOf(g.me.id)).Reverse(true).Bold(true))

	// The players, with each link's round-trip time, right of the board.
	col := boardW + 4
	put(col, 1, "players", plain.Bold(true))
	peers := g.node.Peers()
	slices.SortFunc(peers, func(a, b mesh.PeerInfo) int { return strings.Compare(a.Name, b.Name) })
	row := 2
	for _, p := range peers {
		if p.State != mesh.StateLinked {
			continue
		}
		rtt := "-"
		if p.Link.RTTSamples > 0 {
			rtt = p.Link.RTT.Round(10 * time.Microsecond).String()
		}
		put(col, row, fmt.Sprintf("%c %-12s %s", glyph(p.Name), safetext.Line(p.Name), rtt), plain.Foreground(colorOf(p.ID)))
		row++
	}
	if row == 2 {
		put(col, row, "nobody yet: start the game on another machine", dim)
	}
	for i, n := range notes {
		put(0, boardH+3+i, n, dim)
	}
	s.Show()
}
