// Package web serves a live page of a node's mesh, for a person on the
// same machine (or, when asked, the LAN): the mesh as a graph (this node in
// the middle; each link with its round-trip time and messages per second;
// how each peer was found; keyed or not; peers that join, leave or restart
// animate), a timeline of peer events, a table of peers, traffic by message
// type from the node's traffic log, and live charts of figures a program
// adds (the cpu monitor's, per machine).
//
// The page is pushed by Server-Sent Events at /events (a state when the
// peers change, and once a second), and the same data is served as JSON at
// /api/state, /api/peers and /api/events (?after=SEQ), and in Prometheus's
// text format at /metrics. The page, its script and its style are embedded:
// it needs no network but the node's.
//
// A peer in another site (through the hub: package hub) is shown with its
// site where a LAN peer has its address, and "site" in the JSON.
//
// Names and sites from the network are untrusted: the page sets them as
// text only, under a
// Content-Security-Policy that runs no script but its own, and metric labels
// are escaped. On loopback the server answers only requests for localhost
// or a loopback address, so that no web site can read it by DNS rebinding.
//
// The smallest use:
//
//	srv, err := web.Serve(node, web.Options{Addr: "127.0.0.1:8280", Traffic: true})
//	if err != nil {
//		return err
//	}
//	defer srv.Close()
//
// The server reads the node only through its public API (Peers, Peer,
// Traffic), never consuming its stream: the program keeps every event and message
// of Get. It stops by itself once the node is closed. A node knows only its
// own links, so the graph is the mesh as this node sees it.
package web
