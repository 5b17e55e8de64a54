package mesh

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/internal/ifaddr"
	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/message"
)

func TestPlausibleCableCar(t *testing.T) {
	ifs := []ifaddr.Interface{
		{Name: "lo", Up: true, Loopback: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Name: "eth0", Up: true, Broadcast: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("192.168.1.10/24")}},
		{Name: "eth1", Up: false, Broadcast: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.5.0.2/16")}},
	}
	for _, tt := range []struct {
		ip       string
		loopback bool
		want     bool
	}{
		{"192.168.1.7", false, true},
		{"::ffff:192.168.1.7", false, true},
		{"192.168.1.255", false, false}, // the subnet's broadcast address
		{"192.168.1.0", false, false},   // its network address
		{"192.168.2.7", false, false},   // another subnet
		{"10.99.0.1", false, false},     // off the LAN
		{"10.5.0.9", false, false},      // the subnet of an interface that is down
		{"255.255.255.255", false, false},
		{"224.0.0.251", false, false},
		{"0.0.0.0", false, false},
		{"127.0.0.1", false, false}, // loopback needs AllowLoopback
		{"127.0.3.4", true, true},
		{"fe80::1", false, false}, // cable_car is IPv4
	} {
		if got := plausibleCableCar(netip.MustParseAddr(tt.ip), ifs, tt.loopback); got != tt.want {
			t.Errorf("plausible(%s, loopback %v) = %v, want %v", tt.ip, tt.loopback, got, tt.want)
		}
	}
}

// spoofBroadcasts sends "BROADCAST" to the node's beacon port from each of
// sources, copies times each, waiting after each source until the node has
// heard them (so that no datagram is lost to a full socket buffer).
func spoofBroadcasts(t *testing.T, n *Node, port int, sources []net.IP, copies int) {
	t.Helper()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	sent := n.Stats().CableCar.Heard
	for _, src := range sources {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: src})
		if err != nil {
			t.Fatal(err)
		}
		for range copies {
			if _, err := c.WriteToUDP([]byte("BROADCAST"), to); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
		sent += uint64(copies)
		waitUntil(t, 5*time.Second, "the datagrams heard", func() bool { return n.Stats().CableCar.Heard >= sent })
	}
}

