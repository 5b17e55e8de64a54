package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/lanmesh/lanmesh/mesh"
)

const peersSummary = `Look for the nodes of a mesh for a while (--wait), linking with each to
measure its round-trip time, then print them as a table, or as JSON with
--json. The exit status is 1 when none was found.`

// peerJSON is one node in the output of "lanmesh peers --json".
type peerJSON struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Addr    string `json:"addr"`
	RTTMics int64  `json:"rtt_us"` // 0 when not measured
	FoundBy string `json:"found_by"`
	State   string `json:"state"`
}

func runPeers(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("peers", peersSummary, std.err)
	nf := addNodeFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	wait := fs.Duration("wait", time.Second, "how long to look for nodes")
	cfg, err := parseNode(fs, nf, args, std.err)
	if err != nil {
		return err
	}
	if *wait <= 0 {
		fmt.Fprintf(std.err, "lanmesh peers: --wait %v: want a positive duration\n", *wait)
		return errUsage
	}
	// Ping often, so that even a short wait measures each link.
	cfg.Link.PingInterval = min(cfg.Link.PingInterval, max(*wait/5, 10*time.Millisecond))
	n, err := startNode(cfg, nf)
	if err != nil {
		return err
	}
	t := time.NewTimer(*wait)
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	peers := n.Peers()
	n.CloseReason("lanmesh peers is done")

	if *asJSON {
		if err := writePeersJSON(std.out, peers); err != nil {
			return err
		}
	} else {
		writePeersTable(std.out, peers)
	}
	if len(peers) == 0 {
		return fmt.Errorf("no node of mesh %q found within %v", cfg.Mesh, *wait)
	}
	return ctxErr(ctx)
}

// ctxErr is nil when the command ended on its own and the interruption
// otherwise, so that a script can tell a cut-short listing.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return errors.New("interrupted")
	}
	return nil
}

func rtt(p mesh.PeerInfo) string {
	if p.Link.RTTSamples == 0 {
		return "-"
	}
	return p.Link.RTT.Round(time.Microsecond).String()
}

func writePeersTable(w io.Writer, peers []mesh.PeerInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tADDRESS\tRTT\tFOUND BY\tSTATE")
	for _, p := range peers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, shortID(p.ID), p.Addr, rtt(p), how(p), p.State)
	}
	tw.Flush()
}

func writePeersJSON(w io.Writer, peers []mesh.PeerInfo) error {
	out := make([]peerJSON, 0, len(peers))
	for _, p := range peers {
		j := peerJSON{Name: p.Name, ID: p.ID.String(), Addr: p.Addr, FoundBy: how(p), State: p.State.String()}
		if p.Link.RTTSamples > 0 {
			j.RTTMics = max(p.Link.RTT.Microseconds(), 1)
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
