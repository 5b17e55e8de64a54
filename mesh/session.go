package mesh

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/internal/resume"
	"github.com/lanmesh/lanmesh/message"
)

// Loss names reliable messages to (or from) one peer that are lost for
// good: the sequence numbers First to Last of that direction of the
// session (SPEC.md section 12), Count of them, and why. Node.Sequence
// gives the number of each message sent, so a program can tell which of
// its messages a Loss names. A *Loss matches ErrLost.
type Loss struct {
	Peer     uuid.UUID
	PeerName string
	First    uint64
	Last     uint64
	Count    uint64
	// Reason in words: "resend budget exceeded", "the peer restarted",
	// "resume window expired", "the peer ended the session", "closed
	// before the peer acknowledged them".
	Reason string
}

func (l *Loss) Error() string {
	return fmt.Sprintf("mesh: peer %s (%s): messages %d-%d (%d) lost: %s", l.PeerName, l.Peer, l.First, l.Last, l.Count, l.Reason)
}

// Is makes every *Loss match ErrLost.
func (l *Loss) Is(target error) bool { return target == ErrLost }

func lossOf(id uuid.UUID, name string, l *resume.Loss) *Loss {
	if l == nil {
		return nil
	}
	return &Loss{Peer: id, PeerName: name, First: l.First, Last: l.Last, Count: l.Count(), Reason: l.Reason.String()}
}

// peerSession is what a node keeps of one peer across its links: the
// journal of what it sent and the peer has not acknowledged, the count of
// what it delivered, and the session's secret (package resume). Each
// resumable link of the peer is a view of it.
type peerSession struct {
	id    uuid.UUID
	cfg   Config       // the node's link config
	rcfg  ResumeConfig // budget and window
	codec codec.Codec  // to encode while no link carries the traffic

	// mu guards everything below, and is the send lock (link.sendMu) of
	// every resumable link of the peer: a frame's sequence number is its
	// place on the wire.
	mu       sync.Mutex
	rs       *resume.Session // nil until the first link opens
	instance uuid.UUID       // the peer instance of the session
	live     *link           // the link opened last
	// open: the node routes Sends here (a link is live, or the node
	// resumes). Sends to a session that is not open fail.
	open    bool
	scratch []byte // frames encoded while no link streams
	// bin is codec as the binary codec (nil for another), and sendT the
	// registered type of the last message it encoded: with the journal's
	// copy, a Send costs no more than on a link without resume.
	bin   *codec.Binary
	reg   *message.Registry
	sendT typeCache

	// sink is the reader state that a request marker leaves for the frame
	// after it, kept across links (a marker may be delivered on one link,
	// its message on the next). Used under the tracker's lock only.
	sink sinkState

	lastSeq atomic.Uint64 // the last sequence given to a frame (Node.Sequence)
	name    atomic.Pointer[string]
}

// sinkState is what a node's link reader remembers between frames.
type sinkState struct {
	marker byte // message.CodeRequest or CodeReply when one came last
	id     uint32
}

func newPeerSession(id uuid.UUID, cfg Config, rcfg ResumeConfig) (*peerSession, error) {
	c, err := codec.New(cfg.Codec, cfg.registry())
	if err != nil {
		return nil, err
	}
	s := &peerSession{id: id, cfg: cfg, rcfg: rcfg, codec: c, scratch: make([]byte, 0, 512), reg: cfg.registry()}
	s.bin, _ = c.(*codec.Binary)
	return s, nil
}

// ensure makes the resume state at the first link. s.mu is held.
func (s *peerSession) ensure() error {
	if s.rs != nil {
		return nil
	}
	jc := resume.JournalConfig{MaxFrames: s.rcfg.MaxFrames, MaxBytes: s.rcfg.MaxBytes}
	if s.rcfg.RefuseWhenFull {
		jc.Overflow = resume.Refuse
	}
	rs, err := resume.NewSession(jc, resume.DefaultTrackerConfig())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s.rs = rs
	return nil
}

// put queues marker (nil: none) and msg, or the frame already encoded,
// for the peer: numbered and journaled, and on the live link's buffer if
// it streams, else kept for the resend of the next link. It returns the
// size of msg's frame.
func (s *peerSession) put(marker, msg any, frame []byte) (int, error) {
	return s.putMarked(marker, msg, frame, nil, 0)
}

