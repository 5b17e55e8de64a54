package lane

import (
	"encoding/binary"
	"fmt"
)

// The datagram format (SPEC.md section 11.3 has it byte by byte):
//
//	offset size field
//	0      1    version, 2
//	1      1    flags: bit 0 sealed; other bits zero
//	2      8    token: the receiver's session token
//	10     8    counter, big-endian: the sender's packet number
//	18     ...  items (clear), or items sealed with a 16-byte tag after
//
// and each item, by its first byte, the kind:
//
//	sequenced, unreliable  kind(1) channel(1) length(uvarint, 1-3) payload
//	ping                   kind(1) id(4)
//	pong                   kind(1) id(4) held(4)
//	ack                    kind(1) counter(4) held(4) received(4)
//
// A message has no sequence number of its own on the wire: it is the low 32
// bits of its datagram's counter, which orders every channel at once (a
// flush puts at most one message of a sequenced channel in a datagram). So
// a 24-byte message costs 3 bytes of item header, a byte more than the
// binary codec's frame header on the link.
const (
	// Version is the datagram version this package speaks.
	Version = 2
	// HeaderSize is the size of a datagram header.
	HeaderSize = 18
	// MinItemHeader is the smallest item header of a message: kind,
	// channel and a one-byte length (payloads under 128 bytes).
	MinItemHeader = 3
	// TagSize is what sealing adds to a datagram.
	TagSize = 16

	// FlagSealed marks a datagram whose items are sealed.
	FlagSealed byte = 1 << 0

	pingSize    = 1 + 4
	pongPayload = 4 // a pong carries how long it was held, in microseconds
	pongSize    = 1 + 4 + pongPayload
	ackPayload  = 8 // an ack carries how long it was held and the bytes received
	ackSize     = 1 + 4 + ackPayload
	maxLength   = 0xFFFF
)

// ItemSize is the bytes a sequenced or unreliable message with a payload of
// n bytes takes in a datagram.
func ItemSize(n int) int { return 2 + uvarintLen(uint64(n)) + n }

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// Kind is an item's kind: how a message is delivered, or a lane control
// item. Kinds are an append-only list.
type Kind byte

const (
	// Sequenced: a message older than the newest already delivered on its
	// channel is dropped; never duplicated. For positions and state.
	Sequenced Kind = 1
	// Unreliable: may be lost; never duplicated. For events where only
	// speed matters.
	Unreliable Kind = 2
	// Ping asks the peer for a Pong; Seq is the ping id.
	Ping Kind = 3
	// Pong answers a Ping of the same id; its payload is the time the pong
	// was held before sending, in microseconds, big-endian uint32.
	Pong Kind = 4
	// Ack tells the sender what got through, for its pacing: Seq is the
	// low 32 bits of the newest counter accepted; the payload is how long
	// that datagram was held before the ack left, in microseconds, then the
	// bytes of datagrams accepted in the session, modulo 2^32 (big-endian
	// uint32 each).
	Ack Kind = 5
)

