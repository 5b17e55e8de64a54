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

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/hub"
	"github.com/lanmesh/lanmesh/internal/ifaddr"
	"github.com/lanmesh/lanmesh/meshkey"
	"github.com/lanmesh/lanmesh/safetext"
)

const peersSummary = `List the nodes of a mesh without joining it: listen to their beacons for
a while (--wait), ask mDNS, then knock on each node's TCP port once to
measure the time a connection takes (and learn its codec) and hang up. No
node sees a peer join. Prints a table, or JSON with --json; nodes of other
meshes heard are mentioned on stderr. With --hub it also lists the nodes of
the other sites, as the hub's rosters name them, for the same --wait,
without joining the hub either (it publishes nothing there); a node heard
on the LAN too is listed once, as found on the LAN. The exit status is 1
when none was found.`

// peersHubUsage is the usage of peers' --hub.
const peersHubUsage = "also list the nodes of every site of the mesh, as the NATS server at this `URL` (nats://host:4222) says, without joining it"

// peerJSON is one node in the output of "lanmesh peers --json".
type peerJSON struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Site    string `json:"site"`   // its site on the hub (--hub); "" for a node found on the LAN
	Addr    string `json:"addr"`   // "" for a node found through the hub
	RTTMics int64  `json:"rtt_us"` // the TCP connection time; 0 when not measured
	FoundBy string `json:"found_by"`
	State   string `json:"state"` // reachable, or why a node here would not link; "through the hub" for a site's node
	Codec   string `json:"codec,omitempty"`
}

// The states of a node found through the hub: its site's roster was
// sealed under the mesh key (written by a node that has it), or not (a
// claim anyone on the hub could make).
const (
	stateHubSealed = "through the hub, sealed"
	stateHub       = "through the hub"
)

func runPeers(ctx context.Context, args []string, std stdio) error {
	var hf hubFlags
	f, kr, err := parseLook("peers", peersSummary, 1500*time.Millisecond, args, std, &hf, peersHubUsage)
	if err != nil {
		return err
	}
	// The hub is browsed while the LAN is looked at, for as long; a hub
	// that cannot be reached ends both at once.
	lookCtx, cancelLook := context.WithCancel(ctx)
	defer cancelLook()
	type browsed struct {
		b   hub.Browsed
		err error
	}
	hubDone := make(chan browsed, 1)
	if hf.url != "" {
		go func() {
			b, err := hub.Browse(lookCtx, hub.BrowseOptions{URL: hf.url, User: hf.user, Password: hf.password, Token: hf.token,
				CredsFile: hf.creds, NKeySeedFile: hf.nkey, Meshes: map[string]meshkey.Keyring{f.mesh: kr}, Wait: f.wait})
			if err != nil && lookCtx.Err() == nil {
				cancelLook()
			}
			hubDone <- browsed{b, err}
		}()
	}
	lk, err := lookAround(lookCtx, f, kr, false, true)
	if err != nil && lk == nil {
		cancelLook()
		if hf.url != "" {
			<-hubDone
		}
		return err
	}
	var hb browsed
	if hf.url != "" {
		hb = <-hubDone
		if hb.err != nil && ctx.Err() == nil {
			return hubJoinError(hf.url, hb.err)
		}
	}
	ifs, _ := ifaddr.List(f.ifaces)
	prefixes := ifaddr.AllPrefixes(ifs)
	var peers []peerJSON
	others := map[string][]string{}
	onLAN := map[uuid.UUID]bool{}
	for _, n := range lk.sorted() {
		if n.Mesh != f.mesh {
			others[n.Mesh] = append(others[n.Mesh], safetext.Line(n.Name))
			continue
		}
		onLAN[n.ID] = true
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
	for _, sp := range hb.b.Peers {
		if onLAN[sp.ID] {
			continue // found on the LAN: listed as it is there, as a node does
		}
		p := peerJSON{Name: sp.Name, ID: sp.ID.String(), Site: sp.Site, FoundBy: "hub", State: stateHub}
		if sp.Sealed {
			p.State = stateHubSealed
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
	if d := hb.b.SealedDrop; d > 0 {
		if kr.Keyed() {
			fmt.Fprintf(std.err, "the hub carried %d roster(s) of mesh %q that do not open under the key given: nodes with another key, or forgeries; their nodes are not listed (--key)\n", d, safetext.Line(f.mesh))
		} else {
			fmt.Fprintf(std.err, "the hub carried %d sealed roster(s) of mesh %q: its nodes have a mesh key; give it with --key to list them\n", d, safetext.Line(f.mesh))
		}
	}
	if r := hb.b.Refused; r > 0 {
		fmt.Fprintf(std.err, "the hub named more nodes than peers lists (%d left out; at most %d, %d a site, of %d sites)\n", r, hub.MaxRemotePeers, hub.MaxPeersPerSite, hub.MaxSites)
	}
	if len(peers) == 0 {
		where := ""
		if hf.url != "" {
			where = " or on the hub"
		}
		return fmt.Errorf("no node of mesh %q found%s within %v (lanmesh doctor says why)", f.mesh, where, f.wait)
	}
	if err == nil && hb.err != nil {
		err = ctxErr(ctx)
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
	fmt.Fprintln(tw, "NAME\tID\tSITE\tADDRESS\tCONNECT\tFOUND BY\tSTATE")
	for _, p := range peers {
		rtt := "-"
		if p.RTTMics > 0 {
			rtt = (time.Duration(p.RTTMics) * time.Microsecond).String()
		}
		site, addr := "-", "-"
		if p.Site != "" {
			site = safetext.Line(p.Site)
		}
		if p.Addr != "" {
			addr = p.Addr
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", safetext.Line(p.Name), p.ID[:8], site, addr, rtt, p.FoundBy, p.State)
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
