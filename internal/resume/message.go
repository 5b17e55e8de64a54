package resume

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Version is the resume protocol version this package speaks.
const Version = 1

// Control message codes the mesh registers (SPEC.md section 1's control
// range; 0xE6 is the lane's LaneOffer). Both are link-local: never
// sequenced, never journaled, never resent.
const (
	CodeResume byte = 0xE7 // lanmesh.Resume: MessageSize bytes
	CodeAck    byte = 0xE8 // lanmesh.Ack: AckSize bytes
)

// Sizes of the binary payloads.
const (
	MessageSize = 58
	AckSize     = 8
	macSize     = 16
	signedSize  = MessageSize - macSize
)

// Flags of a resume message, an append-only list.
const (
	// FlagFresh: the sender holds no session for this peer instance and
	// begins one with this link.
	FlagFresh byte = 0x01
	// FlagUntouched, only with FlagFresh: the sender never delivered a
	// frame of the receiver's instance, nor sent it one that it may have
	// delivered (it gave up, unused, a session that a link replaced by the
	// one-link rule had begun). A receiver that holds a session of which
	// the sender delivered nothing may carry its journal into the new
	// session instead of losing it.
	FlagUntouched byte = 0x02
	knownFlags         = FlagFresh | FlagUntouched
)

// Message is a resume message: the first frame each side sends on a link
// that both sides' handshakes said speaks resume (SPEC.md section 12.6).
type Message struct {
	Flags byte
	// Session names the session the sender resumes; zero when fresh.
	Session SessionID
	// Delivered: the sender delivered every sequence of the peer's up to
	// here in this session (0: none); the cumulative acknowledgement.
	Delivered uint64
	// Skipped, when not 0: of those, Skipped..Delivered were not delivered
	// but skipped, the peer having said on an earlier link that it could
	// not resend them (Tracker.Skipped). 0 when fresh.
	Skipped uint64
	// From: the oldest of its own sequences the sender can still send (its
	// journal's From); when fresh, usually 1.
	From uint64
	// BudgetFrames and BudgetBytes are the sender's journal budget: the
	// receiver acknowledges well within it.
	BudgetFrames, BudgetBytes uint32
	// MAC authenticates the rest (Seal); zero when fresh.
	MAC [macSize]byte
}

// Fresh reports whether the sender begins a new session.
func (m Message) Fresh() bool { return m.Flags&FlagFresh != 0 }

// NewFresh returns the message of a side that holds no session, whose
// journal is configured by cfg and whose first frame will be from (1,
// unless frames were journaled before the session began and some had to be
// dropped).
func NewFresh(cfg JournalConfig, from uint64) Message {
	return Message{Flags: FlagFresh, From: from, BudgetFrames: uint32(cfg.MaxFrames), BudgetBytes: uint32(cfg.MaxBytes)}
}

// AppendBinary appends the message's MessageSize bytes.
func (m Message) AppendBinary(dst []byte) ([]byte, error) {
	if err := m.check(); err != nil {
		return dst, err
	}
	return m.appendSigned(dst), nil
}

func (m Message) appendSigned(dst []byte) []byte {
	dst = append(dst, Version, m.Flags)
	dst = append(dst, m.Session[:]...)
	dst = binary.BigEndian.AppendUint64(dst, m.Delivered)
	dst = binary.BigEndian.AppendUint64(dst, m.Skipped)
	dst = binary.BigEndian.AppendUint64(dst, m.From)
	dst = binary.BigEndian.AppendUint32(dst, m.BudgetFrames)
	dst = binary.BigEndian.AppendUint32(dst, m.BudgetBytes)
	return append(dst, m.MAC[:]...)
}

