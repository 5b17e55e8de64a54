// Command game is a small real-time game for several players on a LAN,
// written the way a game uses lanmesh: a fixed-rate loop (20 ticks a
// second) that reads the keys, sends this player's moves (a binary message
// of 6 bytes), calls Xfer once, drains Get, and polls the peer events, so
// that players appear as they join and vanish as they leave. Nothing in
// the loop blocks on the network.
//
//	go run ./examples/game              # on each machine; arrows move
//	go run ./examples/game -headless    # no screen: a scripted walk, printed
//
// Every player steers a letter on a shared board.
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

	"github.com/lanmesh/lanmesh/mesh"
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
	name := fs.String("name", host, "your name; its first letter is your glyph")
	codecName := fs.String("codec", "binary", "codec: binary, msgpack or json; every player must agree")
	tick := fs.Duration("tick", 50*time.Millisecond, "the game loop's tick")
	loopback := fs.Bool("loopback", false, "stay on this machine (to try two players on one machine)")
	beaconPort := fs.Int("beacon-port", 8222, "UDP port of discovery beacons")
	verbose := fs.Bool("v", false, "log the node's events on stderr")
	hl := fs.Bool("headless", false, "no screen: walk a scripted path and print what happens, one line each")
	moves := fs.Int("moves", 10, "headless: the moves to make, and to see from each other player")
	players := fs.Int("players", 1, "headless: the other players to wait for before moving")
	limit := fs.Duration("limit", time.Minute, "headless: give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || *tick <= 0 || *moves < 0 || *players < 0 || *limit <= 0 {
		fmt.Fprintln(stderr, "game: want no arguments, a positive -tick and -limit, and -moves and -players of 0 or more")
		return 2
	}

	cfg := mesh.DefaultNodeConfig()
	cfg.Mesh, cfg.Name, cfg.Codec = *meshName, *name, *codecName
	cfg.Discovery.BeaconPort = *beaconPort
	if *loopback {
		cfg.UseLoopback(*beaconPort)
	}
	logTo := stderr
	if !*hl && !*verbose {
		logTo = io.Discard // warnings would scribble over the screen
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: level}))
	node, err := mesh.NewNode(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "game:", err)
		return 1
	}
	x, y := startAt(node.Name())
	g := newGame(node, x, y, func(string, ...any) {})
	if *hl {
		err = headless(ctx, g, stdout, *moves, *players, *tick, *limit)
	} else {
		err = play(ctx, g, *tick)
	}
	node.CloseReason(node.Name() + " left the game")
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "game:", err)
		return 1
	}
	return 0
}
