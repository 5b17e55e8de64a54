package codec

import (
	"errors"
	"io"
	"reflect"
)

// Errors a caller can test for with errors.Is. Decoders wrap them with the detail
// (the code, the name, the sizes) that an operator needs to see.
var (
	// ErrFrameTooLarge: a frame (or JSON line) is over the codec's maximum, on
	// the encoding side (nothing is written) or the decoding side (the stream is
	// unusable from then on).
	ErrFrameTooLarge = errors.New("codec: frame too large")
	// ErrBadLength: a binary frame's length byte is 0 or 1.
	ErrBadLength = errors.New("codec: bad frame length")
	// ErrTruncated: the stream ended inside a frame. It also matches
	// io.ErrUnexpectedEOF.
	ErrTruncated = errors.New("codec: truncated frame")
	// ErrUnknownType: a frame names a code or a name that is not registered.
	ErrUnknownType = errors.New("codec: unknown message type")
	// ErrNotRegistered: an encoder was given a value whose type is not registered.
	ErrNotRegistered = errors.New("codec: message type not registered")
	// ErrNoBinaryForm: the type has fields but no AppendBinary/UnmarshalBinary,
	// so the binary codec cannot carry it.
	ErrNoBinaryForm = errors.New("codec: message type has no binary form")
	// ErrMalformed: a frame's body does not decode as its type says.
	ErrMalformed = errors.New("codec: malformed message")
	// ErrTooDeep: a JSON or msgpack body nests deeper than the codec allows.
	ErrTooDeep = errors.New("codec: nesting too deep")
)

// Type is what a codec needs to know of one registered message type. The
// registry in package message builds these; codecs only read them.
type Type struct {
	// Code names the type in the binary codec.
	Code byte
	// Name names the type in the JSON and msgpack codecs.
	Name string
	// GoType is the struct type (never a pointer type).
	GoType reflect.Type
	// New returns a pointer to a new zero value of GoType, as an any.
	New func() any
	// NewArray, when set, fills dst with pointers to the elements of one
	// new array of len(dst) zero values of GoType: one allocation for many
	// values (the messages of one type in a lane datagram). A value so
	// made keeps the whole array alive while it is referenced. The
	// message registry sets it for types that hold no pointers.
	NewArray func(dst []any)
	// Empty reports a type with no fields: its payload is empty in the binary
	// codec and {} in JSON and msgpack, and it needs no marshalling code.
	Empty bool
}

// Types resolves message types for a codec. It must be safe for concurrent
// use; message.Registry implements it.
type Types interface {
	// TypeOf returns the type of msg, which is a registered struct value or a
	// pointer to one. The error wraps ErrNotRegistered.
	TypeOf(msg any) (*Type, error)
	// ByCode returns the type with the given binary code, or nil.
	ByCode(code byte) *Type
	// ByName returns the type with the given name, or nil.
	ByName(name string) *Type
}

// Codec frames messages on a byte stream. A Codec is safe for concurrent use;
// a Decoder is not.
type Codec interface {
	// Name is "binary", "msgpack" or "json": what the link handshake announces.
	Name() string
	// AppendFrame appends msg, framed, to dst. On error it returns dst with its
	// original length: nothing of a refused message is ever written.
	AppendFrame(dst []byte, msg any) ([]byte, error)
	// NewDecoder returns a decoder that reads frames from r.
	NewDecoder(r io.Reader) Decoder
	// MaxFrame is the largest frame, header included, that this codec writes or
	// reads.
	MaxFrame() int
}

// Decoder yields whole messages from a stream, however its bytes arrive.
type Decoder interface {
	// Decode returns the next message as a pointer to its registered type,
	// and the size of its frame in bytes (the bytes it consumed for it, so that
	// sizes add up to the stream read). At a clean end of stream between
	// frames it returns io.EOF.
	//
	// Errors wrapping ErrUnknownType, ErrMalformed, ErrTooDeep or
	// ErrNoBinaryForm concern one
	// frame: that frame was consumed and Decode may be called again. Every
	// other error (framing, reading) is final and is returned again by every
	// later call.
	Decode() (msg any, size int, err error)
}

// Recoverable reports whether err concerned one frame only, so that a decoder
// that returned it can go on reading the stream.
func Recoverable(err error) bool {
	return errors.Is(err, ErrUnknownType) || errors.Is(err, ErrMalformed) ||
		errors.Is(err, ErrTooDeep) || errors.Is(err, ErrNoBinaryForm)
}

// New returns the codec with the given name ("binary", "msgpack" or "json")
// with its default limits, or an error naming the codecs there are.
func New(name string, types Types) (Codec, error) {
	switch name {
	case "binary":
		return NewBinary(types), nil
	case "msgpack":
		return NewMsgPack(types), nil
	case "json":
		return NewJSON(types), nil
	}
	return nil, errors.New(`codec: unknown codec "` + name + `" (want binary, msgpack or json)`)
}

// Names lists the codecs New knows.
func Names() []string { return []string{"binary", "msgpack", "json"} }
