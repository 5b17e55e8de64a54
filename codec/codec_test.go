package codec_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/message"
)

// Golden bytes from cable_car's byte_messages.py and json_messages.py.
func TestGoldenCableCar(t *testing.T) {
	r := message.NewRegistry()
	id := &message.Identify{Username: "alice", Hostname: "box"}
	tests := []struct {
		c    codec.Codec
		msg  any
		want string
	}{
		{codec.NewBinary(r), id, "0b01616c69636540626f78"},
		{codec.NewBinary(r), message.Join{}, "0202"},
		{codec.NewBinary(r), &message.Retry{}, "0203"},
		{codec.NewBinary(r), message.Quit{}, "0204"},
		// SPEC.md's examples of control messages.
		{codec.NewBinary(r), &message.Ping{Seq: 1, Time: 2}, "0ee0000000010000000000000002"},
		{codec.NewBinary(r), message.Bye{Reason: "bye"}, "05e2627965"},
		{codec.NewJSON(r), id, hex.EncodeToString([]byte(`["MsgIdentify",{"username":"alice","hostname":"box"}]` + "\n"))},
		{codec.NewJSON(r), message.Join{}, hex.EncodeToString([]byte(`["MsgJoin",{}]` + "\n"))},
		{codec.NewJSON(r), message.Quit{}, hex.EncodeToString([]byte(`["MsgQuit",{}]` + "\n"))},
		// Python's json.dumps escapes non-ASCII (ensure_ascii) and not <, >, &.
		{codec.NewJSON(r), &message.Identify{Username: "zoë<&>", Hostname: "𝄞"}, hex.EncodeToString([]byte(`["MsgIdentify",{"username":"zo\u00eb<&>","hostname":"\ud834\udd1e"}]` + "\n"))},
		// msgpack: [uint32 length][fixarray 2, fixstr name, fixmap fields].
		{codec.NewMsgPack(r), message.Join{}, "0000000a92a74d73674a6f696e80"},
		{codec.NewMsgPack(r), id, "0000002a92ab4d73674964656e7469667982a8757365726e616d65a5616c696365a8686f73746e616d65a3626f78"},
	}
	for _, tt := range tests {
		got, err := tt.c.AppendFrame(nil, tt.msg)
		if err != nil {
			t.Fatalf("%s %T: %v", tt.c.Name(), tt.msg, err)
		}
		if hex.EncodeToString(got) != tt.want {
			t.Errorf("%s %T:\n got %x\nwant %s", tt.c.Name(), tt.msg, got, tt.want)
		}
		back, err := decodeAll(bytes.NewReader(got), tt.c)
		if err != nil {
			t.Fatalf("%s: decoding own frame: %v", tt.c.Name(), err)
		}
		same(t, []any{tt.msg}, back)
	}
}

// cable_car reads a 255-byte frame although lanmesh writes at most 254.
func TestBinaryReads255(t *testing.T) {
	r := testRegistry(t)
	frame := append([]byte{255, 0x11, 3, 'b', 'o', 'b'}, bytes.Repeat([]byte{'x'}, 255-6)...)
	got, err := decodeAll(bytes.NewReader(frame), codec.NewBinary(r))
	if err != nil {
		t.Fatal(err)
	}
	if c := got[0].(*chat); c.From != "bob" || len(c.Text) != 249 {
		t.Errorf("got %+v", c)
	}
}

func TestRoundTripEveryCodec(t *testing.T) {
	for _, c := range codecs(t) {
		msgs := sample(c)
		got, err := decodeAll(bytes.NewReader(encodeAll(t, c, msgs)), c)
		if err != nil {
			t.Fatalf("%s: %v", c.Name(), err)
		}
		same(t, msgs, got)
	}
}

// Every split of the stream into two reads, and one byte per read, must give
// back the same messages.
func TestStreamSplitAtEveryByte(t *testing.T) {
	for _, c := range codecs(t) {
		t.Run(c.Name(), func(t *testing.T) {
			msgs := sample(c)
			data := encodeAll(t, c, msgs)
			for i := 0; i <= len(data); i++ {
				got, err := decodeAll(&chunkReader{data: data, chunks: []int{i}}, c)
				if err != nil {
					t.Fatalf("split at %d: %v", i, err)
				}
				same(t, msgs, got)
			}
			got, err := decodeAll(iotest.OneByteReader(bytes.NewReader(data)), c)
			if err != nil {
				t.Fatalf("one byte at a time: %v", err)
			}
			same(t, msgs, got)
			got, err = decodeAll(iotest.DataErrReader(bytes.NewReader(data)), c)
			if err != nil {
				t.Fatalf("data with EOF: %v", err)
			}
			same(t, msgs, got)
		})
	}
}

