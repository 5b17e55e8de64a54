package main

import (
	"context"
	"log/slog"

	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/safetext"
)

const watchSummary = `Join a mesh and print its traffic log live: one line per message this
node sends or receives (time, in or out, peer, type, size in bytes), and a
line for each peer that joins or leaves, until interrupted. Messages of
types this command does not know (an application's own) are shown by
their code (binary codec) or name (msgpack, JSON) and size.`

func runWatch(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("watch", watchSummary, std.err)
	nf := addNodeFlags(fs)
	cfg, err := parseNode(fs, nf, args, std.err)
	if err != nil {
		return err
	}
	out := &lineWriter{w: std.out}
	// Frames of unknown types are this command's business, not a warning.
	cfg.Logger = slog.New(newLineHandler(std.err, nf.verbose).quieting("mesh: dropping frames"))
	cfg.OnPeer = func(ev mesh.PeerEvent) {
		if !hubClosing(ev) {
			out.printf("# %s", describeEvent(ev))
		}
	}
	cfg.OnMessage = func(mesh.Message) {} // the log has seen it; nothing waits for Get
	n, br, err := startNode(cfg, nf)
	if err != nil {
		return err
	}
	log := n.Traffic()
	records, cancel := log.Watch(1024)
	defer cancel()
	log.Start()
	out.printf("# %s", describeNode(n, cfg))
	if br != nil {
		out.printf("# %s", describeHub(&nf.hub, br))
	}
	out.printf("# %-12s %-3s %-16s %-20s %s", "TIME", "DIR", "PEER", "TYPE", "BYTES")
	for {
		select {
		case r := <-records:
			out.printf("%s %-3s %-16s %-20s %d", stamp(r.Time), r.Dir, safetext.Line(r.PeerName), safetext.Line(r.Type), r.Size)
		case <-ctx.Done():
			closeHub(br)
			return n.CloseReason("interrupted")
		}
	}
}
