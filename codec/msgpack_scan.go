package codec

import (
	"encoding/binary"
	"fmt"
)

func isMsgPackMap(b byte) bool { return b&0xf0 == 0x80 || b == 0xde || b == 0xdf }

// scanMsgPack checks that body is exactly one well-formed msgpack value,
// nesting at most maxDepth, and that every length and count it claims fits in
// the bytes that follow it (each element takes at least one byte). It walks
// without recursion and without allocating.
func scanMsgPack(body []byte, maxDepth int) error {
	// pending[i] counts the values still owed to the container at depth i;
	// depth 0 is the top level, which owes exactly one value.
	var stack [64]uint64
	pending := stack[:1]
	if maxDepth+1 > len(stack) {
		pending = make([]uint64, 1, maxDepth+1)
	}
	pending[0] = 1
	p := 0
	for {
		for len(pending) > 0 && pending[len(pending)-1] == 0 {
			pending = pending[:len(pending)-1]
		}
		if len(pending) == 0 {
			break
		}
		if p >= len(body) {
			return fmt.Errorf("%w: body ends inside a value", ErrMalformed)
		}
		pending[len(pending)-1]--
		b := body[p]
		p++
		var skip, count uint64 // bytes to skip; child values owed
		var lenBytes int       // size of a following length field
		switch {
		case b <= 0x7f || b >= 0xe0: // fixint
		case b <= 0x8f: // fixmap
			count = 2 * uint64(b&0x0f)
		case b <= 0x9f: // fixarray
			count = uint64(b & 0x0f)
		case b <= 0xbf: // fixstr
			skip = uint64(b & 0x1f)
		default:
			switch b {
			case 0xc0, 0xc2, 0xc3: // nil, false, true
			case 0xc1:
				return fmt.Errorf("%w: reserved byte 0xc1 at %d", ErrMalformed, p-1)
			case 0xc4, 0xd9: // bin8, str8
				lenBytes = 1
			case 0xc5, 0xda: // bin16, str16
				lenBytes = 2
			case 0xc6, 0xdb: // bin32, str32
				lenBytes = 4
			case 0xc7, 0xc8, 0xc9: // ext8/16/32: length, then a type byte
				lenBytes = 1 << (b - 0xc7)
				skip = 1
			case 0xca:
				skip = 4
			case 0xcb:
				skip = 8
			case 0xcc, 0xd0:
				skip = 1
			case 0xcd, 0xd1:
				skip = 2
			case 0xce, 0xd2:
				skip = 4
			case 0xcf, 0xd3:
				skip = 8
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1..16, plus a type byte
				skip = 1 + 1<<(b-0xd4)
			case 0xdc, 0xde: // array16, map16
				lenBytes = 2
			case 0xdd, 0xdf: // array32, map32
				lenBytes = 4
			}
		}
		if lenBytes > 0 {
			if len(body)-p < lenBytes {
				return fmt.Errorf("%w: body ends inside a length", ErrMalformed)
			}
			var n uint64
			switch lenBytes {
			case 1:
				n = uint64(body[p])
			case 2:
				n = uint64(binary.BigEndian.Uint16(body[p:]))
			case 4:
				n = uint64(binary.BigEndian.Uint32(body[p:]))
			}
			p += lenBytes
			switch b {
			case 0xdc, 0xdd:
				count = n
			case 0xde, 0xdf:
				count = 2 * n
			default:
				skip += n
			}
		}
		rest := uint64(len(body) - p)
		if skip > rest {
			return fmt.Errorf("%w: a value at %d claims %d bytes, %d remain", ErrMalformed, p, skip, rest)
		}
		p += int(skip)
		if count > 0 {
			if count > uint64(len(body)-p) {
				return fmt.Errorf("%w: a container at %d claims %d values, %d bytes remain", ErrMalformed, p, count, len(body)-p)
			}
			if len(pending) > maxDepth {
				return fmt.Errorf("%w: deeper than %d", ErrTooDeep, maxDepth)
			}
			pending = append(pending, count)
		}
	}
	if p != len(body) {
		return fmt.Errorf("%w: %d bytes after the value", ErrMalformed, len(body)-p)
	}
	return nil
}
