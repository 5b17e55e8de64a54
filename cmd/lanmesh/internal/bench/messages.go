package bench

import (
	"encoding/binary"
	"fmt"

	"github.com/lanmesh/lanmesh/message"
)

// The suite's messages, in a registry of their own. Bin32 and Bin200 are
// binary-codec messages whose frames are exactly 32 and 200 bytes (length,
// code, payload), encoded and decoded without allocating beyond the
// received value. Blob is the msgpack message: a sequence number and Data.

// Bin32 is a 32-byte binary frame.
type Bin32 struct {
	Seq  uint64
	Data [bin32Payload - 8]byte
}

// Bin200 is a 200-byte binary frame.
type Bin200 struct {
	Seq  uint64
	Data [bin200Payload - 8]byte
}

// Blob is a msgpack message of any size.
type Blob struct {
	Seq  uint64 `msgpack:"seq" json:"seq"`
	Data []byte `msgpack:"data" json:"data"`
}

const (
	binHeader     = 2 // the binary codec's length and code bytes
	bin32Payload  = 32 - binHeader
	bin200Payload = 200 - binHeader
)

func (m Bin32) AppendBinary(b []byte) ([]byte, error) {
	return append(binary.BigEndian.AppendUint64(b, m.Seq), m.Data[:]...), nil
}

func (m *Bin32) UnmarshalBinary(p []byte) error {
	if len(p) != bin32Payload {
		return fmt.Errorf("Bin32: %d bytes", len(p))
	}
	m.Seq = binary.BigEndian.Uint64(p)
	copy(m.Data[:], p[8:])
	return nil
}

func (m Bin200) AppendBinary(b []byte) ([]byte, error) {
	return append(binary.BigEndian.AppendUint64(b, m.Seq), m.Data[:]...), nil
}

func (m *Bin200) UnmarshalBinary(p []byte) error {
	if len(p) != bin200Payload {
		return fmt.Errorf("Bin200: %d bytes", len(p))
	}
	m.Seq = binary.BigEndian.Uint64(p)
	copy(m.Data[:], p[8:])
	return nil
}

func (m Blob) AppendBinary(b []byte) ([]byte, error) {
	return append(binary.BigEndian.AppendUint64(b, m.Seq), m.Data...), nil
}

func (m *Blob) UnmarshalBinary(p []byte) error {
	if len(p) < 8 {
		return fmt.Errorf("Blob: %d bytes", len(p))
	}
	m.Seq = binary.BigEndian.Uint64(p)
	m.Data = append(m.Data[:0], p[8:]...)
	return nil
}

// registry holds the suite's messages.
var registry = func() *message.Registry {
	r := message.NewRegistry()
	message.MustRegister[Bin32](r, 0x10, "Bin32")
	message.MustRegister[Bin200](r, 0x11, "Bin200")
	message.MustRegister[Blob](r, 0x12, "Blob")
	return r
}()
