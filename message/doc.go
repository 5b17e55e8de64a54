// Package message gives messages their identity: a Registry maps each Go
// struct type to a one-byte code (the binary codec) and a name (JSON and
// msgpack), and this package defines the messages every node knows.
//
// The smallest use: declare a struct, give it a binary form if it goes over
// the binary codec, and register it once.
//
//	type Move struct{ X, Y int16 }
//
//	func (m Move) AppendBinary(b []byte) ([]byte, error) {
//		return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, uint16(m.X)), uint16(m.Y)), nil
//	}
//	func (m *Move) UnmarshalBinary(p []byte) error { ... }
//
//	func init() { message.MustRegister[Move](message.Default, 0x10, "Move") }
//
// Messages are received as pointers to their registered type (*Move), and may
// be sent as values or pointers; pointers (or value-receiver AppendBinary)
// keep the binary codec free of allocation.
//
// Codes (SPEC.md section 1):
//
//	0x00        never a message
//	0x01-0x04   built-ins that cable_car programs also know: Identify
//	            (MsgIdentify), Join (MsgJoin), Retry (MsgRetry), Quit (MsgQuit)
//	0x05-0xDF   applications
//	0xE0-0xFF   lanmesh control messages: 0xE0 Ping, 0xE1 Pong, 0xE2 Bye,
//	            0xE3 Request, 0xE4 Reply, 0xE5 Refuse
//	            (names "lanmesh.Ping" ...); the rest are reserved
package message
