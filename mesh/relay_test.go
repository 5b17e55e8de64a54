package mesh

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// pipeRelay joins nodes that are on no common LAN: what one node relays to
// another is delivered to that one's port at once, on the sender's
// goroutine.
type pipeRelay struct {
	mu    sync.Mutex
	ports map[uuid.UUID]*RelayPort
	// fail, if set, is the error RelaySend returns.
	fail error
	sent int
}

type relayEnd struct {
	pr   *pipeRelay
	from uuid.UUID
}

func (e relayEnd) RelaySend(to uuid.UUID, f RelayFrame) error {
	e.pr.mu.Lock()
	p := e.pr.ports[to]
	fail := e.pr.fail
	e.pr.sent++
	e.pr.mu.Unlock()
	if fail != nil {
		return fail
	}
	if p == nil {
		return ErrNoPeer
	}
	body := append([]byte(nil), f.Body...) // valid only during the call
	return p.Deliver(e.from, RelayFrame{Kind: f.Kind, ReqID: f.ReqID, Body: body})
}

// relayNode starts a node alone on a network of its own, with discovery off.
func relayNode(t *testing.T, name string, cfgFn func(*NodeConfig)) *Node {
	t.Helper()
	cfg := DefaultNodeConfig()
	cfg.Name = name
	cfg.Mesh = "relaytest"
	cfg.Registry = testRegistry
	cfg.Link.Transport = NewMemNetwork()
	cfg.Net.Listen = []string{name + ":1"}
	cfg.Discovery.Off = true
	if cfgFn != nil {
		cfgFn(&cfg)
	}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// joinRelay attaches a pipeRelay to a and b and tells each of the other.
func joinRelay(t *testing.T, pr *pipeRelay, a, b *Node) (pa, pb *RelayPort) {
	t.Helper()
	var err error
	if pa, err = a.AttachRelay(relayEnd{pr, a.ID()}); err != nil {
		t.Fatal(err)
	}
	if pb, err = b.AttachRelay(relayEnd{pr, b.ID()}); err != nil {
		t.Fatal(err)
	}
	pr.mu.Lock()
	pr.ports = map[uuid.UUID]*RelayPort{a.ID(): pa, b.ID(): pb}
	pr.mu.Unlock()
	inst := uuid.New()
	if err := pa.PeerUp(RemotePeer{ID: b.ID(), Instance: inst, Name: b.Name(), Site: "siteB"}); err != nil {
		t.Fatal(err)
	}
	if err := pb.PeerUp(RemotePeer{ID: a.ID(), Instance: uuid.New(), Name: a.Name(), Site: "siteA"}); err != nil {
		t.Fatal(err)
	}
	return pa, pb
}

func mustEvent(t *testing.T, n *Node, kind PeerEventKind) PeerEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev, err := nextEvent(ctx, n)
	if err != nil {
		t.Fatalf("%s: waiting for %v: %v", n.Name(), kind, err)
	}
	if ev.Kind != kind {
		t.Fatalf("%s: got %v of %s, want %v", n.Name(), ev.Kind, ev.Peer.Name, kind)
	}
	return ev
}

func nextMessage(t *testing.T, n *Node) Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := n.Receive(ctx)
	if err != nil {
		t.Fatalf("%s: %v", n.Name(), err)
	}
	return m
}

