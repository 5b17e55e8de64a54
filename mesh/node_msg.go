package mesh

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/internal/resume"
	"github.com/lanmesh/lanmesh/message"
)

// Message is an item a node or a Messenger delivers: a message received,
// with the peer it came from, or, from a node, a peer event.
type Message struct {
	// From is the sender's node id; FromName its name. For a peer event,
	// the peer's.
	From     uuid.UUID
	FromName string
	// Msg is the message, a pointer to its registered type; or a
	// *PeerEvent, which only a node's stream carries (see Node.Get).
	Msg any
	// Via is how the message came: Reliable over the link, or Sequenced or
	// Unreliable as the sender sent it (over the lane, or over the link
	// while the lane was not up).
	Via Delivery

	link    *link
	request bool
	reqID   uint32
}

// IsRequest reports whether the sender waits for an answer: give it one
// with Node.Reply (or Node.Refuse).
func (m Message) IsRequest() bool { return m.request }

// nodeSink takes the messages of one link of a node, on that link's reader
// goroutine (so its fields need no lock): it pairs request and reply
// markers with the message after them and queues the rest for the program.
type nodeSink struct {
	n         *Node
	initiator bool // this node opened the link
	quiet     bool // a cable_car link: no handshake, no control frames
	// attached is closed once the node has put the link in its table (or
	// decided against it): until then delivery waits, so that a program
	// never receives a message from a peer it cannot yet answer.
	attached chan struct{}

	// st is what a request or reply marker leaves for the frame after
	// it: own, or the peer session's for a resumable link (a marker may
	// come on one link and its message on the next).
	st  *sinkState
	own sinkState
	// lane is the link's lane (lane.go), nil when the node runs none;
	// tag is the LaneTag that came last, if tagged.
	lane   *linkLane
	tag    message.LaneTag
	tagged bool
	out    []Message // the batch for the inbox, reused
	at     []int     // the index in the link's batch of each of out
}

func (s *nodeSink) Deliver(l *link, msgs []any, stop <-chan struct{}) int {
	select {
	case <-s.attached:
	case <-stop:
		select {
		case <-s.attached:
		default:
			return 0
		}
	}
	remote := l.Remote()
	st := s.st
	if st == nil {
		st = &s.own
	}
	for i, msg := range msgs {
		switch m := msg.(type) {
		case *message.Request:
			st.marker, st.id = message.CodeRequest, m.ID
			continue
		case *message.Reply:
			st.marker, st.id = message.CodeReply, m.ID
			continue
		case *message.Refuse:
			s.n.reqs.resolve(remote.NodeID, m.ID, nil, fmt.Errorf("%w: %s", ErrRefused, m.Reason))
			continue
		case *message.LaneOffer:
			s.n.laneOffered(l, s.lane, m)
			continue
		case *message.LaneTag:
			s.tag, s.tagged = *m, true
			continue
		}
		via := Reliable
		if s.tagged {
			s.tagged = false
			via = laneVia(s.tag)
		}
		marker, id := st.marker, st.id
		st.marker = 0
		s.n.traffic.note(l, In, msg, l.sizes[i])
		if marker == message.CodeReply {
			s.n.reqs.resolve(remote.NodeID, id, msg, nil)
			continue
		}
		m := Message{From: remote.NodeID, FromName: remote.Name, Msg: msg, link: l, Via: via,
			request: marker == message.CodeRequest, reqID: id}
		if r := s.n.cfg.Responder; m.request && r != nil && r.knows(msg) {
			// Keep the order of what the program sees: queue what came
			// before first.
			if k := s.flush(stop); k >= 0 {
				return k
			}
			if r.q.push([]Message{m}, stop) == 0 {
				return i
			}
			continue
		}
		if via == Sequenced && s.lane != nil {
			// Decided and queued under the lane's lock, so that the lane
			// never slips an older one in between (lane.go).
			if k := s.flush(stop); k >= 0 {
				return k
			}
			if !s.lane.pushSequenced(s.n, m, s.tag, stop) {
				return i
			}
			continue
		}
		s.out = append(s.out, m)
		s.at = append(s.at, i)
	}
	if k := s.flush(stop); k >= 0 {
		return k
	}
	return len(msgs)
}

