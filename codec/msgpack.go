package codec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// MsgPack frame limits.
const (
	// DefaultMaxFrame is the default largest msgpack frame body and JSON line.
	DefaultMaxFrame = 1 << 20
	// MaxMsgPackFrame is the largest body the 4-byte prefix can describe:
	// 4 GiB - 1.
	MaxMsgPackFrame = 1<<32 - 1
	// DefaultMaxDepth is how deeply a msgpack or JSON body may nest.
	DefaultMaxDepth = 32
	msgpackHeader   = 4
)

// MsgPack frames messages as [4-byte big-endian body length][body], where the
// body is the msgpack array [name, fields] and fields is the message's struct
// as a msgpack map (keys from msgpack tags, else json tags, else field names).
type MsgPack struct {
	types Types
	// MaxBody is the largest frame body accepted and written, in bytes
	// (default DefaultMaxFrame, at most MaxMsgPackFrame). A decoder's memory is
	// bounded by it, so raise it only for peers you trust with large messages.
	MaxBody int
	// MaxDepth is how deeply a body may nest (default DefaultMaxDepth).
	MaxDepth int

	encoders sync.Pool // *msgpackEncoder
}

var _ Codec = (*MsgPack)(nil)

// NewMsgPack returns the msgpack codec with default limits.
func NewMsgPack(types Types) *MsgPack {
	return &MsgPack{types: types, MaxBody: DefaultMaxFrame, MaxDepth: DefaultMaxDepth}
}

// Name returns "msgpack".
func (*MsgPack) Name() string { return "msgpack" }

func (c *MsgPack) maxBody() int {
	switch {
	case c.MaxBody <= 0:
		return DefaultMaxFrame
	case uint64(c.MaxBody) > MaxMsgPackFrame:
		return MaxMsgPackFrame
	}
	return c.MaxBody
}

// MaxFrame returns the largest frame, its 4-byte prefix included.
func (c *MsgPack) MaxFrame() int { return c.maxBody() + msgpackHeader }

func (c *MsgPack) maxDepth() int {
	if c.MaxDepth <= 0 {
		return DefaultMaxDepth
	}
	return c.MaxDepth
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

type msgpackEncoder struct {
	w   appendWriter
	enc *msgpack.Encoder
}

// AppendFrame appends msg as one msgpack frame.
func (c *MsgPack) AppendFrame(dst []byte, msg any) ([]byte, error) {
	t, err := c.types.TypeOf(msg)
	if err != nil {
		return dst, err
	}
	e, _ := c.encoders.Get().(*msgpackEncoder)
	if e == nil {
		e = &msgpackEncoder{}
		e.enc = msgpack.NewEncoder(&e.w)
		e.enc.SetCustomStructTag("json")
		e.enc.UseCompactInts(true)
		e.enc.SetSortMapKeys(true) // the same message always makes the same bytes
	}
	start := len(dst)
	e.w.b = append(dst, 0, 0, 0, 0)
	err = e.enc.EncodeArrayLen(2)
	if err == nil {
		err = e.enc.EncodeString(t.Name)
	}
	if err == nil {
		if t.Empty {
			err = e.enc.EncodeMapLen(0)
		} else {
			err = encodeFields(e.enc, msg)
		}
	}
	dst = e.w.b
	e.w.b = nil
	c.encoders.Put(e)
	if err != nil {
		return dst[:start], fmt.Errorf("codec: encoding %s: %w", t.Name, err)
	}
	body := len(dst) - start - msgpackHeader
	if body > c.maxBody() {
		return dst[:start], fmt.Errorf("%w: %s needs %d bytes, limit %d", ErrFrameTooLarge, t.Name, body, c.maxBody())
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(body))
	return dst, nil
}

// NewDecoder returns a decoder of msgpack frames from r.
func (c *MsgPack) NewDecoder(r io.Reader) Decoder {
	d := &msgpackDecoder{
		types:    c.types,
		maxBody:  c.maxBody(),
		maxDepth: c.maxDepth(),
		in:       newStreamBuf(r, 4096, c.maxBody()+msgpackHeader),
	}
	d.dec = msgpack.NewDecoder(&d.body)
	d.dec.SetCustomStructTag("json")
	return d
}

type msgpackDecoder struct {
	types    Types
	maxBody  int
	maxDepth int
	in       *streamBuf
	body     bytes.Reader
	dec      *msgpack.Decoder
}

func (d *msgpackDecoder) Decode() (any, int, error) {
	if err := d.in.fill(msgpackHeader); err != nil {
		return nil, 0, err
	}
	n := binary.BigEndian.Uint32(d.in.buffered())
	if uint64(n) > uint64(d.maxBody) {
		return nil, 0, d.in.fail(fmt.Errorf("%w: prefix says %d bytes, limit %d", ErrFrameTooLarge, n, d.maxBody))
	}
	size := msgpackHeader + int(n)
	if err := d.in.fill(size); err != nil {
		return nil, 0, err
	}
	body := d.in.buffered()[msgpackHeader:size]
	d.in.consume(size)
	v, err := d.decodeBody(body)
	return v, size, err
}

func (d *msgpackDecoder) decodeBody(body []byte) (any, error) {
	// The scan proves every length in the body fits in the body and the
	// nesting is bounded, so the library below never allocates on a claim.
	if err := scanMsgPack(body, d.maxDepth); err != nil {
		return nil, err
	}
	d.body.Reset(body)
	d.dec.Reset(&d.body)
	d.dec.SetCustomStructTag("json")
	if n, err := d.dec.DecodeArrayLen(); err != nil || n != 2 {
		return nil, fmt.Errorf("%w: body is not a [name, fields] array", ErrMalformed)
	}
	name, err := d.dec.DecodeString()
	if err != nil {
		return nil, fmt.Errorf("%w: type name: %w", ErrMalformed, err)
	}
	t := d.types.ByName(name)
	if t == nil {
		return nil, fmt.Errorf("%w: name %q", ErrUnknownType, name)
	}
	v := t.New()
	// Every type's fields are a map; an Empty type's map is skipped, so a
	// newer peer may add fields to it.
	if rest := body[len(body)-d.body.Len():]; len(rest) == 0 || !isMsgPackMap(rest[0]) {
		return nil, fmt.Errorf("%w: %s: fields are not a map", ErrMalformed, t.Name)
	}
	var err2 error
	if t.Empty {
		err2 = d.dec.Skip()
	} else {
		err2 = decodeFields(d.dec, v)
	}
	if err2 != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, t.Name, err2)
	}
	if d.body.Len() != 0 {
		return nil, fmt.Errorf("%w: %s: %d bytes after the message", ErrMalformed, t.Name, d.body.Len())
	}
	return v, nil
}
