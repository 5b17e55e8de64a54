package lane

import (
	"crypto/cipher"
	"errors"
	"net/netip"

	"golang.org/x/crypto/chacha20poly1305"
)

// Receiver accepts one peer's datagrams and yields their messages: only
// datagrams of its session (its token, the peer's address, and keyed, the
// peer's key), each at most once (a replay window of WindowSize counters),
// and on each sequenced channel only messages newer than the newest
// delivered.
//
// A Receiver is not safe for concurrent use: one goroutine (the lane
// socket's reader) calls Open. It does not allocate.
type Receiver struct {
	local Token
	peer  netip.AddrPort
	aead  cipher.AEAD // nil when unkeyed
	nonce [chacha20poly1305.NonceSize]byte
	win   replayWindow
	c     *counters

	// Sequenced channels: the newest seq delivered, once one was.
	newest [256]uint32
	seen   [4]uint64

	// control, when set, takes the pings, pongs and acks (Lane's liveness
	// and pacing).
	control func(m *Message)

	// The last datagram accepted: its counter, and whether it carried
	// messages (Lane acks those).
	lastCounter uint64
	lastApp     bool
}

// NewReceiver returns a receiver of the session's datagrams.
func NewReceiver(s Session) *Receiver { return newReceiver(s, new(counters)) }

func newReceiver(s Session, c *counters) *Receiver {
	r := &Receiver{local: s.Local, peer: s.Peer, c: c}
	if s.Keyed {
		r.aead = newAEAD(s.RecvKey)
	}
	return r
}

// Stats returns the receiver's counters (shared with its Sender in a Lane).
func (r *Receiver) Stats() Stats { return r.c.snapshot() }

// Open checks datagram b from address from and appends its application
// messages to out, payloads aliasing b (which a sealed datagram is opened
// in place of). A datagram that fails a check is dropped whole: the error
// wraps ErrTruncated, ErrVersion, ErrMalformed, ErrSession, ErrMode,
// ErrAuth, ErrReplay or ErrTooOld, and Stats counts it. Sequenced messages
// older than their channel's newest are left out and counted (DropStale);
// a standalone Receiver also leaves out pings and pongs.
func (r *Receiver) Open(b []byte, from netip.AddrPort, out []Message) ([]Message, error) {
	if r.peer.IsValid() && (from.Addr().Unmap() != r.peer.Addr().Unmap() || from.Port() != r.peer.Port()) {
		r.c.dropSession.Add(1)
		return out, ErrSession
	}
	h, body, err := ParseHeader(b)
	if err != nil {
		r.c.dropMalformed.Add(1)
		return out, err
	}
	if h.Token != r.local {
		r.c.dropSession.Add(1)
		return out, ErrSession
	}
	if h.Sealed() != (r.aead != nil) {
		r.c.dropMode.Add(1)
		return out, ErrMode
	}
	if err := r.win.check(h.Counter); err != nil {
		r.countWindow(err)
		return out, err
	}
	if r.aead != nil {
		if len(body) < TagSize {
			r.c.dropMalformed.Add(1)
			return out, ErrTruncated
		}
		if body, err = r.aead.Open(body[:0], putNonce(&r.nonce, h.Counter), body, b[:HeaderSize]); err != nil {
			r.c.dropAuth.Add(1)
			return out, ErrAuth
		}
	}
	start := len(out)
	out, err = ParseItems(body, h.Counter, out)
	if err != nil {
		r.c.dropMalformed.Add(1)
		return out, err
	}
	if err := r.win.accept(h.Counter); err != nil { // cannot fail after check
		r.countWindow(err)
		return out[:start], err
	}
	r.c.recvDatagrams.Add(1)
	r.c.recvBytes.Add(uint64(len(b)))
	r.lastCounter, r.lastApp = h.Counter, false
	// Keep the messages to deliver, in place.
	keep := start
	for i := start; i < len(out); i++ {
		m := &out[i]
		switch m.Kind {
		case Sequenced:
			r.lastApp = true
			if !r.Accept(m.Channel, m.Seq) {
				continue
			}
		case Unreliable:
			r.lastApp = true
		case Ping, Pong, Ack:
			if r.control != nil {
				r.control(m)
			}
			continue
		}
		out[keep] = *m
		keep++
	}
	r.c.deliveredMessages.Add(uint64(keep - start))
	return out[:keep], nil
}

// Accept applies the sequenced rule to a message of channel with sequence
// number seq, however it came (the lane, or the link's stream while the
// lane is blocked): it reports whether the message is newer than the newest
// delivered on its channel, and if so makes it the newest. Older (or equal)
// is counted as DropStale.
//
// Sequence numbers wrap; newer is serial-number arithmetic (RFC 1982) on 32
// bits: seq is newer when it is ahead by 1 to 2^31-1.
func (r *Receiver) Accept(channel byte, seq uint32) bool {
	w, bit := channel/64, uint64(1)<<(channel%64)
	if r.seen[w]&bit != 0 && !SeqNewer(seq, r.newest[channel]) {
		r.c.dropStale.Add(1)
		return false
	}
	r.seen[w] |= bit
	r.newest[channel] = seq
	return true
}

// SeqNewer reports whether sequence number a is newer than b in serial-number
// arithmetic (RFC 1982) on 32 bits. a exactly 2^31 ahead of b is undefined
// there; SeqNewer says not newer.
func SeqNewer(a, b uint32) bool { return a != b && int32(a-b) > 0 }

func (r *Receiver) countWindow(err error) {
	if errors.Is(err, ErrReplay) {
		r.c.dropReplay.Add(1)
	} else {
		r.c.dropTooOld.Add(1)
	}
}
