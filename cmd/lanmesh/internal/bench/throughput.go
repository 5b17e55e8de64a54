package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lanmesh/lanmesh/mesh"
)

// A throughput case: one message size and codec, and its raw baseline.
type tpCase struct {
	name   string
	codec  string
	size   int // the binary frame's size, or msgpack's Data size
	prefix int // the raw baseline's length prefix: 2 or 4 bytes
	// msg returns the message to send (reused) and sets its sequence.
	msg func() (any, func(seq uint64))
}

var tpCases = []tpCase{
	{"32 B binary", "binary", 32, 2, func() (any, func(uint64)) {
		m := &Bin32{}
		return m, func(s uint64) { m.Seq = s }
	}},
	{"200 B binary", "binary", 200, 2, func() (any, func(uint64)) {
		m := &Bin200{}
		return m, func(s uint64) { m.Seq = s }
	}},
	{"1 KiB msgpack", "msgpack", 1 << 10, 4, func() (any, func(uint64)) {
		m := &Blob{Data: make([]byte, 1<<10)}
		return m, func(s uint64) { m.Seq = s }
	}},
	{"64 KiB msgpack", "msgpack", 64 << 10, 4, func() (any, func(uint64)) {
		m := &Blob{Data: make([]byte, 64<<10)}
		return m, func(s uint64) { m.Seq = s }
	}},
}

// batchOf is how many messages go between two Xfers (raw: two flushes):
// 64 small ones, as a busy game loop sends a tick's worth, or about 16 KiB.
func batchOf(size int) int { return max(1, min(64, 16<<10/size)) }

func rawName(prefix int) string {
	return fmt.Sprintf("raw TCP, %d-byte prefix, buffered writes", prefix)
}

func runThroughput(ctx context.Context, r *runner) ([]Result, error) {
	return throughputResults(ctx, r, nil)
}

// throughputResults measures every case with nodes configured by mod.
func throughputResults(ctx context.Context, r *runner, mod configMod) ([]Result, error) {
	d := pick(r, time.Second, 200*time.Millisecond)
	var out []Result
	for _, c := range tpCases {
		res, err := throughputCase(ctx, r, c, d, mod)
		if err != nil {
			return out, fmt.Errorf("%s: %w", c.name, err)
		}
		out = append(out, res...)
	}
	return out, nil
}

func throughputCase(ctx context.Context, r *runner, c tpCase, d time.Duration, mod configMod) ([]Result, error) {
	var cl closers
	defer func() { cl.close() }()
	a, b, err := nodePair(ctx, c.codec, mod, &cl)
	if err != nil {
		return nil, err
	}
	recv := startNodeCounter(b)
	cl.add(recv.stop)
	client, server, err := tcpPair(ctx)
	if err != nil {
		return nil, err
	}
	raw := startRawCounter(server, c.prefix)
	cl.add(func() { client.Close(); server.Close(); raw.wait() })

	msg, setSeq := c.msg()
	batch := batchOf(c.size)
	w := bufio.NewWriterSize(client, 64<<10)
	// A binary case's size is the whole frame, as lanmesh's is; a msgpack
	// case's is the data, which the raw frame carries after its prefix.
	frameLen := c.size
	if c.codec != "binary" {
		frameLen += c.prefix
	}
	frame := make([]byte, frameLen)
	putPrefix(frame, c.prefix)

	cols, err := r.repeat(ctx, c.name, func() ([]float64, error) {
		lm, err := nodeRate(ctx, a, b, recv, msg, setSeq, batch, d)
		if err != nil {
			return nil, fmt.Errorf("lanmesh: %w", err)
		}
		rw, err := rawRate(ctx, w, raw, frame, batch, d)
		if err != nil {
			return nil, fmt.Errorf("raw: %w", err)
		}
		return []float64{lm, rw}, nil
	}, func(v []float64) string {
		return fmt.Sprintf("lanmesh %s, raw %s", formatValue(v[0], UnitMsgsPerSec), formatValue(v[1], UnitMsgsPerSec))
	})
	if err != nil {
		return nil, err
	}
	mb := func(xs []float64) []float64 {
		out := make([]float64, len(xs))
		for i, x := range xs {
			out[i] = x * float64(c.size) / 1e6
		}
		return out
	}
	note := fmt.Sprintf("Send, Xfer every %d, Receive", batch)
	if c.codec == "msgpack" {
		note += fmt.Sprintf("; MB/s counts the %d data bytes", c.size)
	}
	return []Result{
		Result{Name: c.name, Unit: UnitMsgsPerSec, Stat: Summarize(cols[0]), Higher: true, Note: note}.
			withBaseline(rawName(c.prefix), Summarize(cols[1])),
		Result{Name: c.name, Unit: UnitMBPerSec, Stat: Summarize(mb(cols[0])), Higher: true}.
			withBaseline(rawName(c.prefix), Summarize(mb(cols[1]))),
	}, nil
}

