package codec_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
	"testing/iotest"

	"github.com/lanmesh/lanmesh/codec"
)

// fuzzDecoder feeds arbitrary bytes to a decoder, whole and one byte at a
// time. Both must agree, must not panic or spin, and every message decoded
// must survive a round trip (decode -> encode -> decode gives it back).
func fuzzDecoder(f *testing.F, pick func(codec.Codec) bool, extra [][]byte) {
	var c codec.Codec
	for _, cc := range codecs(f) {
		if pick(cc) {
			c = cc
		}
	}
	f.Add(encodeAll(f, c, sample(c)))
	for _, m := range sample(c) {
		b, _ := c.AppendFrame(nil, m)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	for _, e := range extra {
		f.Add(e)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		whole, errWhole := decodeAll(bytes.NewReader(data), c)
		split, errSplit := decodeAll(iotest.OneByteReader(bytes.NewReader(data)), c)
		if !sameEncoding(c, whole, split) || (errWhole == nil) != (errSplit == nil) {
			t.Fatalf("whole read gave %v, %v; one byte at a time gave %v, %v", whole, errWhole, split, errSplit)
		}
		if errWhole != nil && errors.Is(errWhole, io.ErrNoProgress) {
			t.Fatalf("decoder spun: %v", errWhole)
		}
		for _, m := range whole {
			frame, err := c.AppendFrame(nil, m)
			if err != nil {
				// A decoded value need not be encodable (for example a binary
				// payload that decodes but breaks the type's own rules).
				continue
			}
			again, err := decodeAll(bytes.NewReader(frame), c)
			if err != nil || len(again) != 1 {
				t.Fatalf("re-decoding %x: %v", frame, err)
			}
			if !sameEncoding(c, again, []any{m}) {
				t.Fatalf("round trip changed %+v into %+v", m, again[0])
			}
		}
	})
}

func FuzzBinaryDecode(f *testing.F) {
	fuzzDecoder(f, func(c codec.Codec) bool { return c.Name() == "binary" }, [][]byte{
		{0}, {1, 1}, {255}, {2, 0x7f}, {3, 2, 'x'}, {5, 1, 'a', '@', 'b'}, {14, 0xe0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2},
	})
}

func FuzzMsgPackDecode(f *testing.F) {
	fuzzDecoder(f, func(c codec.Codec) bool { return c.Name() == "msgpack" }, [][]byte{
		{0xff, 0xff, 0xff, 0xff}, {0, 0, 0, 1, 0xc1},
		frame32([]byte{0x92, 0xa5, 'S', 't', 'a', 't', 'e', 0x81, 0xa3, 'a', 'n', 'y', 0xdd, 0xff, 0xff, 0xff, 0xff}),
		frame32([]byte{0x92, 0xa5, 'S', 't', 'a', 't', 'e', 0x81, 0xa3, 'a', 'n', 'y', 0xc7, 1, 5, 0}),
		frame32([]byte{0x92, 0xa5, 'S', 't', 'a', 't', 'e', 0x81, 0xa3, 'a', 'n', 'y', 0xd6, 0xff, 0, 0, 0, 1}),
		// Repeated keys, at the top and inside a nested struct.
		frame32([]byte{0x92, 0xa5, 'S', 't', 'a', 't', 'e', 0x82, 0xa3, 'a', 'n', 'y', 0xa1, 'a', 0xa3, 'a', 'n', 'y', 0x91, 0x01}),
		frame32([]byte{0x92, 0xa5, 'S', 't', 'a', 't', 'e', 0x81, 0xa6, 'n', 'e', 's', 't', 'e', 'd',
			0x82, 0xa3, 'a', 'n', 'y', 0xa1, 'a', 0xa3, 'a', 'n', 'y', 0xa1, 'b'}),
	})
}

func FuzzJSONDecode(f *testing.F) {
	fuzzDecoder(f, func(c codec.Codec) bool { return c.Name() == "json" }, [][]byte{
		[]byte("\n\n\r\n"), []byte(`["State",{"any":[[[[{}]]]]}]` + "\n"), []byte(`["MsgJoin",{"x":"\u00e9"}]` + "\n"),
		[]byte(`["MsgIdentify",{"username":"a","username":"b"}]` + "\n"), []byte("[\"x\\\"]\n"),
	})
}

// sameEncoding compares messages by their encoding, which is canonical (map
// keys sorted) and, unlike reflect.DeepEqual, equates a NaN with itself.
func sameEncoding(c codec.Codec, a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, errX := c.AppendFrame(nil, a[i])
		y, errY := c.AppendFrame(nil, b[i])
		if (errX == nil) != (errY == nil) || !bytes.Equal(x, y) || reflect.TypeOf(a[i]) != reflect.TypeOf(b[i]) {
			return false
		}
	}
	return true
}
