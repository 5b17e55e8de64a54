package main

import (
	"errors"
	"log/slog"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/mesh"
)

// Everything the game asks of lanmesh is in this file: newNode builds the
// node, pump moves its messages and events into the world once a tick, and
// the three send functions are the only places that send.

// nodeOptions are the flags that shape the node.
type nodeOptions struct {
	mesh, name, codec string
	beaconPort        int
	loopback          bool
	logger            *slog.Logger
}

// newNode builds and starts this player's node.
func newNode(o nodeOptions) (*mesh.Node, error) {
	cfg := mesh.DefaultNodeConfig()
	cfg.Mesh, cfg.Name, cfg.Codec = o.mesh, o.name, o.codec
	cfg.Discovery.BeaconPort = o.beaconPort
	if o.loopback {
		cfg.UseLoopback(o.beaconPort)
	}
	cfg.Logger = o.logger
	return mesh.NewNode(cfg)
}

// netSender sends the world's messages through the node. A send that
// fails (a peer leaving, a full send buffer) is logged and dropped: the
// peer's departure reaches the world through the event it causes, and a
// position is repeated by the heartbeat.
type netSender struct {
	node *mesh.Node
	log  *slog.Logger
}

// sendState sends state that the next update supersedes: positions. They
// go Sequenced over the UDP lane beside each link: a lost one is not
// resent, an older one never overtakes a newer, and a peer whose lane is
// not up (UDP blocked, an older node) gets them over the link.
func (s netSender) sendState(msg any) {
	if _, err := s.node.BroadcastKind(msg, mesh.Sequenced); err != nil {
		s.log.Debug("game: state not sent to every player", "err", err)
	}
}

// sendReliable sends what must arrive, in order, to every player: claims.
func (s netSender) sendReliable(msg any) {
	if _, err := s.node.Broadcast(msg); err != nil {
		s.log.Warn("game: claim not sent to every player", "err", err)
	}
}

// sendReliableTo sends what must arrive, in order, to one player: the
// welcome of a newcomer.
func (s netSender) sendReliableTo(id uuid.UUID, msg any) {
	if err := s.node.Send(id, msg); err != nil && !errors.Is(err, mesh.ErrPeerGone) {
		s.log.Warn("game: welcome not sent", "err", err)
	}
}

// pump is the network's part of a tick: Xfer, then every message and peer
// event that came since the last tick, into the world, in the order they
// happened (a player's join comes before its first message and its leave
// after its last). It never blocks.
func pump(node *mesh.Node, w *world) error {
	if err := node.Xfer(); err != nil {
		return err
	}
	for m, ok := node.Get(); ok; m, ok = node.Get() {
		switch msg := m.Msg.(type) {
		case *mesh.PeerEvent:
			switch msg.Kind {
			case mesh.PeerJoined:
				w.join(msg.Peer.ID, msg.Peer.Name)
			case mesh.PeerRestarted:
				w.leave(msg.Peer.ID)
				w.join(msg.Peer.ID, msg.Peer.Name)
			case mesh.PeerLeft:
				w.leave(msg.Peer.ID)
			}
		case *Pos:
			w.pos(m.From, m.FromName, msg)
		case *Hello:
			w.hello(m.From, m.FromName, msg)
		case *Claim:
			w.claim(m.From, msg)
		}
	}
	return node.Xfer()
}
