// Command game is a coin race for several players on a LAN, written the
// way a game uses lanmesh: a fixed-rate loop (20 ticks a second) that reads
// the keys, moves, calls Xfer once, drains Get and polls the peer events.
// Nothing in the loop blocks on the network.
//
//	go run ./examples/game                  # on each machine; arrows move
//	go run ./examples/game -bot             # no screen: a bot plays, printing what happens
//	go run ./examples/game -loopback        # two players on one machine: run it twice
//
// # The game
//
// Each player steers a glyph on a board with walls. Players cannot walk
// through walls or each other. A round has 10 coins, 3 on the board at a
// time; walk onto one to take it. When all are taken the round's scores
// stand for a moment, then the next round begins. The score table beside
// the board shows the coins each player has taken this round.
//
// # Who decides what (there is no server)
//
// Every player is equal and any can leave at any time; no player owns
// anything but itself:
//   - Position: each player moves only itself and says where it stands
//     (Pos). It refuses a step onto a wall or onto a player it knows of. Two
//     players who step into one cell at once both see it; the one with the
//     higher node id steps back. Both agree without a message.
//   - Coins: where coin i of round r lies is a hash of (r, i), so every
//     player computes the same coins; the board shows the three untaken
//     ones with the lowest numbers. Nobody hands them out.
//   - Taking a coin: a player that steps onto a coin it sees claims it
//     (Claim, to everyone). Nobody claims a coin it knows is taken, so two
//     claims on one coin can only have crossed on the wire; then the lower
//     node id wins, on every player, whatever order the claims came in. A
//     player's scores are the coins it won; its coins stay its own when it
//     leaves.
//   - Rounds: a round ends, on each player, when it knows every coin's
//     winner. Its scores are final after a pause (1 s by default), which
//     lets claims still on the wire arrive; then the next round begins.
//     A player that hears of a later round (a Hello or a Claim) joins it at
//     once: a round cannot stall on a player that left mid-claim.
//   - Joining: every player welcomes a newcomer with its position, a Hello
//     carrying its round and the number of claims that follow, and every
//     claim it knows of that round. The newcomer claims no coin until those
//     claims have come, so it never takes a coin it has not heard was taken.
//     Outside a welcome a player claims only for itself. Round 1 begins
//     once a player has heard from -wait others.
//   - Glyphs: each player gets the first letter of its name in capitals,
//     unless a player with a lower node id has it, then in lower case, then
//     a free glyph its id picks; the result depends only on who is
//     present, not on who came first, so two players joining at once get
//     the same glyphs on every screen.
//
// Each player is trusted about itself, as among friends on a LAN: a
// modified program can teleport or claim coins it is not on. What it
// cannot do is claim for another player outside a welcome, put a player
// off the board, or make another player keep more than the players
// present and the winners of the current round.
//
// # Messages
//
// Positions are state (a newer one supersedes an older one): they go
// Sequenced over the UDP lane (and over the link while UDP does not get
// through). Hello and Claim must arrive, in order: they go Reliable. Every
// send is in net.go, one function per kind. The binary forms are the
// derived ones (SPEC.md, section 2, derived payloads): Pos is X, Y (1 byte
// each) and Step (4, big-endian); Hello is Round (4) and Claims (1);
// Claim is Round (4), Coin (1), Player (the 16-byte node id) and Name (16
// bytes, NUL-padded).
//
// Names come from the network: they are shown through safetext.Line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gdamore/tcell/v2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program, so that tests can run it in their process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("game", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host, _ := os.Hostname()
	meshName := fs.String("mesh", "game", "the mesh to join: players of one game use the same")
	name := fs.String("name", host, "your name; its first letter is your glyph if free")
	codecName := fs.String("codec", "binary", "codec: binary, msgpack or json; every player must agree")
	tick := fs.Duration("tick", 50*time.Millisecond, "the game loop's tick")
	pause := fs.Duration("pause", time.Second, "the pause between rounds")
	wait := fs.Int("wait", 1, "other players to hear from before the first round")
	loopback := fs.Bool("loopback", false, "stay on this machine (to try two players on one machine)")
	beaconPort := fs.Int("beacon-port", 8222, "UDP port of discovery beacons")
	verbose := fs.Bool("v", false, "log the node's events on stderr")
	isBot := fs.Bool("bot", false, "no screen: a bot plays, printing one line per event")
	rounds := fs.Int("rounds", 1, "bot: the rounds to play")
	limit := fs.Duration("limit", time.Minute, "bot: give up after this long")
	linger := fs.Duration("linger", 500*time.Millisecond, "bot: keep pumping this long after the last round")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || *tick <= 0 || *pause < 0 || *wait < 0 || *rounds < 1 || *limit <= 0 || *linger < 0 {
		fmt.Fprintln(stderr, "game: want no arguments, a positive -tick and -limit, -rounds of 1 or more, "+
			"and -pause, -wait and -linger of 0 or more")
		return 2
	}
	logTo := stderr
	if !*isBot && !*verbose {
		logTo = io.Discard // warnings would scribble over the screen
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: level}))
	node, err := newNode(nodeOptions{mesh: *meshName, name: *name, codec: *codecName,
		beaconPort: *beaconPort, loopback: *loopback, logger: logger})
	if err != nil {
		fmt.Fprintln(stderr, "game:", err)
		return 1
	}
	w := newWorld(node.ID(), node.Name(), *wait, int(*pause / *tick), netSender{node: node, log: logger},
		func(string, ...any) {})
	pumpFn := func() error { return pump(node, w) }
	if *isBot {
		err = bot(ctx, pumpFn, w, stdout, *rounds, *tick, *limit, *linger)
	} else {
		var s tcell.Screen
		if s, err = tcell.NewScreen(); err == nil {
			if err = s.Init(); err == nil {
				err = play(ctx, pumpFn, w, s, *tick)
				s.Fini()
			}
		}
	}
	node.CloseReason(node.Name() + " left the game")
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "game:", err)
		return 1
	}
	return 0
}
