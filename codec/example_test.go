package codec_test

import (
	"bytes"
	"fmt"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/message"
)

// Encoding cable_car's Identify in each codec, and reading it back.
func Example() {
	for _, name := range codec.Names() {
		c, _ := codec.New(name, message.Default)
		frame, _ := c.AppendFrame(nil, &message.Identify{Username: "alice", Hostname: "box"})
		msg, size, _ := c.NewDecoder(bytes.NewReader(frame)).Decode()
		fmt.Printf("%-7s %2d bytes  %+v\n", name, size, msg)
	}
	// Output:
	// binary  11 bytes  &{Username:alice Hostname:box}
	// msgpack 46 bytes  &{Username:alice Hostname:box}
	// json    54 bytes  &{Username:alice Hostname:box}
}

// The binary codec refuses a message that does not fit in 254 bytes before
// writing anything.
func ExampleBinary_AppendFrame() {
	c := codec.NewBinary(message.Default)
	buf := []byte("pending")
	buf, err := c.AppendFrame(buf, &message.Identify{Username: string(make([]byte, 300)), Hostname: "box"})
	fmt.Println(err != nil, string(buf))
	// Output: true pending
}
