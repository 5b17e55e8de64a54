package mesh

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"

	"github.com/lanmesh/lanmesh/codec"
)

// chunker hands out its bytes in reads of random sizes.
type chunker struct {
	r   *bytes.Reader
	rnd *rand.Rand
}

func (c *chunker) Read(p []byte) (int, error) {
	n := 1 + c.rnd.IntN(min(len(p), 9000))
	return c.r.Read(p[:n])
}

// The meter knows exactly what a decoder holds, however the bytes arrive:
// after every frame, the bytes read less the frame sizes are what the
// decoder has buffered of the frames to come, and at the end nothing. A
// large frame is charged while it comes, and given back after the next
// small one.
func TestFrameMeterAccounting(t *testing.T) {
	for _, name := range []string{"msgpack", "json"} {
		t.Run(name, func(t *testing.T) {
			c, err := codec.New(name, testRegistry)
			if err != nil {
				t.Fatal(err)
			}
			rnd := rand.New(rand.NewPCG(1, 2))
			var stream []byte
			var sizes []int
			for i := range 200 {
				n := rnd.IntN(200)
				if i%17 == 0 {
					n = 100<<10 + rnd.IntN(200<<10) // past PartialFrameFree
				}
				before := len(stream)
				if name == "json" && i%5 == 0 {
					stream = append(stream, "\n\r\n"...) // blank lines count in the next size
				}
				stream, err = c.AppendFrame(stream, &Text{S: strings.Repeat("y", n)})
				if err != nil {
					t.Fatal(err)
				}
				sizes = append(sizes, len(stream)-before)
			}
			budget := newFrameBudget(defaultPartialFrameBudget)
			var m frameMeter
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			m.init(a, DefaultAcceptConfig(), budget)
			src := m.reader(&chunker{r: bytes.NewReader(stream), rnd: rnd})
			dec := c.NewDecoder(src)
			charged := false
			for i := 0; ; i++ {
				_, size, err := dec.Decode()
				if err == io.EOF {
					if i != len(sizes) {
						t.Fatalf("EOF after %d frames of %d", i, len(sizes))
					}
					break
				}
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if size != sizes[i] {
					t.Fatalf("frame %d: size %d, want %d", i, size, sizes[i])
				}
				if m.held > 0 {
					charged = true
				}
				if m.frame(size) {
					dec = c.NewDecoder(src)
				}
				if m.in < m.out {
					t.Fatalf("frame %d: %d bytes read, %d decoded", i, m.in, m.out)
				}
			}
			if m.in != m.out || m.in != int64(len(stream)) {
				t.Errorf("at the end: %d read, %d decoded, %d sent", m.in, m.out, len(stream))
			}
			if !charged {
				t.Error("no large frame was ever charged")
			}
			if m.held != budget.used.Load() {
				t.Errorf("held %d, budget used %d", m.held, budget.used.Load())
			}
			m.stop()
			if budget.used.Load() != 0 || budget.peak.Load() > 2*(300<<10+512) {
				t.Errorf("after stop: %d used; peak %d", budget.used.Load(), budget.peak.Load())
			}
		})
	}
}
