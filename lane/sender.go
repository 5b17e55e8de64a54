package lane

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"math"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sender queues one peer's outgoing messages and packs them into datagrams.
// It keeps only the newest message of each sequenced channel (a newer one
// replaces the queued one, so a slow peer never makes a game send stale
// state) and a bounded queue of unreliable ones, and Flush packs everything
// queued into as few datagrams as fit the MTU.
//
// A Sender is not safe for concurrent use: one goroutine (the game's pump)
// calls Enqueue, Flush and Drain. In steady state none of them allocates.
type Sender struct {
	cfg        Config
	maxPayload int
	limit      int // the most bytes of header and items in one datagram
	token      Token
	aead       cipher.AEAD // nil when unkeyed
	nonce      [chacha20poly1305.NonceSize]byte
	counter    uint64
	send       func([]byte) error
	c          *counters

	// Sequenced: the newest queued message of each channel, and the
	// channels that have one, in the order they were first queued.
	slots   [256]slot
	pending []byte

	// Unreliable: a ring of queued messages.
	ring       []ringEntry
	head, size int

	// Control items for the next Flush (Lane's pings, pongs and acks).
	ctl    [3]Message
	nctl   int
	ctlBuf [pongPayload]byte
	ackBuf [ackPayload]byte

	// log, when set, has flush list the datagrams it sent in emits (for
	// Lane's pacing).
	log   bool
	emits []emitRec

	buf   []byte // the datagram being packed
	spare []byte // Scratch's: in no queue
	// Packing state of the datagram in buf.
	inBuf    int // application messages in buf
	flushErr error
}

type slot struct {
	queued bool
	buf    []byte
}

type emitRec struct {
	counter uint64
	size    int
	app     bool // it carried a message
}

type ringEntry struct {
	ch  byte
	buf []byte
}

// NewSender returns a sender of the session's datagrams, written one at a
// time by send. send must not keep the slice it is given; it runs on the
// goroutine that calls Flush.
func NewSender(cfg Config, s Session, send func([]byte) error) (*Sender, error) {
	return newSender(cfg, s, send, new(counters))
}

func newSender(cfg Config, s Session, send func([]byte) error, c *counters) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if send == nil {
		return nil, fmt.Errorf("%w: no send function", ErrConfig)
	}
	sn := &Sender{
		cfg: cfg, maxPayload: cfg.MaxPayload(s.Keyed), limit: cfg.MTU, token: s.Remote, send: send, c: c,
		pending: make([]byte, 0, 256), ring: make([]ringEntry, cfg.UnreliableQueue),
		buf: make([]byte, 0, cfg.MTU),
	}
	if s.Keyed {
		sn.aead = newAEAD(s.SendKey)
		sn.limit -= TagSize
	}
	return sn, nil
}

// MaxPayload is the largest payload Enqueue accepts.
func (s *Sender) MaxPayload() int { return s.maxPayload }

// Stats returns the sender's counters (shared with its Receiver in a Lane).
func (s *Sender) Stats() Stats { return s.c.snapshot() }

// Enqueue queues a copy of payload (the codec's frame) for the next Flush.
// kind is Sequenced or Unreliable; channel numbers each kind's channels
// apart. The message's sequence number is given when it leaves: its
// datagram's counter (SPEC.md section 11.6).
//
// A payload larger than MaxPayload is refused with ErrTooLarge. A sequenced
// message replaces the one queued on its channel, if any. An unreliable
// message that finds the queue full is dropped: ErrQueueFull, counted.
func (s *Sender) Enqueue(kind Kind, channel byte, payload []byte) error {
	if err := s.admit(kind, channel, payload); err != nil {
		return err
	}
	if kind == Sequenced {
		sl := s.slot(channel)
		sl.buf = append(sl.buf[:0], payload...)
		return nil
	}
	e := s.push(channel)
	e.buf = append(e.buf[:0], payload...)
	return nil
}

// Scratch returns an empty buffer of the Sender's own to append one
// payload to (a codec's frame, encoded in place) and hand to EnqueueScratch,
// which queues it with no copy. Each Scratch is for one EnqueueScratch, or
// none; the buffer is the Sender's again once given back.
func (s *Sender) Scratch() []byte { return s.spare[:0] }