// TestRelayPeersAndMessages: remote peers are peers: events, Peers, Send,
// SendTo, Broadcast, Request, Reply and Refuse, with Via Relayed.
func TestRelayPeersAndMessages(t *testing.T) {
	leaktest.Check(t)
	a := relayNode(t, "ra", nil)
	b := relayNode(t, "rb", nil)
	pr := &pipeRelay{}
	joinRelay(t, pr, a, b)

	ev := mustEvent(t, a, PeerJoined)
	if ev.Peer.ID != b.ID() || ev.Peer.Site != "siteB" || ev.Peer.State != StateLinked {
		t.Fatalf("joined: %+v", ev.Peer)
	}
	mustEvent(t, b, PeerJoined)
	peers := a.Peers()
	if len(peers) != 1 || peers[0].Site != "siteB" || peers[0].Name != "rb" {
		t.Fatalf("Peers: %+v", peers)
	}
	if info, err := a.Peer(b.ID()); err != nil || info.Site != "siteB" {
		t.Fatalf("Peer: %+v %v", info, err)
	}

	if err := a.Send(b.ID(), &Text{S: "one"}); err != nil {
		t.Fatal(err)
	}
	if err := a.SendTo("rb", &Text{S: "two"}); err != nil {
		t.Fatal(err)
	}
	if k, err := a.Broadcast(&Text{S: "three"}); k != 1 || err != nil {
		t.Fatalf("Broadcast: %d %v", k, err)
	}
	for _, want := range []string{"one", "two", "three"} {
		m := nextMessage(t, b)
		if txt, ok := m.Msg.(*Text); !ok || txt.S != want || m.From != a.ID() || m.FromName != "ra" || m.Via != Relayed {
			t.Fatalf("got %+v (%v), want %q from ra via relay", m.Msg, m.Via, want)
		}
	}
	if Relayed.String() != "relayed" {
		t.Fatalf("Relayed.String() = %q", Relayed.String())
	}

	// Request and Reply, then Refuse, through the relay.
	done := make(chan error, 1)
	go func() {
		for range 2 {
			m := nextMessage(t, b)
			if !m.IsRequest() {
				done <- errors.New("not a request")
				return
			}
			var err error
			if m.Msg.(*Text).S == "ping" {
				err = b.Reply(m, &Text{S: "pong"})
			} else {
				err = b.Refuse(m, "no thanks")
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := a.Request(ctx, b.ID(), &Text{S: "ping"})
	if err != nil || r.(*Text).S != "pong" {
		t.Fatalf("Request: %v %v", r, err)
	}
	if _, err := a.RequestTo(ctx, "rb", &Text{S: "other"}); !errors.Is(err, ErrRefused) {
		t.Fatalf("Request refused: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRelayRestartLeftDetach: a new instance is PeerRestarted, PeerDown is
// PeerLeft with its cause (then Send says the peer is gone), and Detach
// and Close report the rest left.
func TestRelayRestartLeftDetach(t *testing.T) {
	leaktest.Check(t)
	a := relayNode(t, "la", nil)
	b := relayNode(t, "lb", nil)
	pr := &pipeRelay{}
	pa, _ := joinRelay(t, pr, a, b)
	mustEvent(t, a, PeerJoined)

	if err := pa.PeerUp(RemotePeer{ID: b.ID(), Instance: uuid.New(), Name: "lb", Site: "siteB"}); err != nil {
		t.Fatal(err)
	}
	mustEvent(t, a, PeerRestarted)
	// A new name alone is taken in silence.
	if err := pa.PeerUp(RemotePeer{ID: b.ID(), Instance: pa.Remote()[0].Instance, Name: "lb2", Site: "siteB"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := a.Peer(b.ID()); p.Name != "lb2" {
		t.Fatalf("name not updated: %+v", p)
	}

	cause := errors.New("gone away")
	pa.PeerDown(b.ID(), cause)
	ev := mustEvent(t, a, PeerLeft)
	if !errors.Is(ev.Err, cause) {
		t.Fatalf("left: %v", ev.Err)
	}
	if err := a.Send(b.ID(), &Text{S: "x"}); !errors.Is(err, ErrPeerGone) {
		t.Fatalf("Send after PeerDown: %v", err)
	}
	if len(a.Peers()) != 0 {
		t.Fatalf("Peers after PeerDown: %+v", a.Peers())
	}
	// A frame from a peer not known as remote is refused.
	if err := pa.Deliver(b.ID(), RelayFrame{Kind: RelayMessage}); !errors.Is(err, ErrNoPeer) {
		t.Fatalf("Deliver from unknown: %v", err)
	}

	// Up again, then Detach: left with ErrRelayDetached; a second
	// AttachRelay works after it, not before.
	if err := pa.PeerUp(RemotePeer{ID: b.ID(), Instance: uuid.New(), Name: "lb", Site: "siteB"}); err != nil {
		t.Fatal(err)
	}
	mustEvent(t, a, PeerJoined)
	if _, err := a.AttachRelay(relayEnd{pr, a.ID()}); !errors.Is(err, ErrRelayAttached) {
		t.Fatalf("second AttachRelay: %v", err)
	}
	pa.Detach()
	ev = mustEvent(t, a, PeerLeft)
	if !errors.Is(ev.Err, ErrRelayDetached) {
		t.Fatalf("left on detach: %v", ev.Err)
	}
	select {
	case <-pa.Done():
	default:
		t.Fatal("Done not closed by Detach")
	}
	if err := pa.PeerUp(RemotePeer{ID: b.ID(), Instance: uuid.New(), Name: "lb", Site: "siteB"}); !errors.Is(err, ErrRelayDetached) {
		t.Fatalf("PeerUp after Detach: %v", err)
	}
	pa2, err := a.AttachRelay(relayEnd{pr, a.ID()})
	if err != nil {
		t.Fatal(err)
	}
	if err := pa2.PeerUp(RemotePeer{ID: b.ID(), Instance: uuid.New(), Name: "lb", Site: "siteB"}); err != nil {
		t.Fatal(err)
	}
	mustEvent(t, a, PeerJoined)
	// Closing the node reports it left, last in the stream.
	a.Close()
	ev = mustEvent(t, a, PeerLeft)
	if !errors.Is(ev.Err, ErrRelayDetached) {
		t.Fatalf("left on close: %v", ev.Err)
	}
	if !pa2.Detached() {
		t.Fatal("port not detached by Close")
	}
}

// TestRelayLANWins: a peer with a direct link is reached over it and
// reported once, even when a relay also claims it.
func TestRelayLANWins(t *testing.T) {
	leaktest.Check(t)
	network := NewMemNetwork()
	a := relayNode(t, "wa", func(c *NodeConfig) { c.Link.Transport = network })
	b := relayNode(t, "wb", func(c *NodeConfig) {
		c.Link.Transport = network
		c.Net.Peers = []string{"wa:1"}
	})
	mustEvent(t, a, PeerJoined)
	mustEvent(t, b, PeerJoined)
	pr := &pipeRelay{}
	pa, err := a.AttachRelay(relayEnd{pr, a.ID()})
	if err != nil {
		t.Fatal(err)
	}
	if err := pa.PeerUp(RemotePeer{ID: b.ID(), Instance: uuid.New(), Name: "wb", Site: "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(b.ID(), &Text{S: "direct"}); err != nil {
		t.Fatal(err)
	}
	if k, err := a.Broadcast(&Text{S: "direct2"}); k != 1 || err != nil {
		t.Fatalf("Broadcast: %d %v", k, err)
	}
	a.Xfer()
	for _, want := range []string{"direct", "direct2"} {
		m := nextMessage(t, b)
		if m.Via != Reliable || m.Msg.(*Text).S != want {
			t.Fatalf("got %+v via %v", m.Msg, m.Via)
		}
	}
	pr.mu.Lock()
	sent := pr.sent
	pr.mu.Unlock()
	if sent != 0 {
		t.Fatalf("%d frames went through the relay", sent)
	}
	peers := a.Peers()
	if len(peers) != 1 || peers[0].Site != "" {
		t.Fatalf("Peers: %+v", peers)
	}
	if ev, ok := pollEvent(a); ok {
		t.Fatalf("an event for a LAN peer claimed by the relay: %v", ev.Kind)
	}
	pa.PeerDown(b.ID(), errors.New("x"))
	if ev, ok := pollEvent(a); ok {
		t.Fatalf("an event for a hidden remote peer's end: %v", ev.Kind)
	}
}

// TestRelaySendError: the relay's error reaches the program.
func TestRelaySendError(t *testing.T) {
	leaktest.Check(t)
	a := relayNode(t, "ea", nil)
	b := relayNode(t, "eb", nil)
	pr := &pipeRelay{}
	joinRelay(t, pr, a, b)
	pr.mu.Lock()
	pr.fail = ErrBackpressure
	pr.mu.Unlock()
	if err := a.Send(b.ID(), &Text{S: "x"}); !errors.Is(err, ErrBackpressure) {
		t.Fatalf("Send: %v", err)
	}
	if k, err := a.Broadcast(&Text{S: "x"}); k != 0 || !errors.Is(err, ErrBackpressure) {
		t.Fatalf("Broadcast: %d %v", k, err)
	}
	// A message of an unregistered type is the codec's error.
	type unknown struct{ X int }
	if err := a.Send(b.ID(), &unknown{}); err == nil {
		t.Fatal("Send of an unregistered type: nil")
	}
}

// TestRelayKinds: SendKind, SendChannel, BroadcastKind and
// BroadcastChannel with Sequenced or Unreliable reach a remote peer through
// the relay, in the order sent; an unknown kind is an error.
func TestRelayKinds(t *testing.T) {
	leaktest.Check(t)
	a := relayNode(t, "ra", nil)
	b := relayNode(t, "rb", nil)
	joinRelay(t, &pipeRelay{}, a, b)
	mustEvent(t, a, PeerJoined)
	mustEvent(t, b, PeerJoined)
	for _, d := range []Delivery{Sequenced, Unreliable} {
		if err := a.SendKind(b.ID(), &Text{S: d.String() + "-send"}, d); err != nil {
			t.Fatalf("SendKind %v: %v", d, err)
		}
		if err := a.SendChannel(b.ID(), &Text{S: d.String() + "-channel"}, d, 7); err != nil {
			t.Fatalf("SendChannel %v: %v", d, err)
		}
		if k, err := a.BroadcastKind(&Text{S: d.String() + "-broadcast"}, d); k != 1 || err != nil {
			t.Fatalf("BroadcastKind %v: %d %v", d, k, err)
		}
		if k, err := a.BroadcastChannel(&Text{S: d.String() + "-bchannel"}, d, 7); k != 1 || err != nil {
			t.Fatalf("BroadcastChannel %v: %d %v", d, k, err)
		}
		for _, want := range []string{"-send", "-channel", "-broadcast", "-bchannel"} {
			m := nextMessage(t, b)
			if txt, ok := m.Msg.(*Text); !ok || txt.S != d.String()+want || m.Via != Relayed {
				t.Fatalf("got %+v (%v), want %q via relay", m.Msg, m.Via, d.String()+want)
			}
		}
	}
	if err := a.SendKind(b.ID(), &Text{S: "x"}, Delivery(9)); err == nil {
		t.Fatal("SendKind with an unknown kind")
	}
	if k, err := a.BroadcastKind(&Text{S: "x"}, Delivery(9)); k != 0 || err == nil {
		t.Fatalf("BroadcastKind with an unknown kind: %d %v", k, err)
	}
}