// flush queues the gathered messages for the program in one push. It
// returns -1 when all were taken, else the index in the link's batch of the
// first one that was not.
func (s *nodeSink) flush(stop <-chan struct{}) int {
	if len(s.out) == 0 {
		return -1
	}
	k := s.n.inbox.push(s.out, stop)
	first := -1
	if k < len(s.out) {
		first = s.at[k]
	}
	clear(s.out) // drop the references for the collector
	s.out, s.at = s.out[:0], s.at[:0]
	return first
}

// goneErrLocked says why there is no link to id.
func (n *Node) goneErrLocked(id uuid.UUID) error {
	if t, ok := n.tombs[id]; ok {
		return fmt.Errorf("%w: %s (%s): %w", ErrPeerGone, t.name, id, t.err)
	}
	return fmt.Errorf("%w: %s", ErrNoPeer, id)
}

// linkScan is how many links linkTo compares ids with before it hashes
// id instead: a game sends every message of a tick through here, and
// comparing a few 16-byte ids costs less than one map look-up.
const linkScan = 8

func (n *Node) linkTo(id uuid.UUID) (*link, error) {
	t := n.links.Load()
	if len(t.ids) <= linkScan {
		for i := range t.ids {
			if t.ids[i] == id {
				return t.all[i], nil
			}
		}
	} else if l := t.byID[id]; l != nil {
		return l, nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrNodeClosed
	}
	if p := n.peers[id]; p != nil && p.replacing {
		return nil, fmt.Errorf("%w: the link to %s is being replaced", ErrBackpressure, p.name)
	}
	return nil, n.goneErrLocked(id)
}

// Send queues msg for the peer with id and returns at once; it never blocks
// on the network. The bytes leave on the next Xfer (or at once with
// Link.AutoFlush). It reads the link table without a lock and, for the
// binary codec and a message passed as a pointer, does not allocate.
//
// A nil from Send means the message will be delivered to the peer, once
// and in order, unless you are told otherwise: a PeerEvent whose Lost names
// it (see "What a nil from Send promises" in the package doc). While the
// peer is resuming (its link cut, PeerResuming), Send keeps the message for
// the next link, within ResumeConfig's budget.
//
// Errors: ErrNoPeer for an id the node has no link to, ErrPeerGone (with the
// reason) for a peer that left, ErrBackpressure when the peer's send buffer
// is full, a codec error for a message that cannot be encoded.
func (n *Node) Send(id uuid.UUID, msg any) error {
	if s := n.links.Load().resuming[id]; s != nil {
		_, err := s.put(nil, msg, nil)
		return err
	}
	l, err := n.linkTo(id)
	if err != nil {
		if p, _, ok := n.remoteRoute(id, err); ok {
			return n.relaySend(p, id, RelayMessage, 0, msg)
		}
		return n.typeErr(msg, err)
	}
	size, err := l.send(msg)
	if errors.Is(err, ErrClosed) {
		// The link may have just been replaced (the one-link rule): the
		// message goes on the new one.
		if l2, err2 := n.linkTo(id); err2 == nil && l2 != l {
			l = l2
			size, err = l2.send(msg)
		} else if errors.Is(err2, ErrBackpressure) {
			return err2
		}
	}
	if err != nil {
		return n.sendErr(l, err)
	}
	n.traffic.note(l, Out, msg, size)
	return nil
}

// sendErr turns the error of a send on l into the node's: a link closing as
// a duplicate is being replaced (try again, as with a full buffer); any
// other closed link means the peer left.
func (n *Node) sendErr(l *link, err error) error {
	var ce *CloseError
	switch {
	case errors.As(err, &ce) && ce.Reason == reasonDuplicate:
		return fmt.Errorf("%w: the link to %s is being replaced", ErrBackpressure, l.Remote().Name)
	case errors.Is(err, ErrClosed):
		return fmt.Errorf("%w: %s: %w", ErrPeerGone, l.Remote().Name, err)
	}
	return err
}