// ParseMessage reads a resume message, refusing what it cannot trust: a
// length other than MessageSize, another version, an unknown flag, From 0,
// a zero budget; a fresh message with a session, a delivered or skipped
// sequence or a MAC; a resuming one without a session, or with Skipped
// past Delivered. It does not check the MAC: Verify does, with the session's
// secret.
func ParseMessage(b []byte) (Message, error) {
	if len(b) != MessageSize {
		return Message{}, fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, len(b), MessageSize)
	}
	if b[0] != Version {
		return Message{}, fmt.Errorf("%w: version %d, this side speaks %d", ErrVersion, b[0], Version)
	}
	var m Message
	m.Flags = b[1]
	copy(m.Session[:], b[2:10])
	m.Delivered = binary.BigEndian.Uint64(b[10:])
	m.Skipped = binary.BigEndian.Uint64(b[18:])
	m.From = binary.BigEndian.Uint64(b[26:])
	m.BudgetFrames = binary.BigEndian.Uint32(b[34:])
	m.BudgetBytes = binary.BigEndian.Uint32(b[38:])
	copy(m.MAC[:], b[42:])
	return m, m.check()
}

func (m Message) check() error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrMalformed, what) }
	switch {
	case m.Flags&^knownFlags != 0:
		return bad(fmt.Sprintf("unknown flags 0x%02x", m.Flags&^knownFlags))
	case m.Flags&FlagUntouched != 0 && !m.Fresh():
		return bad("untouched without fresh")
	case m.BudgetFrames == 0 || m.BudgetBytes == 0:
		return bad("a zero budget")
	case m.Fresh() && (m.Session != SessionID{} || m.Delivered != 0 || m.Skipped != 0 || m.MAC != [macSize]byte{}):
		return bad("a fresh message with session fields")
	case !m.Fresh() && m.Session == SessionID{}:
		return bad("a resume without a session id")
	case m.From == 0:
		return bad("from sequence 0")
	case m.Skipped > m.Delivered:
		return bad("skipped past delivered")
	}
	return nil
}

// Seal sets the MAC of a resuming message (not fresh) that this side, p's
// local end, sends on the connection of binding b, under the session's
// secret.
func (m *Message) Seal(s *Secret, b Binding, p Pair) {
	m.MAC = m.mac(s, b, p.LocalNode, p.LocalInstance, p.RemoteNode, p.RemoteInstance)
}

// Verify checks the MAC of a resuming message that p's remote end sent on
// the connection of binding b, under this side's secret of the session
// (whose id the caller has matched to m.Session), in constant time.
func (m *Message) Verify(s *Secret, b Binding, p Pair) error {
	want := m.mac(s, b, p.RemoteNode, p.RemoteInstance, p.LocalNode, p.LocalInstance)
	if m.Fresh() || !hmac.Equal(want[:], m.MAC[:]) {
		return ErrAuth
	}
	return nil
}

// mac is HMAC-SHA256(mac key, label || binding || sender ids || receiver
// ids || the message's first 42 bytes), cut to 16 bytes.
func (m *Message) mac(s *Secret, b Binding, fromNode, fromInst, toNode, toInst ID) [macSize]byte {
	var buf [len(labelMessage) + 32 + 4*16 + MessageSize]byte
	in := append(buf[:0], labelMessage...)
	in = append(in, b[:]...)
	in = append(in, fromNode[:]...)
	in = append(in, fromInst[:]...)
	in = append(in, toNode[:]...)
	in = append(in, toInst[:]...)
	in = m.appendSigned(in)[:len(in)+signedSize]
	h := hmac.New(sha256.New, s.macKey())
	h.Write(in)
	var out [macSize]byte
	copy(out[:], h.Sum(nil))
	return out
}

// AppendAck appends an Ack payload: the cumulative acknowledgement n, 8
// bytes.
func AppendAck(dst []byte, n uint64) []byte { return binary.BigEndian.AppendUint64(dst, n) }

// ParseAck reads an Ack payload.
func ParseAck(b []byte) (uint64, error) {
	if len(b) != AckSize {
		return 0, fmt.Errorf("%w: ack of %d bytes, want %d", ErrMalformed, len(b), AckSize)
	}
	return binary.BigEndian.Uint64(b), nil
}