// putPrefix writes the frame's length prefix: what follows it.
func putPrefix(frame []byte, prefix int) {
	if prefix == 2 {
		binary.BigEndian.PutUint16(frame, uint16(len(frame)-2))
	} else {
		binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	}
}

// counter counts what a receiver goroutine takes, until stopped.
type counter struct {
	n      atomic.Int64
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (c *counter) count() int64 { return c.n.Load() }
func (c *counter) stop()        { c.cancel(); c.wg.Wait() }
func (c *counter) wait()        { c.wg.Wait() }

// startNodeCounter counts the messages n receives, as a program that is
// not a game loop would take them (Receive).
func startNodeCounter(n *mesh.Node) *counter {
	ctx, cancel := context.WithCancel(context.Background())
	c := &counter{cancel: cancel}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			m, err := n.Receive(ctx)
			if err != nil {
				return
			}
			if _, isEvent := m.Msg.(*mesh.PeerEvent); !isEvent {
				c.n.Add(1)
			}
		}
	}()
	return c
}

// startRawCounter counts the frames that arrive on conn, skipping their
// bytes, until conn is closed: the baseline's receiver.
func startRawCounter(conn net.Conn, prefix int) *counter {
	c := &counter{cancel: func() {}}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		r := bufio.NewReaderSize(conn, 64<<10)
		hdr := make([]byte, prefix)
		for {
			if _, err := io.ReadFull(r, hdr); err != nil {
				return
			}
			n := int(binary.BigEndian.Uint16(hdr))
			if prefix == 4 {
				n = int(binary.BigEndian.Uint32(hdr))
			}
			if _, err := r.Discard(n); err != nil {
				return
			}
			c.n.Add(1)
		}
	}()
	return c
}

// nodeRate sends from a to b for d and returns messages per second: all
// that were sent, over the time from the first Send to the last arrival.
func nodeRate(ctx context.Context, a, b *mesh.Node, recv *counter, msg any, setSeq func(uint64), batch int, d time.Duration) (float64, error) {
	to := b.ID()
	base := recv.count()
	start := time.Now()
	deadline := start.Add(d)
	sent := int64(0)
	for {
		if sent%int64(batch) == 0 && time.Now().After(deadline) {
			break
		}
		setSeq(uint64(sent))
		if err := sendRetry(a, to, msg); err != nil {
			return 0, err
		}
		sent++
		if sent%int64(batch) == 0 {
			a.Xfer()
		}
	}
	a.Xfer()
	end, err := waitCount(ctx, func() int64 { return recv.count() - base }, sent, 10*time.Second)
	if err != nil {
		return 0, err
	}
	return float64(sent) / end.Sub(start).Seconds(), nil
}

// rawRate writes frames through w for d, flushing every batch, and returns
// frames per second, as nodeRate.
func rawRate(ctx context.Context, w *bufio.Writer, recv *counter, frame []byte, batch int, d time.Duration) (float64, error) {
	base := recv.count()
	start := time.Now()
	deadline := start.Add(d)
	sent := int64(0)
	off := len(frame) - 8 // the sequence number, at the end: after any prefix
	for {
		if sent%int64(batch) == 0 && time.Now().After(deadline) {
			break
		}
		binary.BigEndian.PutUint64(frame[off:], uint64(sent))
		if _, err := w.Write(frame); err != nil {
			return 0, err
		}
		sent++
		if sent%int64(batch) == 0 {
			if err := w.Flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	end, err := waitCount(ctx, func() int64 { return recv.count() - base }, sent, 10*time.Second)
	if err != nil {
		return 0, err
	}
	return float64(sent) / end.Sub(start).Seconds(), nil
}
