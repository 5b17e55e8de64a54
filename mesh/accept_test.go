package mesh

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// loopbackSource returns the address 127.0.b.c: each test uses a third
// byte of its own, and all of 127.0.0.0/8 works on lo.
func loopbackSource(b, c int) net.IP { return net.IPv4(127, 0, byte(b), byte(c)) }

// fromTransport is TCP with connections made from src.
func fromTransport(src net.IP) *TCPTransport {
	return &TCPTransport{Dialer: net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}}
}

// victimNode starts a node on 127.0.0.1 with no discovery.
func victimNode(t *testing.T, adjust func(*NodeConfig)) *Node {
	t.Helper()
	cfg := DefaultNodeConfig()
	setTestConfig(&cfg, t)
	cfg.Name = "victim"
	cfg.Net.Listen = []string{"127.0.0.1:0"}
	cfg.Discovery.Off = true
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

func TestHandshakeSlots(t *testing.T) {
	var s hsSlots
	s.init(4, 2)
	a, b, c := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	var held []*slot
	for _, src := range []netip.Addr{a, a, b, b} {
		sl, victim := s.acquire(src, nil)
		if sl == nil || victim != nil {
			t.Fatalf("slot for %v: %v, victim %v", src, sl, victim)
		}
		held = append(held, sl)
	}
	// A source at its share is refused, and evicts nobody.
	if sl, victim := s.acquire(a, nil); sl != nil || victim != nil {
		t.Fatal("a third slot for one source")
	}
	// All taken: a newcomer evicts the oldest.
	sl, victim := s.acquire(c, nil)
	if sl == nil || victim != held[0] {
		t.Fatalf("newcomer: slot %v, victim %v, want the oldest", sl, victim)
	}
	// The evicted one's release is a no-op; a's share has room again.
	held[0].release()
	if got := s.inUse(); got != 4 {
		t.Fatalf("%d slots in use, want 4", got)
	}
	if sl2, victim := s.acquire(a, nil); sl2 == nil || victim != held[1] {
		t.Fatalf("a again: slot %v, victim %v, want a's older one", sl2, victim)
	}
	sl.release()
	if got := s.inUse(); got != 3 {
		t.Fatalf("%d slots in use, want 3", got)
	}
}

// 1,000 silent connections from 100 addresses hold at most MaxHandshakes
// slots: each new one evicts the oldest, and a newcomer still links.
// Without eviction the newcomer would wait behind 64 silent handshakes
// for a minute (and, past the kernel's backlog, be refused).
func TestNodeSilentFloodManyAddresses(t *testing.T) {
	leaktest.Check(t)
	v := victimNode(t, func(c *NodeConfig) {
		c.Link.HandshakeTimeout = time.Minute // the silent ones hold their slots
	})
	addr := v.Addrs()[0].String()
	const sources, each = 100, 10
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range sources * each {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: loopbackSource(11, 1+i%sources)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("silent connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	wantEvicted := uint64(sources*each - defaultMaxHandshakes)
	waitUntil(t, 20*time.Second, "the flood accepted", func() bool {
		return v.Stats().EvictedHandshakes >= wantEvicted
	})
	if got := v.acc.slots.inUse(); got != defaultMaxHandshakes {
		t.Errorf("%d handshake slots in use, want %d", got, defaultMaxHandshakes)
	}

	cfg := testConfig(t)
	cfg.Name = "newcomer"
	cfg.Link.Transport = fromTransport(loopbackSource(12, 1))
	m, err := Dial(testCtx(t, 10*time.Second), cfg, addr)
	if err != nil {
		t.Fatalf("the newcomer could not link during the flood: %v", err)
	}
	defer m.Close()
	waitUntil(t, 5*time.Second, "the newcomer linked", func() bool {
		p, err := v.Peer(cfg.NodeID)
		return err == nil && p.State == StateLinked
	})
	st := v.Stats()
	t.Logf("flood of %d: %d evicted, %d refused, %d failed handshakes", sources*each, st.EvictedHandshakes, st.RefusedConns, st.FailedHandshakes)
	if st.EvictedHandshakes != wantEvicted+1 || st.RefusedConns != 0 {
		t.Errorf("evicted %d, refused %d; want %d and 0", st.EvictedHandshakes, st.RefusedConns, wantEvicted+1)
	}
}

// fakePeers links n made-up node ids to addr, one at a time, from the
// given sources in turn, and waits after each until v has decided on it.
func fakePeers(t *testing.T, v *Node, addr string, sources []net.IP, n int) []*Messenger {
	t.Helper()
	var out []*Messenger
	decided := func() uint64 {
		st := v.Stats()
		return uint64(len(linkedPeers(v))) + st.RefusedPeers + st.RefusedIDs + st.EvictedPeers
	}
	base := decided()
	for i := range n {
		cfg := testConfig(t)
		cfg.NodeID = uuid.New()
		cfg.Name = fmt.Sprintf("fake%d", i)
		cfg.Link.Silence = time.Minute // a refused one must not be dropped for silence first
		cfg.Link.PingInterval = 10 * time.Second
		cfg.Link.Transport = fromTransport(sources[i%len(sources)])
		m, err := Dial(testCtx(t, 5*time.Second), cfg, addr)
		if err != nil {
			t.Fatalf("fake %d: %v", i, err)
		}
		out = append(out, m)
		waitUntil(t, 5*time.Second, fmt.Sprintf("a decision on fake %d", i), func() bool { return decided() >= base+uint64(i+1) })
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, m := range out {
			wg.Go(func() { m.Close() })
		}
		wg.Wait()
	})
	return out
}

// 300 made-up node ids from 100 addresses fill MaxPeers (256) and are
// refused past it, yet a newcomer from another address links: it evicts
// the youngest link of an address that holds three. (Before the fairness
// rule, it was refused: "too many peers".)
func TestNodeFakeIDsDoNotLockOut(t *testing.T) {
	leaktest.Check(t)
	v := victimNode(t, func(c *NodeConfig) {
		// 256 links: a loaded machine must not drop one for silence.
		c.Link.Silence = 30 * time.Second
		c.Link.PingInterval = time.Second
	})
	addr := v.Addrs()[0].String()
	var sources []net.IP
	for i := range 100 {
		sources = append(sources, loopbackSource(13, 1+i))
	}
	fakePeers(t, v, addr, sources, 300)
	st := v.Stats()
	if n := len(linkedPeers(v)); n != defaultMaxPeers || st.RefusedPeers != 300-defaultMaxPeers || st.EvictedPeers != 0 {
		t.Fatalf("after the fakes: %d linked, %d refused, %d evicted; want %d, %d, 0",
			n, st.RefusedPeers, st.EvictedPeers, defaultMaxPeers, 300-defaultMaxPeers)
	}

	cfg := testConfig(t)
	cfg.Name = "newcomer"
	cfg.Link.Transport = fromTransport(loopbackSource(14, 1))
	m, err := Dial(testCtx(t, 5*time.Second), cfg, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	waitUntil(t, 5*time.Second, "the newcomer linked", func() bool {
		p, err := v.Peer(cfg.NodeID)
		return err == nil && p.State == StateLinked
	})
	waitUntil(t, 5*time.Second, "the evicted link gone", func() bool { return len(linkedPeers(v)) == defaultMaxPeers })
	st = v.Stats()
	t.Logf("300 fake ids from 100 addresses: %d linked, %d refused (MaxPeers), %d evicted for the newcomer", len(linkedPeers(v)), st.RefusedPeers, st.EvictedPeers)
	if st.EvictedPeers != 1 {
		t.Errorf("evicted %d for the newcomer, want 1", st.EvictedPeers)
	}
}

// One address may link at most NewIDsPerSource young node ids; this host
// itself may link any number.
func TestNodeNewIDsPerSource(t *testing.T) {
	leaktest.Check(t)
	v := victimNode(t, nil)
	addr := v.Addrs()[0].String()
	fakePeers(t, v, addr, []net.IP{loopbackSource(15, 1)}, 10)
	st := v.Stats()
	if n := len(linkedPeers(v)); n != defaultNewIDsPerSource || st.RefusedIDs != 10-defaultNewIDsPerSource {
		t.Fatalf("10 ids from one address: %d linked, %d refused; want %d and %d", n, st.RefusedIDs, defaultNewIDsPerSource, 10-defaultNewIDsPerSource)
	}
	fakePeers(t, v, addr, []net.IP{loopbackSource(0, 1)}, 10) // 127.0.0.1: this host
	if n := len(linkedPeers(v)); n != defaultNewIDsPerSource+10 || v.Stats().RefusedIDs != st.RefusedIDs {
		t.Fatalf("10 ids from this host: %d linked in all, %d refused", n, v.Stats().RefusedIDs)
	}
}

// A Listener's backlog of links waiting for Accept is bounded: past it, new
// links are closed with a reason and counted.
func TestListenerBacklog(t *testing.T) {
	leaktest.Check(t)
	cfg := testConfig(t)
	cfg.Link.Accept.Backlog = 2
	ln, err := Listen(cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var ms []*Messenger
	for i := range 5 {
		c := testConfig(t)
		c.Link.Transport = fromTransport(loopbackSource(16, 1+i))
		m, err := Dial(testCtx(t, 5*time.Second), c, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
		defer m.Close()
	}
	waitUntil(t, 5*time.Second, "3 links refused", func() bool { return ln.Refused() == 3 })
	var closed []*Messenger
	waitUntil(t, 5*time.Second, "3 links closed", func() bool {
		closed = closed[:0]
		for _, m := range ms {
			if m.Err() != nil {
				closed = append(closed, m)
			}
		}
		return len(closed) == 3
	})
	for _, m := range closed {
		<-m.Done()
		if ce := wantClose(t, m.Err(), ErrPeerBye, true); ce.Reason != "listener backlog full" {
			t.Errorf("reason %q", ce.Reason)
		}
	}
	for range 2 {
		if _, err := ln.Accept(testCtx(t, time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := ln.Accept(ctx); err == nil {
		t.Error("a third link in a backlog of 2")
	}
}

// errListener fails its first accepts, then hands out one conn, then is
// closed.
type errListener struct {
	fails int
	conn  net.Conn
	calls int
}

func (l *errListener) Accept() (net.Conn, error) {
	l.calls++
	switch {
	case l.calls <= l.fails:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: fmt.Errorf("too many open files")}
	case l.conn != nil:
		c := l.conn
		l.conn = nil
		return c, nil
	}
	return nil, net.ErrClosed
}
func (l *errListener) Close() error   { return nil }
func (l *errListener) Addr() net.Addr { return &net.TCPAddr{} }

// The accept loop outlives accept errors (backing off between them) and
// ends when its listener closes.
func TestAcceptLoopSurvivesErrors(t *testing.T) {
	leaktest.Check(t)
	client, server := net.Pipe()
	defer client.Close()
	ln := &errListener{fails: 3, conn: server}
	var wg sync.WaitGroup
	a := newAcceptor(t.Context(), &wg, DefaultAcceptConfig(), discardLogger)
	handled := make(chan net.Conn, 1)
	a.serve(ln, func(c net.Conn, s *slot) {
		s.release()
		handled <- c
	})
	wg.Wait()
	select {
	case c := <-handled:
		c.Close()
	default:
		t.Fatal("the conn after the errors was not handled")
	}
	if ln.calls != 5 {
		t.Errorf("%d accepts, want 5: 3 failures, a conn, the close", ln.calls)
	}
}