// putRequest queues request rid's marker and msg, and records the
// marker's sequence in reqs under the session's lock, so that a resume
// (onResume) sees every request it may have to fail.
func (s *peerSession) putRequest(reqs *requests, rid uint32, msg any) (int, error) {
	return s.putMarked(&message.Request{ID: rid}, msg, nil, reqs, rid)
}

// putMarked is put; with reqs, it records the marker's sequence for
// request rid.
func (s *peerSession) putMarked(marker, msg any, frame []byte, reqs *requests, rid uint32) (int, error) {
	s.mu.Lock()
	if !s.open || s.rs == nil {
		s.mu.Unlock()
		return 0, fmt.Errorf("%w: %s", ErrPeerGone, s.peerName())
	}
	l := s.live
	if l != nil && l.closing {
		if c := l.cause.Load(); c != nil && byeForGood(c) {
			// The peer said goodbye: nothing more will reach it.
			s.mu.Unlock()
			return 0, fmt.Errorf("%w: %s: %w", ErrPeerGone, s.peerName(), c)
		}
	}
	streaming := l != nil && !l.closing && l.rs.state == rsStreaming
	var dst []byte
	if streaming {
		dst = l.pending
	} else {
		dst = s.scratch[:0]
	}
	n := len(dst)
	mid := n
	var err error
	if marker != nil {
		dst, err = s.codec.AppendFrame(dst, marker)
		mid = len(dst)
	}
	if err == nil {
		switch {
		case frame != nil:
			dst = append(dst, frame...)
		case s.bin != nil:
			var t *codec.Type
			if t, err = s.sendT.of(s.reg, msg); err == nil {
				dst, err = s.bin.AppendFrameOf(dst, t, msg)
			}
		default:
			dst, err = s.codec.AppendFrame(dst, msg)
		}
	}
	size := len(dst) - mid
	if err == nil && streaming && len(dst) > s.cfg.Link.SendBufferLimit {
		err = ErrBackpressure
		if len(dst)-n > s.cfg.Link.SendBufferLimit {
			err = fmt.Errorf("%w: %d bytes exceed SendBufferLimit %d", codec.ErrFrameTooLarge, len(dst)-n, s.cfg.Link.SendBufferLimit)
		}
	}
	var seq uint64
	if err == nil && marker != nil {
		seq, err = s.rs.Journal.Append(dst[n:mid])
	}
	if err == nil {
		seq, err = s.rs.Journal.Append(dst[mid:])
		if err != nil && marker != nil {
			s.rs.Journal.Unappend()
		}
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrBackpressure, err)
		}
	}
	if err != nil {
		if streaming {
			l.pending = dst[:n]
		}
		s.mu.Unlock()
		return 0, err
	}
	s.lastSeq.Store(seq)
	if reqs != nil {
		reqs.mark(rid, seq-1)
	}
	if !streaming {
		s.scratch = dst[:0]
		s.mu.Unlock()
		return size, nil
	}
	l.pending = dst
	s.mu.Unlock()
	l.stats.msgsOut.Add(1)
	if l.cfg.Link.AutoFlush {
		signal(l.flushReq)
	}
	return size, nil
}

func (s *peerSession) peerName() string {
	if p := s.name.Load(); p != nil {
		return *p
	}
	return s.id.String()
}

// Link states of a resumable link, guarded by the session's mu.
const (
	rsUnopened  uint8 = iota // the node has not chosen it yet: it writes nothing
	rsAwaiting               // its Resume is out; sequenced frames wait for the peer's
	rsResending              // the journal is resent from resend on
	rsStreaming              // Sends go on the link as they come
)

// linkResume is a resumable link's part of its peer's session.
type linkResume struct {
	s    *peerSession
	n    *Node
	pair resume.Pair
	hs   hsResume
	// opened is closed once the node chose the link (o is set) or closed
	// it as a duplicate.
	opened chan struct{}

	// Guarded by s.mu.
	o        *resume.Opening
	state    uint8
	accepted bool   // the peer's Resume was applied: Acks may go
	resend   uint64 // the next sequence to resend
	resumed  bool   // a link of the same session came before this one
	// lowerOpened: the node with the lower id opened the link, so the
	// one-link rule never replaces it.
	lowerOpened bool
	// follow: this node has the higher id, so the peer chooses between
	// the pair's links: a link that comes while another is live waits
	// beside it and opens when the peer's Resume comes on it (SPEC.md
	// section 12.11).
	follow bool
	quiet  bool // it replaced a link by the one-link rule: no event
	ack    message.Ack

	// Owned by the reader goroutine.
	seen      bool // the peer's Resume was read
	laneNext  bool // the next frame follows a LaneTag: not numbered
	deliverFn func(skip int) (int, int)
}

