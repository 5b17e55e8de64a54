package mesh

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/internal/udpshare"
	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/message"
)

// fakeCableCar plays a Python cable_car program on loopback, from the
// written description of its wire: it broadcasts "BROADCAST", listens on a
// TCP port, and speaks frames with no handshake.
type fakeCableCar struct {
	t      *testing.T
	udp    *net.UDPConn // hears the node's "BROADCAST"
	send   *net.UDPConn
	ln     *net.TCPListener
	beacon netip.AddrPort
}

func newFakeCableCar(t *testing.T, beaconPort int) *fakeCableCar {
	t.Helper()
	udp, err := udpshare.Listen(beaconPort)
	if err != nil {
		t.Fatal(err)
	}
	send, err := udpshare.ListenSender()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCableCar{t: t, udp: udp, send: send, ln: ln,
		beacon: netip.AddrPortFrom(netip.MustParseAddr("127.255.255.255"), uint16(beaconPort))}
	t.Cleanup(func() { udp.Close(); send.Close(); ln.Close() })
	return f
}

func (f *fakeCableCar) broadcast() {
	if _, err := f.send.WriteToUDPAddrPort([]byte("BROADCAST"), f.beacon); err != nil {
		f.t.Fatal(err)
	}
}

// hearBroadcast waits for the node's "BROADCAST".
func (f *fakeCableCar) hearBroadcast() {
	f.t.Helper()
	f.udp.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	for {
		n, _, err := f.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			f.t.Fatalf("no BROADCAST from the node: %v", err)
		}
		if string(buf[:n]) == "BROADCAST" {
			return
		}
	}
}

func cableCarNode(t *testing.T, codecName string, beaconPort int, peerPort int) *Node {
	t.Helper()
	return cableCarNodeWith(t, codecName, beaconPort, peerPort, nil)
}

func cableCarNodeWith(t *testing.T, codecName string, beaconPort int, peerPort int, adjust func(*NodeConfig)) *Node {
	t.Helper()
	cfg := DefaultNodeConfig()
	setTestConfig(&cfg, t)
	cfg.Link.AutoFlush = true
	cfg.Net.Listen = []string{"127.0.0.1:0"}
	cfg.Discovery.Off = true
	cc := DefaultCableCarConfig()
	cc.Enabled = true
	cc.Listen = "127.0.0.1:0"
	cc.PeerPort = peerPort
	cc.BeaconPort = beaconPort
	cc.Destinations = []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.255.255.255"), uint16(beaconPort))}
	cc.Interval = 50 * time.Millisecond
	cc.Codec = codecName
	cc.AllowLoopback = true
	cfg.CableCar = cc
	if adjust != nil {
		adjust(&cfg)
	}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// cableCarFrames are cable_car's Identify, Join and Quit in each transport.
var cableCarFrames = map[string][]byte{
	"binary": []byte("\x0b\x01alice@box\x02\x02\x02\x04"),
	"json":   []byte(`["MsgIdentify",{"username":"alice","hostname":"box"}]` + "\n" + `["MsgJoin",{}]` + "\n" + `["MsgQuit",{}]` + "\n"),
}

func exchangeWithCableCar(t *testing.T, n *Node, conn net.Conn, codecName string) {
	t.Helper()
	// cable_car -> node.
	if _, err := conn.Write(cableCarFrames[codecName]); err != nil {
		t.Fatal(err)
	}
	want := []any{&message.Identify{Username: "alice", Hostname: "box"}, &message.Join{}, &message.Quit{}}
	for i, w := range want {
		m := recv(t, n)
		if m.FromName != "cablecar@127.0.0.1" || m.From != cableCarID(netip.MustParseAddr("127.0.0.1")) {
			t.Fatalf("message %d from %s (%s)", i, m.FromName, m.From)
		}
		if !sameMsg(m.Msg, w) {
			t.Fatalf("message %d: %+v, want %+v", i, m.Msg, w)
		}
	}
	// node -> cable_car: exactly cable_car's bytes, no control frame among them.
	id := cableCarID(netip.MustParseAddr("127.0.0.1"))
	for _, m := range []any{&message.Identify{Username: "alice", Hostname: "box"}, message.Join{}, message.Quit{}} {
		if err := n.Send(id, m); err != nil {
			t.Fatal(err)
		}
	}
	frames := cableCarFrames[codecName]
	got := make([]byte, len(frames))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, frames) {
		t.Fatalf("cable_car read %q, %v; want %q", got, err, frames)
	}
	// Closing the node sends no Bye: cable_car sees the connection end.
	n.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(conn)
	if err != nil || len(rest) != 0 {
		t.Fatalf("after close, cable_car read %q, %v", rest, err)
	}
}

// sameMsg compares two messages by their JSON frames.
func sameMsg(a, b any) bool {
	c := codec.NewJSON(message.Default)
	x, errX := c.AppendFrame(nil, a)
	y, errY := c.AppendFrame(nil, b)
	return errX == nil && errY == nil && bytes.Equal(x, y)
}

func TestCableCarNodeDials(t *testing.T) {
	for _, codecName := range []string{"binary", "json"} {
		t.Run(codecName, func(t *testing.T) {
			leaktest.Check(t)
			beaconPort := freeUDPPort(t)
			f := newFakeCableCar(t, beaconPort)
			n := cableCarNode(t, codecName, beaconPort, f.ln.Addr().(*net.TCPAddr).Port)
			f.broadcast()
			f.ln.SetDeadline(time.Now().Add(5 * time.Second))
			conn, err := f.ln.Accept()
			if err != nil {
				t.Fatalf("the node did not connect after BROADCAST: %v", err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ev, err := nextEvent(ctx, n)
			if err != nil || ev.Kind != PeerJoined || ev.Peer.Name != "cablecar@127.0.0.1" {
				t.Fatalf("event %+v, %v", ev, err)
			}
			exchangeWithCableCar(t, n, conn, codecName)
		})
	}
}

func TestCableCarPeerDials(t *testing.T) {
	for _, codecName := range []string{"binary", "json"} {
		t.Run(codecName, func(t *testing.T) {
			leaktest.Check(t)
			beaconPort := freeUDPPort(t)
			f := newFakeCableCar(t, beaconPort)
			n := cableCarNode(t, codecName, beaconPort, 1) // port 1: the node's own dials fail
			f.hearBroadcast()
			conn, err := net.DialTimeout("tcp4", n.cc.ln.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			exchangeWithCableCar(t, n, conn, codecName)
		})
	}
}
