package message

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/lanmesh/lanmesh/codec"
)

// Codes and names of the built-in messages. The first four are cable_car's,
// so that its programs understand them; the rest are lanmesh's control
// messages, which the link layer sends and consumes itself.
const (
	CodeIdentify byte = 0x01
	CodeJoin     byte = 0x02
	CodeRetry    byte = 0x03
	CodeQuit     byte = 0x04

	CodePing byte = 0xE0
	CodePong byte = 0xE1
	CodeBye  byte = 0xE2
	// A request and its reply are two frames each: a marker, then the
	// message itself, on the same link. Any message can be a request or a
	// reply this way, in every codec, with no envelope to nest it in.
	CodeRequest byte = 0xE3
	CodeReply   byte = 0xE4
	CodeRefuse  byte = 0xE5
	// Resume and Ack carry resumable links (SPEC.md section 12): Resume is
	// the first frame of a node's link, Ack the cumulative acknowledgement.
	// Both are link-local: never numbered, never resent.
	CodeResume byte = 0xE7
	CodeAck    byte = 0xE8
)

var builtins = []func(*Registry) error{
	func(r *Registry) error { return register[Identify](r, CodeIdentify, "MsgIdentify") },
	func(r *Registry) error { return register[Join](r, CodeJoin, "MsgJoin") },
	func(r *Registry) error { return register[Retry](r, CodeRetry, "MsgRetry") },
	func(r *Registry) error { return register[Quit](r, CodeQuit, "MsgQuit") },
	func(r *Registry) error { return register[Ping](r, CodePing, ControlPrefix+"Ping") },
	func(r *Registry) error { return register[Pong](r, CodePong, ControlPrefix+"Pong") },
	func(r *Registry) error { return register[Bye](r, CodeBye, ControlPrefix+"Bye") },
	func(r *Registry) error { return register[Request](r, CodeRequest, ControlPrefix+"Request") },
	func(r *Registry) error { return register[Reply](r, CodeReply, ControlPrefix+"Reply") },
	func(r *Registry) error { return register[Refuse](r, CodeRefuse, ControlPrefix+"Refuse") },
	func(r *Registry) error { return register[LaneOffer](r, CodeLaneOffer, ControlPrefix+"LaneOffer") },
	func(r *Registry) error { return register[LaneTag](r, CodeLaneTag, ControlPrefix+"LaneTag") },
	func(r *Registry) error { return register[Resume](r, CodeResume, ControlPrefix+"Resume") },
	func(r *Registry) error { return register[Ack](r, CodeAck, ControlPrefix+"Ack") },
}

// IsControl reports whether code belongs to lanmesh's control range.
func IsControl(code byte) bool { return code >= FirstControlCode }

// Identify tells a peer who is at the other end: cable_car's MsgIdentify. In
// the binary codec its payload is "username@hostname", so neither part may
// contain '@'.
type Identify struct {
	Username string `json:"username" msgpack:"username"`
	Hostname string `json:"hostname" msgpack:"hostname"`
}

var errAt = errors.New("message: Identify: '@' in a username or hostname cannot be encoded")

// AppendBinary appends "username@hostname".
func (m Identify) AppendBinary(dst []byte) ([]byte, error) {
	if bytesIndexString(m.Username, '@') >= 0 || bytesIndexString(m.Hostname, '@') >= 0 {
		return dst, errAt
	}
	dst = append(dst, m.Username...)
	dst = append(dst, '@')
	return append(dst, m.Hostname...), nil
}

// UnmarshalBinary reads "username@hostname", which holds exactly one '@'.
func (m *Identify) UnmarshalBinary(p []byte) error {
	at := bytes.IndexByte(p, '@')
	if at < 0 || bytes.IndexByte(p[at+1:], '@') >= 0 {
		return fmt.Errorf("message: Identify: want exactly one '@' in %q", p)
	}
	if !utf8.Valid(p) {
		return errors.New("message: Identify: not UTF-8")
	}
	m.Username, m.Hostname = string(p[:at]), string(p[at+1:])
	return nil
}

