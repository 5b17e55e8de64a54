package mesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// nodeNet is how a node test's nodes find each other: over the in-memory
// network with configured peers, or over loopback TCP with discovery kept on
// the loopback interface.
type nodeNet struct {
	name       string
	mem        *MemNetwork
	beaconPort int
}

func nodeNets(t *testing.T) []nodeNet {
	return []nodeNet{
		{name: "mem", mem: NewMemNetwork()},
		{name: "loopback", beaconPort: freeUDPPort(t)},
	}
}

func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return int(portOf(c.LocalAddr()))
}

// nodeConfig returns a node config with short timers for node i of a test.
// On the mem network every node lists every other as a peer (so pairs dial
// each other at once, which the one-link rule must settle); on loopback,
// discovery finds them, on 127.255.255.255 only.
func (nn nodeNet) nodeConfig(t testing.TB, i, total int) NodeConfig {
	cfg := DefaultNodeConfig()
	setTestConfig(&cfg, t)
	cfg.Name = fmt.Sprintf("node%d", i)
	cfg.Net.DialGrace = 100 * time.Millisecond
	cfg.Net.RedialMin = 20 * time.Millisecond
	cfg.Net.RedialMax = 200 * time.Millisecond
	if nn.mem != nil {
		cfg.Link.Transport = nn.mem
		cfg.Net.Listen = []string{fmt.Sprintf("node%d:1", i)}
		cfg.Discovery.Off = true
		for j := range total {
			if j != i {
				cfg.Net.Peers = append(cfg.Net.Peers, fmt.Sprintf("node%d:1", j))
			}
		}
		return cfg
	}
	cfg.UseLoopback(nn.beaconPort)
	d := &cfg.Discovery
	d.Interval = 200 * time.Millisecond
	d.Jitter = 20 * time.Millisecond
	d.LostAfter = 800 * time.Millisecond
	return cfg
}

// startNodes starts n nodes and closes them at the end of the test.
func startNodes(t *testing.T, nn nodeNet, n int, adjust func(i int, c *NodeConfig)) []*Node {
	t.Helper()
	nodes := make([]*Node, n)
	for i := range n {
		cfg := nn.nodeConfig(t, i, n)
		if adjust != nil {
			adjust(i, &cfg)
		}
		node, err := NewNode(cfg)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		nodes[i] = node
		t.Cleanup(func() { node.Close() })
	}
	return nodes
}

// waitUntil polls cond until it holds, failing the test after timeout.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func linkedPeers(n *Node) []PeerInfo {
	var out []PeerInfo
	for _, p := range n.Peers() {
		if p.State == StateLinked {
			out = append(out, p)
		}
	}
	return out
}

// fullMesh waits until every node is linked to every other, then checks
// that each pair holds exactly one link: the two ends of each node's link to
// a peer are the two ends of the peer's link back.
func fullMesh(t *testing.T, nodes []*Node) {
	t.Helper()
	waitUntil(t, 10*time.Second, "a full mesh", func() bool {
		for _, n := range nodes {
			if len(linkedPeers(n)) != len(nodes)-1 {
				return false
			}
		}
		return true
	})
	// Both ends of each pair must come to hold the same link: the one-link
	// rule may still be settling a pair that dialled both ways.
	var problem string
	deadline := time.Now().Add(10 * time.Second)
	for {
		problem = meshProblem(nodes)
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(problem)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// meshProblem says what keeps nodes from a full mesh of one link per pair,
// or "" if nothing does.
func meshProblem(nodes []*Node) string {
	links := 0
	for _, a := range nodes {
		for _, pa := range linkedPeers(a) {
			pb, err := nodeByID(nodes, pa.ID).Peer(a.ID())
			if err != nil || pb.State != StateLinked {
				return fmt.Sprintf("%s links to %s but not back: %v", a.Name(), pa.Name, err)
			}
			if pa.LocalAddr.String() != pb.RemoteAddr.String() || pa.RemoteAddr.String() != pb.LocalAddr.String() {
				return fmt.Sprintf("%s and %s hold different links: %v-%v against %v-%v",
					a.Name(), pa.Name, pa.LocalAddr, pa.RemoteAddr, pb.LocalAddr, pb.RemoteAddr)
			}
			links++
		}
	}
	if want := len(nodes) * (len(nodes) - 1); links != want {
		return fmt.Sprintf("%d link ends, want %d", links, want)
	}
	return ""
}

func nodeByID(nodes []*Node, id uuid.UUID) *Node {
	for _, n := range nodes {
		if n.ID() == id {
			return n
		}
	}
	return nil
}

// recv waits for the next message on n, passing over peer events.
func recv(t testing.TB, n *Node) Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		m, err := n.Receive(ctx)
		if err != nil {
			t.Fatalf("%s: receive: %v", n.Name(), err)
		}
		if _, ok := m.Msg.(*PeerEvent); !ok {
			return m
		}
	}
}