func TestTruncatedStream(t *testing.T) {
	for _, c := range codecs(t) {
		data := encodeAll(t, c, sample(c)[:1])
		for cut := 1; cut < len(data); cut++ {
			_, err := decodeAll(bytes.NewReader(data[:cut]), c)
			if c.Name() == "json" && err == nil {
				t.Fatalf("json cut at %d: no error", cut)
			}
			if c.Name() != "json" && (!errors.Is(err, codec.ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF)) {
				t.Fatalf("%s cut at %d: got %v, want ErrTruncated", c.Name(), cut, err)
			}
		}
	}
}

func TestEncodeRefusals(t *testing.T) {
	r := testRegistry(t)
	type unregistered struct{ A int }
	long := &chat{From: "x", Text: strings.Repeat("y", 251)} // 2+1+1+251 = 255 > 254
	fits := &chat{From: "x", Text: strings.Repeat("y", 250)}
	tests := []struct {
		c    codec.Codec
		msg  any
		want error
	}{
		{codec.NewBinary(r), long, codec.ErrFrameTooLarge},
		{codec.NewBinary(r), &unregistered{}, codec.ErrNotRegistered},
		{codec.NewBinary(r), &state{}, codec.ErrNoBinaryForm},
		{codec.NewBinary(r), &message.Identify{Username: "a@b", Hostname: "c"}, nil},
		{codec.NewJSON(r), &unregistered{}, codec.ErrNotRegistered},
		{codec.NewMsgPack(r), &unregistered{}, codec.ErrNotRegistered},
		{&codec.JSON{MaxLine: 20}, &state{}, codec.ErrFrameTooLarge},
	}
	small := codec.NewMsgPack(r)
	small.MaxBody = 8
	tests = append(tests, struct {
		c    codec.Codec
		msg  any
		want error
	}{small, &message.Identify{Username: "alice", Hostname: "box"}, codec.ErrFrameTooLarge})
	small2 := codec.NewJSON(r)
	small2.MaxLine = 20
	tests[len(tests)-2].c = small2
	for _, tt := range tests {
		prefix := []byte("keep")
		got, err := tt.c.AppendFrame(prefix, tt.msg)
		if err == nil {
			t.Errorf("%s %T: no error", tt.c.Name(), tt.msg)
			continue
		}
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s %T: got %v, want %v", tt.c.Name(), tt.msg, err, tt.want)
		}
		if string(got) != "keep" {
			t.Errorf("%s %T: refused message left %q in the buffer", tt.c.Name(), tt.msg, got)
		}
	}
	if frame, err := codec.NewBinary(r).AppendFrame(nil, fits); err != nil || len(frame) != 254 {
		t.Errorf("a 254-byte frame: len %d, %v", len(frame), err)
	}
	// A value passed by value whose AppendBinary has a pointer receiver.
	if frame, err := codec.NewBinary(r).AppendFrame(nil, chat{From: "a", Text: "b"}); err != nil || len(frame) != 5 {
		t.Errorf("chat by value: %x, %v", frame, err)
	}
}

