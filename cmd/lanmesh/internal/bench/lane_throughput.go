package bench

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/lanmesh/lanmesh/lane"
)

// The lane part's throughput figure: one-way unreliable messages of 24
// bytes over loopback, as fast as one goroutine sends them, through a lane
// (a Sender, an Endpoint reading) and through plain UDP sockets that batch
// the same: as many messages a datagram as a lane datagram holds, each
// with a 2-byte length.

// lanePerDatagram is how many 24-byte messages one lane datagram holds.
var lanePerDatagram = (lane.DefaultMTU - lane.HeaderSize) / (lane.ItemHeaderSize + lanePosSize)

const rawUDPName = "raw UDP, same batching (2-byte length a message)"

// unreliableThroughput sends for d and returns the messages delivered a
// second, through the lane (raw false) or raw UDP.
func unreliableThroughput(ctx context.Context, raw bool, d time.Duration) (float64, error) {
	lo := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0"))
	rc, err := net.ListenUDP("udp4", lo)
	if err != nil {
		return 0, err
	}
	sc, err := net.ListenUDP("udp4", lo)
	if err != nil {
		rc.Close()
		return 0, err
	}
	defer sc.Close()
	to := rc.LocalAddr().(*net.UDPAddr).AddrPort()
	var got atomic.Int64
	payload := make([]byte, lanePosSize)
	var send func() error

	if raw {
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
					p = p[min(2+int(binary.BigEndian.Uint16(p)), len(p)):]
				}
				got.Add(c)
			}
		}()
		defer func() { rc.Close(); <-done }()
		dgram := make([]byte, 0, lane.DefaultMTU)
		send = func() error {
			dgram = dgram[:0]
			for range lanePerDatagram {
				dgram = binary.BigEndian.AppendUint16(dgram, uint16(len(payload)))
				dgram = append(dgram, payload...)
			}
			sc.WriteToUDPAddrPort(dgram, to) // a refused datagram is lost, as the lane's would be
			return nil
		}
	} else {
		ta, err := lane.NewToken()
		if err != nil {
			rc.Close()
			return 0, err
		}
		tb, err := lane.NewToken()
		if err != nil {
			rc.Close()
			return 0, err
		}
		sa, _ := lane.NewSession(ta, tb, true, nil)
		sr, _ := lane.NewSession(tb, ta, false, nil)
		sr.Peer = sc.LocalAddr().(*net.UDPAddr).AddrPort()
		ep := lane.NewEndpoint(rc)
		defer ep.Close()
		if _, err := ep.Open(lane.DefaultConfig(), sr, func(m []lane.Message) { got.Add(int64(len(m))) }); err != nil {
			return 0, err
		}
		s, err := lane.NewSender(lane.DefaultConfig(), sa, func(p []byte) error {
			_, err := sc.WriteToUDPAddrPort(p, to)
			return err
		})
		if err != nil {
			return 0, err
		}
		send = func() error {
			for range lanePerDatagram {
				if _, err := s.Enqueue(lane.Unreliable, 0, payload); err != nil {
					return err
				}
			}
			s.Flush() // a refused datagram is lost (and counted by the lane)
			return nil
		}
	}
	start := time.Now()
	for i := 0; time.Since(start) < d; i++ {
		if err := send(); err != nil {
			return 0, err
		}
		if i%64 == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	elapsed := time.Since(start)
	// Let the receiver take what its socket still holds.
	for last, deadline := int64(-1), time.Now().Add(time.Second); got.Load() != last && time.Now().Before(deadline); {
		last = got.Load()
		time.Sleep(20 * time.Millisecond)
	}
	return float64(got.Load()) / elapsed.Seconds(), nil
}
