package mesh

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/lane"
	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/meshkey"
	"github.com/lanmesh/lanmesh/message"
)

// fastLane is a lane config that notices a blocked or returning lane
// within a fraction of a second.
func fastLane() LaneConfig {
	c := lane.DefaultConfig()
	c.PingInterval, c.BlockedPings, c.BlockedAfter = 30*time.Millisecond, 3, 300*time.Millisecond
	return LaneConfig{Config: c}
}

// lanePair starts two loopback nodes linked by Connect (no discovery), with
// a fast lane, and pumps both until their lanes are up.
func lanePair(t *testing.T, adjust func(i int, c *NodeConfig)) (a, b *Node) {
	t.Helper()
	nodes := make([]*Node, 2)
	for i := range nodes {
		cfg := DefaultNodeConfig()
		setTestConfig(&cfg, t)
		cfg.Name = []string{"a", "b"}[i]
		cfg.Discovery.Off = true
		cfg.Net.Listen = []string{"127.0.0.1:0"}
		cfg.Lane = fastLane()
		if adjust != nil {
			adjust(i, &cfg)
		}
		n, err := NewNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
		t.Cleanup(func() { n.Close() })
	}
	a, b = nodes[0], nodes[1]
	if _, err := a.Connect(testCtx(t, 5*time.Second), b.Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	if a.LanePort() == 0 || b.LanePort() == 0 {
		t.Fatal("no lane socket")
	}
	waitLane(t, a, b, "up")
	waitLane(t, b, a, "up")
	return a, b
}

// waitLane pumps both nodes until n's lane to peer is in state.
func waitLane(t *testing.T, n, peer *Node, state string) {
	t.Helper()
	waitUntil(t, 10*time.Second, n.Name()+"'s lane "+state, func() bool {
		n.Xfer()
		peer.Xfer()
		drainNode(n)
		drainNode(peer)
		p, err := n.Peer(peer.ID())
		return err == nil && p.Lane.State == state
	})
}

// drainNode takes what a node's stream holds, without waiting.
func drainNode(n *Node) {
	for {
		if _, ok := n.Get(); !ok {
			return
		}
	}
}

// recvVia waits for the next Msg32 on n, pumping both, and returns it with
// its delivery kind.
func recvMsg(t *testing.T, n, peer *Node) (uint64, Delivery) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n.Xfer()
		peer.Xfer()
		m, ok := n.Get()
		if !ok {
			time.Sleep(time.Millisecond)
			continue
		}
		if v, ok := m.Msg.(*Msg32); ok {
			return v.Seq, m.Via
		}
	}
	t.Fatalf("%s: no message", n.Name())
	return 0, 0
}

func laneTo(t testing.TB, n, peer *Node) (*linkLane, *lane.Lane) {
	t.Helper()
	l := n.links.Load().byID[peer.ID()]
	if l == nil {
		t.Fatal("no link")
	}
	ll := laneOf(l)
	if ll == nil || ll.ln.Load() == nil {
		t.Fatal("no lane")
	}
	return ll, ll.ln.Load()
}

// TestLaneAgreedAndUsed: two nodes agree a lane; Sequenced and Unreliable
// messages go over it (the lane counts them) and come out of Get marked
// with their kind; Reliable ones come marked Reliable.
func TestLaneAgreedAndUsed(t *testing.T) {
	leaktest.Check(t)
	a, b := lanePair(t, nil)
	for _, d := range []Delivery{Sequenced, Unreliable, Reliable} {
		if err := a.SendKind(b.ID(), &Msg32{Seq: uint64(d) + 100}, d); err != nil {
			t.Fatal(err)
		}
		seq, via := recvMsg(t, b, a)
		if seq != uint64(d)+100 || via != d {
			t.Fatalf("sent %d %v, got %d %v", uint64(d)+100, d, seq, via)
		}
	}
	if n, err := a.BroadcastKind(&Msg32{Seq: 7}, Sequenced); n != 1 || err != nil {
		t.Fatalf("BroadcastKind: %d, %v", n, err)
	}
	if seq, via := recvMsg(t, b, a); seq != 7 || via != Sequenced {
		t.Fatalf("broadcast: got %d %v", seq, via)
	}
	pa, _ := a.Peer(b.ID())
	pb, _ := b.Peer(a.ID())
	if pa.Lane.Stats.SentMessages != 3 || pb.Lane.Stats.DeliveredMessages != 3 {
		t.Fatalf("lane stats: a sent %d, b delivered %d, want 3", pa.Lane.Stats.SentMessages, pb.Lane.Stats.DeliveredMessages)
	}
	if pa.Lane.Health.RTT <= 0 {
		t.Fatalf("lane RTT %v", pa.Lane.Health.RTT)
	}
}

