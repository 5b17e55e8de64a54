//go:build linux

package main

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/netlab"
)

// TestHelperProcess is the child side of TestBotsInNamespaces: a bot (its
// flags in GAME_ARGS) in a host of its own.
func TestHelperProcess(t *testing.T) {
	if netlab.HelperRole() != "bot" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, strings.Fields(os.Getenv("GAME_ARGS")), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// TestBotsInNamespaces: three bots, each in a host of a LAN in network
// namespaces, find each other by discovery with its defaults (broadcast
// and mDNS, inside the lab), play a round, and print the same final
// scores; each sees the others join, and leave when they are done.
func TestBotsInNamespaces(t *testing.T) {
	lab := netlab.New(t, 3)
	procs := map[string]*netlab.Proc{}
	for _, h := range lab.Hosts {
		procs[h.Name] = h.StartHelper(t, "bot", "GAME_ARGS=-bot -mesh nsgame -name "+h.Name+
			" -wait 2 -tick 20ms -pause 500ms -linger 2s -limit 50s")
	}
	outs := map[string]string{}
	for name, p := range procs {
		var b strings.Builder
		deadline := time.Now().Add(60 * time.Second)
		for {
			l, err := p.Next(time.Until(deadline))
			if err != nil {
				t.Fatalf("%s: %v after:\n%s\nstderr: %s", name, err, b.String(), p.Stderr())
			}
			b.WriteString(l + "\n")
			if l == "done" {
				break
			}
		}
		outs[name] = "\n" + b.String()
	}
	for name, p := range procs {
		if err := p.Wait(20 * time.Second); err != nil {
			t.Errorf("%s: %v: %s", name, err, p.Stderr())
		}
	}
	checkFinals(t, outs)
	for name, out := range outs {
		for other := range procs {
			if other != name && !strings.Contains(out, "\njoin "+other+"\n") {
				t.Errorf("%s never saw %s join:\n%s", name, other, out)
			}
		}
	}
}
