package codec_test

import (
	"testing"

	"github.com/lanmesh/lanmesh/codec"
)

// loopReader serves its data over and over, as a socket full of frames would.
type loopReader struct {
	data []byte
	off  int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

// The move message is a 32-byte binary frame: the size of a game update.
var benchMove = &move{Player: 1, X: 100, Y: -100, Seq: 42}

func BenchmarkEncode(b *testing.B) {
	for _, c := range codecs(b) {
		b.Run(c.Name(), func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			frame, _ := c.AppendFrame(nil, benchMove)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = c.AppendFrame(buf[:0], benchMove); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, c := range codecs(b) {
		b.Run(c.Name(), func(b *testing.B) {
			var data []byte
			for range 128 {
				data, _ = c.AppendFrame(data, benchMove)
			}
			b.SetBytes(int64(len(data) / 128))
			d := c.NewDecoder(&loopReader{data: data})
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := d.Decode(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The binary hot path must not allocate on encode; it is checked here as well
// as shown by the benchmark, so a regression fails the tests.
func TestBinaryEncodeDoesNotAllocate(t *testing.T) {
	c := codec.NewBinary(testRegistry(t))
	buf := make([]byte, 0, 512)
	val := *benchMove
	for _, m := range []any{benchMove, &chat{From: "a", Text: "b"}} {
		if n := testing.AllocsPerRun(100, func() { buf, _ = c.AppendFrame(buf[:0], m) }); n != 0 {
			t.Errorf("%T: %v allocs per encode", m, n)
		}
	}
	var boxed any = val // a value with a value-receiver AppendBinary, boxed once
	if n := testing.AllocsPerRun(100, func() { buf, _ = c.AppendFrame(buf[:0], boxed) }); n != 0 {
		t.Errorf("boxed value: %v allocs per encode", n)
	}
	d := c.NewDecoder(&loopReader{data: func() []byte { b, _ := c.AppendFrame(nil, benchMove); return b }()})
	if n := testing.AllocsPerRun(100, func() { _, _, _ = d.Decode() }); n > 1 {
		t.Errorf("%v allocs per decode, want at most 1 (the message)", n)
	}
}