// TestLaneOneDatagramPerTick: small messages sent in one tick leave in one
// datagram; a sequenced channel keeps only its newest until Xfer.
func TestLaneOneDatagramPerTick(t *testing.T) {
	leaktest.Check(t)
	a, b := lanePair(t, nil)
	_, ln := laneTo(t, a, b)
	before := ln.Stats()
	for i := range 10 {
		if err := a.SendKind(b.ID(), &Msg32{Seq: uint64(i)}, Sequenced); err != nil {
			t.Fatal(err)
		}
		if err := a.SendKind(b.ID(), &Text{S: "x"}, Unreliable); err != nil {
			t.Fatal(err)
		}
	}
	a.Xfer()
	after := ln.Stats()
	// A ping or pong may share the tick, never another datagram.
	if got := after.SentMessages - before.SentMessages; got != 11 {
		t.Fatalf("sent %d messages, want 11", got)
	}
	if got := after.SentDatagrams - before.SentDatagrams; got != 1 {
		t.Fatalf("%d datagrams for one tick", got)
	}
	if got := after.Superseded - before.Superseded; got != 9 {
		t.Fatalf("superseded %d, want 9", got)
	}
	if seq, via := recvMsg(t, b, a); seq != 9 || via != Sequenced {
		t.Fatalf("got %d %v, want the newest (9)", seq, via)
	}
}

func netipLoopback(port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), port)
}

// TestLaneTooLarge: a message that cannot fit one datagram is an error at
// Send, with the size; nothing is queued.
func TestLaneTooLarge(t *testing.T) {
	leaktest.Check(t)
	a, b := lanePair(t, func(_ int, c *NodeConfig) { c.Codec = "msgpack" })
	big := &Text{S: strings.Repeat("x", 2000)}
	for _, d := range []Delivery{Sequenced, Unreliable} {
		if err := a.SendKind(b.ID(), big, d); !errors.Is(err, ErrTooLargeForLane) {
			t.Fatalf("%v: %v, want ErrTooLargeForLane", d, err)
		}
		if _, err := a.BroadcastKind(big, d); !errors.Is(err, ErrTooLargeForLane) {
			t.Fatalf("broadcast %v: %v, want ErrTooLargeForLane", d, err)
		}
	}
	if err := a.SendKind(b.ID(), big, Reliable); err != nil {
		t.Fatalf("reliable: %v", err)
	}
}

// TestLaneNoneWithOff: a node with Lane.Off sends every kind Reliable;
// so does a lane node to it (it got no offer).
func TestLaneNoneWithOff(t *testing.T) {
	leaktest.Check(t)
	_, b := lanePair(t, nil)
	// Lane.Off on one side: the other gets no offer, and has no lane.
	cfg := DefaultNodeConfig()
	setTestConfig(&cfg, t)
	cfg.Name = "off"
	cfg.Discovery.Off = true
	cfg.Net.Listen = []string{"127.0.0.1:0"}
	cfg.Lane.Off = true
	off, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { off.Close() })
	if _, err := b.Connect(testCtx(t, 5*time.Second), off.Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	for _, d := range []Delivery{Sequenced, Unreliable} {
		if err := b.SendKind(off.ID(), &Msg32{Seq: 5}, d); err != nil {
			t.Fatal(err)
		}
		if seq, via := recvMsg(t, off, b); seq != 5 || via != Reliable {
			t.Fatalf("got %d %v from a lane node to a node with none", seq, via)
		}
		if err := off.SendKind(b.ID(), &Msg32{Seq: 6}, d); err != nil {
			t.Fatal(err)
		}
		if seq, via := recvMsg(t, b, off); seq != 6 || via != Reliable {
			t.Fatalf("got %d %v from a node with no lane", seq, via)
		}
	}
	if p, _ := b.Peer(off.ID()); p.Lane.State != "" {
		t.Fatalf("lane state %q to a node with none", p.Lane.State)
	}
}