// typeErr is the error of a message that went nowhere: a codec error if
// the message could not have been sent to anyone, else err. Send and
// Broadcast thus report an unregistered type even with no peer.
func (n *Node) typeErr(msg any, err error) error {
	if _, terr := n.link.registry().TypeOf(msg); terr != nil {
		return terr
	}
	return err
}

// SendTo sends msg to the one linked peer called name. A name that matches
// no linked peer is ErrNoPeer, or ErrPeerGone with the reason if a peer of
// that name left; one that matches several is ErrAmbiguousName.
func (n *Node) SendTo(name string, msg any) error {
	id, err := n.idByName(name)
	if err != nil {
		return n.typeErr(msg, err)
	}
	return n.Send(id, msg)
}

// idByName returns the id of the one linked peer called name.
func (n *Node) idByName(name string) (uuid.UUID, error) {
	var found *link
	for _, l := range n.links.Load().all {
		if l.Remote().Name == name {
			if found != nil {
				return uuid.Nil, fmt.Errorf("%w: %q (use the id)", ErrAmbiguousName, name)
			}
			found = l
		}
	}
	if found != nil {
		return found.Remote().NodeID, nil
	}
	if id, ok, err := n.relayByName(name); ok {
		return id, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var last tomb
	for _, t := range n.tombs {
		if t.name == name && t.at.After(last.at) {
			last = t
		}
	}
	if last.err != nil {
		return uuid.Nil, fmt.Errorf("%w: %s: %w", ErrPeerGone, name, last.err)
	}
	return uuid.Nil, fmt.Errorf("%w: no linked peer is called %q", ErrNoPeer, name)
}

// Broadcast queues msg for every linked peer. It encodes msg once per codec
// in use (one, unless cable_car links speak another) and copies the bytes
// to each link, so fan-out costs a copy per peer. It returns how many peers
// it was queued for and, joined, the errors of those it was not (a full
// send buffer, a link closing). A message whose type is not registered is
// an error even with no peers linked.
func (n *Node) Broadcast(msg any) (int, error) {
	t := n.links.Load()
	if len(t.all) == 0 && !n.hasRemote() {
		return 0, n.typeErr(msg, nil)
	}
	// The frame of the node's codec and, with cable_car, of the other one.
	var enc [2]encoded
	sent := 0
	var errs []error
	for _, l := range t.all {
		size, err := enc[0].send(l, msg)
		if err == errOtherCodec {
			if size, err = enc[1].send(l, msg); err == errOtherCodec {
				size, err = l.send(msg) // a third codec: cannot happen today
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", l.Remote().Name, err))
			continue
		}
		n.traffic.note(l, Out, msg, size)
		sent++
	}
	enc[0].free()
	enc[1].free()
	k, rerrs := n.relayBroadcast(t, msg) // remote peers (relay.go)
	return sent + k, errors.Join(append(errs, rerrs...)...)
}

// encoded is a message encoded once with one codec, for Broadcast.
type encoded struct {
	codec string
	buf   *[]byte
	frame []byte
	err   error
}

var errOtherCodec = errors.New("another codec")

// send queues the frame on l, encoding it first if e is unused, and
// returns its size; a link of another codec than e's gets errOtherCodec.
func (e *encoded) send(l *link, msg any) (int, error) {
	if e.buf == nil {
		e.codec, e.buf = l.codec.Name(), framePool.Get().(*[]byte)
		e.frame, e.err = l.codec.AppendFrame((*e.buf)[:0], msg)
		*e.buf = e.frame
	}
	switch {
	case e.codec != l.codec.Name():
		return 0, errOtherCodec
	case e.err != nil:
		return 0, e.err
	}
	return len(e.frame), l.sendFrame(e.frame)
}

func (e *encoded) free() {
	if e.buf != nil {
		framePool.Put(e.buf)
	}
}

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Xfer moves bytes: every link hands what Send queued since the last Xfer to
// its writer, to go out in one write per link, and received messages are
// available to Get as they arrive. It never blocks. It returns
// ErrNodeClosed once the node is closed.
func (n *Node) Xfer() error {
	all := n.links.Load().all
	n.flushLanes(all)
	for _, l := range all {
		l.Flush()
	}
	if n.ctx.Err() != nil {
		return ErrNodeClosed
	}
	return nil
}

// backoff returns the wait before attempt n+1: from lo doubling to hi, with
// ±50% jitter so that nodes do not retry in step.
func backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 0; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d)
}