// EnqueueScratch is Enqueue of a payload built in the buffer Scratch
// returned (or in what appending to it grew): the payload is queued as it
// is, not copied, and the buffer it replaces in the queue becomes the next
// Scratch. A payload that is refused becomes the next Scratch itself.
func (s *Sender) EnqueueScratch(kind Kind, channel byte, payload []byte) error {
	if err := s.admit(kind, channel, payload); err != nil {
		s.spare = payload[:0]
		return err
	}
	if kind == Sequenced {
		sl := s.slot(channel)
		sl.buf, s.spare = payload, sl.buf[:0]
		return nil
	}
	e := s.push(channel)
	e.buf, s.spare = payload, e.buf[:0]
	return nil
}

// admit returns why a payload cannot be queued, if it cannot.
func (s *Sender) admit(kind Kind, channel byte, payload []byte) error {
	if kind != Sequenced && kind != Unreliable {
		return fmt.Errorf("%w: Enqueue of a %v message (want sequenced or unreliable)", ErrConfig, kind)
	}
	if len(payload) > s.maxPayload {
		s.c.refusedLarge.Add(1)
		return fmt.Errorf("%w: %d bytes on %v channel %d, a datagram holds %d (send it reliably, or split it)",
			ErrTooLarge, len(payload), kind, channel, s.maxPayload)
	}
	if kind == Unreliable && s.size == len(s.ring) {
		s.c.dropQueueFull.Add(1)
		return fmt.Errorf("%w: %d messages wait for Flush", ErrQueueFull, s.size)
	}
	return nil
}

// slot returns a sequenced channel's slot, queued (what it held is
// superseded).
func (s *Sender) slot(channel byte) *slot {
	sl := &s.slots[channel]
	if sl.queued {
		s.c.superseded.Add(1)
	} else {
		sl.queued = true
		s.pending = append(s.pending, channel)
	}
	return sl
}

// push returns the unreliable ring's next entry, queued on channel; admit
// has checked that there is room.
func (s *Sender) push(channel byte) *ringEntry {
	e := &s.ring[(s.head+s.size)%len(s.ring)]
	e.ch = channel
	s.size++
	return e
}

// Queued reports how many messages wait for Flush.
func (s *Sender) Queued() (sequenced, unreliable int) { return len(s.pending), s.size }

// addControl queues a ping, pong or ack for the next Flush; the newest of
// each kind wins. held is a pong's or ack's, received an ack's.
func (s *Sender) addControl(k Kind, id uint32, held, received uint32) {
	m := Message{Kind: k, Seq: id}
	switch k {
	case Pong:
		binary.BigEndian.PutUint32(s.ctlBuf[:], held)
		m.Payload = s.ctlBuf[:]
	case Ack:
		binary.BigEndian.PutUint32(s.ackBuf[:], held)
		binary.BigEndian.PutUint32(s.ackBuf[4:], received)
		m.Payload = s.ackBuf[:]
	}
	for i := 0; i < s.nctl; i++ {
		if s.ctl[i].Kind == k {
			s.ctl[i] = m
			return
		}
	}
	s.ctl[s.nctl] = m
	s.nctl++
}

// Flush packs every queued message into as few datagrams as fit the MTU and
// hands each to the send function. Messages are sent once, never again,
// whether or not their datagram arrives. It returns the first error of the
// send function (the other datagrams are still tried) or ErrCounterExhausted.
func (s *Sender) Flush() error {
	s.flush(true, -1, false)
	return s.flushErr
}

