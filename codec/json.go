package codec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"
)

// JSON is the line format (SPEC.md section 4): one JSON array
// ["TypeName",{fields}] per line, compact separators, non-ASCII escaped as
// \uXXXX, ended by "\n": byte for byte what cable_car programs write. Field
// names come from json tags.
type JSON struct {
	types Types
	// MaxLine is the longest line accepted and written, without its "\n"
	// (default DefaultMaxFrame). A decoder's memory is bounded by it.
	MaxLine int
	// MaxDepth is how deeply a line may nest arrays and objects, the outer
	// array included (default DefaultMaxDepth).
	MaxDepth int

	buffers sync.Pool // *jsonEncoder
}

var _ Codec = (*JSON)(nil)

// NewJSON returns the JSON codec with default limits.
func NewJSON(types Types) *JSON {
	return &JSON{types: types, MaxLine: DefaultMaxFrame, MaxDepth: DefaultMaxDepth}
}

// Name returns "json".
func (*JSON) Name() string { return "json" }

func (c *JSON) maxLine() int {
	if c.MaxLine <= 0 {
		return DefaultMaxFrame
	}
	return c.MaxLine
}

// MaxFrame returns the longest line, its "\n" included.
func (c *JSON) MaxFrame() int { return c.maxLine() + 1 }

type jsonEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// AppendFrame appends msg as one JSON line.
func (c *JSON) AppendFrame(dst []byte, msg any) ([]byte, error) {
	t, err := c.types.TypeOf(msg)
	if err != nil {
		return dst, err
	}
	start := len(dst)
	dst = append(dst, `["`...)
	dst = append(dst, t.Name...) // registry names need no escaping
	dst = append(dst, `",`...)
	if t.Empty {
		dst = append(dst, "{}"...)
	} else {
		e, _ := c.buffers.Get().(*jsonEncoder)
		if e == nil {
			e = &jsonEncoder{}
			e.enc = json.NewEncoder(&e.buf)
			e.enc.SetEscapeHTML(false) // Python does not escape <, > and &
		}
		e.buf.Reset()
		err = e.enc.Encode(msg)
		if err == nil {
			dst = appendASCII(dst, bytes.TrimSuffix(e.buf.Bytes(), []byte("\n")))
		}
		c.buffers.Put(e)
		if err != nil {
			return dst[:start], fmt.Errorf("codec: encoding %s: %w", t.Name, err)
		}
	}
	dst = append(dst, "]"...)
	if n := len(dst) - start; n > c.maxLine() {
		return dst[:start], fmt.Errorf("%w: %s needs %d bytes, limit %d", ErrFrameTooLarge, t.Name, n, c.maxLine())
	}
	return append(dst, '\n'), nil
}

// appendASCII appends src, valid JSON, with every non-ASCII rune escaped as
// \uXXXX (a surrogate pair above U+FFFF), as Python's ensure_ascii does.
// Non-ASCII bytes only occur inside strings, so escaping them is safe.
func appendASCII(dst, src []byte) []byte {
	const hex = "0123456789abcdef"
	for len(src) > 0 {
		i := 0
		for i < len(src) && src[i] < utf8.RuneSelf {
			i++
		}
		dst = append(dst, src[:i]...)
		src = src[i:]
		if len(src) == 0 {
			break
		}
		r, n := utf8.DecodeRune(src)
		src = src[n:]
		units := []rune{r}
		if r > 0xffff {
			r -= 0x10000
			units = []rune{0xd800 + r>>10, 0xdc00 + r&0x3ff}
		}
		for _, u := range units {
			dst = append(dst, '\\', 'u', hex[u>>12&0xf], hex[u>>8&0xf], hex[u>>4&0xf], hex[u&0xf])
		}
	}
	return dst
}

// NewDecoder returns a decoder of JSON lines from r.
func (c *JSON) NewDecoder(r io.Reader) Decoder {
	depth := c.MaxDepth
	if depth <= 0 {
		depth = DefaultMaxDepth
	}
	return &jsonDecoder{types: c.types, maxLine: c.maxLine(), maxDepth: depth,
		in: newStreamBuf(r, 4096, c.maxLine()+1)}
}

type jsonDecoder struct {
	types    Types
	maxLine  int
	maxDepth int
	in       *streamBuf
	scanned  int // bytes after in.start known to hold no '\n'
}

func (d *jsonDecoder) Decode() (any, int, error) {
	// Blank lines are skipped; each one was read from the stream, so the loop
	// ends when the input does. Their bytes count in the size, so that the
	// sizes add up to the bytes read (the link's memory bounds rely on it).
	skipped := 0
	for {
		line, size, err := d.readLine()
		if err != nil {
			return nil, 0, err
		}
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			skipped += size
			continue
		}
		v, err := d.decodeLine(line)
		return v, skipped + size, err
	}
}

func (d *jsonDecoder) readLine() ([]byte, int, error) {
	for {
		buf := d.in.buffered()
		if i := bytes.IndexByte(buf[d.scanned:], '\n'); i >= 0 {
			n := d.scanned + i
			d.scanned = 0
			d.in.consume(n + 1)
			return buf[:n], n + 1, nil
		}
		d.scanned = len(buf)
		if len(buf) > d.maxLine {
			return nil, 0, d.in.fail(fmt.Errorf("%w: a line longer than %d bytes", ErrFrameTooLarge, d.maxLine))
		}
		if err := d.in.more(len(buf) + 1); err != nil {
			return nil, 0, err
		}
	}
}

func (d *jsonDecoder) decodeLine(line []byte) (any, error) {
	if !utf8.Valid(line) {
		return nil, fmt.Errorf("%w: line is not UTF-8", ErrMalformed)
	}
	if err := checkJSONDepth(line, d.maxDepth); err != nil {
		return nil, err
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(line, &parts); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(parts) != 2 {
		return nil, fmt.Errorf(`%w: want ["TypeName",{fields}], got an array of %d`, ErrMalformed, len(parts))
	}
	var name string
	if err := json.Unmarshal(parts[0], &name); err != nil {
		return nil, fmt.Errorf("%w: type name is not a string", ErrMalformed)
	}
	t := d.types.ByName(name)
	if t == nil {
		return nil, fmt.Errorf("%w: name %q", ErrUnknownType, name)
	}
	if len(parts[1]) == 0 || parts[1][0] != '{' {
		return nil, fmt.Errorf("%w: %s: fields are not an object", ErrMalformed, t.Name)
	}
	v := t.New()
	if !t.Empty {
		if err := json.Unmarshal(parts[1], v); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, t.Name, err)
		}
	}
	return v, nil
}

// checkJSONDepth refuses a line that nests deeper than max before any parser
// recurses into it.
func checkJSONDepth(line []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for _, b := range line {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case b == '\\':
				escaped = true
			case b == '"':
				inString = false
			}
		case b == '"':
			inString = true
		case b == '[' || b == '{':
			depth++
			if depth > max {
				return fmt.Errorf("%w: deeper than %d", ErrTooDeep, max)
			}
		case b == ']' || b == '}':
			depth--
		}
	}
	return nil
}
