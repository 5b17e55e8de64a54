package message_test

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/message"
)

// Move is an application message: two coordinates, 4 bytes in the binary codec.
type Move struct {
	X int16 `json:"x"`
	Y int16 `json:"y"`
}

func (m Move) AppendBinary(b []byte) ([]byte, error) {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, uint16(m.X)), uint16(m.Y)), nil
}

func (m *Move) UnmarshalBinary(p []byte) error {
	if len(p) != 4 {
		return errors.New("move: want 4 bytes")
	}
	m.X, m.Y = int16(binary.BigEndian.Uint16(p)), int16(binary.BigEndian.Uint16(p[2:]))
	return nil
}

func ExampleRegister() {
	r := message.NewRegistry() // most programs use message.Default
	if err := message.Register[Move](r, 0x10, "Move"); err != nil {
		panic(err)
	}
	frame, _ := codec.NewBinary(r).AppendFrame(nil, Move{X: 1, Y: -1})
	fmt.Printf("% x\n", frame)
	frame, _ = codec.NewJSON(r).AppendFrame(nil, Move{X: 1, Y: -1})
	fmt.Printf("%s", frame)
	fmt.Println(message.Register[Move](r, 0x11, "Move2"))
	// Output:
	// 06 10 00 01 ff ff
	// ["Move",{"x":1,"y":-1}]
	// message: already registered: message_test.Move is "Move", code 0x10
}
