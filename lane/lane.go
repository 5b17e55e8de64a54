package lane

import (
	"encoding/binary"
	"math"
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

	liveMu sync.Mutex // guards live, pace and the ack owed
	live   liveness
	pace   pacer
	state  atomic.Int32
	// The ack owed to the peer: the newest counter of a datagram with
	// messages accepted since the last Flush, and when it came.
	ackOwed    bool
	ackCounter uint64
	ackAt      time.Time

	rcvNow time.Time // the time of the datagram Receive is opening; guarded by recvMu
}

// New returns the lane of session s; send writes one datagram to the peer's
// lane address (see NewSender).
func New(cfg Config, s Session, send func([]byte) error) (*Lane, error) {
	l := &Lane{sess: s, live: newLiveness(cfg), pace: pacer{delay: cfg.PaceDelay}}
	snd, err := newSender(cfg, s, send, &l.c)
	if err != nil {
		return nil, err
	}
	snd.log = true
	l.snd = snd
	l.rcv = newReceiver(s, &l.c)
	l.rcv.control = l.control
	return l, nil
}

// Enqueue queues a message for the next Flush; see Sender.Enqueue.
func (l *Lane) Enqueue(kind Kind, channel byte, payload []byte) error {
	return l.snd.Enqueue(kind, channel, payload)
}

// Scratch and EnqueueScratch are Enqueue with no copy; see
// Sender.Scratch. They are for the goroutine that calls Enqueue.
func (l *Lane) Scratch() []byte { return l.snd.Scratch() }

// EnqueueScratch queues a payload built in Scratch's buffer; see
// Sender.EnqueueScratch.
func (l *Lane) EnqueueScratch(kind Kind, channel byte, payload []byte) error {
	return l.snd.EnqueueScratch(kind, channel, payload)
}

// MaxPayload is the largest payload Enqueue accepts.
func (l *Lane) MaxPayload() int { return l.snd.maxPayload }

// Flush sends a ping when one is due, the pong and the ack owed to the
// peer, moves the lane's State when pings go unanswered, and, while the
// lane is Up, sends the queued messages, as many as its pacing lets go
// (SPEC.md section 11.9; what it holds back waits for the next Flush, a
// sequenced message still superseded by a newer). While the lane is
// Probing or Blocked, messages stay queued for Drain to hand to the link's
// stream. now is the caller's clock (time.Now()).
func (l *Lane) Flush(now time.Time) error {
	l.liveMu.Lock()
	id, ping := l.live.tick(now)
	pid, held, pong := l.live.takePong(now)
	ack, ackHeld, owed := l.ackCounter, micros(now.Sub(l.ackAt)), l.ackOwed
	l.ackOwed = false
	l.state.Store(int32(l.live.h.State))
	up := l.live.h.State == Up
	budget, free := -1, false
	if up {
		budget, free = l.pace.budget(now)
	}
	l.liveMu.Unlock()
	if pong {
		l.snd.addControl(Pong, pid, held, 0)
	}
	if ping {
		l.snd.addControl(Ping, id, 0, 0)
		l.c.pingsSent.Add(1)
	}
	if owed {
		l.snd.addControl(Ack, uint32(ack), ackHeld, uint32(l.c.recvBytes.Load()))
	}
	bound := l.snd.flush(up, budget, free)
	if bound || len(l.snd.emits) > 0 {
		l.liveMu.Lock()
		for _, e := range l.snd.emits {
			l.pace.emitted(e.counter, e.size, e.app, now)
		}
		if bound {
			l.pace.bound(now)
			l.c.paced.Add(1)
		}
		l.liveMu.Unlock()
	}
	return l.snd.flushErr
}

// micros is d in microseconds, saturating to uint32.
func micros(d time.Duration) uint32 {
	return uint32(min(max(d.Microseconds(), 0), math.MaxUint32))
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
	app, counter := l.rcv.lastApp, l.rcv.lastCounter
	l.recvMu.Unlock()
	if err == nil && app {
		// Owe an ack of the newest datagram with messages: its sender's
		// pacing takes its round trip. (Datagrams of control items alone
		// get none, so that two lanes never ack each other's acks.)
		l.liveMu.Lock()
		if !l.ackOwed || counter > l.ackCounter {
			l.ackCounter, l.ackAt = counter, now
		}
		l.ackOwed = true
		l.liveMu.Unlock()
	}
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

// control takes a ping, pong or ack under recvMu, from Receive.
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
	case Ack:
		held := time.Duration(binary.BigEndian.Uint32(m.Payload)) * time.Microsecond
		l.pace.ack(m.Seq, held, binary.BigEndian.Uint32(m.Payload[4:]), l.rcvNow)
		l.c.acksRecv.Add(1)
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
func (l *Lane) Stats() Stats {
	st := l.c.snapshot()
	l.liveMu.Lock()
	st.PaceCuts, st.PaceRate = l.pace.cuts, uint64(l.pace.rate)
	l.liveMu.Unlock()
	return st
}