// Request sends msg to the peer with id as a request and waits for its reply
// (a pointer to the reply's registered type) until ctx ends. The peer
// answers with Reply, or automatically with a Responder. Errors: those of
// Send, ctx's, ErrRefused (with the peer's reason), ErrPeerGone if the peer
// leaves first.
//
// Over a resumable link (ResumeConfig) a request outlives a cut: its frames
// are resent on the next link and the reply comes on it, within ctx.
// Request fails at once, with an error that matches ErrLost and gives the
// reason and the sequences, when the resume shows that no reply can come:
// the request itself was lost (its two messages, Node.Sequence-1 and
// Node.Sequence, fall in this side's Loss: "request lost: resend budget
// exceeded"), or the peer had received it and then lost messages of its own
// to this node (its Loss, PeerEvent.LostIn): the reply may be among them.
// The second is cautious: a reply the peer had not yet sent would have
// come; a program that must know may ask again.
func (n *Node) Request(ctx context.Context, id uuid.UUID, msg any) (any, error) {
	sess := n.links.Load().resuming[id]
	var l *link
	var err error
	if sess == nil {
		if l, err = n.linkTo(id); err != nil {
			if p, name, ok := n.remoteRoute(id, err); ok {
				return n.relayRequest(ctx, p, id, name, msg)
			}
			return nil, n.typeErr(msg, err)
		}
		if l.rs != nil {
			sess = l.rs.s
		}
	}
	w, rid := n.reqs.add(id)
	defer n.reqs.remove(rid)
	var size int
	if sess != nil {
		size, err = sess.putRequest(&n.reqs, rid, msg)
	} else {
		size, err = l.sendPair(&message.Request{ID: rid}, msg)
	}
	if err != nil {
		if l != nil {
			err = n.sendErr(l, err)
		}
		return nil, err
	}
	if l != nil {
		n.traffic.note(l, Out, msg, size)
		l.Flush()
	}
	select {
	case r := <-w:
		return r.msg, r.err
	case <-ctx.Done():
		var name string
		if l != nil {
			name = l.Remote().Name
		} else {
			name = sess.peerName()
		}
		return nil, fmt.Errorf("mesh: request to %s: %w", name, ctx.Err())
	}
}

// RequestTo is Request to the one linked peer called name (see SendTo for
// the errors of a name).
func (n *Node) RequestTo(ctx context.Context, name string, msg any) (any, error) {
	id, err := n.idByName(name)
	if err != nil {
		return nil, n.typeErr(msg, err)
	}
	return n.Request(ctx, id, msg)
}

// Reply answers the request m with reply. It is sent on the link the
// request came on, or on the peer's current link if that one has closed.
func (n *Node) Reply(m Message, reply any) error {
	if !m.request {
		return errors.New("mesh: Reply to a message that is not a request")
	}
	return n.answer(m, &message.Reply{ID: m.reqID}, reply)
}

// Refuse answers the request m with a refusal: the requester's Request
// returns ErrRefused with reason.
func (n *Node) Refuse(m Message, reason string) error {
	if !m.request {
		return errors.New("mesh: Refuse of a message that is not a request")
	}
	return n.answer(m, &message.Refuse{ID: m.reqID, Reason: reason}, nil)
}

func (n *Node) answer(m Message, marker, reply any) error {
	l := m.link
	if l != nil && l.rs != nil {
		// Through the peer's session: a reply given while it resumes is
		// kept and sent on the next link.
	} else if l == nil || l.Err() != nil {
		var err error
		if l, err = n.linkTo(m.From); err != nil {
			if p, _, ok := n.remoteRoute(m.From, err); ok {
				return n.relayAnswer(p, m, marker, reply)
			}
			return err
		}
	}
	var err error
	if reply == nil {
		err = l.Send(marker)
	} else {
		var size int
		size, err = l.sendPair(marker, reply)
		if err == nil {
			n.traffic.note(l, Out, reply, size)
		}
	}
	l.Flush()
	return err
}

