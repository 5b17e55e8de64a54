package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/meshkey"
	"github.com/lanmesh/lanmesh/message"
)

// A relay carries a node's messages to peers that are not on its LAN: peers
// in other sites, reached through something else than a direct link (package
// hub joins sites through NATS). The node knows nothing of how: the relay
// tells it which remote peers there are (RelayPort.PeerUp and PeerDown) and
// hands it what they send (RelayPort.Deliver); the node hands the relay what
// the program sends them (Relay.RelaySend). Remote peers are then peers like
// the others: they are in Peers (with PeerInfo.Site set), their PeerJoined,
// PeerLeft and PeerRestarted come in the node's one stream, and Send, SendTo,
// Broadcast, Request and Reply reach them with the same code. Their messages
// come with Message.Via set to Relayed.
//
// A LAN peer always wins: a peer with a direct link is reached over it, and a
// remote peer that also has a direct link is reported once, as the LAN peer.
// Nodes of one site must therefore never be told of each other as remote.
//
// What a relay promises is the relay's to say (see package hub); the node
// adds nothing to it: a message handed to RelaySend may be lost.
//
// SendKind, SendChannel, BroadcastKind and BroadcastChannel with Sequenced
// or Unreliable reach remote peers too: the relay carries each as a
// message, sent at once (not kept to the newest per channel as for a
// lane), with no datagram size limit but the relay's, and it arrives with
// Via Relayed. A relay that delivers one sender's messages at most once
// and in the order sent (package hub does) thus keeps both kinds' rules:
// never twice, and never an older after a newer.

// Relayed is the Delivery of a message that came through a relay (package
// hub) from a peer in another site, whichever kind it was sent with.
const Relayed Delivery = 8

// RelayKind says what a RelayFrame carries.
type RelayKind uint8

// The kinds of relay frames; an append-only list.
const (
	// RelayMessage: a message (Send, Broadcast).
	RelayMessage RelayKind = iota + 1
	// RelayRequest: a request (Request); the receiver answers with
	// RelayReply or RelayRefuse of the same ReqID.
	RelayRequest
	// RelayReply: the reply to request ReqID.
	RelayReply
	// RelayRefuse: the refusal of request ReqID; Body is the reason (UTF-8).
	RelayRefuse
)

func (k RelayKind) String() string {
	switch k {
	case RelayMessage:
		return "message"
	case RelayRequest:
		return "request"
	case RelayReply:
		return "reply"
	case RelayRefuse:
		return "refuse"
	}
	return fmt.Sprintf("relaykind(%d)", uint8(k))
}

// RelayFrame is one message to or from a remote peer.
type RelayFrame struct {
	Kind  RelayKind
	ReqID uint32 // for requests, replies and refusals
	// Body is the message framed by the node's codec (NodeConfig.Codec), or
	// for RelayRefuse the reason.
	Body []byte
}

// Relay carries frames to remote peers. See AttachRelay.
type Relay interface {
	// RelaySend carries f to the remote peer to. It is called by Send,
	// Broadcast, Request, Reply and Refuse on the program's goroutine, never
	// with a lock of the node held, and must not block on the network.
	// f.Body is valid only during the call. A nil error means the frame was
	// handed on, not that it arrived.
	RelaySend(to uuid.UUID, f RelayFrame) error
}

// RemotePeer is a peer reached through a relay, as the relay describes it.
// Every field is a claim of the network the relay listens to: the node
// bounds and escapes nothing in it, so the relay must (package hub does).
type RemotePeer struct {
	ID, Instance uuid.UUID
	Name         string
	// Site names the LAN the peer is on (never empty).
	Site string
}

// Relay errors.
var (
	// ErrRelayAttached: AttachRelay was called while another relay is
	// attached.
	ErrRelayAttached = errors.New("mesh: a relay is already attached")
	// ErrRelayDetached: the relay was detached (or the node closed); a
	// RelayPort method called after that, and the PeerLeft of every remote
	// peer at that moment, report it.
	ErrRelayDetached = errors.New("mesh: relay detached")
	// ErrTooManyRemotePeers: PeerUp of a new peer past MaxRemotePeers.
	ErrTooManyRemotePeers = errors.New("mesh: too many remote peers")
)

// MaxRemotePeers bounds the remote peers a node keeps, whatever a relay
// claims.
const MaxRemotePeers = 4096

// relayState is the node's side of an attached relay. Its remote table is
// guarded by Node.mu, so that events about remote peers enter the node's
// stream in the same order as those of LAN peers.
type relayState struct {
	port *RelayPort
	// remote: guarded by Node.mu.
	remote   map[uuid.UUID]*remotePeer
	detached bool // guarded by Node.mu
	// stop is closed when the relay is detached: it ends the waits of
	// PeerUp, PeerDown and Deliver.
	stop chan struct{}
	// inflight counts Deliver calls that passed the detached check.
	inflight sync.WaitGroup
}

