//go:build linux

package main

import (
	"context"
	"os"
	"os/signal"
	"strconv"
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
// scores. Then one leaves; the other two see it go, play a second round
// without it, and agree on that round's scores too.
func TestBotsInNamespaces(t *testing.T) {
	lab := netlab.New(t, 3)
	procs := map[string]*netlab.Proc{}
	for i, h := range lab.Hosts {
		args := "-rounds 2 -linger 1s"
		if i == 0 {
			args = "-rounds 1 -linger 200ms"
		}
		procs[h.Name] = h.StartHelper(t, "bot", "GAME_ARGS=-bot -mesh nsgame -name "+h.Name+
			" -wait 2 -tick 20ms -pause 500ms -limit 50s "+args)
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
	leaver := lab.Hosts[0].Name
	var second []string
	for _, h := range lab.Hosts[1:] {
		out := outs[h.Name]
		if !strings.Contains(out, "\nleft "+leaver+"\n") {
			t.Errorf("%s never saw %s leave:\n%s", h.Name, leaver, out)
		}
		second = append(second, strings.Join(withPrefix(out, "final 2 "), "|"))
	}
	if second[0] != second[1] || second[0] == "" || coinsIn(second[0]) != coinsPerRound {
		t.Errorf("round 2 without %s: %q and %q", leaver, second[0], second[1])
	}
}

// coinsIn adds up the coins of a final line.
func coinsIn(final string) int {
	total := 0
	for _, f := range strings.Fields(final)[2:] {
		n, _ := strconv.Atoi(f[strings.LastIndexByte(f, '=')+1:])
		total += n
	}
	return total
}