type reqResult struct {
	msg any
	err error
}

type waiter struct {
	peer uuid.UUID
	ch   chan reqResult
	// marker is the sequence of the request's marker in the peer's
	// session (0: not numbered, or not resumable).
	marker uint64
}

// requests are the node's requests in flight, by id.
type requests struct {
	// mu guards the fields below.
	mu      sync.Mutex
	next    uint32
	waiting map[uint32]waiter
}

func (r *requests) init() { r.waiting = map[uint32]waiter{} }

func (r *requests) add(peer uuid.UUID) (<-chan reqResult, uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	for r.next == 0 || r.waiting[r.next].ch != nil {
		r.next++
	}
	ch := make(chan reqResult, 1)
	r.waiting[r.next] = waiter{peer: peer, ch: ch}
	return ch, r.next
}

func (r *requests) remove(id uint32) {
	r.mu.Lock()
	delete(r.waiting, id)
	r.mu.Unlock()
}

// resolve answers request id, if it is waiting for a reply from peer; an
// answer from another peer, or to no request, is dropped.
func (r *requests) resolve(peer uuid.UUID, id uint32, msg any, err error) {
	r.mu.Lock()
	w, ok := r.waiting[id]
	if ok && w.peer == peer {
		delete(r.waiting, id)
	}
	r.mu.Unlock()
	if ok && w.peer == peer {
		w.ch <- reqResult{msg: msg, err: err}
	}
}

// failPeer ends every request waiting on peer, which has left.
func (r *requests) failPeer(peer uuid.UUID, name string, cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, w := range r.waiting {
		if w.peer == peer {
			delete(r.waiting, id)
			w.ch <- reqResult{err: fmt.Errorf("%w: %s: %w", ErrPeerGone, name, cause)}
		}
	}
}

// mark records the sequence of request id's marker (its message is the
// next). Called under the peer session's lock.
func (r *requests) mark(id uint32, marker uint64) {
	r.mu.Lock()
	if w, ok := r.waiting[id]; ok {
		w.marker = marker
		r.waiting[id] = w
	}
	r.mu.Unlock()
}

// failLost ends the requests to peer that the resume res shows can no
// longer be answered (see Request); acked is what the peer said it
// delivered; renumbered: a new session began and numbers from 1 again.
// Called under the peer session's lock, right after Accept.
func (r *requests) failLost(peer uuid.UUID, name string, res resume.Result, acked uint64, renumbered bool) {
	if res.Lost == nil && res.LostIn == nil && !renumbered {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, w := range r.waiting {
		if w.peer != peer || w.marker == 0 {
			continue
		}
		var err error
		switch out, in := res.Lost, res.LostIn; {
		case out != nil && w.marker <= out.Last && w.marker+1 >= out.First:
			err = &requestLost{
				text: fmt.Sprintf("mesh: request to %s lost: %v (the request is messages %d-%d, of %d-%d lost)",
					name, out.Reason, w.marker, w.marker+1, out.First, out.Last),
				loss: lossOf(peer, name, out),
			}
		case renumbered:
			// Numbered in a session that ended, and received: the peer
			// may still answer in the new one.
			w.marker = 0
			r.waiting[id] = w
			continue
		case in != nil && res.Resumed && w.marker+1 <= acked:
			err = &requestLost{
				text: fmt.Sprintf("mesh: reply from %s lost: %v (it received the request, messages %d-%d, and lost its messages %d-%d to this node)",
					name, in.Reason, w.marker, w.marker+1, in.First, in.Last),
				loss: lossOf(peer, name, in),
			}
		default:
			continue
		}
		delete(r.waiting, id)
		w.ch <- reqResult{err: err}
	}
}

// requestLost is a Request's error when a Loss took the request or may
// have taken its reply. It matches ErrLost and unwraps to the *Loss.
type requestLost struct {
	text string
	loss *Loss
}

func (e *requestLost) Error() string { return e.text }
func (e *requestLost) Unwrap() error { return e.loss }

func (r *requests) failAll(cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, w := range r.waiting {
		delete(r.waiting, id)
		w.ch <- reqResult{err: cause}
	}
}
