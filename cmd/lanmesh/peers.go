package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lanmesh/lanmesh/internal/ifaddr"
	"github.com/lanmesh/lanmesh/safetext"
)

const peersSummary = `List the nodes of a mesh without joining it: listen to their beacons for
a while (--wait), ask mDNS, then knock on each node's TCP port once to
measure the time a connection takes (and learn its codec) and hang up. No
node sees a peer join. Prints a table, or JSON with --json; nodes of other
meshes heard are mentioned on stderr. The exit status is 1 when none was
found. Nodes of other sites (--hub) are not listed: seeing them means
joining the hub; lanmesh run --hub prints them as they join.`

// peerJSON is one node in the output of "lanmesh peers --json".
type peerJSON struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Addr    string `json:"addr"`
	RTTMics int64  `json:"rtt_us"` // the TCP connection time; 0 when not measured
	FoundBy string `json:"found_by"`
	State   string `json:"state"` // reachable, or why a node here would not link
	Codec   string `json:"codec,omitempty"`
}

func runPeers(ctx context.Context, args []string, std stdio) error {
	f, kr, err := parseLook("peers", peersSummary, 1500*time.Millisecond, args, std)
	if err != nil {
		return err
	}
	lk, err := lookAround(ctx, f, kr, false, true)
	if err != nil && lk == nil {
		return err
	}
	ifs, _ := ifaddr.List(f.ifaces)
	prefixes := ifaddr.AllPrefixes(ifs)
	var peers []peerJSON
	others := map[string][]string{}
	for _, n := range lk.sorted() {
		if n.Mesh != f.mesh {
			others[n.Mesh] = append(others[n.Mesh], safetext.Line(n.Name))
			continue
		}
		p := peerJSON{Name: n.Name, ID: n.ID.String(), Addr: n.Addr().String(), FoundBy: strings.Join(n.Via, ","),
			State: "reachable", Codec: n.Codec}
		if n.ProbeErr == nil && n.Connect > 0 {
			p.RTTMics = max(n.Connect.Microseconds(), 1)
		}
		if cause, _, _ := judge(n, f, kr, prefixes, ""); cause != "" {
			p.State = cause
		}
		if n.ProbeErr != nil || n.Connect == 0 {
			// A name is only what a beacon claimed until a node at that
			// address answered with its Hello.
			p.Name = unverifiedName
		}
		peers = append(peers, p)
	}
	if f.json {
		if err := writePeersJSON(std.out, peers); err != nil {
			return err
		}
	} else {
		writePeersTable(std.out, peers)
	}
	var meshes []string
	for m := range others {
		meshes = append(meshes, m)
	}
	slices.Sort(meshes)
	for _, m := range meshes {
		fmt.Fprintf(std.err, "also heard %d node(s) of mesh %q: %s (--mesh %s to list them; lanmesh browse lists every mesh)\n",
			len(others[m]), safetext.Line(m), strings.Join(others[m], ", "), shellWord(m))
	}
	if len(peers) == 0 {
		return fmt.Errorf("no node of mesh %q found within %v (lanmesh doctor says why)", f.mesh, f.wait)
	}
	return err
}

// ctxErr is nil when the command ended on its own and the interruption
// otherwise, so that a script can tell a cut-short listing.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return errors.New("interrupted")
	}
	return nil
}

// unverifiedName stands in for the name of a node that was heard of but
// did not answer at its address.
const unverifiedName = "(not linked)"

func writePeersTable(w io.Writer, peers []peerJSON) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tADDRESS\tCONNECT\tFOUND BY\tSTATE")
	for _, p := range peers {
		rtt := "-"
		if p.RTTMics > 0 {
			rtt = (time.Duration(p.RTTMics) * time.Microsecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", safetext.Line(p.Name), p.ID[:8], p.Addr, rtt, p.FoundBy, p.State)
	}
	tw.Flush()
}

func writePeersJSON(w io.Writer, peers []peerJSON) error {
	if peers == nil {
		peers = []peerJSON{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(peers)
}
