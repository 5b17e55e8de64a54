package lane

import (
	"encoding/binary"
	"fmt"
)

// The datagram format (SPEC.md section 11.3 has it byte by byte):
//
//	offset size field
//	0      1    version, 1
//	1      1    flags: bit 0 sealed; other bits zero
//	2      8    token: the receiver's session token
//	10     8    counter, big-endian: the sender's packet number
//	18     ...  items (clear), or items sealed with a 16-byte tag after
//
// and each item:
//
//	0      1    kind: 1 sequenced, 2 unreliable, 3 ping, 4 pong
//	1      1    channel (0 for ping and pong)
//	2      4    seq, big-endian (ping and pong: the ping id)
//	6      2    length of the payload, big-endian
//	8      n    payload
const (
	// Version is the datagram version this package speaks.
	Version = 1
	// HeaderSize is the size of a datagram header.
	HeaderSize = 18
	// ItemHeaderSize is the size of an item header.
	ItemHeaderSize = 8
	// TagSize is what sealing adds to a datagram.
	TagSize = 16

	// FlagSealed marks a datagram whose items are sealed.
	FlagSealed byte = 1 << 0

	pongPayload = 4 // a pong carries how long it was held, in microseconds
)

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
	// Counter is the sender's packet number in this session: 0 first, one
	// more for every datagram, never reused.
	Counter uint64
}

// Sealed reports whether the datagram's items are sealed.
func (h Header) Sealed() bool { return h.Flags&FlagSealed != 0 }

// AppendBinary appends the header's 18 bytes to dst.
func (h Header) AppendBinary(dst []byte) ([]byte, error) {
	if h.Flags&^FlagSealed != 0 {
		return dst, fmt.Errorf("%w: flags 0x%02x", ErrMalformed, h.Flags)
	}
	dst = append(dst, Version, h.Flags)
	dst = append(dst, h.Token[:]...)
	return binary.BigEndian.AppendUint64(dst, h.Counter), nil
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
type Message struct {
	Kind    Kind
	Channel byte
	Seq     uint32
	Payload []byte
}

// Size is the bytes the item takes in a datagram.
func (m *Message) Size() int { return ItemHeaderSize + len(m.Payload) }

func (m *Message) check() error {
	switch m.Kind {
	case Sequenced, Unreliable:
		if len(m.Payload) > 0xFFFF {
			return fmt.Errorf("%w: payload of %d bytes", ErrTooLarge, len(m.Payload))
		}
	case Ping:
		if m.Channel != 0 || len(m.Payload) != 0 {
			return fmt.Errorf("%w: ping with channel %d and %d payload bytes (want 0, 0)", ErrMalformed, m.Channel, len(m.Payload))
		}
	case Pong:
		if m.Channel != 0 || len(m.Payload) != pongPayload {
			return fmt.Errorf("%w: pong with channel %d and %d payload bytes (want 0, %d)", ErrMalformed, m.Channel, len(m.Payload), pongPayload)
		}
	default:
		return fmt.Errorf("%w: item kind %d", ErrMalformed, byte(m.Kind))
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

func appendItem(dst []byte, k Kind, ch byte, seq uint32, payload []byte) []byte {
	dst = append(dst, byte(k), ch)
	dst = binary.BigEndian.AppendUint32(dst, seq)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(payload)))
	return append(dst, payload...)
}

// ParseItems appends the items of a clear body to out. The payloads alias
// body. A body with no items is malformed.
func ParseItems(body []byte, out []Message) ([]Message, error) {
	start := len(out)
	off := 0
	for off < len(body) {
		if len(body)-off < ItemHeaderSize {
			return out[:start], fmt.Errorf("%w: %d bytes at offset %d, an item header is %d", ErrTruncated, len(body)-off, off, ItemHeaderSize)
		}
		n := int(binary.BigEndian.Uint16(body[off+6:]))
		if len(body)-off-ItemHeaderSize < n {
			return out[:start], fmt.Errorf("%w: item at offset %d says %d payload bytes, %d remain", ErrTruncated, off, n, len(body)-off-ItemHeaderSize)
		}
		m := Message{
			Kind:    Kind(body[off]),
			Channel: body[off+1],
			Seq:     binary.BigEndian.Uint32(body[off+2:]),
			Payload: body[off+ItemHeaderSize : off+ItemHeaderSize+n : off+ItemHeaderSize+n],
		}
		if err := m.check(); err != nil {
			return out[:start], fmt.Errorf("item at offset %d: %w", off, err)
		}
		out = append(out, m)
		off += ItemHeaderSize + n
	}
	if len(out) == start {
		return out, fmt.Errorf("%w: no items", ErrMalformed)
	}
	return out, nil
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
	d.Messages, err = ParseItems(body, d.Messages[:0])
	return err
}
