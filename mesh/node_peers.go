package mesh

import (
	"net"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/discovery"
)

// LinkState says where a node stands with a peer.
type LinkState uint8

const (
	// StateSeen: discovery (or configuration) knows the peer; no link yet.
	StateSeen LinkState = iota
	// StateDialling: a dial or a wait before one is under way.
	StateDialling
	// StateLinked: a link is up and handshaken.
	StateLinked
)

func (s LinkState) String() string {
	switch s {
	case StateSeen:
		return "seen"
	case StateDialling:
		return "dialling"
	case StateLinked:
		return "linked"
	}
	return "unknown"
}

// PeerInfo describes a peer as this node sees it.
type PeerInfo struct {
	ID       uuid.UUID
	Instance uuid.UUID
	Name     string
	// Addr is where the peer accepts links ("" if unknown).
	Addr string
	// Via says how discovery heard the peer (zero if it did not).
	Via   discovery.Via
	State LinkState
	// Since is when the current link came up.
	Since time.Time
	// Link holds the link's counters and round-trip time (zero when not
	// linked).
	Link Stats
	// LocalAddr and RemoteAddr are the link's ends (nil when not linked).
	LocalAddr, RemoteAddr net.Addr
}

// PeerEventKind says what happened to a peer.
type PeerEventKind uint8

const (
	// PeerJoined: a link to the peer is up and handshaken.
	PeerJoined PeerEventKind = iota + 1
	// PeerLeft: the link to the peer ended; Err says why (a *CloseError:
	// the peer's own reason for a graceful leave, ErrSilence for a peer
	// that stopped answering, ErrConnLost for one that vanished).
	PeerLeft
	// PeerRestarted: the peer's program restarted (a new instance id) and is
	// linked again.
	PeerRestarted
)

func (k PeerEventKind) String() string {
	switch k {
	case PeerJoined:
		return "joined"
	case PeerLeft:
		return "left"
	case PeerRestarted:
		return "restarted"
	}
	return "unknown"
}

// PeerEvent is a change in the node's peers.
type PeerEvent struct {
	Kind PeerEventKind
	Peer PeerInfo
	Err  error // for PeerLeft
}

func (n *Node) infoLocked(p *peer) PeerInfo {
	info := PeerInfo{ID: p.id, Instance: p.instance, Name: p.name, Addr: p.addr, Via: p.via}
	switch {
	case p.link != nil:
		info.State = StateLinked
		info.Since = p.joined
		info.Link = p.link.Stats()
		info.LocalAddr, info.RemoteAddr = p.link.LocalAddr(), p.link.RemoteAddr()
	case p.dialing:
		info.State = StateDialling
	}
	return info
}

// Peers returns every peer the node knows (linked, being dialled, or only
// seen), sorted by name, then id.
func (n *Node) Peers() []PeerInfo {
	n.mu.Lock()
	out := make([]PeerInfo, 0, len(n.peers))
	for _, p := range n.peers {
		out = append(out, n.infoLocked(p))
	}
	n.mu.Unlock()
	slices.SortFunc(out, func(a, b PeerInfo) int {
		if a.Name != b.Name {
			if a.Name < b.Name {
				return -1
			}
			return 1
		}
		return slices.Compare(a.ID[:], b.ID[:])
	})
	return out
}

// Peer returns what the node knows of the peer with id, or ErrNoPeer (or
// ErrPeerGone, with the reason, for a peer that left).
func (n *Node) Peer(id uuid.UUID) (PeerInfo, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.peers[id]; p != nil {
		return n.infoLocked(p), nil
	}
	return PeerInfo{}, n.goneErrLocked(id)
}