// nextEvent waits for the next peer event on n, passing over messages.
func nextEvent(ctx context.Context, n *Node) (PeerEvent, error) {
	for {
		m, err := n.Receive(ctx)
		if err != nil {
			return PeerEvent{}, err
		}
		if ev, ok := m.Msg.(*PeerEvent); ok {
			return *ev, nil
		}
	}
}

// pollEvent returns the next peer event waiting on n, if any, passing over
// messages.
func pollEvent(n *Node) (PeerEvent, bool) {
	for {
		m, ok := n.Get()
		if !ok {
			return PeerEvent{}, false
		}
		if ev, ok := m.Msg.(*PeerEvent); ok {
			return *ev, true
		}
	}
}

func TestNodeFullMesh(t *testing.T) {
	for _, nn := range nodeNets(t) {
		t.Run(nn.name, func(t *testing.T) {
			leaktest.Check(t)
			nodes := startNodes(t, nn, 5, nil)
			fullMesh(t, nodes)
			// Every node saw four joins and nothing else: a duplicate link
			// that the one-link rule closed is no event.
			for _, n := range nodes {
				var joined int
				for {
					ev, ok := pollEvent(n)
					if !ok {
						break
					}
					if ev.Kind != PeerJoined {
						t.Errorf("%s: unexpected event %v %s: %v", n.Name(), ev.Kind, ev.Peer.Name, ev.Err)
					}
					joined++
				}
				if joined != 4 {
					t.Errorf("%s: %d joined events, want 4", n.Name(), joined)
				}
			}
		})
	}
}

