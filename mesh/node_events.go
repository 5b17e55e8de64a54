package mesh

import (
	"context"
	"sync"
	"sync/atomic"
)

// The node delivers one stream: peer events and messages in the order they
// happened. A peer's PeerJoined enters the stream (under the node's lock)
// before its link may deliver anything, and its PeerLeft only once the
// link has ended, after the last message it delivered; so every form of
// delivery that reads the stream in order (Get, Receive, the dispatcher
// that calls OnPeer and OnMessage) sees a peer's events and messages in
// that order.
//
// Messages wait for room in the stream (backpressure that reaches the
// peers, Limits.ReceiveQueue); events never wait under the node's lock:
// they are bounded instead by eventGate, which the goroutines that make
// events (attach, watch) pass before they take the lock.

// pushEventLocked puts ev into the stream. n.mu is held.
func (n *Node) pushEventLocked(ev PeerEvent) {
	n.evGate.add()
	n.inbox.pushOver(Message{From: ev.Peer.ID, FromName: ev.Peer.Name, Msg: &ev})
}

// eventGate bounds the peer events in the stream: a goroutine about to
// make one waits while Limits.Events wait for the program. The bound is
// loose by the goroutines that passed the gate together (at most one per
// link or handshake in progress): enough to bound memory, and no event is
// ever dropped.
type eventGate struct {
	// mu guards the count and the room channel.
	mu    sync.Mutex
	n     int
	limit int
	room  chan struct{} // closed and replaced when n drops under limit
	count atomic.Int32  // n, read without the lock on the hot path
}

func (g *eventGate) init(limit int) {
	g.limit = limit
	g.room = make(chan struct{})
}

// wait returns when fewer than limit events wait, or when done closes
// (then the bound no longer holds: Close lets every PeerLeft through).
func (g *eventGate) wait(done <-chan struct{}) {
	for {
		g.mu.Lock()
		if g.n < g.limit {
			g.mu.Unlock()
			return
		}
		room := g.room
		g.mu.Unlock()
		select {
		case <-room:
		case <-done:
			return
		}
	}
}

func (g *eventGate) add() {
	g.mu.Lock()
	g.n++
	g.count.Store(int32(g.n))
	g.mu.Unlock()
}

// taken records that k events left the stream.
func (g *eventGate) taken(k int) {
	g.mu.Lock()
	full := g.n >= g.limit
	g.n -= k
	g.count.Store(int32(g.n))
	if full && g.n < g.limit {
		close(g.room)
		g.room = make(chan struct{})
	}
	g.mu.Unlock()
}

// popInbox takes up to max items from the stream into dst and lets the
// gate know of the events among them.
func (n *Node) popInbox(dst []Message, max int) []Message {
	start := len(dst)
	dst = n.inbox.popMany(dst, max)
	if n.evGate.count.Load() > 0 {
		k := 0
		for _, m := range dst[start:] {
			if _, ok := m.Msg.(*PeerEvent); ok {
				k++
			}
		}
		if k > 0 {
			n.evGate.taken(k)
		}
	}
	return dst
}

// dispatch is the one goroutine that calls OnPeer and OnMessage, in the
// stream's order, never with a lock held. Items with no callback go on, in
// order, to the queue Get and Receive read (n.out). It ends once Close has
// closed the stream and everything in it was handed on.
func (n *Node) dispatch() {
	defer close(n.outDone)
	var batch, fwd []Message
	forward := func() {
		if len(fwd) == 0 {
			return
		}
		// Past Close nobody may read: keep them, bounded by what the stream
		// held, rather than wait.
		if k := n.out.push(fwd, n.ctx.Done()); k < len(fwd) {
			for _, m := range fwd[k:] {
				n.out.pushOver(m)
			}
		}
		clear(fwd)
		fwd = fwd[:0]
	}
	for {
		batch = n.popInbox(batch[:0], takeBatch)
		if len(batch) == 0 {
			select {
			case <-n.inbox.ready:
				continue
			case <-n.inboxDone:
			}
			if batch = n.popInbox(batch[:0], takeBatch); len(batch) == 0 {
				return
			}
		}
		for i, m := range batch {
			batch[i] = Message{}
			ev, isEvent := m.Msg.(*PeerEvent)
			switch {
			case isEvent && n.cfg.OnPeer != nil:
				forward()
				n.inCallback.Store(true)
				n.cfg.OnPeer(*ev)
				n.inCallback.Store(false)
			case !isEvent && n.cfg.OnMessage != nil:
				forward()
				n.inCallback.Store(true)
				n.cfg.OnMessage(m)
				n.inCallback.Store(false)
			default:
				fwd = append(fwd, m)
			}
		}
		forward()
	}
}

// take returns the next item of the stream: from the batch taken last
// time, or a new batch of up to takeBatch, so that the stream's lock
// (shared with the links' readers) is taken once per batch, not per item.
func (n *Node) take() (Message, bool) {
	n.takeMu.Lock()
	defer n.takeMu.Unlock()
	if n.next == len(n.taken) {
		clear(n.taken)
		if n.out == n.inbox {
			n.taken = n.popInbox(n.taken[:0], takeBatch)
		} else {
			n.taken = n.out.popMany(n.taken[:0], takeBatch)
		}
		n.next = 0
		if len(n.taken) == 0 {
			return Message{}, false
		}
	}
	m := n.taken[n.next]
	n.taken[n.next] = Message{}
	n.next++
	if n.next < len(n.taken) && n.receivers.Load() > 0 {
		signal(n.out.ready) // a waiting Receive may take the rest
	}
	return m, true
}

const takeBatch = 64

// Get returns the next item of the node's stream, or false if none is
// waiting. It never blocks. An item is a message from a peer, or a peer
// event (Msg is a *PeerEvent; From and FromName are the peer's): a
// peer's PeerJoined comes before any of its messages, its PeerLeft after
// the last. A game loop calls it until it returns false, once per frame:
//
//	for m, ok := n.Get(); ok; m, ok = n.Get() {
//		switch msg := m.Msg.(type) {
//		case *mesh.PeerEvent: // msg.Kind: joined, left (msg.Err says why), restarted
//		case *Move:
//		}
//	}
//
// With OnPeer or OnMessage set, the dispatcher takes what they handle and
// Get sees the rest.
func (n *Node) Get() (Message, bool) { return n.take() }

// Receive returns the next item of the stream (see Get), waiting until one
// comes, ctx ends, or the node is closed and every item before was
// returned (ErrNodeClosed).
func (n *Node) Receive(ctx context.Context) (Message, error) {
	// Counted before looking, so that a take that leaves items after this
	// look wakes us.
	n.receivers.Add(1)
	defer n.receivers.Add(-1)
	for {
		if m, ok := n.take(); ok {
			return m, nil
		}
		select {
		case <-n.out.ready:
		case <-n.outDone:
			if m, ok := n.take(); ok {
				signal(n.out.ready) // pass the news on to another Receive
				return m, nil
			}
			return Message{}, ErrNodeClosed
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
}