// closedTCPPort returns a loopback port nothing listens on.
func closedTCPPort(t *testing.T) int {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// A flood of "BROADCAST"s from 300 spoofed sources makes a bounded number
// of dials: at most the burst and rate of BroadcastTotal, one per source.
// (Before the bounds, every datagram from a new source was a dial: 300.)
func TestCableCarBroadcastFlood(t *testing.T) {
	leaktest.Check(t)
	beaconPort := freeUDPPort(t)
	n := cableCarNodeWith(t, "binary", beaconPort, closedTCPPort(t), nil)
	var sources []net.IP
	for i := range 300 {
		sources = append(sources, loopbackSource(20+i/200, 1+i%200))
	}
	start := time.Now()
	spoofBroadcasts(t, n, beaconPort, sources, 3)
	elapsed := time.Since(start)
	cc := DefaultCableCarConfig()
	bound := uint64(2*cc.BroadcastTotal+1) + uint64(cc.BroadcastTotal*elapsed.Seconds()) + 1
	waitUntil(t, 10*time.Second, "the dials done", func() bool {
		st := n.Stats().CableCar
		return st.DialFailures == st.Dials && n.cc.dialing.Load() == 0
	})
	st := n.Stats().CableCar
	t.Logf("900 spoofed BROADCASTs from 300 sources in %v: %d dials (bound %d), %d dropped by rate, %d skipped, %d implausible",
		elapsed.Round(time.Millisecond), st.Dials, bound, st.RateDropped, st.DialsSkipped, st.Implausible)
	if st.Heard != 900 {
		t.Errorf("heard %d, want 900", st.Heard)
	}
	if st.Dials == 0 || st.Dials > bound || st.Dials > 300 {
		t.Errorf("%d dials; want 1 to %d", st.Dials, min(bound, 300))
	}
	if st.RateDropped < 900-bound {
		t.Errorf("%d dropped by the rate limits, want at least %d", st.RateDropped, 900-bound)
	}
}

// Without AllowLoopback, "BROADCAST"s from loopback sources are never
// dialled: they are not on a LAN the node is on.
func TestCableCarBroadcastImplausible(t *testing.T) {
	leaktest.Check(t)
	beaconPort := freeUDPPort(t)
	n := cableCarNodeWith(t, "binary", beaconPort, closedTCPPort(t), func(c *NodeConfig) {
		c.CableCar.AllowLoopback = false
	})
	var sources []net.IP
	for i := range 20 {
		sources = append(sources, loopbackSource(22, 1+i))
	}
	spoofBroadcasts(t, n, beaconPort, sources, 1)
	// Heard is counted before the datagram is judged: wait for the last
	// judgement (CI saw 19 of 20 read a moment early).
	waitUntil(t, 5*time.Second, "every datagram judged", func() bool {
		st := n.Stats().CableCar
		return st.Implausible+st.Dials >= 20
	})
	st := n.Stats().CableCar
	if st.Dials != 0 || st.Implausible != 20 {
		t.Errorf("%d dials, %d implausible; want 0 and 20", st.Dials, st.Implausible)
	}
}

// 200 idle cable_car links do not stay up: at most MaxHandshakes of them
// are up at once (each new one evicts the oldest that has sent nothing),
// and the rest end at IdleTimeout. A link that sent a message stays.
func TestCableCarIdleLinks(t *testing.T) {
	leaktest.Check(t)
	n := cableCarNodeWith(t, "binary", freeUDPPort(t), closedTCPPort(t), func(c *NodeConfig) {
		c.CableCar.IdleTimeout = time.Second
	})
	addr := n.cc.ln.Addr().String()
	talker, err := fromTransport(loopbackSource(23, 1)).Dial(testCtx(t, 5*time.Second), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer talker.Close()
	talkCableCar(t, n, talker, "127.0.23.1")

	const idle = 200
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range idle {
		c, err := fromTransport(loopbackSource(24, 1+i)).Dial(testCtx(t, 5*time.Second), addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// Every idle one is closed: each read ends.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, c := range conns {
		dl, _ := ctx.Deadline()
		c.SetReadDeadline(dl)
		if _, err := c.Read(make([]byte, 16)); err == nil {
			t.Fatalf("idle link %d: the node sent something", i)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("idle link %d still up after 30 s", i)
		}
	}
	waitUntil(t, 10*time.Second, "the idle links out of the table", func() bool { return len(linkedPeers(n)) == 1 })
	st := n.Stats()
	t.Logf("%d idle cable_car links: %d evicted for newer ones, %d closed idle", idle, st.EvictedHandshakes, st.CableCar.IdleClosed)
	if st.EvictedHandshakes+st.CableCar.IdleClosed != idle {
		t.Errorf("%d evicted + %d idle-closed, want %d", st.EvictedHandshakes, st.CableCar.IdleClosed, idle)
	}
	if st.CableCar.IdleClosed > defaultMaxHandshakes {
		t.Errorf("%d idle-closed: more than %d were up at once", st.CableCar.IdleClosed, defaultMaxHandshakes)
	}
	// The talker, who sent messages, is still linked and still heard.
	talkCableCar(t, n, talker, "127.0.23.1")
}

// talkCableCar exchanges binary messages with the node as the cable_car
// program at ip on conn.
func talkCableCar(t *testing.T, n *Node, conn net.Conn, ip string) {
	t.Helper()
	if _, err := conn.Write(cableCarFrames["binary"]); err != nil {
		t.Fatal(err)
	}
	id := cableCarID(netip.MustParseAddr(ip))
	for i := range 3 {
		if m := recv(t, n); m.From != id {
			t.Fatalf("message %d from %s", i, m.FromName)
		}
	}
	if err := n.Send(id, &message.Join{}); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 2)
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "\x02\x02" {
		t.Fatalf("cable_car read %q, %v", got, err)
	}
}

// cable_car links count against MaxPeers like any link.
func TestCableCarMaxPeers(t *testing.T) {
	leaktest.Check(t)
	n := cableCarNodeWith(t, "binary", freeUDPPort(t), closedTCPPort(t), func(c *NodeConfig) {
		c.Limits.MaxPeers = 1
	})
	addr := n.cc.ln.Addr().String()
	a, err := fromTransport(loopbackSource(25, 1)).Dial(testCtx(t, 5*time.Second), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	talkCableCar(t, n, a, "127.0.25.1")
	b, err := fromTransport(loopbackSource(25, 2)).Dial(testCtx(t, 5*time.Second), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := b.Read(make([]byte, 1)); err == nil {
		t.Fatal("the second cable_car peer got bytes")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the second cable_car peer was not refused")
	}
	if st := n.Stats(); st.RefusedPeers != 1 || len(linkedPeers(n)) != 1 {
		t.Errorf("%d refused, %d linked; want 1 and 1", st.RefusedPeers, len(linkedPeers(n)))
	}
}

// A cable_car link has no silence check (cable_car sends no pings), yet a
// JSON line that stops arriving above PartialFrameFree closes it.
func TestCableCarPartialLineStalls(t *testing.T) {
	leaktest.Check(t)
	n := cableCarNodeWith(t, "json", freeUDPPort(t), closedTCPPort(t), func(c *NodeConfig) {
		c.Link.Accept.PartialFrameTimeout = 300 * time.Millisecond
	})
	conn, err := fromTransport(loopbackSource(26, 1)).Dial(testCtx(t, 5*time.Second), n.cc.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	line := []byte(`["MsgIdentify",{"username":"` + strings.Repeat("a", 100<<10))
	if _, err := conn.Write(line); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("the node sent something")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the link with a stalled line is still up")
	}
	waitUntil(t, 5*time.Second, "the stall counted", func() bool { return n.Stats().PartialFrameStalled == 1 })
}