func (k Kind) String() string {
	switch k {
	case Sequenced:
		return "sequenced"
	case Unreliable:
		return "unreliable"
	case Ping:
		return "ping"
	case Pong:
		return "pong"
	case Ack:
		return "ack"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// Token is one side's session token: random, chosen by the side that
// receives the datagrams that carry it, and agreed in the link handshake.
type Token [8]byte

// Header is a datagram's header.
type Header struct {
	// Flags: FlagSealed or 0.
	Flags byte
	// Token is the receiver's session token.
	Token Token
	// Counter is the sender's packet number in this session: 0 first,
	// growing with every datagram, never reused.
	Counter uint64
}

// Sealed reports whether the datagram's items are sealed.
func (h Header) Sealed() bool { return h.Flags&FlagSealed != 0 }

// AppendBinary appends the header's 18 bytes to dst.
func (h Header) AppendBinary(dst []byte) ([]byte, error) {
	if h.Flags&^FlagSealed != 0 {
		return dst, fmt.Errorf("%w: flags 0x%02x", ErrMalformed, h.Flags)
	}
	return appendHeader(dst, h.Flags, h.Token, h.Counter), nil
}

func appendHeader(dst []byte, flags byte, tok Token, counter uint64) []byte {
	dst = append(dst, Version, flags)
	dst = append(dst, tok[:]...)
	return binary.BigEndian.AppendUint64(dst, counter)
}

// ParseHeader parses a datagram's header and returns the rest (the items,
// clear or sealed).
func ParseHeader(b []byte) (Header, []byte, error) {
	if len(b) < HeaderSize {
		return Header{}, nil, fmt.Errorf("%w: %d bytes, a header is %d", ErrTruncated, len(b), HeaderSize)
	}
	if b[0] != Version {
		return Header{}, nil, fmt.Errorf("%w: %d (this side speaks %d)", ErrVersion, b[0], Version)
	}
	if b[1]&^FlagSealed != 0 {
		return Header{}, nil, fmt.Errorf("%w: unknown flags 0x%02x", ErrMalformed, b[1])
	}
	h := Header{Flags: b[1], Counter: binary.BigEndian.Uint64(b[10:18])}
	copy(h.Token[:], b[2:10])
	return h, b[HeaderSize:], nil
}

// PeekToken returns the token of a datagram without checking anything else,
// so that one socket can hand each datagram to its session.
func PeekToken(b []byte) (Token, bool) {
	var t Token
	if len(b) < HeaderSize || b[0] != Version {
		return t, false
	}
	copy(t[:], b[2:10])
	return t, true
}

// Message is one item of a datagram. Payload is the codec's frame bytes; in
// a parsed message it aliases the datagram.
//
// Seq is a sequenced or unreliable message's sequence number: not on the
// wire, but the low 32 bits of its datagram's counter (set by the parse;
// ignored by AppendBinary). For a ping, pong or ack it is the item's id or
// counter field.
type Message struct {
	Kind    Kind
	Channel byte
	Seq     uint32
	Payload []byte
}

// Size is the bytes the item takes in a datagram.
func (m *Message) Size() int {
	switch m.Kind {
	case Ping:
		return pingSize
	case Pong:
		return pongSize
	case Ack:
		return ackSize
	}
	return ItemSize(len(m.Payload))
}

func (m *Message) check() error {
	switch m.Kind {
	case Sequenced, Unreliable:
		if len(m.Payload) > maxLength {
			return fmt.Errorf("%w: payload of %d bytes", ErrTooLarge, len(m.Payload))
		}
		return nil
	case Ping:
		return m.checkControl(0)
	case Pong:
		return m.checkControl(pongPayload)
	case Ack:
		return m.checkControl(ackPayload)
	}
	return fmt.Errorf("%w: item kind %d", ErrMalformed, byte(m.Kind))
}

func (m *Message) checkControl(payload int) error {
	if m.Channel != 0 || len(m.Payload) != payload {
		return fmt.Errorf("%w: %v with channel %d and %d payload bytes (want 0, %d)", ErrMalformed, m.Kind, m.Channel, len(m.Payload), payload)
	}
	return nil
}

// AppendBinary appends the item to dst.
func (m *Message) AppendBinary(dst []byte) ([]byte, error) {
	if err := m.check(); err != nil {
		return dst, err
	}
	return appendItem(dst, m.Kind, m.Channel, m.Seq, m.Payload), nil
}

// appendItem appends an item that check accepts.
func appendItem(dst []byte, k Kind, ch byte, seq uint32, payload []byte) []byte {
	if k == Sequenced || k == Unreliable {
		dst = append(dst, byte(k), ch)
		dst = binary.AppendUvarint(dst, uint64(len(payload)))
		return append(dst, payload...)
	}
	dst = append(dst, byte(k))
	dst = binary.BigEndian.AppendUint32(dst, seq)
	return append(dst, payload...)
}

// ParseItems appends the items of a clear body to out, sequenced and
// unreliable ones numbered with counter (their datagram's). The payloads
// alias body. A body with no items is malformed.
func ParseItems(body []byte, counter uint64, out []Message) ([]Message, error) {
	start := len(out)
	off := 0
	for off < len(body) {
		m, n, err := parseItem(body[off:], uint32(counter))
		if err != nil {
			return out[:start], fmt.Errorf("item at offset %d: %w", off, err)
		}
		out = append(out, m)
		off += n
	}
	if len(out) == start {
		return out, fmt.Errorf("%w: no items", ErrMalformed)
	}
	return out, nil
}

// parseItem parses the item at the start of b and returns its size.
func parseItem(b []byte, seq uint32) (Message, int, error) {
	m := Message{Kind: Kind(b[0])}
	var size int
	switch m.Kind {
	case Sequenced, Unreliable:
		if len(b) < MinItemHeader {
			return m, 0, fmt.Errorf("%w: %d bytes, a message's item header is at least %d", ErrTruncated, len(b), MinItemHeader)
		}
		n, k := binary.Uvarint(b[2:])
		switch {
		case k == 0:
			return m, 0, fmt.Errorf("%w: the length ends past the datagram", ErrTruncated)
		case k < 0 || n > maxLength:
			return m, 0, fmt.Errorf("%w: a length over %d", ErrMalformed, maxLength)
		case k > 1 && b[2+k-1] == 0:
			return m, 0, fmt.Errorf("%w: a length in %d bytes where %d do", ErrMalformed, k, uvarintLen(n))
		}
		hdr := 2 + k
		if uint64(len(b)-hdr) < n {
			return m, 0, fmt.Errorf("%w: %d payload bytes said, %d remain", ErrTruncated, n, len(b)-hdr)
		}
		size = hdr + int(n)
		m.Channel, m.Seq, m.Payload = b[1], seq, b[hdr:size:size]
		return m, size, nil
	case Ping:
		size = pingSize
	case Pong:
		size = pongSize
	case Ack:
		size = ackSize
	default:
		return m, 0, fmt.Errorf("%w: item kind %d", ErrMalformed, b[0])
	}
	if len(b) < size {
		return m, 0, fmt.Errorf("%w: %d bytes, a %v is %d", ErrTruncated, len(b), m.Kind, size)
	}
	m.Seq, m.Payload = binary.BigEndian.Uint32(b[1:]), b[5:size:size]
	return m, size, nil
}

// Datagram is a whole clear datagram: what a sealed one holds once opened.
type Datagram struct {
	Header
	Messages []Message
}

// AppendBinary appends the datagram, clear, to dst. A sealed datagram is
// written by a Sender, which holds the key.
func (d *Datagram) AppendBinary(dst []byte) ([]byte, error) {
	if d.Sealed() {
		return dst, fmt.Errorf("%w: AppendBinary writes clear datagrams only", ErrMalformed)
	}
	if len(d.Messages) == 0 {
		return dst, fmt.Errorf("%w: no items", ErrMalformed)
	}
	start := len(dst)
	dst, err := d.Header.AppendBinary(dst)
	if err != nil {
		return dst[:start], err
	}
	for i := range d.Messages {
		if dst, err = d.Messages[i].AppendBinary(dst); err != nil {
			return dst[:start], err
		}
	}
	return dst, nil
}

// ParseDatagram parses a clear datagram into d, reusing d.Messages. The
// payloads alias b. A sealed datagram is refused: only its Receiver can open
// it.
func ParseDatagram(b []byte, d *Datagram) error {
	h, body, err := ParseHeader(b)
	if err != nil {
		return err
	}
	if h.Sealed() {
		return fmt.Errorf("%w: the datagram is sealed", ErrMode)
	}
	d.Header = h
	d.Messages, err = ParseItems(body, h.Counter, d.Messages[:0])
	return err
}
