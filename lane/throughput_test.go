package lane_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lane"
)

// One-way throughput of small unreliable messages over loopback, through
// the lane (sealed and clear) and through plain sockets with the same
// batching (as many 26-byte messages a datagram as 1200 bytes hold, each
// with a 2-byte length). Each reports messages delivered a second and the
// share lost (loopback drops when the receiver's buffer overflows).
func BenchmarkUnreliableThroughput(b *testing.B) {
	for _, mode := range []string{"raw", "lane", "lane-keyed"} {
		b.Run(mode, func(b *testing.B) { benchThroughput(b, mode) })
	}
}

const perFlush = 34 // 26-byte frames: what one lane datagram holds (34 x 34 + 18 <= 1200)

func benchThroughput(b *testing.B, mode string) {
	rc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		b.Fatal(err)
	}
	sc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	to, from := addr(rc), addr(sc)
	var got atomic.Int64
	payload := make([]byte, 26)
	var send func() // sends perFlush messages

	switch mode {
	case "raw":
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 2048)
			for {
				n, _, err := rc.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				c := int64(0)
				for p := buf[:n]; len(p) >= 2; c++ {
					p = p[2+int(binary.BigEndian.Uint16(p)):]
				}
				got.Add(c)
			}
		}()
		defer func() { rc.Close(); <-done }()
		dgram := make([]byte, 0, 1200)
		send = func() {
			dgram = dgram[:0]
			for i := 0; i < perFlush; i++ {
				dgram = binary.BigEndian.AppendUint16(dgram, uint16(len(payload)))
				dgram = append(dgram, payload...)
			}
			sc.WriteToUDPAddrPort(dgram, to)
		}
	default:
		var secret []byte
		if mode == "lane-keyed" {
			secret = make([]byte, 64)
		}
		ta, _ := lane.NewToken()
		tb, _ := lane.NewToken()
		sa, _ := lane.NewSession(ta, tb, true, secret)
		sr, _ := lane.NewSession(tb, ta, false, secret)
		sr.Peer = from
		ep := lane.NewEndpoint(rc)
		defer ep.Close()
		if _, err := ep.Open(lane.DefaultConfig(), sr, func(m []lane.Message) { got.Add(int64(len(m))) }); err != nil {
			b.Fatal(err)
		}
		s, err := lane.NewSender(lane.DefaultConfig(), sa, func(p []byte) error {
			_, err := sc.WriteToUDPAddrPort(p, to)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		send = func() {
			for i := 0; i < perFlush; i++ {
				s.Enqueue(lane.Unreliable, 0, payload)
			}
			s.Flush()
		}
	}
	b.ReportAllocs()
	sent := 0
	for b.Loop() {
		send()
		sent += perFlush
	}
	// Let the receiver drain what the socket holds.
	for last, deadline := int64(-1), time.Now().Add(time.Second); got.Load() != last && time.Now().Before(deadline); {
		last = got.Load()
		time.Sleep(20 * time.Millisecond)
	}
	b.ReportMetric(float64(got.Load())/b.Elapsed().Seconds(), "delivered/s")
	b.ReportMetric(100*(1-float64(got.Load())/float64(sent)), "%lost")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(sent), "ns/msg")
}
