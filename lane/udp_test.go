package lane_test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lane"
	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// endpoint is one side of a lane over a real UDP socket on 127.0.0.1: a
// lane.Endpoint whose lane hands its messages to got.
type endpoint struct {
	conn *tapConn
	ep   *lane.Endpoint
	lane *lane.Lane
	got  chan lane.Message
}

func listen(t *testing.T, ip string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(ip+":0")))
	if err != nil {
		t.Skipf("cannot bind %s on this system (%v): the spoofing test needs a second loopback address", ip, err)
	}
	return c
}

func addr(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// tapConn keeps the last datagram written, for the spoofer to replay.
type tapConn struct {
	*net.UDPConn
	mu   sync.Mutex
	last []byte
}

func (c *tapConn) WriteToUDPAddrPort(b []byte, to netip.AddrPort) (int, error) {
	c.mu.Lock()
	c.last = append(c.last[:0], b...)
	c.mu.Unlock()
	return c.UDPConn.WriteToUDPAddrPort(b, to)
}

func (c *tapConn) lastSent() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.last)
}

func newEndpoint(t *testing.T) *endpoint {
	e := &endpoint{conn: &tapConn{UDPConn: listen(t, "127.0.0.1")}, got: make(chan lane.Message, 1024)}
	e.ep = lane.NewEndpoint(e.conn)
	t.Cleanup(func() {
		if err := e.ep.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// start opens the endpoint's lane of session s, whose peer is s.Peer.
func (e *endpoint) start(t *testing.T, s lane.Session) {
	t.Helper()
	l, err := e.ep.Open(lane.DefaultConfig(), s, func(msgs []lane.Message) {
		for _, m := range msgs {
			m.Payload = bytes.Clone(m.Payload)
			select {
			case e.got <- m:
			default:
				t.Error("test channel full")
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	e.lane = l
}

// waitFor polls cond while flushing both lanes (as a game's pump would each
// tick), until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool, flush ...*endpoint) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		for _, e := range flush {
			e.lane.Flush(time.Now())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestUDPLoopback(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		t.Run(fmt.Sprintf("keyed=%v", keyed), func(t *testing.T) { testUDPLoopback(t, keyed) })
	}
}

func testUDPLoopback(t *testing.T, keyed bool) {
	leaktest.Check(t)
	a, b := newEndpoint(t), newEndpoint(t)
	spoofer := listen(t, "127.0.0.2")
	t.Cleanup(func() { spoofer.Close() })
	ta, _ := lane.NewToken()
	tb, _ := lane.NewToken()
	var secret []byte
	if keyed {
		secret = bytes.Repeat([]byte{7}, 64)
	}
	sa, err := lane.NewSession(ta, tb, true, secret)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := lane.NewSession(tb, ta, false, secret)
	if err != nil {
		t.Fatal(err)
	}
	sa.Peer, sb.Peer = addr(b.conn.UDPConn), addr(a.conn.UDPConn)
	a.start(t, sa)
	b.start(t, sb)
	if a.ep.Port() != addr(a.conn.UDPConn).Port() {
		t.Fatalf("Port %d", a.ep.Port())
	}

	waitFor(t, "both lanes up", func() bool { return a.lane.State() == lane.Up && b.lane.State() == lane.Up }, a, b)
	if h := a.lane.Health(); h.RTT <= 0 || h.RTT > time.Second {
		t.Fatalf("RTT %v", h.RTT)
	}

	// Positions and an event from a to b, in one datagram.
	for i := 0; i < 5; i++ {
		a.lane.Enqueue(lane.Sequenced, 1, []byte(fmt.Sprintf("pos %d", i)))
	}
	a.lane.Enqueue(lane.Unreliable, 2, []byte("boom"))
	a.lane.Flush(time.Now())
	var got []string
	waitFor(t, "a's messages at b", func() bool {
		for {
			select {
			case m := <-b.got:
				got = append(got, fmt.Sprintf("%v/%d/%s", m.Kind, m.Channel, m.Payload))
			default:
				return len(got) == 2
			}
		}
	})
	if fmt.Sprint(got) != "[sequenced/1/pos 4 unreliable/2/boom]" {
		t.Fatalf("b got %v", got)
	}

	// The spoofer, on 127.0.0.2, replays a's last datagram to b, and sends one
	// under a token it guessed. The first reaches b's lane and fails its
	// address check (it would fail the replay window too); the second names
	// no lane of b's endpoint.
	captured := a.conn.lastSent()
	guess := bytes.Clone(captured)
	guess[2] ^= 0xFF
	for _, d := range [][]byte{captured, guess} {
		if _, err := spoofer.WriteToUDPAddrPort(d, addr(b.conn.UDPConn)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the spoofed datagrams counted", func() bool {
		return b.lane.Stats().DropSession == 1 && b.ep.Stats().Unknown == 1
	})

	// The same replay from a's own address (a spoofer that forges its source
	// address) is caught by the replay window; keyed, a forged datagram under
	// the right token fails to open.
	if _, err := a.conn.UDPConn.WriteToUDPAddrPort(captured, addr(b.conn.UDPConn)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replay counted", func() bool { return b.lane.Stats().DropReplay == 1 })
	if keyed {
		forged := bytes.Clone(captured)
		forged[10] = 0x7F // a counter not yet seen
		forged[len(forged)-1] ^= 1
		a.conn.UDPConn.WriteToUDPAddrPort(forged, addr(b.conn.UDPConn))
		waitFor(t, "the forgery counted", func() bool { return b.lane.Stats().DropAuth == 1 })
	} else {
		// Unkeyed, a datagram sealed as if keyed is refused for its mode.
		sealed := bytes.Clone(captured)
		sealed[1] = lane.FlagSealed
		a.conn.UDPConn.WriteToUDPAddrPort(sealed, addr(b.conn.UDPConn))
		waitFor(t, "the mode mismatch counted", func() bool { return b.lane.Stats().DropMode == 1 })
	}
	// Nothing of the spoofer's was delivered, and the lane still works.
	a.lane.Enqueue(lane.Sequenced, 1, []byte("pos 5"))
	a.lane.Flush(time.Now())
	select {
	case m := <-b.got:
		if string(m.Payload) != "pos 5" {
			t.Fatalf("b got %v/%s after the spoofing, want pos 5", m.Kind, m.Payload)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the lane stopped working after the spoofing")
	}
	st := b.lane.Stats()
	if st.DeliveredMessages != 3 {
		t.Fatalf("b's stats %+v", st)
	}
}

// A link that ends and comes back is a new session: datagrams of the old one
// (a stale sender, a late datagram) are counted and dropped, never
// delivered to the new lane.
func TestEndpointStaleSession(t *testing.T) {
	leaktest.Check(t)
	a, b := newEndpoint(t), newEndpoint(t)
	session := func() (lane.Session, lane.Session) {
		ta, _ := lane.NewToken()
		tb, _ := lane.NewToken()
		sa, _ := lane.NewSession(ta, tb, true, nil)
		sb, _ := lane.NewSession(tb, ta, false, nil)
		sa.Peer, sb.Peer = addr(b.conn.UDPConn), addr(a.conn.UDPConn)
		return sa, sb
	}
	sa, sb := session()
	a.start(t, sa)
	b.start(t, sb)
	waitFor(t, "the first lanes up", func() bool { return a.lane.State() == lane.Up && b.lane.State() == lane.Up }, a, b)
	old := a.conn.lastSent()
	oldA := a.lane

	// The link closes and comes back with new tokens.
	a.ep.Remove(a.lane)
	b.ep.Remove(b.lane)
	b.ep.Remove(b.lane) // twice: harmless
	sa, sb = session()
	a.start(t, sa)
	b.start(t, sb)
	waitFor(t, "the new lanes up", func() bool { return a.lane.State() == lane.Up && b.lane.State() == lane.Up }, a, b)

	// The old session's datagram, resent, and the old lane still flushing.
	unknown := b.ep.Stats().Unknown
	a.conn.UDPConn.WriteToUDPAddrPort(old, addr(b.conn.UDPConn))
	oldA.Enqueue(lane.Sequenced, 0, []byte("stale"))
	oldA.Flush(time.Now())
	waitFor(t, "the stale datagrams counted", func() bool { return b.ep.Stats().Unknown >= unknown+2 })
	select {
	case m := <-b.got:
		t.Fatalf("b delivered %v/%s of the old session", m.Kind, m.Payload)
	default:
	}

	// Open refuses a token in use, a session without a peer, and a closed
	// endpoint; Close is idempotent.
	if _, err := b.ep.Open(lane.DefaultConfig(), sb, func([]lane.Message) {}); err == nil {
		t.Fatal("Open took a token in use")
	}
	noPeer := sb
	noPeer.Peer = netip.AddrPort{}
	if _, err := b.ep.Open(lane.DefaultConfig(), noPeer, func([]lane.Message) {}); err == nil {
		t.Fatal("Open took a session without a peer")
	}
	if err := b.ep.Close(); err != nil {
		t.Fatal(err)
	}
	b.ep.Close()
	if _, err := b.ep.Open(lane.DefaultConfig(), sb, func([]lane.Message) {}); err == nil {
		t.Fatal("Open on a closed endpoint")
	}
	if b.ep.Err() != nil {
		t.Fatalf("Err after Close: %v", b.ep.Err())
	}
}