func bytesIndexString(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// Join is cable_car's MsgJoin: no fields.
type Join struct{}

// Retry is cable_car's MsgRetry: no fields.
type Retry struct{}

// Quit is cable_car's MsgQuit: no fields.
type Quit struct{}

// Ping asks the peer for a Pong; links send one every ping interval. Time is
// the sender's clock reading, echoed back, so a round trip is measured without
// keeping state per ping.
type Ping struct {
	Seq  uint32 `json:"seq" msgpack:"seq"`
	Time int64  `json:"time" msgpack:"time"`
}

// Pong answers a Ping with its Seq and Time.
type Pong struct {
	Seq  uint32 `json:"seq" msgpack:"seq"`
	Time int64  `json:"time" msgpack:"time"`
}

const pingSize = 12

// AppendBinary appends Seq and Time, big-endian.
func (m Ping) AppendBinary(dst []byte) ([]byte, error) { return appendPing(dst, m.Seq, m.Time), nil }

// UnmarshalBinary reads what AppendBinary wrote.
func (m *Ping) UnmarshalBinary(p []byte) (err error) { m.Seq, m.Time, err = parsePing(p); return }

// AppendBinary appends Seq and Time, big-endian.
func (m Pong) AppendBinary(dst []byte) ([]byte, error) { return appendPing(dst, m.Seq, m.Time), nil }

// UnmarshalBinary reads what AppendBinary wrote.
func (m *Pong) UnmarshalBinary(p []byte) (err error) { m.Seq, m.Time, err = parsePing(p); return }

func appendPing(dst []byte, seq uint32, t int64) []byte {
	dst = binary.BigEndian.AppendUint32(dst, seq)
	return binary.BigEndian.AppendUint64(dst, uint64(t))
}

func parsePing(p []byte) (uint32, int64, error) {
	if len(p) != pingSize {
		return 0, 0, fmt.Errorf("message: ping payload is %d bytes, want %d", len(p), pingSize)
	}
	return binary.BigEndian.Uint32(p), int64(binary.BigEndian.Uint64(p[4:])), nil
}

// Bye is the last message on a link that closes gracefully; Reason tells the
// peer why, in words for a person.
type Bye struct {
	Reason string `json:"reason" msgpack:"reason"`
}

// AppendBinary appends the reason as UTF-8, cut at a rune boundary so that a
// Bye always fits in a binary frame.
func (m Bye) AppendBinary(dst []byte) ([]byte, error) {
	return append(dst, cutReason(m.Reason, codec.MaxBinaryPayload)...), nil
}

// UnmarshalBinary reads the reason.
func (m *Bye) UnmarshalBinary(p []byte) error {
	if !utf8.Valid(p) {
		return errors.New("message: Bye: reason is not UTF-8")
	}
	m.Reason = string(p)
	return nil
}

// Request says that the next message on the same link is a request, which
// the receiver answers with a Reply (or a Refuse) carrying the same ID.
type Request struct {
	ID uint32 `json:"id" msgpack:"id"`
}

// Reply says that the next message on the same link answers request ID.
type Reply struct {
	ID uint32 `json:"id" msgpack:"id"`
}

// Refuse answers request ID with no message: Reason says why (no responder
// knew the request, or the responder failed).
type Refuse struct {
	ID     uint32 `json:"id" msgpack:"id"`
	Reason string `json:"reason" msgpack:"reason"`
}

// AppendBinary appends ID, big-endian.
func (m Request) AppendBinary(dst []byte) ([]byte, error) {
	return binary.BigEndian.AppendUint32(dst, m.ID), nil
}

// UnmarshalBinary reads what AppendBinary wrote.
func (m *Request) UnmarshalBinary(p []byte) (err error) { m.ID, err = parseID(p); return }

// AppendBinary appends ID, big-endian.
func (m Reply) AppendBinary(dst []byte) ([]byte, error) {
	return binary.BigEndian.AppendUint32(dst, m.ID), nil
}

// UnmarshalBinary reads what AppendBinary wrote.
func (m *Reply) UnmarshalBinary(p []byte) (err error) { m.ID, err = parseID(p); return }

// AppendBinary appends ID, big-endian, then the reason cut to fit.
func (m Refuse) AppendBinary(dst []byte) ([]byte, error) {
	dst = binary.BigEndian.AppendUint32(dst, m.ID)
	return Bye{Reason: cutReason(m.Reason, codec.MaxBinaryPayload-4)}.AppendBinary(dst)
}

// UnmarshalBinary reads what AppendBinary wrote.
func (m *Refuse) UnmarshalBinary(p []byte) error {
	if len(p) < 4 {
		return fmt.Errorf("message: refuse payload is %d bytes, want at least 4", len(p))
	}
	var b Bye
	if err := b.UnmarshalBinary(p[4:]); err != nil {
		return err
	}
	m.ID, m.Reason = binary.BigEndian.Uint32(p), b.Reason
	return nil
}

func parseID(p []byte) (uint32, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("message: id payload is %d bytes, want 4", len(p))
	}
	return binary.BigEndian.Uint32(p), nil
}

// cutReason cuts r to at most n bytes at a rune boundary.
func cutReason(r string, n int) string {
	if len(r) <= n {
		return r
	}
	r = r[:n]
	for len(r) > 0 && !utf8.ValidString(r) {
		r = r[:len(r)-1]
	}
	return r
}

// ResumeSize is the size of a Resume's payload.
const ResumeSize = 58

// Resume is the first frame of each side on a resumable link: the resume
// exchange of SPEC.md section 12.6, whose 58 bytes the mesh reads and
// checks itself.
type Resume struct {
	Data [ResumeSize]byte `json:"data" msgpack:"data"`
}

// AppendBinary appends the 58 bytes.
func (m Resume) AppendBinary(dst []byte) ([]byte, error) { return append(dst, m.Data[:]...), nil }

// UnmarshalBinary reads exactly 58 bytes.
func (m *Resume) UnmarshalBinary(p []byte) error {
	if len(p) != ResumeSize {
		return fmt.Errorf("message: resume payload is %d bytes, want %d", len(p), ResumeSize)
	}
	copy(m.Data[:], p)
	return nil
}

// Ack says that the sender delivered every numbered frame of the peer's up
// to N (SPEC.md section 12.3).
type Ack struct {
	N uint64 `json:"n" msgpack:"n"`
}

// AppendBinary appends N, big-endian: 8 bytes.
func (m Ack) AppendBinary(dst []byte) ([]byte, error) {
	return binary.BigEndian.AppendUint64(dst, m.N), nil
}

// UnmarshalBinary reads exactly 8 bytes.
func (m *Ack) UnmarshalBinary(p []byte) error {
	if len(p) != 8 {
		return fmt.Errorf("message: ack payload is %d bytes, want 8", len(p))
	}
	m.N = binary.BigEndian.Uint64(p)
	return nil
}
