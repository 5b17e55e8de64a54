package mesh

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/meshkey"
)

// TestNodeKeyedMesh: keyed nodes form a full mesh, node 2 holding only a
// key the others accept but do not use as primary; an unkeyed node and a
// node with another key stay out, and say why.
func TestNodeKeyedMesh(t *testing.T) {
	k1, k2, k3 := testKey(1), testKey(2), testKey(3)
	for _, nn := range nodeNets(t) {
		t.Run(nn.name, func(t *testing.T) {
			leaktest.Check(t)
			nodes := startNodes(t, nn, 5, func(i int, c *NodeConfig) {
				switch i {
				case 0, 1:
					c.Keyring = meshkey.Keyring{Primary: k1, Accepted: []meshkey.Key{k2}}
				case 2:
					c.Keyring = meshkey.Keyring{Primary: k2}
				case 3:
					c.Keyring = meshkey.Keyring{Primary: k3}
				}
			})
			fullMesh(t, nodes[:3])
			for _, p := range linkedPeers(nodes[0]) {
				if p.ID == nodes[3].ID() || p.ID == nodes[4].ID() {
					t.Fatalf("node0 linked with %s", p.Name)
				}
			}
			if nn.mem != nil {
				// Configured peers are dialled whatever their key: the
				// handshakes fail, and are counted.
				waitUntil(t, 5*time.Second, "failed handshakes", func() bool {
					return nodes[3].Stats().FailedHandshakes > 0 && nodes[4].Stats().FailedHandshakes > 0
				})
			}
			if len(linkedPeers(nodes[3])) != 0 || len(linkedPeers(nodes[4])) != 0 {
				t.Fatal("a node with another key, or none, is linked")
			}
			// Messages cross keyed links.
			if err := nodes[2].Send(nodes[0].ID(), &Msg32{Seq: 42}); err != nil {
				t.Fatal(err)
			}
			nodes[2].Xfer()
			if m := recv(t, nodes[0]); m.Msg.(*Msg32).Seq != 42 || m.From != nodes[2].ID() {
				t.Fatalf("received %+v", m)
			}
		})
	}
}

// TestNodeConnectErrors: Connect reports the key errors of both kinds.
func TestNodeConnectErrors(t *testing.T) {
	leaktest.Check(t)
	nn := nodeNet{name: "mem", mem: NewMemNetwork()}
	nodes := startNodes(t, nn, 3, func(i int, c *NodeConfig) {
		c.Net.Peers = nil
		if i != 2 {
			c.Keyring = meshkey.Keyring{Primary: testKey(byte(i + 1))}
		}
	})
	_, err := nodes[0].Connect(testCtx(t, 5*time.Second), "node1:1")
	wantClose(t, err, ErrWrongKey, true)
	_, err = nodes[0].Connect(testCtx(t, 5*time.Second), "node2:1")
	wantClose(t, err, ErrUnkeyedPeer, false)
	_, err = nodes[2].Connect(testCtx(t, 5*time.Second), "node0:1")
	wantClose(t, err, ErrKeyRequired, true)
}

// recordingTransport records the first write of every conn it dials.
type recordingTransport struct {
	Transport
	mu     sync.Mutex
	firsts [][]byte
}

func (r *recordingTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := r.Transport.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &firstWrite{Conn: c, r: r}, nil
}

type firstWrite struct {
	net.Conn
	r    *recordingTransport
	once sync.Once
}

func (f *firstWrite) Write(p []byte) (int, error) {
	f.once.Do(func() {
		f.r.mu.Lock()
		f.r.firsts = append(f.r.firsts, bytes.Clone(p))
		f.r.mu.Unlock()
	})
	return f.Conn.Write(p)
}

