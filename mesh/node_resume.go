package mesh

import (
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/internal/resume"
)

// The node's side of resumable links (SPEC.md section 12): a session per
// peer outlives the links; a link that ends without a Bye leaves the peer
// resuming (PeerResuming) for up to ResumeConfig.Window, while Sends are
// journaled and the node redials; the next link of the same peer instance
// resumes the session (PeerResumed), and the peer's journal resends exactly
// what the other side did not deliver.

// sessionFor returns the session of peer id, making it.
func (n *Node) sessionFor(id uuid.UUID) (*peerSession, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s := n.sessions[id]; s != nil {
		return s, nil
	}
	s, err := newPeerSession(id, n.link, n.cfg.Resume)
	if err != nil {
		return nil, err
	}
	n.sessions[id] = s
	return s, nil
}

// dropIdleSession forgets the session of id if no link carries it and
// none is kept: a link that was refused leaves nothing behind.
func (n *Node) dropIdleSession(id uuid.UUID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.sessions[id]
	if s == nil {
		return
	}
	if p := n.peers[id]; p != nil && (p.link != nil || p.resuming) {
		return
	}
	s.mu.Lock()
	idle := !s.open
	s.mu.Unlock()
	if idle {
		delete(n.sessions, id)
	}
}

// sessionOpenLocked reports whether id's session is open.
func (n *Node) sessionOpenLocked(id uuid.UUID) bool {
	s := n.sessions[id]
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open && s.rs != nil && s.rs.Active()
}

// byeForGood reports whether a link ended because the peer left for good
// (its Bye), rather than being cut or replaced.
func byeForGood(err error) bool {
	var ce *CloseError
	if !errors.As(err, &ce) || !ce.Remote || !errors.Is(err, ErrPeerBye) {
		return false
	}
	return ce.Reason != reasonDuplicate && ce.Reason != reasonReplaced
}

// peerKeepsAnother reports whether p's link ended because the peer keeps
// another link to this node (SPEC.md section 12.11): closed as a
// duplicate, or replaced while a link the peer may choose waits here. Its
// Resume, or its handshake, has not come yet.
func peerKeepsAnother(p *peer, err error) bool {
	var ce *CloseError
	if !errors.As(err, &ce) || !ce.Remote || !errors.Is(err, ErrPeerBye) {
		return false
	}
	return ce.Reason == reasonDuplicate || ce.Reason == reasonReplaced && len(p.pending) > 0
}

// resumingLocked keeps p's session after its link ended with err: an event
// the first time, the window, and a redial at once.
func (n *Node) resumingLocked(p *peer, err error, opened bool) {
	p.lastErr = err
	duplicate := peerKeepsAnother(p, err)
	if !p.resuming && !duplicate {
		p.announced = true
		n.pushEventLocked(PeerEvent{Kind: PeerResuming, Peer: n.infoLocked(p), Err: err})
	}
	p.resuming = true
	n.startWindowLocked(p)
	n.publishLocked()
	// The node that opened the link redials at once (the lower id first,
	// the other after DialGrace, when both did: dialLoop); the other gives
	// it Silence to do so before it dials itself: one new link, not two
	// that race. A peer that closed our link as a duplicate holds another,
	// whose handshake has not finished here: it is given HandshakeTimeout.
	switch {
	case duplicate:
		p.notBefore = time.Now().Add(n.link.Link.HandshakeTimeout)
	case opened || errors.Is(err, ErrConnLost):
		// Reset or hung up: if its process is gone, a refused redial says
		// so at once.
		p.notBefore = time.Time{}
	default:
		p.notBefore = time.Now().Add(max(n.link.Link.Silence, n.cfg.Net.DialGrace))
	}
	p.attempts = 0
	n.startDialLocked(p)
	signal(p.wake)
}

// startWindowLocked starts p's resume window unless it runs.
func (n *Node) startWindowLocked(p *peer) {
	if p.window != nil || n.closed {
		return
	}
	n.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(n.cfg.Resume.Window, func() {
		defer n.wg.Done()
		n.windowExpired(p, t)
	})
	p.window = t
}

// stopWindowLocked stops p's resume window.
func (n *Node) stopWindowLocked(p *peer) {
	if p.window != nil && p.window.Stop() {
		n.wg.Done()
	}
	p.window = nil
}

// windowExpired ends p's session if no link resumed it in time.
func (n *Node) windowExpired(p *peer, t *time.Timer) {
	n.evGate.wait(n.ctx.Done())
	n.mu.Lock()
	defer n.mu.Unlock()
	if p.window != t {
		return
	}
	p.window = nil
	if !p.resuming || n.closed {
		return
	}
	p.announced = false
	if p.link != nil {
		return // a link is attached; its own end starts a new window
	}
	p.resuming, p.announced = false, false
	loss := n.endSessionLocked(p, resume.LossWindowExpired)
	n.publishLocked()
	err := fmt.Errorf("%w: no link resumed within %v: %w", ErrPeerGone, n.cfg.Resume.Window, p.lastErr)
	n.leftLocked(p, err, loss)
}