func TestBadInput(t *testing.T) {
	r := testRegistry(t)
	bin, mp, js := codec.NewBinary(r), codec.NewMsgPack(r), codec.NewJSON(r)
	deepJSON := `["State",{"any":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}]` + "\n"
	deepMsgpack := append([]byte{0x92, 0xa5, 'S', 't', 'a', 't', 'e', 0x81, 0xa3, 'a', 'n', 'y'}, bytes.Repeat([]byte{0x91}, 100)...)
	deepMsgpack = append(deepMsgpack, 0xc0)
	tests := []struct {
		name string
		c    codec.Codec
		in   []byte
		want error
	}{
		{"binary length 0", bin, []byte{0, 1}, codec.ErrBadLength},
		{"binary length 1", bin, []byte{1, 1}, codec.ErrBadLength},
		{"binary truncated", bin, []byte{11, 1, 'a', '@'}, codec.ErrTruncated},
		{"binary unknown code", bin, []byte{2, 0x7f}, codec.ErrUnknownType},
		{"binary code 0", bin, []byte{2, 0}, codec.ErrUnknownType},
		{"binary payload on empty type", bin, []byte{3, 2, 'x'}, codec.ErrMalformed},
		{"binary identify without @", bin, []byte{5, 1, 'a', 'b', 'c'}, codec.ErrMalformed},
		{"binary identify with two @", bin, []byte{5, 1, 'a', '@', '@'}, codec.ErrMalformed},
		{"binary no binary form", bin, []byte{2, 0x12}, codec.ErrNoBinaryForm},
		{"binary ping short", bin, []byte{4, 0xe0, 1, 2}, codec.ErrMalformed},
		{"msgpack prefix over max", mp, []byte{0x7f, 0xff, 0xff, 0xff, 0x92}, codec.ErrFrameTooLarge},
		{"msgpack prefix 4GiB-1", mp, []byte{0xff, 0xff, 0xff, 0xff}, codec.ErrFrameTooLarge},
		{"msgpack truncated body", mp, []byte{0, 0, 0, 10, 0x92}, codec.ErrTruncated},
		{"msgpack empty body", mp, []byte{0, 0, 0, 0}, codec.ErrMalformed},
		{"msgpack not an array", mp, frame32([]byte{0xc0}), codec.ErrMalformed},
		{"msgpack array of 3", mp, frame32([]byte{0x93, 0xa1, 'x', 0x80, 0xc0}), codec.ErrMalformed},
		{"msgpack unknown name", mp, frame32([]byte{0x92, 0xa3, 'N', 'o', 'p', 0x80}), codec.ErrUnknownType},
		{"msgpack name not a string", mp, frame32([]byte{0x92, 0x01, 0x80}), codec.ErrMalformed},
		{"msgpack fields not a map", mp, frame32([]byte{0x92, 0xa7, 'M', 's', 'g', 'J', 'o', 'i', 'n', 0x90}), codec.ErrMalformed},
		{"msgpack str32 claims 4GiB", mp, frame32([]byte{0x92, 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'}), codec.ErrMalformed},
		{"msgpack array32 claims 4G items", mp, frame32([]byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}), codec.ErrMalformed},
		{"msgpack map32 claims 4G pairs", mp, frame32([]byte{0x92, 0xa5, 'S', 't', 'a', 't', 'e', 0xdf, 0xff, 0xff, 0xff, 0xff}), codec.ErrMalformed},
		{"msgpack bin32 claims 4GiB", mp, frame32([]byte{0x92, 0xa5, 'S', 't', 'a', 't', 'e', 0x81, 0xa3, 'a', 'n', 'y', 0xc6, 0xff, 0xff, 0xff, 0xff}), codec.ErrMalformed},
		{"msgpack reserved 0xc1", mp, frame32([]byte{0x92, 0xc1, 0x80}), codec.ErrMalformed},
		{"msgpack trailing bytes", mp, frame32([]byte{0x92, 0xa7, 'M', 's', 'g', 'J', 'o', 'i', 'n', 0x80, 0x00}), codec.ErrMalformed},
		{"msgpack deep nesting", mp, frame32(deepMsgpack), codec.ErrTooDeep},
		{"msgpack wrong field type", mp, frame32([]byte{0x92, 0xab, 'M', 's', 'g', 'I', 'd', 'e', 'n', 't', 'i', 'f', 'y', 0x81, 0xa8, 'u', 's', 'e', 'r', 'n', 'a', 'm', 'e', 0x92, 1, 2}), codec.ErrMalformed},
		{"json unknown name", js, []byte(`["Nope",{}]` + "\n"), codec.ErrUnknownType},
		{"json not an array", js, []byte(`{"a":1}` + "\n"), codec.ErrMalformed},
		{"json array of 1", js, []byte(`["MsgJoin"]` + "\n"), codec.ErrMalformed},
		{"json array of 3", js, []byte(`["MsgJoin",{},1]` + "\n"), codec.ErrMalformed},
		{"json name not a string", js, []byte(`[1,{}]` + "\n"), codec.ErrMalformed},
		{"json fields not an object", js, []byte(`["MsgJoin",[]]` + "\n"), codec.ErrMalformed},
		{"json garbage", js, []byte("\x00\x01\x02garbage\n"), codec.ErrMalformed},
		{"json invalid utf-8", js, []byte("[\"MsgIdentify\",{\"username\":\"\xff\"}]\n"), codec.ErrMalformed},
		{"json deep nesting", js, []byte(deepJSON), codec.ErrTooDeep},
		{"json wrong field type", js, []byte(`["MsgIdentify",{"username":5}]` + "\n"), codec.ErrMalformed},
		{"json line over max", &codec.JSON{MaxLine: 16}, []byte(strings.Repeat("x", 100) + "\n"), codec.ErrFrameTooLarge},
		{"json unterminated line over max", &codec.JSON{MaxLine: 16}, []byte(strings.Repeat("x", 100)), codec.ErrFrameTooLarge},
	}
	// A JSON codec built as a literal has no types: give those cases a real one.
	for i := range tests {
		if j, ok := tests[i].c.(*codec.JSON); ok && j != js {
			c := codec.NewJSON(r)
			c.MaxLine = j.MaxLine
			tests[i].c = c
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.c.NewDecoder(bytes.NewReader(tt.in))
			m, _, err := d.Decode()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v (%T), want %v", err, m, tt.want)
			}
			if m != nil {
				t.Errorf("a message came with the error: %+v", m)
			}
			if !codec.Recoverable(err) {
				// Framing errors are final.
				if _, _, again := d.Decode(); again == nil || again == io.EOF {
					t.Errorf("after a framing error, Decode returned %v", again)
				}
			}
		})
	}
}

