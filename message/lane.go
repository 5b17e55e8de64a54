package message

import (
	"encoding/binary"
	"fmt"
)

// Codes of the game lane's control messages (SPEC.md section 11).
const (
	// CodeLaneOffer: after the handshake, each side that runs a lane says
	// where (its UDP port) and with which token.
	CodeLaneOffer byte = 0xE6
	// CodeLaneTag: over the link, the next frame is a lane message that fell
	// back to the stream (the lane is not up), with its kind, channel and
	// sequence number.
	CodeLaneTag byte = 0xE9
)

// LaneOffer offers a lane beside the link: the sender's lane UDP port and
// the token its lane datagrams must carry. A side sends at most one per
// link, after the handshake; a peer that sends none has no lane.
type LaneOffer struct {
	Port  uint16 `json:"port" msgpack:"port"`
	Token uint64 `json:"token" msgpack:"token"`
}

// LaneTag says that the next frame on the link is a lane message carried by
// the stream: Kind 1 sequenced or 2 unreliable, its Channel and Seq.
type LaneTag struct {
	Kind    uint8  `json:"kind" msgpack:"kind"`
	Channel uint8  `json:"channel" msgpack:"channel"`
	Seq     uint32 `json:"seq" msgpack:"seq"`
}

// AppendBinary appends Port and Token, big-endian: 10 bytes.
func (m LaneOffer) AppendBinary(dst []byte) ([]byte, error) {
	dst = binary.BigEndian.AppendUint16(dst, m.Port)
	return binary.BigEndian.AppendUint64(dst, m.Token), nil
}

// UnmarshalBinary reads what AppendBinary wrote.
func (m *LaneOffer) UnmarshalBinary(p []byte) error {
	if len(p) != 10 {
		return fmt.Errorf("message: lane offer payload is %d bytes, want 10", len(p))
	}
	m.Port, m.Token = binary.BigEndian.Uint16(p), binary.BigEndian.Uint64(p[2:])
	return nil
}

// AppendBinary appends Kind, Channel and Seq (big-endian): 6 bytes.
func (m LaneTag) AppendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, m.Kind, m.Channel)
	return binary.BigEndian.AppendUint32(dst, m.Seq), nil
}

// UnmarshalBinary reads what AppendBinary wrote.
func (m *LaneTag) UnmarshalBinary(p []byte) error {
	if len(p) != 6 {
		return fmt.Errorf("message: lane tag payload is %d bytes, want 6", len(p))
	}
	m.Kind, m.Channel, m.Seq = p[0], p[1], binary.BigEndian.Uint32(p[2:])
	return nil
}