// redialFailedLocked handles a failed redial of a resuming peer: refused
// means its process is gone (its host answered, nothing listens), which
// ends the session at once; anything else is retried with a backoff of at
// most a second, so that the end of a cut is noticed soon.
func (n *Node) redialFailedLocked(p *peer, err error) {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, errMemRefused) {
		n.stopWindowLocked(p)
		p.resuming, p.announced = false, false
		loss := n.endSessionLocked(p, resume.LossPeerRestarted)
		n.publishLocked()
		n.leftLocked(p, fmt.Errorf("%w: its process ended (%w)", ErrPeerGone, p.lastErr), loss)
		return
	}
	p.notBefore = time.Now().Add(backoff(p.attempts, n.cfg.Net.RedialMin, min(n.cfg.Net.RedialMax, time.Second)))
}

// endSessionLocked ends p's session for reason and returns the loss of
// what the peer never acknowledged.
func (n *Node) endSessionLocked(p *peer, reason resume.LossReason) *Loss {
	s := n.sessions[p.id]
	if s == nil {
		return nil
	}
	s.mu.Lock()
	var l *resume.Loss
	if s.rs != nil && s.rs.Active() {
		l = s.rs.End(reason)
	}
	s.open, s.live = false, nil
	s.sink = sinkState{}
	s.mu.Unlock()
	loss := lossOf(p.id, p.name, l)
	n.countLoss(loss, nil)
	return loss
}

// countLoss adds to the node's counters.
func (n *Node) countLoss(out, in *Loss) {
	if out != nil {
		n.counters.lost.Add(out.Count)
	}
	if in != nil {
		n.counters.lostIn.Add(in.Count)
	}
}

// resumed is told by a link's reader that the peer's Resume was applied:
// the session goes on (or began again), and the program learns of it
// before any message of the link.
func (n *Node) resumed(l *link, rs *linkResume, res resume.Result) {
	remote := l.Remote()
	lost := lossOf(remote.NodeID, remote.Name, res.Lost)
	lostIn := lossOf(remote.NodeID, remote.Name, res.LostIn)
	n.countLoss(lost, lostIn)
	n.evGate.wait(l.closingCh)
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[remote.NodeID]
	if p == nil {
		return
	}
	announced := p.announced || rs.resumed && !rs.quiet
	if p.link == l {
		p.resuming, p.announced = false, false
		n.stopWindowLocked(p)
		p.lastErr = nil
		n.publishLocked()
	}
	if rs.resumed {
		n.counters.resumes.Add(1)
	}
	if !announced && lost == nil && lostIn == nil {
		return // a session's first link (PeerJoined told of it), or no news
	}
	n.pushEventLocked(PeerEvent{Kind: PeerResumed, Peer: n.infoLocked(p), Lost: lost, LostIn: lostIn})
}

// Sequence returns the sequence number the node gave the last reliable
// message it queued for peer id (0: none, or no resumable session): a
// Loss names its messages by these numbers. Call it right after Send.
func (n *Node) Sequence(id uuid.UUID) uint64 {
	n.mu.Lock()
	s := n.sessions[id]
	n.mu.Unlock()
	if s == nil {
		return 0
	}
	return s.lastSeq.Load()
}

// unacked returns how many messages sent to id the peer has not yet
// acknowledged. n.mu is held.
func (n *Node) unackedLocked(id uuid.UUID) uint64 {
	s := n.sessions[id]
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rs == nil || !s.rs.Active() {
		return 0
	}
	return s.rs.Journal.Next() - 1 - s.rs.Journal.Acked()
}

// chosen is told by the reader of a link this node follows (its id is the
// higher, SPEC.md section 12.11) that the peer's Resume came on it: the peer
// chose the link, so it becomes the peer's link here too, replacing the
// one before it, and opens. The reader applies the Resume after.
func (n *Node) chosen(l *link) {
	sink := l.sink.(*nodeSink)
	select {
	case <-sink.attached:
	case <-l.closingCh:
		return
	}
	n.evGate.wait(l.closingCh) // it may be news
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[l.Remote().NodeID]
	if n.closed || p == nil {
		return
	}
	select {
	case <-l.closingCh:
		return
	default:
	}
	if p.link == l {
		return // attach opened it
	}
	var old *link
	{
		i := slices.Index(p.pending, l)
		if i < 0 {
			return // the node closed it
		}
		p.pending = slices.Delete(p.pending, i, i+1)
		var ev *PeerEvent
		switch old = p.link; {
		case old != nil:
			old.shutdown(closeErr(ErrClosed, false, reasonReplaced), closeLocal)
		case p.resuming:
			l.rs.quiet = !p.announced
		case !p.replacing:
			ev = &PeerEvent{Kind: PeerJoined}
		}
		p.link, p.replacing = l, false
		n.log.Debug("mesh: link chosen by the peer", "node", n.link.Name, "peer", p.name, "conn", l.conn.RemoteAddr())
		p.attempts, p.notBefore, p.lastErr = 0, time.Time{}, nil
		s := l.rs.s
		s.mu.Lock()
		if err := s.ensure(); err == nil {
			s.open = true
		}
		s.mu.Unlock()
		signal(p.wake)
		n.publishLocked()
		if ev != nil {
			ev.Peer = n.infoLocked(p)
			n.pushEventLocked(*ev)
		}
	}
	if err := l.rs.open(l); err != nil {
		l.shutdown(closeErr(ErrProtocol, false, "resume: "+err.Error()), closeBadInput)
	}
	if old != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			old.CloseReason(reasonReplaced)
		}()
	}
}
