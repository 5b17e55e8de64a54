package codec

import (
	"encoding"
	"fmt"
	"io"
	"reflect"
)

// Binary frame limits. The length byte counts the whole frame, its two header
// bytes included.
const (
	// MaxBinaryFrame is the largest frame the binary codec writes. 255 would
	// fit the length byte, but cable_car programs written against its docs
	// expect at most 254; lanmesh still reads 255.
	MaxBinaryFrame = 254
	// MaxBinaryPayload is the largest payload the binary codec writes.
	MaxBinaryPayload = MaxBinaryFrame - 2
	binaryHeader     = 2
	binaryReadBuffer = 4096
)

// Binary is the compact byte format [length][code][payload] (SPEC.md
// section 2), which cable_car programs also speak. It carries types that
// are Empty, that implement encoding.BinaryAppender (on the value or the
// pointer) and, on the pointer, encoding.BinaryUnmarshaler, and plain
// structs of fixed-size fields and short strings, whose form it derives
// (DeriveBinary): a hand-written form wins where there is one.
type Binary struct {
	types Types
}

var _ Codec = (*Binary)(nil)

// NewBinary returns the binary codec over the given types.
func NewBinary(types Types) *Binary { return &Binary{types: types} }

// Name returns "binary".
func (*Binary) Name() string { return "binary" }

// MaxFrame returns 255: the binary codec reads frames up to 255 bytes and
// writes them up to MaxBinaryFrame.
func (*Binary) MaxFrame() int { return 255 }

// AppendFrame appends msg as one binary frame. It does not allocate when msg
// is a pointer (or a value whose AppendBinary has a value receiver) and dst
// has room.
func (c *Binary) AppendFrame(dst []byte, msg any) ([]byte, error) {
	t, err := c.types.TypeOf(msg)
	if err != nil {
		return dst, err
	}
	return c.AppendFrameOf(dst, t, msg)
}

// AppendFrameOf is AppendFrame for a caller that has looked up msg's
// registered type t already (a sender of one type after another keeps it:
// the look-up is a good part of a small message's cost). t must be msg's.
func (c *Binary) AppendFrameOf(dst []byte, t *Type, msg any) ([]byte, error) {
	var err error
	start := len(dst)
	dst = append(dst, 0, t.Code)
	if !t.Empty {
		m, ok := msg.(encoding.BinaryAppender)
		if !ok && HandWritten(t.GoType) {
			m, ok = addressable(t, msg)
		}
		switch {
		case ok:
			dst, err = m.AppendBinary(dst)
		default:
			var f *BinaryForm
			if f, err = DeriveBinary(t.GoType); err != nil {
				return dst[:start], fmt.Errorf("%w: %s: %w", ErrNoBinaryForm, t.Name, err)
			}
			dst, err = f.Append(dst, msg)
		}
		if err != nil {
			return dst[:start], fmt.Errorf("codec: encoding %s: %w", t.Name, err)
		}
	}
	n := len(dst) - start
	if n > MaxBinaryFrame {
		return dst[:start], fmt.Errorf("%w: %s needs %d bytes, binary frames hold %d", ErrFrameTooLarge, t.Name, n, MaxBinaryFrame)
	}
	dst[start] = byte(n)
	return dst, nil
}

// Carries reports whether the binary codec can carry t: by a hand-written
// AppendBinary/UnmarshalBinary pair, or by a form it derives. Otherwise the
// error wraps ErrNoBinaryForm and names the field that stops derivation and
// the fix.
func (*Binary) Carries(t *Type) error {
	if t.Empty || HandWritten(t.GoType) {
		return nil
	}
	pt := reflect.PointerTo(t.GoType)
	if t.GoType.Implements(appenderType) || pt.Implements(appenderType) || pt.Implements(unmarshalerType) {
		return fmt.Errorf("%w: %s: %s has only half of AppendBinary/UnmarshalBinary: give it both, or neither (a plain struct gets a derived form)",
			ErrNoBinaryForm, t.Name, t.GoType.Name())
	}
	if _, err := DeriveBinary(t.GoType); err != nil {
		return fmt.Errorf("%s: %w", t.Name, err)
	}
	return nil
}

