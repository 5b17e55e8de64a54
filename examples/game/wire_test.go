package main

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/message"
)

// TestWireForms: each message's binary form round-trips, has the size the
// package doc gives, and refuses a short or long payload.
func TestWireForms(t *testing.T) {
	id := uuid.MustParse("01020304-0506-0708-090a-0b0c0d0e0f10")
	for _, tc := range []struct {
		in, out interface {
			AppendBinary([]byte) ([]byte, error)
			UnmarshalBinary([]byte) error
		}
		size int
	}{
		{&Pos{X: 39, Y: 15, Step: 0x01020304}, &Pos{}, 6},
		{&Hello{Round: 7, Claims: 3}, &Hello{}, 5},
		{&Claim{Round: 3, Coin: 9, Player: id, Name: nameBytes("ann")}, &Claim{}, 37},
	} {
		b, err := tc.in.AppendBinary(nil)
		if err != nil || len(b) != tc.size {
			t.Fatalf("%T: % x, %v; want %d bytes", tc.in, b, err, tc.size)
		}
		if err := tc.out.UnmarshalBinary(b); err != nil {
			t.Fatalf("%T: %v", tc.in, err)
		}
		b2, _ := tc.out.AppendBinary(nil)
		if !bytes.Equal(b, b2) {
			t.Errorf("%T: % x came back as % x", tc.in, b, b2)
		}
		if tc.out.UnmarshalBinary(b[:len(b)-1]) == nil || tc.out.UnmarshalBinary(append(b, 0)) == nil {
			t.Errorf("%T: a payload of the wrong size accepted", tc.in)
		}
	}
	// Pos is what the old GameMove was on the wire: X, Y, Step big-endian.
	b, _ := (&Pos{X: 1, Y: 2, Step: 0x0a0b0c0d}).AppendBinary(nil)
	if want := []byte{1, 2, 0x0a, 0x0b, 0x0c, 0x0d}; !bytes.Equal(b, want) {
		t.Errorf("Pos: % x, want % x", b, want)
	}
}

// TestEveryCodec: the messages cross each codec a player can pick.
func TestEveryCodec(t *testing.T) {
	msgs := []any{&Pos{X: 3, Y: 4, Step: 99}, &Hello{Round: 2, Claims: 1},
		&Claim{Round: 2, Coin: 5, Player: uuid.New(), Name: nameBytes("zoë")}}
	for _, name := range []string{"binary", "msgpack", "json"} {
		c, err := codec.New(name, message.Default)
		if err != nil {
			t.Fatal(err)
		}
		var stream []byte
		for _, m := range msgs {
			if stream, err = c.AppendFrame(stream, m); err != nil {
				t.Fatalf("%s: %T: %v", name, m, err)
			}
		}
		dec := c.NewDecoder(bytes.NewReader(stream))
		for _, m := range msgs {
			got, _, err := dec.Decode()
			if err != nil || !reflect.DeepEqual(got, m) {
				t.Errorf("%s: %+v came back as %+v, %v", name, m, got, err)
			}
		}
	}
}

func TestNameBytes(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "",
		"ann":                   "ann",
		"exactly-sixteen!":      "exactly-sixteen!",
		"seventeen-letters":     "seventeen-letter",
		"ééééééééé":             "éééééééé", // 18 bytes: cut before the rune that would not fit
		"abcdefghijklmno\u00e9": "abcdefghijklmno",
	} {
		if got := nameString(nameBytes(in)); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
}

func FuzzClaim(f *testing.F) {
	b, _ := (&Claim{Round: 1, Coin: 2, Player: uuid.New(), Name: nameBytes("bob")}).AppendBinary(nil)
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		var c Claim
		if c.UnmarshalBinary(p) != nil {
			return
		}
		b, err := c.AppendBinary(nil)
		if err != nil || !bytes.Equal(b, p) {
			t.Fatalf("% x -> %+v -> % x, %v", p, c, b, err)
		}
		// Whatever came, the world takes it without harm.
		w := newWorld(uuid.New(), "me", 1, 1, &recorder{}, func(string, ...any) {})
		w.claim(uuid.Nil, &c)
	})
}

// TestPosAllocs: a position, the message sent most, encodes without
// allocating.
func TestPosAllocs(t *testing.T) {
	p := &Pos{X: 1, Y: 2, Step: 3}
	buf := make([]byte, 0, 16)
	if n := testing.AllocsPerRun(100, func() { buf, _ = p.AppendBinary(buf[:0]) }); n != 0 {
		t.Errorf("%v allocations to encode a Pos", n)
	}
}
