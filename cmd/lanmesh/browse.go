package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lanmesh/lanmesh/safetext"
)

const browseSummary = `List every lanmesh node heard on the LAN, of every mesh, as avahi-browse -a
does for mDNS: it listens to the beacons for a while (--wait) and asks mDNS,
and joins nothing: no node sees it. The exit status is 1 when none was
heard.`

// browseJSON is one node in the output of "lanmesh browse --json".
type browseJSON struct {
	Mesh    string   `json:"mesh"`
	Name    string   `json:"name"`
	ID      string   `json:"id"`
	Addr    string   `json:"addr"`
	Keyed   bool     `json:"keyed"`
	KeyID   string   `json:"key_id,omitempty"`
	FoundBy []string `json:"found_by"`
}

func runBrowse(ctx context.Context, args []string, std stdio) error {
	f, kr, err := parseLook("browse", browseSummary, 2500*time.Millisecond, args, std, nil, "")
	if err != nil {
		return err
	}
	lk, err := lookAround(ctx, f, kr, false, false)
	if err != nil {
		return err
	}
	nodes := lk.sorted()
	if f.json {
		out := make([]browseJSON, 0, len(nodes))
		for _, n := range nodes {
			j := browseJSON{Mesh: n.Mesh, Name: n.Name, ID: n.ID.String(), Addr: n.where(), Keyed: n.Keyed, FoundBy: n.Via}
			if n.Keyed {
				j.KeyID = n.KeyID.String()
			}
			out = append(out, j)
		}
		enc := json.NewEncoder(std.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		writeBrowse(std.out, nodes)
	}
	if len(nodes) == 0 {
		return fmt.Errorf("no lanmesh node heard within %v (lanmesh doctor says why)", f.wait)
	}
	return nil
}

func writeBrowse(w io.Writer, nodes []*heardNode) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MESH\tNAME\tID\tADDRESS\tKEYED\tFOUND BY")
	for _, n := range nodes {
		keyed := "no"
		if n.Keyed {
			keyed = "key " + n.KeyID.String()
		}
		mesh, name, id := safetext.Line(n.Mesh), safetext.Line(n.Name), shortID(n.ID)
		if n.opaque() {
			mesh, name, id = "(sealed)", "-", "-" // a keyed mesh whose key this host was not given
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", mesh, name, id, n.where(), keyed, strings.Join(n.Via, ","))
	}
	tw.Flush()
}
