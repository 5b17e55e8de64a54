package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/lanmesh/lanmesh/safetext"
)

// bot plays without a screen, for tests and scripts: each tick it steps
// toward the nearest coin, and it prints one line per event it sees:
//
//	start NAME          this player
//	join NAME           a player joined
//	left NAME           a player left
//	round R             round R began (here)
//	coin R I NAME       coin I of round R went to NAME (a later line for
//	                    the same coin, if any, corrects it)
//	over R              every coin of round R is taken
//	final R NAME=N ...  round R's scores, after the pause that follows it
//	done                rounds rounds played
//
// It ends after done, or with an error once limit has passed. After done
// it keeps pumping for linger, so that its last claim reaches everyone and
// the others see it leave rather than vanish.
func bot(ctx context.Context, pump func() error, w *world, out io.Writer, rounds int, tick, limit, linger time.Duration) error {
	finals := 0
	w.note = func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		if len(format) > 5 && format[:5] == "final" {
			finals++
		}
	}
	fmt.Fprintf(out, "start %s\n", safetext.Line(w.me.name))
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	timeout := time.NewTimer(limit)
	defer timeout.Stop()
	var doneAt <-chan time.Time
	for {
		if doneAt == nil {
			w.move(w.toward())
		}
		w.tick()
		if err := pump(); err != nil {
			return err
		}
		if finals >= rounds && doneAt == nil {
			fmt.Fprintln(out, "done")
			doneAt = time.After(linger)
		}
		select {
		case <-ticker.C:
		case <-doneAt:
			return nil
		case <-timeout.C:
			return fmt.Errorf("after %v: %d of %d rounds played, in round %d", limit, finals, rounds, w.round)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
