package lane_test

import (
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lane"
	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/lanmeshtest/netlab"
)

// Two hosts in namespaces; a firewall on one that drops UDP and lets
// everything else through. The lane notices (both ends go blocked, so the
// link would carry the lane's messages), keeps its messages for the link
// meanwhile, and comes back up when the rule is lifted.
func TestNetnsBlockedAndBack(t *testing.T) {
	if testing.Short() {
		t.Skip("namespace test")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("skipping: nft (nftables) is not installed")
	}
	leaktest.Check(t)
	lab := netlab.New(t, 2)
	h1, h2 := lab.Hosts[0], lab.Hosts[1]
	open := func(h *netlab.Host) *endpoint {
		var c *net.UDPConn
		if err := h.Do(func() (err error) {
			c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(h.Addr, 0)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		e := &endpoint{conn: &tapConn{UDPConn: c}, got: make(chan lane.Message, 1024)}
		e.ep = lane.NewEndpoint(e.conn)
		t.Cleanup(func() { e.ep.Close() })
		return e
	}
	a, b := open(h1), open(h2)
	ta, _ := lane.NewToken()
	tb, _ := lane.NewToken()
	secret := make([]byte, 64)
	sa, _ := lane.NewSession(ta, tb, true, secret)
	sb, _ := lane.NewSession(tb, ta, false, secret)
	sa.Peer, sb.Peer = addr(b.conn.UDPConn), addr(a.conn.UDPConn)
	cfg := lane.DefaultConfig()
	cfg.PingInterval, cfg.BlockedPings, cfg.BlockedAfter = 50*time.Millisecond, 3, 300*time.Millisecond
	for _, x := range []struct {
		e *endpoint
		s lane.Session
	}{{a, sa}, {b, sb}} {
		l, err := x.e.ep.Open(cfg, x.s, func(msgs []lane.Message) {
			for _, m := range msgs {
				m.Payload = append([]byte(nil), m.Payload...)
				x.e.got <- m
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		x.e.lane = l
	}
	both := func(s lane.State) func() bool {
		return func() bool { return a.lane.State() == s && b.lane.State() == s }
	}
	waitFor(t, "both lanes up", both(lane.Up), a, b)

	if err := h2.Nft("table inet lanetest {\n chain in { type filter hook input priority 0; policy accept; meta l4proto udp drop; }\n}\n"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h2.Nft("delete table inet lanetest\n") })
	start := time.Now()
	waitFor(t, "both lanes blocked", both(lane.Blocked), a, b)
	t.Logf("blocked after %v", time.Since(start).Round(time.Millisecond))

	// Blocked, a's positions wait for the link, newest only.
	for i := 0; i < 3; i++ {
		a.lane.Enqueue(lane.Sequenced, 0, []byte{byte(i)})
	}
	a.lane.Flush(time.Now())
	var drained []byte
	a.lane.Drain(func(k lane.Kind, ch byte, seq uint32, p []byte) bool {
		drained = append(drained, p...)
		return true
	})
	if len(drained) != 1 || drained[0] != 2 {
		t.Fatalf("drained %v, want the newest position alone", drained)
	}

	if err := h2.Nft("delete table inet lanetest\n"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	waitFor(t, "both lanes back up", both(lane.Up), a, b)
	t.Logf("back up after %v", time.Since(start).Round(time.Millisecond))
	a.lane.Enqueue(lane.Sequenced, 0, []byte("back"))
	a.lane.Flush(time.Now())
	select {
	case m := <-b.got:
		if string(m.Payload) != "back" {
			t.Fatalf("b got %q", m.Payload)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing over the lane after it came back")
	}
	if h := a.lane.Health(); h.RTT <= 0 {
		t.Fatalf("health %+v", h)
	}
}