// newLinkResume prepares the resume part of a link to the peer of sess.
func (n *Node) newLinkResume(sess *peerSession, hs hsResume, remote hello, initiator bool) *linkResume {
	rs := &linkResume{s: sess, n: n, hs: hs, opened: make(chan struct{})}
	name := remote.Name
	sess.name.Store(&name)
	lower := bytes.Compare(n.id[:], remote.NodeID[:]) < 0
	rs.lowerOpened = lower == initiator
	rs.follow = !lower
	rs.pair = resume.Pair{
		LocalNode: resume.ID(n.id), LocalInstance: resume.ID(n.hello.InstanceID),
		RemoteNode: resume.ID(remote.NodeID), RemoteInstance: resume.ID(remote.InstanceID),
	}
	return rs
}

// open makes l the peer's live link: it fences the older links, and puts
// this side's Resume first in the link's buffer. Called without n.mu.
func (rs *linkResume) open(l *link) error {
	s := rs.s
	s.mu.Lock()
	defer func() {
		s.mu.Unlock()
		close(rs.opened)
		signal(l.flushReq)
	}()
	if err := s.ensure(); err != nil {
		return err
	}
	remote := uuid.UUID(rs.pair.RemoteInstance)
	if s.rs.Active() && s.instance != remote {
		// attach ended it (PeerRestarted); this is only a safeguard.
		s.rs.End(resume.LossPeerRestarted)
		s.sink = sinkState{}
	}
	if prev := s.live; prev != nil && prev != l && prev.rs.o != nil && prev.rs.state == rsAwaiting && !prev.rs.accepted {
		// The one-link rule replaced a link that had begun the session and
		// carried nothing of it: begin afresh here, as the peer may.
		s.rs.Unbegin(prev.rs.o)
	}
	rs.resumed = s.rs.Active()
	s.instance = remote
	bind, secret := rs.hs.material(rs.pair)
	o, err := s.rs.Open(rs.pair, bind, secret)
	if err != nil {
		return err
	}
	data, err := o.Own.AppendBinary(nil)
	if err != nil {
		return err
	}
	var m message.Resume
	copy(m.Data[:], data)
	frame, err := s.codec.AppendFrame(nil, &m)
	if err != nil {
		return err
	}
	l.pending = append(frame, l.pending...)
	if o.SendNow && (!rs.lowerOpened || rs.follow) {
		// A link that may yet be given up for another (the one-link rule:
		// one the higher id opened, or any link at the higher id, which
		// follows the lower's choice) carries nothing numbered before the
		// peer's Resume, so that it can be given up without a loss.
		s.rs.Hold(o)
	}
	rs.o = o
	rs.state = rsAwaiting
	if o.SendNow {
		rs.state = rsStreaming
	}
	s.live, s.open = l, true
	return nil
}

// prepareWrite readies the link's buffer for a write: the resend, in
// pieces, and the acknowledgement that rides on every write. It reports
// whether the link may write. s.mu (l.sendMu) is held.
func (rs *linkResume) prepareWrite(l *link) (bool, error) {
	if rs.state == rsUnopened {
		return l.closing, nil // a Bye alone, if anything
	}
	if rs.state == rsResending && (!l.closing || l.mode.flush) {
		j := rs.s.rs.Journal
		for rs.resend < j.Next() && len(l.pending) < l.cfg.Link.SendBufferLimit/2 {
			var err error
			l.pending, rs.resend, err = j.AppendFrames(l.pending, rs.resend, 64<<10)
			if err != nil {
				return false, err
			}
		}
		if rs.resend == j.Next() {
			rs.state = rsStreaming
			j.Pin(0)
		} else {
			j.Pin(rs.resend)
			signal(l.flushReq) // more after this write
		}
	}
	rs.takeAck(l)
	return true, nil
}

