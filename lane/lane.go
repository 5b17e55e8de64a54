package lane

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Lane is one peer's UDP lane: a Sender, a Receiver and the liveness check
// that pings the peer through the lane, measures the round trip and says
// whether UDP gets through (State).
//
// Two goroutines use a Lane: the game's pump calls Enqueue, Flush and
// Drain (never two at once); the lane socket's reader calls Receive. State,
// Health and Stats are safe from any goroutine. Nothing calls back into the
// caller: a change of State is read with State or Health (at each Flush,
// say), which is also where it is logged once.
type Lane struct {
	sess Session
	snd  *Sender
	c    counters

	recvMu sync.Mutex // guards rcv: Receive and AcceptFallback come from different readers
	rcv    *Receiver

	liveMu sync.Mutex // guards live
	live   liveness
	state  atomic.Int32

	rcvNow time.Time // the time of the datagram Receive is opening; guarded by recvMu
}

// New returns the lane of session s; send writes one datagram to the peer's
// lane address (see NewSender).
func New(cfg Config, s Session, send func([]byte) error) (*Lane, error) {
	l := &Lane{sess: s, live: newLiveness(cfg)}
	snd, err := newSender(cfg, s, send, &l.c)
	if err != nil {
		return nil, err
	}
	l.snd = snd
	l.rcv = newReceiver(s, &l.c)
	l.rcv.control = l.control
	return l, nil
}

// Enqueue queues a message for the next Flush; see Sender.Enqueue.
func (l *Lane) Enqueue(kind Kind, channel byte, payload []byte) error {
	return l.snd.Enqueue(kind, channel, payload)
}

// MaxPayload is the largest payload Enqueue accepts.
func (l *Lane) MaxPayload() int { return l.snd.maxPayload }

// Flush sends a ping when one is due and the pong owed to the peer, moves
// the lane's State when pings go unanswered, and, while the lane is Up,
// sends every queued message. While it is Probing or Blocked, messages stay
// queued (a sequenced one still superseded by a newer) for Drain to hand to
// the link's stream. now is the caller's clock (time.Now()).
func (l *Lane) Flush(now time.Time) error {
	l.liveMu.Lock()
	id, ping := l.live.tick(now)
	pid, held, pong := l.live.takePong(now)
	l.state.Store(int32(l.live.h.State))
	l.liveMu.Unlock()
	if pong {
		l.snd.addControl(Pong, pid, held)
	}
	if ping {
		l.snd.addControl(Ping, id, 0)
		l.c.pingsSent.Add(1)
	}
	return l.snd.flush(State(l.state.Load()) == Up)
}

// Drain hands queued messages to the link's stream while the lane is not
// Up; see Sender.Drain. The caller keeps calling Flush too, for the pings
// that notice when the lane is back.
func (l *Lane) Drain(fn func(kind Kind, channel byte, seq uint32, payload []byte) bool) {
	l.snd.Drain(fn)
}

// Receive checks one datagram from address from and appends its messages
// to out; see Receiver.Open. Pings and pongs are taken here.
func (l *Lane) Receive(b []byte, from netip.AddrPort, now time.Time, out []Message) ([]Message, error) {
	l.recvMu.Lock()
	l.rcvNow = now
	out, err := l.rcv.Open(b, from, out)
	l.recvMu.Unlock()
	return out, err
}

// AcceptFallback applies the sequenced rule to a sequenced message that came
// over the link's stream with its lane sequence number; see
// Receiver.Accept. The two paths share one newest per channel, so a message
// never overtakes a newer one whichever way each came.
func (l *Lane) AcceptFallback(channel byte, seq uint32) bool {
	l.recvMu.Lock()
	defer l.recvMu.Unlock()
	return l.rcv.Accept(channel, seq)
}

// control takes a ping or pong under recvMu, from Receive.
func (l *Lane) control(m *Message) {
	l.liveMu.Lock()
	defer l.liveMu.Unlock()
	switch m.Kind {
	case Ping:
		l.live.ping(m.Seq, l.rcvNow)
	case Pong:
		held := time.Duration(binary.BigEndian.Uint32(m.Payload)) * time.Microsecond
		if l.live.pong(m.Seq, held, l.rcvNow) {
			l.c.pongsRecv.Add(1)
		} else {
			l.c.pongsStale.Add(1)
		}
		l.state.Store(int32(l.live.h.State))
	}
}

// Token is this side's token: the datagrams of this lane carry it.
func (l *Lane) Token() Token { return l.sess.Local }

// State says whether UDP gets through to the peer.
func (l *Lane) State() State { return State(l.state.Load()) }

// Health returns the lane's liveness: state, since when, round trips.
func (l *Lane) Health() Health {
	l.liveMu.Lock()
	defer l.liveMu.Unlock()
	return l.live.h
}

// Stats returns the lane's counters.
func (l *Lane) Stats() Stats { return l.c.snapshot() }
