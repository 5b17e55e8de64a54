package mesh

import (
	"fmt"
	"testing"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/lane"
	"github.com/lanmesh/lanmesh/message"
)

// FuzzLanePayload: whatever a lane payload holds, the decoder that reads
// lane payloads never panics, takes exactly one whole frame or refuses the
// payload, decodes it alike alone and in a datagram's run, and decodes a
// good frame after any garbage; LaneOffer and LaneTag payloads round-trip
// or are refused.
func FuzzLanePayload(f *testing.F) {
	for _, name := range []string{"binary", "msgpack", "json"} {
		c, err := codec.New(name, testRegistry)
		if err != nil {
			f.Fatal(err)
		}
		good, _ := c.AppendFrame(nil, &Msg32{Seq: 7})
		f.Add(name, good)
		f.Add(name, append(good, good...))
		f.Add(name, good[:len(good)-1])
	}
	f.Add("binary", []byte{0x0c, 0xe6, 0x1e, 0x14, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, name string, payload []byte) {
		c, err := codec.New(name, testRegistry)
		if err != nil {
			return
		}
		var d frameDecoder
		d.init(&link{codec: c})
		msg, err := d.decode(payload)
		if err == nil && msg == nil {
			t.Fatal("no message and no error")
		}
		if d.bin != nil {
			// The binary codec decodes in place: it must agree with its
			// stream decoder fed the payload alone.
			var s frameDecoder
			s.init(&link{codec: c})
			s.bin = nil
			smsg, serr := s.decode(payload)
			if (err == nil) != (serr == nil) || (err == nil && fmt.Sprint(msg) != fmt.Sprint(smsg)) {
				t.Fatalf("%x: in place %v, %v; stream %v, %v", payload, msg, err, smsg, serr)
			}
		}
		good, _ := c.AppendFrame(nil, &Msg32{Seq: 9})
		msg, err = d.decode(good)
		if m, ok := msg.(*Msg32); err != nil || !ok || m.Seq != 9 {
			t.Fatalf("a good frame after %x: %v, %v", payload, msg, err)
		}
		// In a datagram, the values of a run allocated together: each
		// payload decodes as it does alone.
		msgs := []lane.Message{{Payload: payload}, {Payload: payload}, {Payload: good}, {Payload: payload}}
		for i := range msgs {
			var s frameDecoder
			s.init(&link{codec: c})
			want, werr := s.decode(msgs[i].Payload)
			got, _, gerr := d.decodeAt(msgs, i)
			if (gerr == nil) != (werr == nil) || (gerr == nil && fmt.Sprint(got) != fmt.Sprint(want)) {
				t.Fatalf("%x, payload %d of a datagram: %v, %v; alone %v, %v", payload, i, got, gerr, want, werr)
			}
		}
		d.release()
		var o message.LaneOffer
		if o.UnmarshalBinary(payload) == nil {
			if b, _ := o.AppendBinary(nil); string(b) != string(payload) {
				t.Fatalf("lane offer %x -> %x", payload, b)
			}
		}
		var g message.LaneTag
		if g.UnmarshalBinary(payload) == nil {
			if b, _ := g.AppendBinary(nil); string(b) != string(payload) {
				t.Fatalf("lane tag %x -> %x", payload, b)
			}
		}
	})
}