// TestLaneSequencedNeverOlder: over many ticks, with the lane and the
// link's fallback mixed (each message takes one or the other), the
// receiver never gets an older sequenced message after a newer one.
func TestLaneSequencedNeverOlder(t *testing.T) {
	leaktest.Check(t)
	a, b := lanePair(t, nil)
	ll, ln := laneTo(t, a, b)
	var last uint64
	got := 0
	deadline := time.Now().Add(10 * time.Second)
	for i := uint64(1); i <= 300 && time.Now().Before(deadline); i++ {
		if err := a.SendKind(b.ID(), &Msg32{Seq: i}, Sequenced); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			// Hand this one to the link as a blocked lane would; the next
			// goes over UDP and may overtake it.
			ll.mu.Lock()
			ll.drain(a.links.Load().byID[b.ID()], ln)
			ll.mu.Unlock()
		}
		a.Xfer()
		for {
			m, ok := b.Get()
			if !ok {
				break
			}
			v, ok := m.Msg.(*Msg32)
			if !ok {
				continue
			}
			if m.Via != Sequenced || v.Seq <= last {
				t.Fatalf("got %d (%v) after %d", v.Seq, m.Via, last)
			}
			last = v.Seq
			got++
		}
	}
	waitUntil(t, 5*time.Second, "the last message", func() bool {
		a.Xfer()
		for {
			m, ok := b.Get()
			if !ok {
				return last == 300
			}
			if v, ok := m.Msg.(*Msg32); ok {
				if v.Seq <= last {
					t.Fatalf("got %d after %d", v.Seq, last)
				}
				last = v.Seq
				got++
			}
		}
	})
	t.Logf("%d of 300 delivered, in order", got)
}

