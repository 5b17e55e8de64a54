package message_test

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/message"
)

// TestLaneGolden: the binary frames of SPEC.md section 11.8.
func TestLaneGolden(t *testing.T) {
	c := codec.NewBinary(message.Default)
	for _, tc := range []struct {
		msg  any
		want string
	}{
		{&message.LaneOffer{Port: 7700, Token: 0xb1b2b3b4b5b6b7b8}, "0ce61e14b1b2b3b4b5b6b7b8"},
		{&message.LaneTag{Kind: 1, Channel: 3, Seq: 5}, "08e901030000000" + "5"},
	} {
		b, err := c.AppendFrame(nil, tc.msg)
		if err != nil || hex.EncodeToString(b) != tc.want {
			t.Fatalf("%T: %x, %v; want %s", tc.msg, b, err, tc.want)
		}
		got, _, err := c.NewDecoder(bytes.NewReader(b)).Decode()
		if err != nil {
			t.Fatal(err)
		}
		switch m := got.(type) {
		case *message.LaneOffer:
			if *m != *tc.msg.(*message.LaneOffer) {
				t.Fatalf("round trip %+v", m)
			}
		case *message.LaneTag:
			if *m != *tc.msg.(*message.LaneTag) {
				t.Fatalf("round trip %+v", m)
			}
		}
	}
	var o message.LaneOffer
	if o.UnmarshalBinary(make([]byte, 9)) == nil || o.UnmarshalBinary(make([]byte, 11)) == nil {
		t.Fatal("a lane offer of the wrong size accepted")
	}
	var g message.LaneTag
	if g.UnmarshalBinary(make([]byte, 5)) == nil || g.UnmarshalBinary(make([]byte, 7)) == nil {
		t.Fatal("a lane tag of the wrong size accepted")
	}
}