func frame32(body []byte) []byte {
	return append([]byte{byte(len(body) >> 24), byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
}

// After a frame-level error the decoder goes on: nothing before or after the
// bad frame is lost.
func TestRecoverableErrorKeepsStream(t *testing.T) {
	r := testRegistry(t)
	for _, c := range codecs(t) {
		good := encodeAll(t, c, []any{message.Join{}})
		var bad []byte
		switch c.Name() {
		case "binary":
			bad = []byte{2, 0x7f}
		case "msgpack":
			bad = frame32([]byte{0x92, 0xa3, 'N', 'o', 'p', 0x80})
		case "json":
			bad = []byte(`["Nope",{}]` + "\n")
		}
		d := c.NewDecoder(bytes.NewReader(append(append(append([]byte{}, good...), bad...), good...)))
		if m, _, err := d.Decode(); err != nil || m == nil {
			t.Fatalf("%s: first: %v", c.Name(), err)
		}
		if _, _, err := d.Decode(); !errors.Is(err, codec.ErrUnknownType) {
			t.Fatalf("%s: second: %v", c.Name(), err)
		}
		if m, _, err := d.Decode(); err != nil || m == nil {
			t.Fatalf("%s: third: %v", c.Name(), err)
		}
		_ = r
	}
}

// A length prefix or a msgpack header that claims a huge size must not make
// the decoder allocate for it.
func TestHugeClaimsDoNotAllocate(t *testing.T) {
	r := testRegistry(t)
	mp := codec.NewMsgPack(r)
	mp.MaxBody = codec.MaxMsgPackFrame // the most a prefix can claim
	claims := [][]byte{
		{0xff, 0xff, 0xff, 0xfe, 0x92, 0xa1}, // prefix claims 4 GiB, 2 bytes follow
		frame32([]byte{0x92, 0xa5, 'S', 't', 'a', 't', 'e', 0x81, 0xa4, 'p', 'a', 't', 'h', 0xdd, 0x7f, 0xff, 0xff, 0xff}),
	}
	for i, in := range claims {
		allocs := testing.AllocsPerRun(5, func() {
			d := mp.NewDecoder(bytes.NewReader(in))
			_, _, _ = d.Decode()
		})
		bytesPerRun := measureBytes(func() {
			d := mp.NewDecoder(bytes.NewReader(in))
			_, _, _ = d.Decode()
		})
		if bytesPerRun > 64<<10 {
			t.Errorf("claim %d: decoding allocated %d bytes (%v allocs)", i, bytesPerRun, allocs)
		}
	}
}

// A msgpack map may name a key twice. At the top level the last value stands,
// as in encoding/json; inside a nested struct, a key the msgpack library
// cannot decode twice (an interface field) is refused. Neither panics, and the
// stream goes on.
func TestMsgPackRepeatedKeys(t *testing.T) {
	mp := codec.NewMsgPack(testRegistry(t))
	head := []byte{0x92, 0xa5, 'S', 't', 'a', 't', 'e'}
	key := func(s string) []byte { return append([]byte{0xa0 | byte(len(s))}, s...) }
	body := func(parts ...[]byte) []byte {
		return frame32(append(append([]byte{}, head...), bytes.Join(parts, nil)...))
	}
	good := encodeAll(t, mp, []any{message.Join{}})
	tests := []struct {
		name string
		in   []byte
		want func(*state) bool // nil: refused as malformed
	}{
		{"any twice", body([]byte{0x82}, key("any"), key("a"), key("any"), key("b")),
			func(s *state) bool { return s.Any == "b" }},
		{"any array then string", body([]byte{0x82}, key("any"), []byte{0x91}, key("x"), key("any"), key("y")),
			func(s *state) bool { return s.Any == "y" }},
		{"any then nil", body([]byte{0x82}, key("any"), key("a"), key("any"), []byte{0xc0}),
			func(s *state) bool { return s.Any == nil }},
		{"path twice", body([]byte{0x82}, key("path"), []byte{0x92, 1, 2}, key("path"), []byte{0x91, 3}),
			func(s *state) bool { return len(s.Path) == 1 && s.Path[0] == 3 }},
		{"nested twice", body([]byte{0x82}, key("nested"), []byte{0x81}, key("any"), key("a"), key("nested"), []byte{0x81}, key("name"), key("n")),
			func(s *state) bool { return s.Nested != nil && s.Nested.Any == nil && s.Nested.Name == "n" }},
		{"any twice inside nested", body([]byte{0x81}, key("nested"), []byte{0x82}, key("any"), key("a"), key("any"), key("b")), nil},
		{"any arrays twice inside nested", body([]byte{0x81}, key("nested"), []byte{0x82}, key("any"), []byte{0x91}, key("a"), key("any"), []byte{0x91}, key("b")), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mp.NewDecoder(bytes.NewReader(append(append([]byte{}, tt.in...), good...)))
			m, _, err := d.Decode()
			if tt.want == nil {
				if !errors.Is(err, codec.ErrMalformed) || m != nil {
					t.Fatalf("got %+v, %v; want ErrMalformed", m, err)
				}
			} else if s, ok := m.(*state); err != nil || !ok || !tt.want(s) {
				t.Fatalf("got %+v, %v", m, err)
			}
			if m, _, err := d.Decode(); err != nil || m == nil {
				t.Fatalf("the frame after: %v", err)
			}
		})
	}
}

// TestDecodeFrameTo: frames decode into values allocated together
// (Type.NewArray) as DecodeFrame decodes them into values of their own; a
// frame of another type's code, or cut short, is refused.
func TestDecodeFrameTo(t *testing.T) {
	r := testRegistry(t)
	c := codec.NewBinary(r)
	mt := c.TypeOf(0x10)
	if mt == nil || mt.NewArray == nil || c.TypeOf(0xfe) != nil {
		t.Fatalf("TypeOf: %v, %v", mt, c.TypeOf(0xfe))
	}
	vs := make([]any, 3)
	mt.NewArray(vs)
	for i, v := range vs {
		frame, err := c.AppendFrame(nil, &move{Player: uint8(i), X: -3, Seq: uint32(i) + 7})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.DecodeFrameTo(frame, mt, v); err != nil {
			t.Fatal(err)
		}
		alone, err := c.DecodeFrame(frame)
		if err != nil || !reflect.DeepEqual(alone, v) {
			t.Fatalf("into an array %v; alone %v, %v", v, alone, err)
		}
	}
	if vs[0] == vs[1] || vs[0].(*move).Seq != 7 || vs[2].(*move).Seq != 9 {
		t.Fatalf("values %v", vs)
	}
	chatFrame, err := c.AppendFrame(nil, &chat{Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DecodeFrameTo(chatFrame, mt, new(move)); !errors.Is(err, codec.ErrMalformed) {
		t.Errorf("a Chat frame into a Move: %v", err)
	}
	frame, _ := c.AppendFrame(nil, &move{})
	if err := c.DecodeFrameTo(frame[:len(frame)-1], mt, new(move)); !errors.Is(err, codec.ErrBadLength) {
		t.Errorf("a frame cut short: %v", err)
	}
}
