package mesh

import (
	"context"
	"net"
	"slices"
	"sync"
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

// PollEvent returns the next peer event, if any, without blocking: the form
// for a game loop. A peer's PeerJoined is available here before any of its
// messages is available from Get. At most MaxQueuedEvents wait; past that
// the oldest are dropped (OnPeer, if set, still sees them).
func (n *Node) PollEvent() (PeerEvent, bool) { return n.events.poll() }

// WaitEvent returns the next peer event, waiting until ctx ends or the node
// is closed and every event was returned (ErrNodeClosed).
func (n *Node) WaitEvent(ctx context.Context) (PeerEvent, error) {
	return n.events.wait(ctx)
}

// DroppedEvents counts the events PollEvent lost to its bound.
func (n *Node) DroppedEvents() uint64 { return n.events.droppedCount() }

// dispatchEvents hands each event to OnPeer, in order, on one goroutine,
// never under a lock.
func (n *Node) dispatchEvents() {
	defer n.wg.Done()
	for {
		ev, ok := n.events.next()
		if !ok {
			return
		}
		if n.cfg.OnPeer != nil {
			n.cfg.OnPeer(ev)
		}
	}
}

// eventQueue carries peer events from the node (under its lock) to the
// dispatcher that calls OnPeer, and to PollEvent and WaitEvent.
type eventQueue struct {
	// mu guards everything below it.
	mu        sync.Mutex
	pending   []PeerEvent // for the dispatcher (OnPeer)
	ready     []PeerEvent // for PollEvent and WaitEvent
	limit     int
	dropped   uint64
	closed    bool // no more pushes; the dispatcher ends when pending drains
	finished  bool // the dispatcher has ended
	pendingCh chan struct{}
	readyCh   chan struct{}
}

func newEventQueue(limit int) *eventQueue {
	return &eventQueue{limit: limit, pendingCh: make(chan struct{}, 1), readyCh: make(chan struct{}, 1)}
}

// push never blocks; the node calls it under its own lock, before it lets
// the peer's link deliver anything, so that a peer's PeerJoined is available
// from PollEvent before any of its messages is available from Get.
func (q *eventQueue) push(ev PeerEvent) {
	q.mu.Lock()
	q.pending = append(q.pending, ev)
	if len(q.ready) >= q.limit {
		q.ready[0] = PeerEvent{}
		q.ready = q.ready[1:]
		q.dropped++
	}
	q.ready = append(q.ready, ev)
	q.mu.Unlock()
	signal(q.pendingCh)
	signal(q.readyCh)
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	signal(q.pendingCh)
}

// next returns the next event for the dispatcher; false once closed and
// drained.
func (q *eventQueue) next() (PeerEvent, bool) {
	for {
		q.mu.Lock()
		if len(q.pending) > 0 {
			ev := q.pending[0]
			q.pending[0] = PeerEvent{}
			q.pending = q.pending[1:]
			q.mu.Unlock()
			return ev, true
		}
		if q.closed {
			q.finished = true
			q.mu.Unlock()
			signal(q.readyCh)
			return PeerEvent{}, false
		}
		q.mu.Unlock()
		<-q.pendingCh
	}
}

func (q *eventQueue) poll() (PeerEvent, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.ready) == 0 {
		return PeerEvent{}, false
	}
	ev := q.ready[0]
	q.ready[0] = PeerEvent{}
	q.ready = q.ready[1:]
	if len(q.ready) > 0 {
		signal(q.readyCh) // another waiter may take the next
	}
	return ev, true
}

func (q *eventQueue) wait(ctx context.Context) (PeerEvent, error) {
	for {
		if ev, ok := q.poll(); ok {
			return ev, nil
		}
		q.mu.Lock()
		finished := q.finished
		q.mu.Unlock()
		if finished {
			if ev, ok := q.poll(); ok {
				signal(q.readyCh)
				return ev, nil
			}
			signal(q.readyCh) // wake other waiters too
			return PeerEvent{}, ErrNodeClosed
		}
		select {
		case <-q.readyCh:
		case <-ctx.Done():
			return PeerEvent{}, ctx.Err()
		}
	}
}

func (q *eventQueue) droppedCount() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}
