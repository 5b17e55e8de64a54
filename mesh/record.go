package mesh

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"golang.org/x/crypto/chacha20poly1305"
)

// Records: after a keyed handshake, each direction of a link is a stream of
// records (SPEC.md section 10):
//
//	offset size field
//	0      2    L, the length of what follows, big-endian; 16 < L <= 16400.
//	            These two bytes are the AEAD's additional data.
//	2      L    ChaCha20-Poly1305 ciphertext of L-16 bytes of plaintext,
//	            then the 16-byte tag
//
// The nonce is implicit: 4 zero bytes, then a 64-bit little-endian counter,
// 0 for the first record in each direction (the layout of Noise's
// ChaChaPoly; a test proves the two equal). Each direction has its own key
// from the handshake's Split, so a record reflected back to its sender
// fails to open, as does a record reordered, dropped, repeated or changed.
const (
	// maxRecordPlain is the most plaintext one record carries.
	maxRecordPlain = 16 << 10
	recordTag      = chacha20poly1305.Overhead
	recordHeader   = 2
	maxRecordBody  = maxRecordPlain + recordTag
	maxRecordWire  = recordHeader + maxRecordBody
)

// errRecord: a record did not open (wrong key, tampered, out of order) or
// broke the record format. The link closes; nothing of it is delivered.
var errRecord = errors.New("record failed to open")

// recordCipher is one direction's AEAD and counter. Not safe for
// concurrent use: the sealer is used under the link's writeMu, the opener
// by the reader goroutine alone.
type recordCipher struct {
	aead  cipher.AEAD
	n     uint64
	nonce [chacha20poly1305.NonceSize]byte
}

func newRecordCipher(key [32]byte, n uint64) *recordCipher {
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		panic(err) // the key is 32 bytes
	}
	return &recordCipher{aead: aead, n: n}
}

func (c *recordCipher) next() ([]byte, error) {
	if c.n == math.MaxUint64 {
		return nil, fmt.Errorf("%w: record counter exhausted", errRecord)
	}
	binary.LittleEndian.PutUint64(c.nonce[4:], c.n)
	c.n++
	return c.nonce[:], nil
}

// seal appends plain to dst as records of at most maxRecordPlain bytes
// each. It allocates only when dst must grow.
func (c *recordCipher) seal(dst, plain []byte) ([]byte, error) {
	for len(plain) > 0 {
		chunk := plain[:min(len(plain), maxRecordPlain)]
		plain = plain[len(chunk):]
		nonce, err := c.next()
		if err != nil {
			return dst, err
		}
		hdr := len(dst)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(chunk)+recordTag))
		dst = c.aead.Seal(dst, nonce, chunk, dst[hdr:hdr+recordHeader])
	}
	return dst, nil
}

// sealOne appends one record of plain (at most maxRecordPlain bytes), even
// an empty one.
func (c *recordCipher) sealOne(dst, plain []byte) ([]byte, error) {
	nonce, err := c.next()
	if err != nil {
		return dst, err
	}
	hdr := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(plain)+recordTag))
	return c.aead.Seal(dst, nonce, plain, dst[hdr:hdr+recordHeader]), nil
}

// open opens one record body (ciphertext and tag) in place, with hdr its
// two length bytes, and returns the plaintext.
func (c *recordCipher) open(hdr, body []byte) ([]byte, error) {
	nonce, err := c.next()
	if err != nil {
		return nil, err
	}
	plain, err := c.aead.Open(body[:0], nonce, body, hdr)
	if err != nil {
		return nil, errRecord
	}
	return plain, nil
}

// recordLen checks a record header and returns the body length.
func recordLen(hdr []byte) (int, error) {
	n := int(binary.BigEndian.Uint16(hdr))
	if n <= recordTag || n > maxRecordBody {
		return 0, fmt.Errorf("%w: record length %d", errRecord, n)
	}
	return n, nil
}

// recordReader turns the records read by raw into plaintext: Read returns
// bytes of records that have opened and never anything of one that has
// not. It reads from raw in large pieces, so one read may bring many
// records. Owned by the link's reader goroutine.
type recordReader struct {
	raw   io.Reader
	c     *recordCipher
	buf   []byte // records as read; buf[r:w] is unread
	r, w  int
	plain []byte // the opened plaintext not yet returned (aliases buf)
	err   error
}

func newRecordReader(raw io.Reader, c *recordCipher) *recordReader {
	return &recordReader{raw: raw, c: c, buf: make([]byte, 2*maxRecordWire)}
}

func (rr *recordReader) Read(p []byte) (int, error) {
	for len(rr.plain) == 0 {
		if rr.err != nil {
			return 0, rr.err
		}
		if err := rr.nextRecord(); err != nil {
			rr.err = err
			return 0, err
		}
	}
	n := copy(p, rr.plain)
	rr.plain = rr.plain[n:]
	return n, nil
}

// nextRecord reads and opens the next record (an empty one leaves plain
// empty).
func (rr *recordReader) nextRecord() error {
	if err := rr.fill(recordHeader); err != nil {
		return err
	}
	hdr := rr.buf[rr.r : rr.r+recordHeader]
	n, err := recordLen(hdr)
	if err != nil {
		return err
	}
	if err := rr.fill(recordHeader + n); err != nil {
		return err
	}
	hdr = rr.buf[rr.r : rr.r+recordHeader]
	body := rr.buf[rr.r+recordHeader : rr.r+recordHeader+n]
	rr.r += recordHeader + n
	plain, err := rr.c.open(hdr, body)
	if err != nil {
		return err
	}
	rr.plain = plain
	return nil
}

// fill reads until n unread bytes are buffered. The stream's end between
// records is io.EOF; inside one it is io.ErrUnexpectedEOF.
func (rr *recordReader) fill(n int) error {
	if rr.w-rr.r >= n {
		return nil
	}
	if rr.r > 0 {
		// Everything before r is consumed (plain is empty here).
		rr.w = copy(rr.buf, rr.buf[rr.r:rr.w])
		rr.r = 0
	}
	for empty := 0; rr.w < n; {
		m, err := rr.raw.Read(rr.buf[rr.w:])
		rr.w += m
		if rr.w >= n {
			return nil
		}
		switch {
		case err == io.EOF && rr.w == 0:
			return io.EOF
		case err == io.EOF:
			return fmt.Errorf("the stream ended inside a record: %w", io.ErrUnexpectedEOF)
		case err != nil:
			return err
		case m == 0:
			if empty++; empty == 100 {
				return io.ErrNoProgress
			}
		}
	}
	return nil
}
