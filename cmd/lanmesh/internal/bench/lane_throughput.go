package bench

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/lanmesh/lanmesh/lane"
	"github.com/lanmesh/lanmesh/mesh"
)

// The lane part's throughput figure: one-way unreliable messages of 24
// bytes over loopback, as fast as one goroutine sends them, from Node to
// Node (SendChannel Unreliable, an Xfer a datagram's worth, Receive at the
// other node) and through plain UDP sockets that batch the same number of
// messages a datagram, each the same 24 bytes behind a 2-byte length (as a
// binary frame's header), read through a socket with the lane endpoint's
// receive buffer. Both run in the same rep, one after the other.

// nodePerDatagram is how many 24-byte messages a Node's lane datagram
// holds: each is a binary frame (2 bytes of header) in a lane item.
var nodePerDatagram = (lane.DefaultMTU - lane.HeaderSize) / lane.ItemSize(lanePosSize+binHeader)

const rawUDPName = "raw UDP, same batching (as many a datagram, 2-byte length a message)"

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
	rc.SetReadBuffer(lane.SocketReadBuffer) // as a lane endpoint's
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
			for range nodePerDatagram {
				dgram = binary.BigEndian.AppendUint16(dgram, uint16(len(payload)))
				dgram = append(dgram, payload...)
			}
			sc.WriteToUDPAddrPort(dgram, to) // a refused datagram is lost, as the lane's would be
			return nil
		}
	} else {
		rc.Close() // the nodes have sockets of their own
		run := func(f func() error) error { return f() }
		lo := netip.MustParseAddr("127.0.0.1")
		pair, err := newNodePosPair(ctx, run, run, lo, lo)
		if err != nil {
			return 0, err
		}
		defer pair.close()
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			// As a game's pump would: Get until empty, then wait.
			for {
				m, ok := pair.b.Get()
				if !ok {
					var err error
					if m, err = pair.b.Receive(rctx); err != nil {
						return
					}
				}
				if _, ok := m.Msg.(*LanePos); ok && m.Via == mesh.Unreliable {
					got.Add(1)
				}
			}
		}()
		defer func() { stop(); <-done }()
		to, pos := pair.b.ID(), &LanePos{}
		send = func() error {
			for range nodePerDatagram {
				if err := pair.a.SendChannel(to, pos, mesh.Unreliable, 0); err != nil {
					return err
				}
			}
			return pair.a.Xfer()
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