type remotePeer struct {
	RemotePeer
	joined time.Time
	hidden bool // a LAN peer of the same id was linked when it came up
}

// RelayPort is the relay's handle on the node it is attached to. Its methods
// are safe for concurrent use, but a relay that wants a remote peer's
// PeerJoined before its messages (as a program does) calls PeerUp, Deliver
// and PeerDown for that peer from one goroutine, in the order things
// happened.
type RelayPort struct {
	n     *Node
	r     Relay
	st    *relayState
	codec codec.Codec
}

// AttachRelay attaches r to the node (one relay at a time) and returns the
// port through which r reports remote peers and their messages. Detach (or
// closing the node) ends it: every remote peer is then reported left.
func (n *Node) AttachRelay(r Relay) (*RelayPort, error) {
	c, err := codec.New(n.link.Codec, n.link.registry())
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrNodeClosed
	}
	if n.relay != nil && !n.relay.detached {
		return nil, ErrRelayAttached
	}
	st := &relayState{remote: map[uuid.UUID]*remotePeer{}, stop: make(chan struct{})}
	st.port = &RelayPort{n: n, r: r, st: st, codec: c}
	n.relay = st
	return st.port, nil
}

// Mesh returns the node's mesh name.
func (p *RelayPort) Mesh() string { return p.n.cfg.Mesh }

// Codec returns the name of the node's codec, which frames RelayFrame.Body.
func (p *RelayPort) Codec() string { return p.n.link.Codec }

// Keys returns the node's mesh keys derived for its mesh (nil: unkeyed); a
// relay seals what it carries with keys of its own derived from them.
func (p *RelayPort) Keys() *meshkey.Set { return p.n.keys.Load() }

// Done is closed once the port is detached (by Detach, or as the node
// closes).
func (p *RelayPort) Done() <-chan struct{} { return p.st.stop }

// Detached reports whether the port was detached (or the node closed).
func (p *RelayPort) Detached() bool {
	p.n.mu.Lock()
	defer p.n.mu.Unlock()
	return p.st.detached
}

func (p *RelayPort) info(rp *remotePeer) PeerInfo {
	return PeerInfo{ID: rp.ID, Instance: rp.Instance, Name: rp.Name, Site: rp.Site,
		State: StateLinked, Since: rp.joined}
}

// PeerUp tells the node of a remote peer, or of news about one: a new peer
// is PeerJoined, a new instance of a known one PeerRestarted (requests
// waiting on the old instance fail with ErrPeerGone), a new name or site is
// taken in silence. A peer the node has a direct link to is kept but not
// reported (the LAN peer wins). It waits while Limits.Events events wait
// for the program.
func (p *RelayPort) PeerUp(rp RemotePeer) error {
	n := p.n
	if rp.ID == n.id || rp.ID == uuid.Nil {
		return fmt.Errorf("mesh: remote peer with this node's id or none: %s", rp.ID)
	}
	if rp.Site == "" {
		return errors.New("mesh: remote peer without a site")
	}
	n.evGate.wait(p.st.stop)
	n.mu.Lock()
	defer n.mu.Unlock()
	if p.st.detached {
		return ErrRelayDetached
	}
	old := p.st.remote[rp.ID]
	if old == nil {
		if len(p.st.remote) >= MaxRemotePeers {
			return ErrTooManyRemotePeers
		}
		lp := n.peers[rp.ID]
		e := &remotePeer{RemotePeer: rp, joined: time.Now(), hidden: lp != nil && lp.link != nil}
		p.st.remote[rp.ID] = e
		if !e.hidden {
			n.pushEventLocked(PeerEvent{Kind: PeerJoined, Peer: p.info(e)})
		}
		return nil
	}
	restarted := old.Instance != rp.Instance
	old.RemotePeer = rp
	if restarted && !old.hidden {
		old.joined = time.Now()
		n.reqs.failPeer(rp.ID, rp.Name, errors.New("mesh: remote peer restarted"))
		n.pushEventLocked(PeerEvent{Kind: PeerRestarted, Peer: p.info(old)})
	}
	return nil
}

// PeerDown tells the node that a remote peer is gone, for cause (which
// PeerLeft reports); requests waiting on it fail. An unknown id is ignored.
func (p *RelayPort) PeerDown(id uuid.UUID, cause error) {
	n := p.n
	n.evGate.wait(p.st.stop)
	n.mu.Lock()
	defer n.mu.Unlock()
	if p.st.detached {
		return
	}
	rp := p.st.remote[id]
	if rp == nil {
		return
	}
	delete(p.st.remote, id)
	n.remoteLeftLocked(rp, cause)
}

