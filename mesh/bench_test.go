package mesh

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/codec"
)

// The benchmarks run over loopback TCP, each beside a raw-TCP baseline: a
// plain net.Conn, a 2-byte length prefix and a bufio.Writer, the best a
// hand-written program does. Both carry 32-byte frames (lanmesh's: length,
// code, 30 payload bytes; the baseline's: 2 length bytes, 30 payload bytes).
// lanmesh decodes each into a *Msg32; the baseline only skips frames.
//
//	go test -run '^$' -bench . -benchtime 2s -count 5 ./mesh/

func benchConfig(b *testing.B) Config {
	cfg := testConfig(b)
	cfg.Link.PingInterval = time.Second
	cfg.Link.Silence = 10 * time.Second
	return cfg
}

var tcpCase = transports[1]

// sendRetry sends msg, waiting out backpressure as a game loop would, for
// its next tick (a short one): spinning would take the CPU the receiver
// needs.
func sendRetry(b *testing.B, m *Messenger, msg any) {
	for {
		err := m.Send(msg)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrBackpressure) {
			b.Fatal(err)
		}
		m.Xfer()
		time.Sleep(50 * time.Microsecond)
	}
}

func BenchmarkThroughput32(b *testing.B) {
	b.Run("lanmesh", func(b *testing.B) { benchThroughput(b, tcpCase, benchConfig(b)) })
	b.Run("lanmesh-mem", func(b *testing.B) { benchThroughput(b, transports[0], benchConfig(b)) })
	b.Run("rawtcp", func(b *testing.B) {
		c, s := connPair(b, TCP, "127.0.0.1:0")
		done := make(chan error, 1)
		go func() {
			r := bufio.NewReader(s)
			var hdr [2]byte
			for range b.N {
				if _, err := io.ReadFull(r, hdr[:]); err != nil {
					done <- err
					return
				}
				if _, err := r.Discard(int(binary.BigEndian.Uint16(hdr[:]))); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		w := bufio.NewWriter(c)
		var frame [32]byte
		binary.BigEndian.PutUint16(frame[:], msg32Payload)
		for i := range b.N {
			binary.BigEndian.PutUint64(frame[2:], uint64(i))
			if _, err := w.Write(frame[:]); err != nil {
				b.Fatal(err)
			}
			if i%64 == 63 {
				w.Flush()
			}
		}
		w.Flush()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
}

// benchThroughput sends 32-byte messages one way over tc as fast as the
// receiver takes them, with an Xfer every 64 as a busy game loop would.
// benchThroughput sends 32-byte messages one way over tc with cfg at both
// ends, an Xfer every 64, and reports messages per second.
func benchThroughput(b *testing.B, tc transportCase, cfg Config) {
	a, r := pair(b, tc, cfg, cfg)
	done := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for range b.N {
			if _, err := r.Receive(ctx); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	msg := &Msg32{}
	for i := range b.N {
		msg.Seq = uint64(i)
		sendRetry(b, a, msg)
		if i%64 == 63 {
			a.Xfer()
		}
	}
	a.Xfer()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// benchRTT measures round trips of a 32-byte message over loopback TCP with
// cfg at both ends, and reports p50 and p99.
func benchRTT(b *testing.B, cfg Config) {
	a, e := pair(b, tcpCase, cfg, cfg)
	// The echo side, as a program not built as a game loop would be.
	go func() {
		ctx := context.Background()
		for {
			msg, err := e.Receive(ctx)
			if err != nil {
				return
			}
			e.Send(msg.Msg)
			e.Xfer()
		}
	}()
	rtts := make([]time.Duration, b.N)
	ctx := context.Background()
	msg := &Msg32{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		msg.Seq = uint64(i)
		a.Send(msg)
		a.Xfer()
		if _, err := a.Receive(ctx); err != nil {
			b.Fatal(err)
		}
		rtts[i] = time.Since(start)
	}
	b.StopTimer()
	reportRTT(b, rtts)
}

// reportRTT reports the median and 99th percentile of the samples.
func reportRTT(b *testing.B, rtts []time.Duration) {
	slices.Sort(rtts)
	b.ReportMetric(float64(rtts[len(rtts)/2]), "p50-ns")
	b.ReportMetric(float64(rtts[len(rtts)*99/100]), "p99-ns")
}

func BenchmarkRTT32(b *testing.B) {
	b.Run("lanmesh", func(b *testing.B) { benchRTT(b, benchConfig(b)) })
	b.Run("rawtcp", func(b *testing.B) {
		c, s := connPair(b, TCP, "127.0.0.1:0")
		go func() {
			r, w := bufio.NewReader(s), bufio.NewWriter(s)
			var frame [32]byte
			for {
				if _, err := io.ReadFull(r, frame[:]); err != nil {
					return
				}
				w.Write(frame[:])
				if err := w.Flush(); err != nil {
					return
				}
			}
		}()
		rtts := make([]time.Duration, b.N)
		r, w := bufio.NewReader(c), bufio.NewWriter(c)
		var frame [32]byte
		binary.BigEndian.PutUint16(frame[:], msg32Payload)
		hdr := make([]byte, 2)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			start := time.Now()
			binary.BigEndian.PutUint64(frame[2:], uint64(i))
			w.Write(frame[:])
			w.Flush()
			if _, err := io.ReadFull(r, hdr); err != nil {
				b.Fatal(err)
			}
			if _, err := r.Discard(int(binary.BigEndian.Uint16(hdr))); err != nil {
				b.Fatal(err)
			}
			rtts[i] = time.Since(start)
		}
		b.StopTimer()
		reportRTT(b, rtts)
	})
}

// BenchmarkSendAllocs measures the sending side alone: the peer's bytes are
// discarded unread by a raw conn, so every allocation counted is Send's or
// the writer goroutine's. Want 0 allocs/op.
func BenchmarkSendAllocs(b *testing.B) {
	p := newRawPeer(b, tcpCase, benchConfig(b))
	go io.Copy(io.Discard, p.conn)
	msg := &Msg32{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		msg.Seq = uint64(i)
		sendRetry(b, p.m, msg)
		if i%64 == 63 {
			p.m.Xfer()
		}
	}
	p.m.Xfer()
}

// BenchmarkReceiveAllocs measures the receiving side alone: a raw conn
// writes ready-made frames, and Get takes them. Want 1 alloc/op, the
// message.
func BenchmarkReceiveAllocs(b *testing.B) {
	p := newRawPeer(b, tcpCase, benchConfig(b))
	var batch []byte
	c := codec.NewBinary(testRegistry)
	for i := range 128 {
		batch, _ = c.AppendFrame(batch, &Msg32{Seq: uint64(i)})
	}
	go func() {
		for sent := 0; sent < b.N; sent += 128 {
			if _, err := p.conn.Write(batch); err != nil {
				return
			}
		}
	}()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := p.m.Receive(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