// takeAck appends an Ack when one is due: after the peer's Resume, and
// when something was delivered since the last one. s.mu is held.
func (rs *linkResume) takeAck(l *link) {
	if !rs.accepted || l.closing && !l.mode.flush {
		return
	}
	t := rs.s.rs.Tracker
	if !t.AckPending() {
		return
	}
	if v, ok := t.TakeAck(); ok {
		rs.ack.N = v
		if b, err := l.codec.AppendFrame(l.pending, &rs.ack); err == nil {
			l.pending = b
		}
	}
}

// onResume applies the peer's Resume, the link's first frame. An error
// closes the link (a protocol error); the session is kept.
func (rs *linkResume) onResume(l *link, m *message.Resume) error {
	if rs.seen {
		return fmt.Errorf("%w: a second Resume on the link", ErrProtocol)
	}
	rs.seen = true
	select {
	case <-rs.opened:
	default:
		if rs.follow {
			rs.n.chosen(l)
		}
		select {
		case <-rs.opened:
		case <-l.closingCh:
			return nil
		}
	}
	s := rs.s
	s.mu.Lock()
	if rs.o == nil || s.live != l {
		s.mu.Unlock()
		return nil // closed as a duplicate before it opened, or fenced
	}
	res, err := s.rs.Accept(rs.o, m.Data[:])
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	rs.accepted = true
	if rs.state == rsAwaiting {
		rs.resend = res.Start
		rs.state = rsResending
		if res.Start == s.rs.Journal.Next() {
			rs.state = rsStreaming
		}
	}
	if !res.Resumed {
		s.sink = sinkState{}
	}
	// Under the lock: every request marked so far is numbered in the
	// session Accept went on with (or ended), and none after it is.
	rs.n.reqs.failLost(s.id, s.peerName(), res, s.rs.Journal.Acked(), res.Renumbered)
	s.mu.Unlock()
	signal(l.flushReq)
	rs.n.resumed(l, rs, res)
	return nil
}

// exchanged reports whether both Resumes of the link are applied: the
// session it carries has begun on both sides.
func (rs *linkResume) exchanged() bool {
	rs.s.mu.Lock()
	defer rs.s.mu.Unlock()
	return rs.accepted
}

// onAck applies the peer's acknowledgement.
func (rs *linkResume) onAck(l *link, m *message.Ack) error {
	if !rs.seen {
		return fmt.Errorf("%w: an Ack before the Resume", ErrProtocol)
	}
	s := rs.s
	s.mu.Lock()
	var err error
	if s.live == l && s.rs != nil {
		err = s.rs.Journal.Ack(m.N)
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return nil
}

// deliver hands the link's batch of numbered frames to the sink through
// the session's tracker: frames already delivered on an older link are
// dropped, and a fenced link delivers nothing. Reader goroutine.
func (rs *linkResume) deliver(l *link) error {
	n := len(l.batch)
	o := rs.o
	if o == nil {
		return fmt.Errorf("%w: frames before the Resume", ErrProtocol)
	}
	taken, err := o.Stream.Deliver(n, rs.deliverFn)
	switch {
	case err == nil:
		if taken < n {
			l.drop(n-taken, "receive queue full after close", nil)
		}
		if rs.s.rs.Tracker.AckDue() {
			rs.s.mu.Lock()
			rs.takeAck(l)
			rs.s.mu.Unlock()
			signal(l.flushReq)
		}
		return nil
	case resume.IsProtocolError(err):
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return nil // stale: the frames come again on the newer link
}

// sinkDeliver is the tracker's callback: the frames from skip on are new.
func (rs *linkResume) sinkDeliver(l *link, skip int) (int, int) {
	if skip > 0 {
		k := copy(l.batch, l.batch[skip:])
		clear(l.batch[k:])
		l.batch = l.batch[:k]
		l.sizes = l.sizes[:copy(l.sizes, l.sizes[skip:])]
	}
	l.stats.msgsIn.Add(uint64(len(l.batch)))
	k := l.sink.Deliver(l, l.batch, l.closingCh)
	b := 0
	for _, sz := range l.sizes[:k] {
		b += sz
	}
	return k, b
}

// skipUnknown counts a frame of a type this node does not know: it uses
// its sequence number all the same.
func (rs *linkResume) skipUnknown() error {
	if rs.o == nil {
		return fmt.Errorf("%w: frames before the Resume", ErrProtocol)
	}
	_, err := rs.o.Stream.Deliver(1, func(int) (int, int) { return 1, 0 })
	if resume.IsProtocolError(err) {
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return nil
}