// addressable handles a value passed by value whose AppendBinary has a pointer
// receiver. It copies the value, so it allocates; pointers are the fast path.
func addressable(t *Type, msg any) (encoding.BinaryAppender, bool) {
	v := reflect.ValueOf(msg)
	if v.Kind() == reflect.Pointer {
		return nil, false
	}
	p := reflect.New(t.GoType)
	p.Elem().Set(v)
	m, ok := p.Interface().(encoding.BinaryAppender)
	return m, ok
}

// NewDecoder returns a decoder of binary frames from r.
func (c *Binary) NewDecoder(r io.Reader) Decoder {
	return &binaryDecoder{types: c.types, in: newStreamBuf(r, binaryReadBuffer, binaryReadBuffer)}
}

type binaryDecoder struct {
	types Types
	in    *streamBuf
}

// ReadFrame returns the next frame's code and payload without decoding it.
// The payload is valid until the next call.
func (d *binaryDecoder) ReadFrame() (code byte, payload []byte, err error) {
	if err := d.in.fill(1); err != nil {
		return 0, nil, err
	}
	n := int(d.in.buffered()[0])
	if n < binaryHeader {
		return 0, nil, d.in.fail(fmt.Errorf("%w: length byte %d (a frame is at least 2 bytes)", ErrBadLength, n))
	}
	if err := d.in.fill(n); err != nil {
		return 0, nil, err
	}
	frame := d.in.buffered()[:n]
	d.in.consume(n)
	return frame[1], frame[2:], nil
}

func (d *binaryDecoder) Decode() (any, int, error) {
	code, payload, err := d.ReadFrame()
	if err != nil {
		return nil, 0, err
	}
	size := len(payload) + binaryHeader
	v, err := decodeBinary(d.types, code, payload)
	return v, size, err
}

// DecodeFrame decodes frame, which must be exactly one binary frame: what a
// datagram carries (a lane message), where a stream decoder would only add
// copies. Its errors are Decode's for one frame, and ErrBadLength when the
// frame's length byte is not len(frame).
func (c *Binary) DecodeFrame(frame []byte) (any, error) {
	if len(frame) < binaryHeader || int(frame[0]) != len(frame) {
		n := -1
		if len(frame) > 0 {
			n = int(frame[0])
		}
		return nil, fmt.Errorf("%w: a frame of %d bytes says %d", ErrBadLength, len(frame), n)
	}
	return decodeBinary(c.types, frame[1], frame[binaryHeader:])
}

// TypeOf returns the type of binary code code, or nil.
func (c *Binary) TypeOf(code byte) *Type { return c.types.ByCode(code) }

// DecodeFrameTo is DecodeFrame into v, a pointer to a zero value of t's
// Go type (from t.New or t.NewArray), for a caller that allocates the
// values of many frames at once; frame's code must be t's. On error v may
// hold part of the frame: do not use it.
func (c *Binary) DecodeFrameTo(frame []byte, t *Type, v any) error {
	if len(frame) < binaryHeader || int(frame[0]) != len(frame) {
		n := -1
		if len(frame) > 0 {
			n = int(frame[0])
		}
		return fmt.Errorf("%w: a frame of %d bytes says %d", ErrBadLength, len(frame), n)
	}
	if frame[1] != t.Code {
		return fmt.Errorf("%w: code 0x%02x is not %s's (0x%02x)", ErrMalformed, frame[1], t.Name, t.Code)
	}
	return decodeInto(t, frame[binaryHeader:], v)
}

// decodeBinary decodes the payload of a frame of type code.
func decodeBinary(types Types, code byte, payload []byte) (any, error) {
	t := types.ByCode(code)
	if t == nil {
		return nil, fmt.Errorf("%w: code 0x%02x", ErrUnknownType, code)
	}
	v := t.New()
	if err := decodeInto(t, payload, v); err != nil {
		return nil, err
	}
	return v, nil
}

// decodeInto decodes payload, of type t, into v, a pointer to a zero value.
func decodeInto(t *Type, payload []byte, v any) error {
	if t.Empty {
		if len(payload) != 0 {
			return fmt.Errorf("%w: %s has no fields but came with %d payload bytes", ErrMalformed, t.Name, len(payload))
		}
		return nil
	}
	if u, ok := v.(encoding.BinaryUnmarshaler); ok {
		if err := u.UnmarshalBinary(payload); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrMalformed, t.Name, err)
		}
		return nil
	}
	f, err := DeriveBinary(t.GoType)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNoBinaryForm, t.Name, err)
	}
	if err := f.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrMalformed, t.Name, err)
	}
	return nil
}
