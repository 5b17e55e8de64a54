package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// path is the headless player's scripted walk: a loop around a rectangle.
var path = [][2]int{{1, 0}, {1, 0}, {1, 0}, {0, 1}, {0, 1}, {-1, 0}, {-1, 0}, {-1, 0}, {0, -1}, {0, -1}}

// headless plays without a screen, for tests and scripts: once players
// others have joined it walks the scripted path, one step per tick, moves
// steps in all, printing one line per thing that happens:
//
//	start NAME X Y    this player, where it starts
//	self NAME X Y     this player moved
//	join NAME         a player joined
//	at NAME X Y       where a player stood when it appeared
//	move NAME X Y     a player moved
//	leave NAME WHY    a player left
//	done              moves made, and moves seen from players others
//
// It ends after done, or with an error once limit has passed.
func headless(ctx context.Context, g *game, out io.Writer, moves, players int, tick, limit time.Duration) error {
	g.note = func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	fmt.Fprintf(out, "start %s %d %d\n", g.me.name, g.me.x, g.me.y)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	timeout := time.NewTimer(limit)
	defer timeout.Stop()
	for {
		if g.me.moves < moves && len(g.others) >= players {
			d := path[g.me.moves%len(path)]
			if g.step(d[0], d[1]) {
				fmt.Fprintf(out, "self %s %d %d\n", g.me.name, g.me.x, g.me.y)
			}
		}
		if err := g.pump(); err != nil {
			return err
		}
		if g.me.moves >= moves && finished(g, moves) >= players {
			fmt.Fprintf(out, "done: %d moves made, %d from each of %d players seen\n", g.me.moves, moves, players)
			return nil
		}
		select {
		case <-ticker.C:
		case <-timeout.C:
			return fmt.Errorf("after %v: %d of %d moves made, %d of %d players seen making %d", limit, g.me.moves, moves, finished(g, moves), players, moves)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// finished counts the players seen making at least moves moves, whether
// they are still here or not (one that finished first may have left).
func finished(g *game, moves int) int {
	k := 0
	for _, p := range g.others {
		if p.moves >= moves {
			k++
		}
	}
	for _, p := range g.gone {
		if p.moves >= moves {
			k++
		}
	}
	return k
}
