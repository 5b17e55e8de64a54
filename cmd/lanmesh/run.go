package main

import (
	"context"
	"time"

	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/message"
)

const runSummary = `Join a mesh on this machine and print, one line each, the peers that
join, leave and restart, and the messages they send (of the types this
command knows; others are counted as dropped), until interrupted. On Ctrl-C
the node leaves gracefully: its peers see the reason "interrupted". With
--hub, the nodes of other LANs (sites) joined to the same hub are peers
too, shown with their site.`

func runRun(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("run", runSummary, std.err)
	nf := addNodeFlags(fs)
	cfg, err := parseNode(fs, nf, args, std.err)
	if err != nil {
		return err
	}
	out := &lineWriter{w: std.out}
	reg := message.Default
	cfg.OnPeer = func(ev mesh.PeerEvent) {
		if !hubClosing(ev) {
			out.printf("%s %s", stamp(time.Now()), describeEvent(ev))
		}
	}
	cfg.OnMessage = func(m mesh.Message) {
		out.printf("%s %s", stamp(time.Now()), describeMessage(reg, m))
	}
	n, br, err := startNode(cfg, nf)
	if err != nil {
		return err
	}
	out.printf("%s %s", stamp(time.Now()), describeNode(n, cfg))
	if br != nil {
		out.printf("%s %s", stamp(time.Now()), describeHub(&nf.hub, br))
	}
	<-ctx.Done()
	closeHub(br)
	err = n.CloseReason("interrupted")
	out.printf("%s closed", stamp(time.Now()))
	return err
}
