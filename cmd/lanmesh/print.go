package main

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/message"
	"github.com/lanmesh/lanmesh/safetext"
)

// lineWriter writes whole lines from several goroutines (the node's
// callbacks and the command's own loop) without interleaving them.
type lineWriter struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format+"\n", args...)
}

func shortID(id uuid.UUID) string { return id.String()[:8] }

// peerView is what the commands show of a peer. viewOf is the one place
// that reads mesh.PeerInfo, so that a change of the mesh API is met here.
type peerView struct {
	ID     uuid.UUID
	Name   string
	Addr   string
	How    string
	Linked bool
	// Site is the site of a peer reached through the hub ("" on the LAN).
	Site string
}

func viewOf(p mesh.PeerInfo) peerView {
	return peerView{ID: p.ID, Name: p.Name, Addr: p.Addr, How: how(p), Linked: p.State == mesh.StateLinked, Site: p.Site}
}

func viewPeers(n *mesh.Node) []peerView {
	var out []peerView
	for _, p := range n.Peers() {
		out = append(out, viewOf(p))
	}
	return out
}

// plainErr is an error as a person reads it: one line, safe for a
// terminal, without the package prefixes of a Go error chain.
func plainErr(err error) string {
	if err == nil {
		return "no reason given"
	}
	s := err.Error()
	for _, p := range []string{"mesh: ", "discovery: ", "codec: ", "meshkey: ", "hub: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	return safetext.Line(s)
}

// how says how a peer was found: through the hub (a peer of another site),
// by discovery (broadcast, mdns, seed) or, when discovery never heard it,
// by the link itself (a --peer address, or a node that dialled this one).
func how(p mesh.PeerInfo) string {
	if p.Site != "" {
		return "the hub"
	}
	if p.Via == 0 {
		return "link"
	}
	return p.Via.String()
}

// describeEvent is one line about a peer event.
func describeEvent(ev mesh.PeerEvent) string {
	p := viewOf(ev.Peer)
	switch ev.Kind {
	case mesh.PeerLeft:
		return fmt.Sprintf("left      %s (%s): %s", safetext.Line(p.Name), shortID(p.ID), plainErr(ev.Err))
	default:
		return fmt.Sprintf("%-9s %s (%s) %s, found by %s", ev.Kind, safetext.Line(p.Name), shortID(p.ID), where(p), p.How)
	}
}

// where says where a peer is: its address, or its site for a peer of
// another site (a name the hub passed on: escaped).
func where(p peerView) string {
	if p.Site != "" {
		return "in site " + quoted(p.Site)
	}
	return "at " + p.Addr
}

// describeMessage is one line about a received message: its registered type
// name and its fields.
func describeMessage(reg *message.Registry, m mesh.Message) string {
	name := fmt.Sprintf("%T", m.Msg)
	if t, err := reg.TypeOf(m.Msg); err == nil {
		name = t.Name
	}
	v := reflect.ValueOf(m.Msg)
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	return fmt.Sprintf("message   %s (%s): %s %s", safetext.Line(m.FromName), shortID(m.From), name, safetext.Line(fmt.Sprintf("%+v", v.Interface())))
}

func stamp(t time.Time) string { return t.Format("15:04:05.000") }

// describeNode says who the node is and how it finds peers: the first
// line a command prints.
func describeNode(n *mesh.Node, cfg mesh.NodeConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s (%s) in mesh %q, codec %s, listening on", safetext.Line(n.Name()), shortID(n.ID()), cfg.Mesh, cfg.Codec)
	for _, a := range n.Addrs() {
		fmt.Fprintf(&b, " %s", a)
	}
	if cfg.Discovery.Off {
		b.WriteString("; no discovery")
	} else {
		var ways []string
		d := cfg.Discovery
		if d.Broadcast {
			ways = append(ways, fmt.Sprintf("broadcast on UDP %d", d.BeaconPort))
		}
		if d.MDNS {
			ways = append(ways, "mDNS "+d.MDNSService)
		}
		if len(d.Interfaces) > 0 {
			ways = append(ways, "interfaces "+strings.Join(d.Interfaces, ","))
		}
		fmt.Fprintf(&b, "; discovery: %s", strings.Join(ways, ", "))
	}
	if len(cfg.Net.Peers) > 0 {
		fmt.Fprintf(&b, "; peers %s", strings.Join(cfg.Net.Peers, ","))
	}
	if cfg.CableCar.Enabled {
		b.WriteString("; cable_car compatible")
	}
	return b.String()
}
