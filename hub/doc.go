// Package hub joins the LAN sites of a mesh through a NATS server (the
// hub): two offices, a lab on several VLANs, more nodes than one full mesh
// carries. Peers in other sites appear in a node's Peers (PeerInfo.Site
// says which site), with PeerJoined, PeerLeft and PeerRestarted as for LAN
// peers, and Send, SendTo, Broadcast, Request and Reply reach them with the
// same code (through mesh.Node.AttachRelay); their messages come with
// Message.Via set to mesh.Relayed. A LAN peer is always reached over its
// direct link, never through the hub. Only this package imports NATS, so
// programs that do not use it do not carry it.
//
//	b, err := hub.Join(node, hub.Options{URL: "nats://hub.example:4222"})
//	if err != nil { ... }
//	defer b.Close()
//
// Browse lists the bridged nodes of every site, as the hub's rosters name
// them, without joining: it publishes nothing, so no site sees it
// (lanmesh peers --hub).
//
// StartServer runs an embedded NATS server, for tests and for people who
// have none; with LeafRemote it is a leaf node that gives a site one
// outbound connection to the hub (the site's nodes dial their leaf).
//
// # Sites and the gateway
//
// A site is one LAN: the nodes that reach each other directly. Every node
// of a site MUST have the same Options.Site and the nodes of different
// LANs different ones (the default is the node's IPv4 subnet). Every
// bridged node keeps its own connection to the hub, subscribed to its own
// subject, so messages between sites go from node to node through the hub
// and no node of a site relays for another (a node's failure costs only its
// own traffic). Presence is per site: every bridge sends a small heartbeat
// to its own site's subject (Options.Heartbeat, default 500 ms), and the
// gateway, the site's bridged node of the lowest id among those heard,
// publishes the site's roster (its bridged nodes) to every site once a
// heartbeat. A node takes the other sites' rosters as its remote peers. A
// node without a bridge is not in its site's roster: the other sites do not
// see it (a gateway relays for no one).
//
// Times, with the default heartbeat of 500 ms (they scale with it):
//   - a node that joins is seen by the other sites within milliseconds (its
//     heartbeat makes the gateway publish at once; 7-15 ms across a router
//     in the namespace test);
//   - a node that leaves (Close of the bridge or of its node) is seen
//     leaving at once: its bridge flushes what it sent and says goodbye
//     after it (mesh PeerLeft with ErrLeft, after every message it sent
//     before Close that the hub carried; a node it did not know of sees
//     it leave a heartbeat later);
//   - a node that dies (no goodbye) and is not its site's gateway is out of
//     its site after 3 heartbeats; the gateway's next roster leaves it out,
//     and the other sites report it left at once (ErrExpired): 1.5-2 s
//     after its death, 3 to 4 heartbeats;
//   - a gateway that dies is out of its site after 3 heartbeats, and the
//     next node takes over at once (1.5-1.6 s measured): its roster lists
//     the site's other peers, which stay, with no PeerLeft, and the other
//     sites report the dead gateway left as it comes (ErrExpired), as for
//     any other node;
//   - a remote peer no roster lists and that sends nothing is reported left
//     after 6 heartbeats (3 s): the peers of a site that falls silent as a
//     whole (its last node dead, its link to the hub down), or all of them
//     when this node's own link to the hub is down;
//   - traffic to a site's other nodes never passes through its gateway, so
//     it does not stop when the gateway dies;
//   - a hub that goes away and comes back: the bridges reconnect (every
//     250 ms, without end) and publish at once; peers that were reported
//     left (after 3 s without the hub) join again.
//
// # Delivery across the hub
//
// NATS core, which carries the hub's traffic, delivers at most once: no
// acknowledgement, no storage, nothing for a subscriber that is not
// connected; it keeps one publisher's order on one subject. While a
// bridge's connection is down, nats.go holds what the node sends (up to
// its reconnect buffer, 8 MiB) and sends it on reconnection; what the hub
// had for a receiver that was down is lost. A receiver whose program does
// not keep up drops past its queue (Stats.QueueDrop, NATS's slow consumer).
//
// The bridge adds: sealing and sender authentication under a mesh key (see
// below); duplicate and replay suppression (a message is never delivered
// twice); one sender's order to one receiver (NATS's, kept); bounded
// memory. It adds no retransmission: unlike a LAN link, where no PeerLeft
// means nothing was lost, a message to a remote peer may be lost without a
// PeerLeft. A nil from Send means the message was handed to the NATS
// client, not that it arrived; Request gives an end-to-end answer, and a
// program that needs every message acknowledges (or numbers) them itself.
// The UDP lane's kinds (SendKind, SendChannel, BroadcastKind,
// BroadcastChannel with Sequenced or Unreliable) reach remote peers as
// messages through the hub, each published at once (not kept to the
// newest per channel), at most once and in the sender's order; so
// Sequenced's rule holds across the hub (never an older after a newer on a
// channel: none is older) and Unreliable's (never twice). They come with
// Message.Via set to mesh.Relayed.
//
// # Keys and the hub's claims
//
// Under a mesh key (mesh.NodeConfig.Keyring), every envelope (messages,
// heartbeats, rosters, goodbyes) is sealed end to end with
// XChaCha20-Poly1305 under a key derived from the mesh key: the hub and
// anyone else on it see the envelope's header (kind, sender id, sequence)
// and subject (a hash of the mesh name, of the site name, or the
// addressee's node id), never a message, a name or a site, and cannot
// forge or replay one. What does not open is dropped and counted (Stats.SealedDrop),
// with one warning in the log. Unkeyed, anyone who can publish on the hub
// can claim peers and speak for them: use a mesh key, and NATS credentials
// (Options.User, Token, NKeySeedFile, CredsFile), on any hub others reach.
// Either way what the hub says is a claim: remote peers are bounded
// (MaxRemotePeers, MaxPeersPerSite, MaxSites), envelopes by MaxEnvelope,
// names and sites by 255 bytes of UTF-8; names are logged through
// safetext, and a program shows them only escaped, as a LAN peer's.
//
// The wire format (subjects, envelope layout byte by byte, sealing) is
// SPEC.md section 13.
//
// # Goroutines
//
// A Bridge runs two goroutines: the presence loop (heartbeats, rosters,
// the election) and the applier, the one goroutine that tells the node of
// remote peers and hands it their messages, so that a peer's PeerJoined
// comes before its first message; nats.go runs its own. Close joins them
// all, and Server.Close waits for the embedded server's.
package hub

import "github.com/lanmesh/lanmesh/hub/internal/wire"

// MaxEnvelope is the largest envelope the bridge publishes or accepts, in
// bytes; it is also the embedded server's maximum payload.
const MaxEnvelope = wire.MaxEnvelope