func (n *Node) remoteLeftLocked(rp *remotePeer, cause error) {
	n.reqs.failPeer(rp.ID, rp.Name, cause)
	if rp.hidden {
		return
	}
	info := n.relay.port.info(rp)
	info.Err = cause
	n.pushEventLocked(PeerEvent{Kind: PeerLeft, Peer: info, Err: cause})
	n.tombs[rp.ID] = tomb{name: rp.Name, err: cause, at: time.Now()}
	n.trimTombsLocked()
}

// Remote returns the remote peers the node knows, hidden ones (with a direct
// link) included.
func (p *RelayPort) Remote() []RemotePeer {
	p.n.mu.Lock()
	defer p.n.mu.Unlock()
	out := make([]RemotePeer, 0, len(p.st.remote))
	for _, rp := range p.st.remote {
		out = append(out, rp.RemotePeer)
	}
	return out
}

// Deliver hands the node what the remote peer from sent: a message or a
// request goes into the node's stream (with Via Relayed), a reply or a
// refusal to the Request waiting for it. It waits while the stream is full
// (Limits.ReceiveQueue), until the port is detached. A frame from a peer the node
// does not know as remote (PeerUp first), or one that does not decode, is
// an error and is dropped.
func (p *RelayPort) Deliver(from uuid.UUID, f RelayFrame) error {
	n := p.n
	n.mu.Lock()
	if p.st.detached {
		n.mu.Unlock()
		return ErrRelayDetached
	}
	rp := p.st.remote[from]
	if rp == nil {
		n.mu.Unlock()
		return fmt.Errorf("%w: %s is no remote peer", ErrNoPeer, from)
	}
	name := rp.Name
	p.st.inflight.Add(1)
	n.mu.Unlock()
	defer p.st.inflight.Done()

	if f.Kind == RelayRefuse {
		n.reqs.resolve(from, f.ReqID, nil, fmt.Errorf("%w: %s", ErrRefused, f.Body))
		return nil
	}
	msg, size, err := p.codec.NewDecoder(bytes.NewReader(f.Body)).Decode()
	if err == nil && size != len(f.Body) {
		err = fmt.Errorf("%w: %d bytes after the frame", codec.ErrMalformed, len(f.Body)-size)
	}
	if err != nil {
		return fmt.Errorf("mesh: relayed frame from %s: %w", from, err)
	}
	switch f.Kind {
	case RelayReply:
		n.reqs.resolve(from, f.ReqID, msg, nil)
		return nil
	case RelayMessage, RelayRequest:
	default:
		return fmt.Errorf("mesh: relayed frame from %s: unknown kind %v", from, f.Kind)
	}
	m := Message{From: from, FromName: name, Msg: msg, Via: Relayed,
		request: f.Kind == RelayRequest, reqID: f.ReqID}
	if r := n.cfg.Responder; m.request && r != nil && r.knows(msg) {
		if r.q.push([]Message{m}, p.st.stop) == 0 {
			return ErrRelayDetached
		}
		return nil
	}
	if n.inbox.push([]Message{m}, p.st.stop) == 0 {
		return ErrRelayDetached
	}
	return nil
}

// Detach ends the relay: every remote peer is reported left
// (ErrRelayDetached), and the node no longer routes anything to the relay.
// It waits for Deliver calls under way. Idempotent.
func (p *RelayPort) Detach() { p.n.detachRelay(p.st, ErrRelayDetached) }

func (n *Node) detachRelay(st *relayState, cause error) {
	n.mu.Lock()
	if st.detached {
		n.mu.Unlock()
		return
	}
	st.detached = true
	close(st.stop)
	n.mu.Unlock()
	st.inflight.Wait()
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, rp := range st.remote {
		delete(st.remote, id)
		n.remoteLeftLocked(rp, cause)
	}
}

// closeRelay detaches the relay as the node closes, before the stream ends.
func (n *Node) closeRelay() {
	n.mu.Lock()
	st := n.relay
	n.mu.Unlock()
	if st != nil {
		n.detachRelay(st, ErrRelayDetached)
	}
}

// remoteLocked returns the visible remote peer with id, or nil.
func (n *Node) remoteLocked(id uuid.UUID) *remotePeer {
	if n.relay == nil || n.relay.detached {
		return nil
	}
	if rp := n.relay.remote[id]; rp != nil && !rp.hidden {
		return rp
	}
	return nil
}