// flush sends the control items queued and, when messages is set, the
// messages, as many as budget bytes of items allow (-1: all; 0: none; the
// first always goes when there is any); with unreliableFree, unreliable
// messages all go, outside the budget. It reports whether the budget held
// a message back; the error is in flushErr.
func (s *Sender) flush(messages bool, budget int, unreliableFree bool) (held bool) {
	s.flushErr = nil
	s.emits = s.emits[:0]
	for i := 0; i < s.nctl; i++ {
		m := &s.ctl[i]
		s.add(m.Kind, 0, m.Seq, m.Payload, false)
	}
	s.nctl = 0
	if !messages {
		s.emit()
		return false
	}
	spent := 0
	fits := func(need int) bool {
		switch {
		case budget < 0:
		case budget == 0 || (spent > 0 && spent+need > budget):
			return false
		}
		spent += need
		return true
	}
	n := 0
	for _, ch := range s.pending {
		sl := &s.slots[ch]
		if !fits(ItemSize(len(sl.buf))) {
			held = true
			break
		}
		s.add(Sequenced, ch, 0, sl.buf, true)
		sl.queued = false
		n++
	}
	// What the budget held back keeps its place: the channels that waited
	// longest go first next time.
	s.pending = s.pending[:copy(s.pending, s.pending[n:])]
	for ; (!held || unreliableFree) && s.size > 0; s.size-- {
		e := &s.ring[s.head]
		if !unreliableFree && !fits(ItemSize(len(e.buf))) {
			held = true
			break
		}
		s.add(Unreliable, e.ch, 0, e.buf, true)
		s.head = (s.head + 1) % len(s.ring)
	}
	if s.size == 0 {
		s.head = 0
	}
	s.emit()
	return held
}

// Drain hands the queued messages to fn, for a lane that has fallen back to
// the link's stream: sequenced first (the newest of each channel), then
// unreliable, each with its sequence number. When fn returns false, Drain
// stops and that message and the rest stay queued (a sequenced one can
// still be superseded).
//
// The messages of one Drain share a sequence number: a counter value that
// no datagram will carry (SPEC.md section 11.7), so that a message that
// goes over the link and one that goes over the lane are ordered on their
// channel whichever way each went.
func (s *Sender) Drain(fn func(kind Kind, channel byte, seq uint32, payload []byte) bool) {
	if len(s.pending) == 0 && s.size == 0 {
		return
	}
	if s.counter == math.MaxUint64 {
		return
	}
	seq := uint32(s.counter)
	s.counter++
	n := 0
	for _, ch := range s.pending {
		sl := &s.slots[ch]
		if !fn(Sequenced, ch, seq, sl.buf) {
			break
		}
		sl.queued = false
		n++
	}
	s.pending = s.pending[:copy(s.pending, s.pending[n:])]
	if len(s.pending) > 0 {
		return
	}
	for ; s.size > 0; s.size-- {
		e := &s.ring[s.head]
		if !fn(Unreliable, e.ch, seq, e.buf) {
			return
		}
		s.head = (s.head + 1) % len(s.ring)
	}
}

// add appends one item to the datagram being packed, sending that one first
// when the item does not fit.
func (s *Sender) add(k Kind, ch byte, seq uint32, payload []byte, app bool) {
	need := itemSize(k, payload)
	if len(s.buf) > 0 && len(s.buf)+need > s.limit {
		s.emit()
	}
	if len(s.buf) == 0 {
		flags := byte(0)
		if s.aead != nil {
			flags = FlagSealed
		}
		s.buf = appendHeader(s.buf, flags, s.token, s.counter)
	}
	s.buf = appendItem(s.buf, k, ch, seq, payload)
	if app {
		s.inBuf++
	}
}

// emit seals and sends the datagram in buf, if any.
func (s *Sender) emit() {
	if len(s.buf) == 0 {
		return
	}
	b := s.buf
	msgs := s.inBuf
	s.buf, s.inBuf = s.buf[:0], 0
	if s.counter == math.MaxUint64 {
		if s.flushErr == nil {
			s.flushErr = ErrCounterExhausted
		}
		return
	}
	if s.aead != nil {
		sealed := s.aead.Seal(b[HeaderSize:HeaderSize], putNonce(&s.nonce, s.counter), b[HeaderSize:], b[:HeaderSize])
		b = b[:HeaderSize+len(sealed)]
	}
	s.counter++
	if err := s.send(b); err != nil {
		s.c.sendErrors.Add(1)
		if s.flushErr == nil {
			s.flushErr = fmt.Errorf("lane: send: %w", err)
		}
		return
	}
	if s.log {
		s.emits = append(s.emits, emitRec{s.counter - 1, len(b), msgs > 0})
	}
	s.c.sentDatagrams.Add(1)
	s.c.sentBytes.Add(uint64(len(b)))
	s.c.sentMessages.Add(uint64(msgs))
}

// itemSize is the size of an item of kind k with payload.
func itemSize(k Kind, payload []byte) int {
	m := Message{Kind: k, Payload: payload}
	return m.Size()
}