func TestNodeSendSendToBroadcastRequest(t *testing.T) {
	for _, nn := range nodeNets(t) {
		t.Run(nn.name, func(t *testing.T) {
			leaktest.Check(t)
			resp := NewResponder()
			nodes := startNodes(t, nn, 3, func(i int, c *NodeConfig) {
				c.Link.AutoFlush = true
				if i == 2 {
					c.Responder = resp
				}
			})
			fullMesh(t, nodes)
			a, b, c := nodes[0], nodes[1], nodes[2]

			if err := a.Send(b.ID(), &Text{S: "to b by id"}); err != nil {
				t.Fatal(err)
			}
			if m := recv(t, b); m.From != a.ID() || m.FromName != "node0" || m.Msg.(*Text).S != "to b by id" {
				t.Fatalf("b got %+v", m)
			}
			if err := a.SendTo("node2", &Text{S: "to c by name"}); err != nil {
				t.Fatal(err)
			}
			if m := recv(t, c); m.Msg.(*Text).S != "to c by name" {
				t.Fatalf("c got %+v", m)
			}
			if err := a.SendTo("nobody", &Text{}); !errors.Is(err, ErrNoPeer) {
				t.Errorf("SendTo an unknown name: %v", err)
			}
			if err := a.Send(uuid.New(), &Text{}); !errors.Is(err, ErrNoPeer) {
				t.Errorf("Send to an unknown id: %v", err)
			}
			sent, err := a.Broadcast(&Msg32{Seq: 7})
			if err != nil || sent != 2 {
				t.Fatalf("Broadcast: %d, %v", sent, err)
			}
			for _, n := range []*Node{b, c} {
				if m := recv(t, n); m.Msg.(*Msg32).Seq != 7 || m.From != a.ID() {
					t.Fatalf("%s got %+v", n.Name(), m)
				}
			}

			// Request and reply, by hand (b) and by a responder's rules (c).
			go func() {
				m := recv(t, b)
				if !m.IsRequest() {
					t.Errorf("b: %+v is not a request", m)
					return
				}
				if err := b.Reply(m, &Text{S: "re: " + m.Msg.(*Text).S}); err != nil {
					t.Errorf("b: reply: %v", err)
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			reply, err := a.Request(ctx, b.ID(), &Text{S: "ping"})
			if err != nil || reply.(*Text).S != "re: ping" {
				t.Fatalf("request to b: %v, %v", reply, err)
			}
			if err := resp.Static(Msg32{}, &Text{S: "static"}); err != nil {
				t.Fatal(err)
			}
			if err := resp.Handle(&Text{}, func(m Message) (any, error) {
				if m.Msg.(*Text).S == "fail" {
					return nil, errors.New("no thanks")
				}
				return &Text{S: strings.ToUpper(m.Msg.(*Text).S)}, nil
			}); err != nil {
				t.Fatal(err)
			}
			if reply, err := a.Request(ctx, c.ID(), &Msg32{}); err != nil || reply.(*Text).S != "static" {
				t.Fatalf("static rule: %v, %v", reply, err)
			}
			if reply, err := a.Request(ctx, c.ID(), &Text{S: "dyn"}); err != nil || reply.(*Text).S != "DYN" {
				t.Fatalf("dynamic rule: %v, %v", reply, err)
			}
			if reply, err := a.RequestTo(ctx, c.Name(), &Text{S: "by name"}); err != nil || reply.(*Text).S != "BY NAME" {
				t.Fatalf("request by name: %v, %v", reply, err)
			}
			if _, err := a.Request(ctx, c.ID(), &Text{S: "fail"}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "no thanks") {
				t.Fatalf("refusal: %v", err)
			}
			resp.Freeze()
			if err := resp.Remove(&Text{}); !errors.Is(err, ErrFrozen) {
				t.Errorf("Remove on a frozen responder: %v", err)
			}
			// A request times out when nobody answers (b does not read now).
			short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel2()
			if _, err := a.Request(short, b.ID(), &Text{S: "unanswered"}); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("unanswered request: %v", err)
			}
			// Nothing the responder answered reached c's program.
			if m, ok := c.Get(); ok {
				t.Errorf("c's Get returned %+v", m)
			}
		})
	}
}

func TestNodeSendsBeforeXfer(t *testing.T) {
	// Without AutoFlush, bytes leave on Xfer: the game-loop pump.
	leaktest.Check(t)
	// Only node0 dials, so the link cannot be swapped by the one-link rule
	// while the counters are read.
	nodes := startNodes(t, nodeNet{name: "mem", mem: NewMemNetwork()}, 2, func(i int, c *NodeConfig) {
		if i == 1 {
			c.Net.Peers = nil
		}
	})
	fullMesh(t, nodes)
	a, b := nodes[0], nodes[1]
	for i := range 100 {
		if err := a.Send(b.ID(), &Msg32{Seq: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Xfer(); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if m := recv(t, b); m.Msg.(*Msg32).Seq != uint64(i) {
			t.Fatalf("message %d: %+v", i, m.Msg)
		}
	}
	if got := b.Peers()[0].Link.MsgsIn; got != 100 {
		t.Errorf("b counted %d messages in", got)
	}
}

func TestNodeGracefulCloseSeenByAll(t *testing.T) {
	for _, nn := range nodeNets(t) {
		t.Run(nn.name, func(t *testing.T) {
			leaktest.Check(t)
			nodes := startNodes(t, nn, 4, func(i int, c *NodeConfig) { c.Link.AutoFlush = true })
			fullMesh(t, nodes)
			leaver := nodes[3]
			for _, n := range nodes[:3] {
				for { // drop the join events
					if _, ok := pollEvent(n); !ok {
						break
					}
				}
			}
			// What the leaver sent before closing arrives before it leaves.
			for _, n := range nodes[:3] {
				if err := leaver.Send(n.ID(), &Text{S: "last words"}); err != nil {
					t.Fatal(err)
				}
			}
			leaver.CloseReason("game over")
			for _, n := range nodes[:3] {
				if m := recv(t, n); m.Msg.(*Text).S != "last words" {
					t.Fatalf("%s got %+v", n.Name(), m)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				ev, err := nextEvent(ctx, n)
				cancel()
				if err != nil || ev.Kind != PeerLeft || ev.Peer.ID != leaver.ID() {
					t.Fatalf("%s: event %+v, %v", n.Name(), ev, err)
				}
				var ce *CloseError
				if !errors.As(ev.Err, &ce) || !ce.Remote || ce.Reason != "game over" || !errors.Is(ev.Err, ErrPeerBye) {
					t.Fatalf("%s: left with %v", n.Name(), ev.Err)
				}
				// Sending to a peer that left says so, at once, by id or name.
				err = n.Send(leaver.ID(), &Text{})
				if !errors.Is(err, ErrPeerGone) || !strings.Contains(err.Error(), "game over") {
					t.Fatalf("%s: send to the leaver: %v", n.Name(), err)
				}
				err = n.SendTo(leaver.Name(), &Text{})
				if !errors.Is(err, ErrPeerGone) || !strings.Contains(err.Error(), "game over") {
					t.Fatalf("%s: send to the leaver by name: %v", n.Name(), err)
				}
			}
		})
	}
}

// Two nodes dial each other at the same instant while sending: exactly one
// link stays, and every message sent arrives.
func TestNodeSimultaneousDial(t *testing.T) {
	for _, nn := range nodeNets(t) {
		t.Run(nn.name, func(t *testing.T) {
			leaktest.Check(t)
			nodes := startNodes(t, nn, 2, func(i int, c *NodeConfig) {
				c.Discovery.Off = true
				c.Net.Peers = nil
				c.Link.AutoFlush = true
			})
			a, b := nodes[0], nodes[1]
			const perSide = 2000
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make(chan error, 4)
			for _, pair := range [][2]*Node{{a, b}, {b, a}} {
				from, to := pair[0], pair[1]
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					if _, err := from.Connect(ctx, to.Addrs()[0].String()); err != nil {
						errs <- fmt.Errorf("%s connect: %w", from.Name(), err)
						return
					}
					for i := range perSide {
						for {
							err := from.Send(to.ID(), &Msg32{Seq: uint64(i)})
							if err == nil {
								break
							}
							if !errors.Is(err, ErrBackpressure) {
								errs <- fmt.Errorf("%s send %d: %w", from.Name(), i, err)
								return
							}
							from.Xfer()
							time.Sleep(time.Millisecond)
						}
					}
				}()
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for _, n := range nodes {
				seen := make([]bool, perSide)
				for range perSide {
					m := recv(t, n)
					seen[m.Msg.(*Msg32).Seq] = true
				}
				if i := slices.Index(seen, false); i >= 0 {
					t.Fatalf("%s never got message %d", n.Name(), i)
				}
			}
			fullMesh(t, nodes)
			for _, n := range nodes {
				for {
					ev, ok := pollEvent(n)
					if !ok {
						break
					}
					if ev.Kind != PeerJoined {
						t.Errorf("%s: %v event: %v", n.Name(), ev.Kind, ev.Err)
					}
				}
			}
		})
	}
}

func TestNodeTrafficLog(t *testing.T) {
	leaktest.Check(t)
	nodes := startNodes(t, nodeNet{name: "mem", mem: NewMemNetwork()}, 2, func(i int, c *NodeConfig) {
		c.Link.AutoFlush = true
		c.Limits.TrafficLog = 3
	})
	fullMesh(t, nodes)
	a, b := nodes[0], nodes[1]
	a.Send(b.ID(), &Text{S: "unrecorded"})
	recv(t, b)
	if len(a.Traffic().All()) != 0 || len(b.Traffic().All()) != 0 {
		t.Fatal("the traffic log recorded while off")
	}
	a.Traffic().Start()
	b.Traffic().Start()
	for i := range 5 {
		a.Send(b.ID(), &Msg32{Seq: uint64(i)})
		recv(t, b)
	}
	all := a.Traffic().All()
	if len(all) != 3 || a.Traffic().Total() != 5 {
		t.Fatalf("a's log: %d records, %d in all", len(all), a.Traffic().Total())
	}
	r, ok := b.Traffic().Newest()
	if !ok || r.Dir != In || r.Type != "Msg32" || r.Size != 32 || r.Peer != a.ID() || r.PeerName != "node0" {
		t.Fatalf("b's newest: %+v", r)
	}
	a.Traffic().Stop()
	a.Send(b.ID(), &Msg32{})
	recv(t, b)
	if a.Traffic().Total() != 5 {
		t.Error("the traffic log recorded after Stop")
	}
}

func TestNodeConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(*NodeConfig)
	}{
		{"no listen", func(c *NodeConfig) { c.Net.Listen = nil }},
		{"redial", func(c *NodeConfig) { c.Net.RedialMin = 0 }},
		{"redial order", func(c *NodeConfig) { c.Net.RedialMax = c.Net.RedialMin / 2 }},
		{"queue", func(c *NodeConfig) { c.Limits.ReceiveQueue = 0 }},
		{"events", func(c *NodeConfig) { c.Limits.Events = 0 }},
		{"link", func(c *NodeConfig) { c.Link.Silence = 0 }},
		{"zero", func(c *NodeConfig) { *c = NodeConfig{} }},
		{"mesh", func(c *NodeConfig) { c.Mesh = "" }},
	} {
		cfg := DefaultNodeConfig()
		tt.change(&cfg)
		if err := cfg.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}