// remoteRoute reports whether a message to id that found no link (linkErr)
// goes through the relay, and the relay's port.
func (n *Node) remoteRoute(id uuid.UUID, linkErr error) (*RelayPort, string, bool) {
	if !errors.Is(linkErr, ErrNoPeer) && !errors.Is(linkErr, ErrPeerGone) {
		return nil, "", false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	rp := n.remoteLocked(id)
	if rp == nil {
		return nil, "", false
	}
	return n.relay.port, rp.Name, true
}

// relaySend encodes msg and hands it to the relay for id.
func (n *Node) relaySend(p *RelayPort, id uuid.UUID, kind RelayKind, reqID uint32, msg any) error {
	buf := framePool.Get().(*[]byte)
	defer framePool.Put(buf)
	frame, err := p.codec.AppendFrame((*buf)[:0], msg)
	*buf = frame[:0]
	if err != nil {
		return err
	}
	return p.r.RelaySend(id, RelayFrame{Kind: kind, ReqID: reqID, Body: frame})
}

// relayBroadcast sends msg to every visible remote peer that has no link in
// t; it returns how many it was handed on for, and the errors of the others.
func (n *Node) relayBroadcast(t *linkTable, msg any) (int, []error) {
	n.mu.Lock()
	if n.relay == nil || n.relay.detached || len(n.relay.remote) == 0 {
		n.mu.Unlock()
		return 0, nil
	}
	p := n.relay.port
	ids := make([]uuid.UUID, 0, len(n.relay.remote))
	names := make([]string, 0, len(n.relay.remote))
	for id, rp := range n.relay.remote {
		if !rp.hidden && t.byID[id] == nil {
			ids = append(ids, id)
			names = append(names, rp.Name)
		}
	}
	n.mu.Unlock()
	if len(ids) == 0 {
		return 0, nil
	}
	buf := framePool.Get().(*[]byte)
	defer framePool.Put(buf)
	frame, err := p.codec.AppendFrame((*buf)[:0], msg)
	*buf = frame[:0]
	if err != nil {
		return 0, []error{err}
	}
	sent := 0
	var errs []error
	for i, id := range ids {
		if err := p.r.RelaySend(id, RelayFrame{Kind: RelayMessage, Body: frame}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", names[i], err))
			continue
		}
		sent++
	}
	return sent, errs
}

// relayKind is SendKind (Sequenced or Unreliable) to a remote peer: the
// relay carries it as a message (see Delivery for what that promises).
func (n *Node) relayKind(p *RelayPort, id uuid.UUID, msg any, d Delivery) error {
	if d != Sequenced && d != Unreliable {
		return fmt.Errorf("mesh: unknown delivery kind %d", d)
	}
	return n.relaySend(p, id, RelayMessage, 0, msg)
}

// relayBroadcastKind is BroadcastKind's part for remote peers.
func (n *Node) relayBroadcastKind(t *linkTable, msg any, d Delivery) (int, []error) {
	if d != Sequenced && d != Unreliable {
		return 0, []error{fmt.Errorf("mesh: unknown delivery kind %d", d)}
	}
	return n.relayBroadcast(t, msg)
}

// hasRemote reports whether any remote peer is visible.
func (n *Node) hasRemote() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.relay != nil && !n.relay.detached && len(n.relay.remote) > 0
}

// relayRequest is Request through the relay.
func (n *Node) relayRequest(ctx context.Context, p *RelayPort, id uuid.UUID, name string, msg any) (any, error) {
	w, rid := n.reqs.add(id)
	defer n.reqs.remove(rid)
	if err := n.relaySend(p, id, RelayRequest, rid, msg); err != nil {
		return nil, err
	}
	select {
	case r := <-w:
		return r.msg, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("mesh: request to %s: %w", name, ctx.Err())
	}
}

// relayAnswer answers a request that came through the relay.
func (n *Node) relayAnswer(p *RelayPort, m Message, marker, reply any) error {
	switch mk := marker.(type) {
	case *message.Refuse:
		return p.r.RelaySend(m.From, RelayFrame{Kind: RelayRefuse, ReqID: mk.ID, Body: []byte(mk.Reason)})
	case *message.Reply:
		return n.relaySend(p, m.From, RelayReply, mk.ID, reply)
	}
	return fmt.Errorf("mesh: relay answer with %T", marker)
}

// relayByName returns the id of the one visible remote peer called name;
// ok is false when none is.
func (n *Node) relayByName(name string) (uuid.UUID, bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.relay == nil || n.relay.detached {
		return uuid.Nil, false, nil
	}
	var found uuid.UUID
	for id, rp := range n.relay.remote {
		if rp.hidden || rp.Name != name {
			continue
		}
		if found != uuid.Nil {
			return uuid.Nil, true, fmt.Errorf("%w: %q (use the id)", ErrAmbiguousName, name)
		}
		found = id
	}
	return found, found != uuid.Nil, nil
}

// remoteInfosLocked appends the visible remote peers that are not in the
// LAN peer table.
func (n *Node) remoteInfosLocked(out []PeerInfo) []PeerInfo {
	if n.relay == nil || n.relay.detached {
		return out
	}
	for id, rp := range n.relay.remote {
		if rp.hidden || n.peers[id] != nil {
			continue
		}
		out = append(out, n.relay.port.info(rp))
	}
	return out
}
