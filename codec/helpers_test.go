package codec_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/message"
)

// move is a typical game message: fixed size, value-receiver AppendBinary,
// and an UnmarshalBinary that does not allocate.
type move struct {
	Player uint8  `json:"player"`
	X      int16  `json:"x"`
	Y      int16  `json:"y"`
	Seq    uint32 `json:"seq"`
	Pad    [21]byte
}

func (m move) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, m.Player)
	b = binary.BigEndian.AppendUint16(b, uint16(m.X))
	b = binary.BigEndian.AppendUint16(b, uint16(m.Y))
	b = binary.BigEndian.AppendUint32(b, m.Seq)
	return append(b, m.Pad[:]...), nil
}

func (m *move) UnmarshalBinary(p []byte) error {
	if len(p) != 30 {
		return fmt.Errorf("move: %d bytes, want 30", len(p))
	}
	m.Player = p[0]
	m.X = int16(binary.BigEndian.Uint16(p[1:]))
	m.Y = int16(binary.BigEndian.Uint16(p[3:]))
	m.Seq = binary.BigEndian.Uint32(p[5:])
	copy(m.Pad[:], p[9:])
	return nil
}

// chat carries a variable-length string, with a pointer-receiver AppendBinary.
type chat struct {
	From string `json:"from"`
	Text string `json:"text"`
}

func (m *chat) AppendBinary(b []byte) ([]byte, error) {
	if len(m.From) > 255 {
		return b, errors.New("chat: from too long")
	}
	b = append(b, byte(len(m.From)))
	b = append(b, m.From...)
	return append(b, m.Text...), nil
}

func (m *chat) UnmarshalBinary(p []byte) error {
	if len(p) < 1 || int(p[0]) > len(p)-1 {
		return errors.New("chat: bad length")
	}
	m.From, m.Text = string(p[1:1+p[0]]), string(p[1+p[0]:])
	return nil
}

// state is a rich message for msgpack and JSON only.
type state struct {
	Name   string            `json:"name"`
	Scores map[string]int    `json:"scores"`
	Path   []float64         `json:"path"`
	Nested *state            `json:"nested,omitempty"`
	Tags   []string          `json:"tags"`
	Any    any               `json:"any"`
	Extra  map[string]string `json:"extra,omitempty"`
}

type ping struct{}

func testRegistry(t testing.TB) *message.Registry {
	t.Helper()
	r := message.NewRegistry()
	for _, err := range []error{
		message.Register[move](r, 0x10, "Move"),
		message.Register[chat](r, 0x11, "Chat"),
		message.Register[state](r, 0x12, "State"),
		message.Register[ping](r, 0x13, "Ping"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func codecs(t testing.TB) []codec.Codec {
	r := testRegistry(t)
	return []codec.Codec{codec.NewBinary(r), codec.NewMsgPack(r), codec.NewJSON(r)}
}

// sample returns messages every codec can carry, and for msgpack and JSON a
// rich one too.
func sample(c codec.Codec) []any {
	msgs := []any{
		&message.Identify{Username: "alice", Hostname: "box"},
		&message.Join{}, message.Retry{}, &message.Quit{},
		&move{Player: 3, X: -7, Y: 300, Seq: 1 << 30},
		&chat{From: "bob", Text: "héllo, wörld 😀 <&>"},
		&ping{},
		&message.Ping{Seq: 9, Time: -1},
		&message.Bye{Reason: "done"},
		&message.Request{ID: 7}, message.Reply{ID: 7}, &message.Refuse{ID: 8, Reason: "no responder"},
	}
	if c.Name() != "binary" {
		msgs = append(msgs, &state{Name: "s", Scores: map[string]int{"a": 1}, Path: []float64{1.5, -2},
			Nested: &state{Name: "inner", Tags: []string{"x"}}, Tags: []string{}, Any: "v"})
	}
	return msgs
}

func encodeAll(t testing.TB, c codec.Codec, msgs []any) []byte {
	t.Helper()
	var buf []byte
	for _, m := range msgs {
		var err error
		if buf, err = c.AppendFrame(buf, m); err != nil {
			t.Fatalf("%s: encoding %T: %v", c.Name(), m, err)
		}
	}
	return buf
}

func decodeAll(r io.Reader, c codec.Codec) ([]any, error) {
	d := c.NewDecoder(r)
	var out []any
	for range 10000 {
		m, _, err := d.Decode()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
	return out, errors.New("decoder did not end")
}

// same compares what was sent (values or pointers) with what arrived
// (pointers), treating a nil and an empty map or slice alike as JSON does.
func same(t testing.TB, sent, got []any) {
	t.Helper()
	if len(sent) != len(got) {
		t.Fatalf("got %d messages, want %d", len(got), len(sent))
	}
	for i := range sent {
		want := reflect.ValueOf(sent[i])
		if want.Kind() != reflect.Pointer {
			p := reflect.New(want.Type())
			p.Elem().Set(want)
			want = p
		}
		if !reflect.DeepEqual(want.Interface(), got[i]) {
			t.Errorf("message %d: got %+v, want %+v", i, got[i], want.Interface())
		}
	}
}

// chunkReader returns its data in the given chunk sizes, then the rest.
type chunkReader struct {
	data   []byte
	chunks []int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(r.data)
	if len(r.chunks) > 0 {
		n, r.chunks = min(r.chunks[0], n), r.chunks[1:]
	}
	n = copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

var _ = bytes.NewReader
