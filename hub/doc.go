// Package hub joins the LAN sites of a mesh through a NATS server (the
// hub): peers in other sites appear in a node's Peers, with their site,
// and Send, SendTo, Broadcast and Request reach them with the same code as
// LAN peers (through mesh.Node.AttachRelay). Only this package imports
// NATS, so programs that do not use it do not carry it.
//
//	b, err := hub.Join(node, hub.Options{URL: "nats://hub.example:4222"})
//	if err != nil { ... }
//	defer b.Close()
//
// StartServer runs an embedded NATS server, for tests and for people who
// have none (or a leaf node that gives a site one outbound connection).
package hub

// MaxEnvelope is the largest envelope the bridge publishes or accepts, in
// bytes; it is also the embedded server's maximum payload.
const MaxEnvelope = 64 << 10