// TestNodeReplayedFirstMessage plays a recorded first handshake message
// (preamble and Noise message 1) to a node: it answers, but the replay
// cannot confirm the key, so no peer joins and the existing link stays.
func TestNodeReplayedFirstMessage(t *testing.T) {
	leaktest.Check(t)
	rec := &recordingTransport{Transport: &TCPTransport{}}
	nn := nodeNet{name: "loopback"}
	nodes := startNodes(t, nn, 2, func(i int, c *NodeConfig) {
		c.Discovery.Off = true
		c.Keyring = meshkey.Keyring{Primary: testKey(1)}
		c.Link.HandshakeTimeout = 500 * time.Millisecond
		if i == 0 {
			c.Link.Transport = rec
		}
	})
	a, b := nodes[0], nodes[1]
	if _, err := a.Connect(testCtx(t, 5*time.Second), b.Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "b links a", func() bool { return len(linkedPeers(b)) == 1 })
	ev, _ := nextEvent(testCtx(t, time.Second), b)
	if ev.Kind != PeerJoined {
		t.Fatalf("event %v", ev.Kind)
	}
	before := linkedPeers(b)[0]
	rec.mu.Lock()
	first := rec.firsts[0]
	rec.mu.Unlock()
	for _, confirm := range [][]byte{nil, make([]byte, recordHeader+handshakeHeader+recordTag)} {
		c, err := net.Dial("tcp", b.Addrs()[0].String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(first)
		if confirm != nil {
			confirm[1] = handshakeHeader + recordTag
			c.Write(confirm) // a guess at the confirmation record
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var buf [1024]byte
		for { // until b hangs up: its answer, then its end
			if _, err := c.Read(buf[:]); err != nil {
				break
			}
		}
		c.Close()
	}
	waitUntil(t, 5*time.Second, "failed handshakes counted", func() bool { return b.Stats().FailedHandshakes >= 2 })
	after := linkedPeers(b)
	if len(after) != 1 || after[0].Since != before.Since || after[0].RemoteAddr.String() != before.RemoteAddr.String() {
		t.Fatalf("the link changed: %+v, was %+v", after, before)
	}
	if ev, ok := pollEvent(b); ok {
		t.Fatalf("an event after the replays: %v", ev.Kind)
	}
}

// TestNodeSetKeyring: removing the key a link used closes it; the peer
// sees why.
func TestNodeSetKeyring(t *testing.T) {
	leaktest.Check(t)
	k1, k2 := testKey(1), testKey(2)
	nn := nodeNet{name: "mem", mem: NewMemNetwork()}
	nodes := startNodes(t, nn, 2, func(i int, c *NodeConfig) {
		c.Net.Peers = nil
		c.Keyring = meshkey.Keyring{Primary: k1, Accepted: []meshkey.Key{k2}}
		if i == 1 {
			c.Keyring = meshkey.Keyring{Primary: k2}
		}
	})
	a, b := nodes[0], nodes[1]
	if _, err := b.Connect(testCtx(t, 5*time.Second), "node0:1"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "linked", func() bool { return len(linkedPeers(a)) == 1 })
	if err := a.SetKeyring(meshkey.Keyring{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("unkeying a running node: %v", err)
	}
	if err := a.SetKeyring(meshkey.Keyring{Primary: k1}); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := nextEvent(testCtx(t, 5*time.Second), b)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == PeerLeft {
			ce := wantClose(t, ev.Err, ErrPeerBye, true)
			if ce.Reason != "mesh key removed" {
				t.Fatalf("reason %q", ce.Reason)
			}
			break
		}
	}
	if a.Stats().KeyClosed != 1 {
		t.Fatalf("KeyClosed = %d", a.Stats().KeyClosed)
	}
	_, err := b.Connect(testCtx(t, 5*time.Second), "node0:1")
	wantClose(t, err, ErrWrongKey, true)
}

// TestNodeConnFlood: silent connections past the limits are closed at once
// and counted; once they stop, an honest peer links.
func TestNodeConnFlood(t *testing.T) {
	leaktest.Check(t)
	nn := nodeNet{name: "loopback"}
	nodes := startNodes(t, nn, 2, func(i int, c *NodeConfig) {
		c.Discovery.Off = true
		c.Link.Accept.MaxHandshakes = 8
		c.Link.Accept.PerSourceHandshakes = 2
		c.Link.Accept.ConnRate = 10
		c.Link.HandshakeTimeout = 300 * time.Millisecond
		c.Keyring = meshkey.Keyring{Primary: testKey(1)}
	})
	v := nodes[0]
	var conns []net.Conn
	for range 60 {
		c, err := net.Dial("tcp", v.Addrs()[0].String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	waitUntil(t, 5*time.Second, "refusals", func() bool { return v.Stats().RefusedConns >= 60-2*8 })
	for _, c := range conns {
		c.Close()
	}
	waitUntil(t, 5*time.Second, "timed-out handshakes", func() bool { return v.Stats().FailedHandshakes >= 2 })
	// Tokens come back at 10/s: the honest peer (same address) gets in.
	ctx := testCtx(t, 10*time.Second)
	for {
		_, err := nodes[1].Connect(ctx, v.Addrs()[0].String())
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
