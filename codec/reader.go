package codec

import (
	"fmt"
	"io"
)

// streamBuf is the buffered reader under every decoder. Its buffer grows only
// as bytes actually arrive, never on the word of a length prefix, and never
// past limit.
type streamBuf struct {
	r     io.Reader
	buf   []byte
	start int // first unread byte
	end   int // one past the last buffered byte
	limit int // the buffer never grows past this
	err   error
}

func newStreamBuf(r io.Reader, initial, limit int) *streamBuf {
	if initial > limit {
		initial = limit
	}
	return &streamBuf{r: r, buf: make([]byte, initial), limit: limit}
}

// buffered returns the unread bytes; they stay valid until the next fill.
func (s *streamBuf) buffered() []byte { return s.buf[s.start:s.end] }

func (s *streamBuf) consume(n int) {
	s.start += n
	if s.start == s.end {
		s.start, s.end = 0, 0
	}
}

// fill reads until at least n bytes are buffered (n <= limit). A read that
// ends the stream early returns io.EOF when nothing at all is buffered, and
// ErrTruncated (which also matches io.ErrUnexpectedEOF) inside a frame.
func (s *streamBuf) fill(n int) error {
	for s.end-s.start < n {
		if err := s.more(n); err != nil {
			return err
		}
	}
	return nil
}

// more reads once (retrying a few empty reads), first making room so that
// want bytes fit from the start of the unread ones.
func (s *streamBuf) more(want int) error {
	if s.err != nil {
		return s.err
	}
	if s.start > 0 && (s.end == len(s.buf) || len(s.buf)-s.start < want) {
		n := copy(s.buf, s.buf[s.start:s.end])
		s.start, s.end = 0, n
	}
	if s.end == len(s.buf) || len(s.buf) < want {
		// Double as bytes arrive rather than sizing to want: a length prefix
		// alone never buys a peer a large buffer.
		size := min(max(2*len(s.buf), 512), s.limit)
		if size <= s.end {
			// Callers check their limits first; this guards the loop below.
			return s.fail(fmt.Errorf("%w: %d bytes buffered, limit %d", ErrFrameTooLarge, s.end, s.limit))
		}
		nb := make([]byte, size)
		copy(nb, s.buf[:s.end])
		s.buf = nb
	}
	// io.Reader allows (0, nil); a reader that keeps doing it must not spin us
	// forever, which is what io.ErrNoProgress is for.
	for range 100 {
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err == io.EOF && n > 0 {
			// The bytes that came with EOF may finish a frame; the next call
			// meets the EOF again and reports it.
			return nil
		}
		if err != nil {
			if err == io.EOF && s.end != s.start {
				err = fmt.Errorf("%w: stream ended with %d bytes of a frame: %w", ErrTruncated, s.end-s.start, io.ErrUnexpectedEOF)
			}
			return s.fail(err)
		}
		if n > 0 {
			return nil
		}
	}
	return s.fail(io.ErrNoProgress)
}

// fail makes err the final answer of every later call.
func (s *streamBuf) fail(err error) error {
	s.err = err
	return err
}