// TestLaneBadDatagrams: spoofed (another address), replayed, too old and
// stale-session (unknown token) datagrams are dropped and counted.
func TestLaneBadDatagrams(t *testing.T) {
	leaktest.Check(t)
	a, b := lanePair(t, nil)
	llA, lnA := laneTo(t, a, b)
	to := net.UDPAddrFromAddrPort(netipLoopback(a.LanePort()))
	item := lane.Message{Kind: lane.Unreliable, Payload: []byte{1, 2}}
	dgram := func(tok lane.Token, counter uint64) []byte {
		d := lane.Datagram{Header: lane.Header{Token: tok, Counter: counter}, Messages: []lane.Message{item}}
		p, err := d.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	stranger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	before := lnA.Stats()
	unknown := a.LaneStats().Unknown

	// Spoofed: a's token, from another address.
	stranger.WriteTo(dgram(llA.local, 1<<40), to)
	// Stale session: a token of no lane here.
	var stale lane.Token
	stale[0] = 0x5a
	stranger.WriteTo(dgram(stale, 1), to)
	// Replayed: from b's own lane socket, the same datagram twice (a
	// counter a little ahead of b's own, so b's go on being accepted).
	bconn := b.lane.conn
	_, lnB := laneTo(t, b, a)
	replayed := dgram(llA.local, lnB.Stats().SentDatagrams+100)
	bconn.WriteTo(replayed, to)
	waitUntil(t, 5*time.Second, "the first copy", func() bool { return lnA.Stats().RecvDatagrams > before.RecvDatagrams })
	bconn.WriteTo(replayed, to)
	waitUntil(t, 5*time.Second, "every drop counted", func() bool {
		s := lnA.Stats()
		return s.DropSession > before.DropSession && s.DropReplay > before.DropReplay &&
			a.LaneStats().Unknown > unknown
	})
	// The counters reach the program.
	p, _ := a.Peer(b.ID())
	if p.Lane.Stats.DropSession == 0 || p.Lane.Stats.DropReplay == 0 {
		t.Fatalf("PeerInfo.Lane.Stats %+v", p.Lane.Stats)
	}
	// The lane lives on.
	if err := b.SendKind(a.ID(), &Msg32{Seq: 1}, Unreliable); err != nil {
		t.Fatal(err)
	}
	if seq, via := recvMsg(t, a, b); seq != 1 || via != Unreliable {
		t.Fatalf("after the bad datagrams: %d %v", seq, via)
	}
	// Too old: a counter far ahead (an unkeyed lane's tokens travel in the
	// clear, so this one is accepted), then one behind the window.
	before = lnA.Stats()
	bconn.WriteTo(dgram(llA.local, 1<<30), to)
	waitUntil(t, 5*time.Second, "the far-ahead datagram", func() bool { return lnA.Stats().RecvDatagrams > before.RecvDatagrams })
	bconn.WriteTo(dgram(llA.local, 5), to)

	waitUntil(t, 5*time.Second, "the too-old datagram counted", func() bool { return lnA.Stats().DropTooOld > before.DropTooOld })
	// The far-ahead datagram's payload is not a frame: dropped and counted
	// by the node.
	waitUntil(t, 5*time.Second, "the undecodable payload counted", func() bool {
		p, _ := a.Peer(b.ID())
		return p.Lane.Dropped > 0
	})
}

// TestLaneKeyed: on a keyed mesh the lane is sealed with keys of its own
// link: messages cross it; a clear datagram, and one sealed under another
// link's keys, are dropped and counted.
func TestLaneKeyed(t *testing.T) {
	leaktest.Check(t)
	key := testKey(1)
	a, b := lanePair(t, func(_ int, c *NodeConfig) { c.Keyring = meshkey.Keyring{Primary: key} })
	if err := a.SendKind(b.ID(), &Msg32{Seq: 42}, Sequenced); err != nil {
		t.Fatal(err)
	}
	if seq, via := recvMsg(t, b, a); seq != 42 || via != Sequenced {
		t.Fatalf("keyed: got %d %v", seq, via)
	}
	llB, lnB := laneTo(t, b, a)
	llA, _ := laneTo(t, a, b)
	if len(llA.secret) != 64 || string(llA.secret) != string(llB.secret) {
		t.Fatal("the two ends hold different lane secrets")
	}
	before := lnB.Stats()
	to := net.UDPAddrFromAddrPort(netipLoopback(b.LanePort()))
	// Clear, from a's own socket.
	d := lane.Datagram{Header: lane.Header{Token: llB.local, Counter: 1 << 20},
		Messages: []lane.Message{{Kind: lane.Unreliable, Payload: []byte{1}}}}
	clear, _ := d.AppendBinary(nil)
	a.lane.conn.WriteTo(clear, to)
	// Sealed under another key (another link's, a restart's): a fresh
	// counter, so that it is the seal that fails. Any bytes do.
	h := lane.Header{Flags: lane.FlagSealed, Token: llB.local, Counter: 1 << 21}
	forged, _ := h.AppendBinary(nil)
	forged = append(forged, make([]byte, 8+1+lane.TagSize)...)
	a.lane.conn.WriteTo(forged, to)
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := lnB.Stats()
		if s.DropMode > before.DropMode && s.DropAuth > before.DropAuth {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the clear and the forged datagram not counted: %+v, endpoint %+v", s, b.LaneStats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLaneCloseLeavesNothing: closing a node removes its lanes and its
// socket; the peer's lane to it no longer accepts its token.
func TestLaneCloseLeavesNothing(t *testing.T) {
	leaktest.Check(t)
	a, b := lanePair(t, nil)
	ll, _ := laneTo(t, b, a)
	tok := ll.local
	a.Close()
	waitUntil(t, 5*time.Second, "b sees a leave", func() bool {
		_, err := b.Peer(a.ID())
		p, _ := b.Peer(a.ID())
		return err != nil || p.State != StateLinked
	})
	unknown := b.LaneStats().Unknown
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := lane.Datagram{Header: lane.Header{Token: tok, Counter: 99}, Messages: []lane.Message{{Kind: lane.Unreliable}}}
	p, _ := d.AppendBinary(nil)
	c.WriteTo(p, net.UDPAddrFromAddrPort(netipLoopback(b.LanePort())))
	waitUntil(t, 5*time.Second, "the closed link's datagram counted unknown", func() bool {
		return b.LaneStats().Unknown > unknown
	})
}

// TestLaneChannels: on channels of the caller's choice, each channel's
// newest leaves at Xfer (one per object), whatever the type.
func TestLaneChannels(t *testing.T) {
	leaktest.Check(t)
	a, b := lanePair(t, nil)
	for i := range 12 {
		if err := a.SendChannel(b.ID(), &Msg32{Seq: uint64(i)}, Sequenced, uint8(i%3)); err != nil {
			t.Fatal(err)
		}
	}
	got := map[uint64]bool{}
	for len(got) < 3 {
		seq, via := recvMsg(t, b, a)
		if via != Sequenced || seq < 9 {
			t.Fatalf("got %d %v, want each channel's newest (9, 10, 11)", seq, via)
		}
		got[seq] = true
	}
	if n, err := a.BroadcastChannel(&Msg32{Seq: 20}, Unreliable, 7); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	if seq, via := recvMsg(t, b, a); seq != 20 || via != Unreliable {
		t.Fatalf("got %d %v", seq, via)
	}
}

// TestLaneSecondOffer: a second LaneOffer on a link is a protocol error;
// the peer is told why and the node keeps serving.
func TestLaneSecondOffer(t *testing.T) {
	leaktest.Check(t)
	a, b := lanePair(t, nil)
	la := a.links.Load().byID[b.ID()]
	l := b.links.Load().byID[a.ID()]
	if err := l.Send(&message.LaneOffer{Port: 1, Token: 1}); err != nil {
		t.Fatal(err)
	}
	l.Flush()
	if err := waitDone(t, la, 5*time.Second); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "second lane offer") {
		t.Fatalf("a's link ended with %v, want a protocol error about the second offer", err)
	}
	if err := waitDone(t, l, 5*time.Second); !errors.Is(err, ErrPeerBye) || !strings.Contains(err.Error(), "second lane offer") {
		t.Fatalf("b's link ended with %v, want a's reason", err)
	}
}

// TestLaneKeysPerLink: each link of a keyed pair gets a lane secret of its
// own: a new link (a reconnect) never reuses the last one's.
func TestLaneKeysPerLink(t *testing.T) {
	leaktest.Check(t)
	a, b := lanePair(t, func(_ int, c *NodeConfig) { c.Keyring = meshkey.Keyring{Primary: testKey(2)} })
	ll, _ := laneTo(t, a, b)
	first := string(ll.secret)
	old := a.links.Load().byID[b.ID()]
	old.CloseReason("test reconnect")
	waitUntil(t, 5*time.Second, "the link gone", func() bool {
		drainNode(a)
		drainNode(b)
		return a.links.Load().byID[b.ID()] == nil
	})
	if _, err := a.Connect(testCtx(t, 5*time.Second), b.Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	waitLane(t, a, b, "up")
	ll2, _ := laneTo(t, a, b)
	if len(ll2.secret) != 64 || string(ll2.secret) == first || ll2.local == ll.local {
		t.Fatal("a new link reuses the lane secret or token of the last")
	}
	if err := a.SendKind(b.ID(), &Msg32{Seq: 3}, Sequenced); err != nil {
		t.Fatal(err)
	}
	if seq, via := recvMsg(t, b, a); seq != 3 || via != Sequenced {
		t.Fatalf("over the new link's lane: %d %v", seq, via)
	}
}

// TestLaneDatagramValues: the messages of one lane datagram come out of
// Get each with a value of its own, in order, whatever the mix of types
// and runs (values of a run are allocated together), and a frame that does
// not decode in the middle of a run is dropped and counted alone.
func TestLaneDatagramValues(t *testing.T) {
	a, b := lanePair(t, nil)
	llB, lnB := laneTo(t, b, a)
	b.lane.ep.Remove(lnB) // the test plays the endpoint's reader
	l := b.links.Load().byID[a.ID()]
	drainNode(b)
	var msgs []lane.Message
	var want []string
	add := func(m any) {
		frame, err := l.codec.AppendFrame(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, lane.Message{Kind: lane.Unreliable, Payload: frame})
		want = append(want, fmt.Sprint(m))
	}
	if codeType(t, l, codeMsg32).NewArray == nil || codeType(t, l, codeText).NewArray != nil {
		t.Fatal("Msg32's values are not allocated together, or Text's (a string) are")
	}
	for i := range 70 { // longer than one array: slabBytes holds 32
		add(&Msg32{Seq: uint64(i)})
		if i == 40 || i == 41 {
			add(&Text{S: fmt.Sprint("between ", i)})
		}
	}
	// A frame of Msg32's code that is too short, within a run.
	bad, _ := l.codec.AppendFrame(nil, &Msg32{Seq: 99})
	bad = bad[:len(bad)-1]
	bad[0] = byte(len(bad))
	msgs = slices.Insert(msgs, 10, lane.Message{Kind: lane.Unreliable, Payload: bad})
	dropped := llB.dropped.Load()
	llB.deliver(l, msgs)
	if d := llB.dropped.Load() - dropped; d != 1 {
		t.Errorf("%d dropped, want the bad frame alone", d)
	}
	seen := map[any]bool{}
	var got []string
	for m, ok := b.Get(); ok; m, ok = b.Get() {
		if seen[m.Msg] {
			t.Fatalf("a value delivered twice: %v", m.Msg)
		}
		seen[m.Msg] = true
		got = append(got, fmt.Sprint(m.Msg))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %d messages:\n%v\nwant %d:\n%v", len(got), got, len(want), want)
	}
}

func codeType(t *testing.T, l *link, code byte) *codec.Type {
	t.Helper()
	ty := l.codec.(*codec.Binary).TypeOf(code)
	if ty == nil {
		t.Fatalf("no type of code 0x%02x", code)
	}
	return ty
}
