package main

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/message"
)

// TestWireForms: each message travels in the binary form the codec derives
// for it, of the size the package doc gives, and a frame of the wrong
// size is refused.
func TestWireForms(t *testing.T) {
	id := uuid.MustParse("01020304-0506-0708-090a-0b0c0d0e0f10")
	bin := codec.NewBinary(message.Default)
	for _, tc := range []struct {
		in   any
		size int
	}{
		{&Pos{X: 39, Y: 15, Step: 0x01020304}, 6},
		{&Hello{Round: 7, Claims: 3}, 5},
		{&Claim{Round: 3, Coin: 9, Player: id, Name: nameBytes("ann")}, 37},
	} {
		f, err := bin.AppendFrame(nil, tc.in)
		if err != nil || len(f) != 2+tc.size {
			t.Fatalf("%T: % x, %v; want a %d-byte payload", tc.in, f, err, tc.size)
		}
		got, _, err := bin.NewDecoder(bytes.NewReader(f)).Decode()
		if err != nil || !reflect.DeepEqual(got, tc.in) {
			t.Fatalf("%T: %+v came back as %+v, %v", tc.in, tc.in, got, err)
		}
		short := append([]byte{f[0] - 1}, f[1:len(f)-1]...)
		if _, _, err := bin.NewDecoder(bytes.NewReader(short)).Decode(); err == nil {
			t.Errorf("%T: a payload a byte short accepted", tc.in)
		}
	}
	// Pos is what the old GameMove was on the wire: X, Y, Step big-endian.
	f, _ := bin.AppendFrame(nil, &Pos{X: 1, Y: 2, Step: 0x0a0b0c0d})
	if want := []byte{8, 0x32, 1, 2, 0x0a, 0x0b, 0x0c, 0x0d}; !bytes.Equal(f, want) {
		t.Errorf("Pos: % x, want % x", f, want)
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

var claimForm, _ = codec.DeriveBinary(reflect.TypeFor[Claim]())

func FuzzClaim(f *testing.F) {
	b, _ := claimForm.Append(nil, &Claim{Round: 1, Coin: 2, Player: uuid.New(), Name: nameBytes("bob")})
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		var c Claim
		if claimForm.Unmarshal(p, &c) != nil {
			return
		}
		b, err := claimForm.Append(nil, &c)
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
	bin := codec.NewBinary(message.Default)
	p := &Pos{X: 1, Y: 2, Step: 3}
	buf := make([]byte, 0, 16)
	if n := testing.AllocsPerRun(100, func() { buf, _ = bin.AppendFrame(buf[:0], p) }); n != 0 {
		t.Errorf("%v allocations to encode a Pos", n)
	}
}
