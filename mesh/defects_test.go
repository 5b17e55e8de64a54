package mesh

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"

	"context"
	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/message"
	"testing"
	"time"
)

// TestNodeInboxTwoLinks: two peers fill a small inbox (ReceiveQueueLimit 4)
// with 6 messages each; the program, draining Get, receives all 12.
func TestNodeInboxTwoLinks(t *testing.T) {
	// Only the two senders dial, so that no link is replaced under the test
	// (the one-link rule settling two dials).
	nodes := startNodes(t, nodeNet{name: "mem", mem: NewMemNetwork()}, 3, func(i int, c *NodeConfig) {
		c.Limits.ReceiveQueue = 4
		c.Net.Peers = nil
		if i > 0 {
			c.Net.Peers = []string{"node0:1"}
		}
	})
	dst := nodes[0]
	waitUntil(t, 5*time.Second, "two peers linked", func() bool {
		return len(linkedPeers(dst)) == 2 && len(linkedPeers(nodes[1])) == 1 && len(linkedPeers(nodes[2])) == 1
	})
	for _, src := range nodes[1:] {
		for i := range 6 {
			if err := src.Send(dst.ID(), &Msg32{Seq: uint64(i)}); err != nil {
				t.Fatal(err)
			}
		}
		src.Xfer()
	}
	// Both links have handed a batch (4 at least) to the inbox, which is
	// full (4, peer events included): both wait in blocked pushes. Only now
	// does the program drain.
	waitUntil(t, 5*time.Second, "both links blocked on the full inbox", func() bool {
		for _, p := range linkedPeers(dst) {
			if p.Link.MsgsIn < 4 {
				return false
			}
		}
		return dst.inbox.len() == 4
	})
	got := 0
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for got < 12 {
		m, err := dst.Receive(ctx)
		if err != nil {
			t.Fatalf("received %d of 12 messages: %v", got, err)
		}
		if _, ok := m.Msg.(*Msg32); ok {
			got++
		}
	}
}

// TestBroadcastMixedCodecs: a node with binary lanmesh links and a JSON
// cable_car link broadcasts one message: each link gets it in its own
// codec. (Broadcast used to encode once with the first link's codec, so
// one of the two kinds got the other's bytes.)
func TestBroadcastMixedCodecs(t *testing.T) {
	nodes := startNodes(t, nodeNet{name: "mem", mem: NewMemNetwork()}, 2, nil)
	fullMesh(t, nodes)
	n := nodes[0]
	// A cable_car program speaking JSON, on the far end of a pipe.
	near, far := memPipe("node0:cc", "cablecar:1")
	t.Cleanup(func() { far.Close() })
	jsonCfg := n.link
	jsonCfg.Codec = "json"
	remote := hello{NodeID: cableCarID(netip.MustParseAddr("10.0.0.9")), Name: "cablecar@10.0.0.9", Mesh: n.link.Mesh, Codec: "json"}
	remote.InstanceID = remote.NodeID
	if _, err := n.attachQuiet(near, jsonCfg, remote); err != nil {
		t.Fatal(err)
	}
	if k, err := n.Broadcast(&Text{S: "hello"}); k != 2 || err != nil {
		t.Fatalf("Broadcast = %d, %v; want 2 peers", k, err)
	}
	n.Xfer()
	// The binary peer decodes it.
	m := recv(t, nodes[1])
	for {
		if _, ok := m.Msg.(*Text); ok {
			break
		}
		m = recv(t, nodes[1])
	}
	if got := m.Msg.(*Text).S; got != "hello" {
		t.Fatalf("binary peer got %q", got)
	}
	// The JSON peer reads a JSON frame of it.
	far.SetReadDeadline(time.Now().Add(5 * time.Second))
	msg, _, err := codec.NewJSON(testRegistry).NewDecoder(far).Decode()
	if err != nil {
		t.Fatalf("JSON peer: %v", err)
	}
	if txt, ok := msg.(*Text); !ok || txt.S != "hello" {
		t.Fatalf("JSON peer got %#v", msg)
	}
}

// TestNodeConfigValidateAsNewNode: whatever NewNode refuses, Validate
// refuses first; here a mesh name discovery cannot carry (100 bytes).
func TestNodeConfigValidateAsNewNode(t *testing.T) {
	cfg := DefaultNodeConfig()
	cfg.UseLoopback(freeUDPPort(t))
	cfg.Mesh = string(bytes.Repeat([]byte("m"), 100))
	if err := cfg.Validate(); !errors.Is(err, ErrConfig) {
		t.Fatalf("Validate = %v, want ErrConfig", err)
	}
	if n, err := NewNode(cfg); err == nil {
		n.Close()
		t.Fatal("NewNode accepted it")
	}
}

// Pos has a field no binary form can be derived for: the binary codec
// cannot carry it.
type Pos struct {
	X, Y int
	Tags map[string]int
}

// TestTypeTheCodecCannotCarry: a registry holding a type the node's codec
// cannot carry fails when the node starts, with the fix in the message,
// not at the first Broadcast; msgpack carries it.
func TestTypeTheCodecCannotCarry(t *testing.T) {
	reg := message.NewRegistry()
	message.MustRegister[Pos](reg, 0x30, "Pos")
	cfg := DefaultNodeConfig()
	cfg.Registry = reg
	cfg.Discovery.Off = true
	cfg.Net.Listen = []string{"127.0.0.1:0"}
	err := cfg.Validate()
	if !errors.Is(err, ErrConfig) || !errors.Is(err, codec.ErrNoBinaryForm) ||
		!strings.Contains(err.Error(), "give Pos AppendBinary/UnmarshalBinary, or use the msgpack codec") {
		t.Fatalf("Validate = %v", err)
	}
	if n, err := NewNode(cfg); err == nil {
		n.Close()
		t.Fatal("NewNode started")
	}
	cfg.Codec = "msgpack"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("msgpack: %v", err)
	}
	mc := DefaultConfig()
	mc.Registry = reg
	if _, err := Dial(testCtx(t, time.Second), mc, "127.0.0.1:1"); !errors.Is(err, codec.ErrNoBinaryForm) {
		t.Fatalf("Dial = %v", err)
	}
}

// TestUnregisteredWithNoPeers: Send, SendTo, Broadcast and Request of an
// unregistered type are errors even when there is no peer to send to.
func TestUnregisteredWithNoPeers(t *testing.T) {
	nodes := startNodes(t, nodeNet{name: "mem", mem: NewMemNetwork()}, 1, nil)
	n := nodes[0]
	type unregistered struct{ A int }
	if err := n.Send(uuid.New(), &unregistered{}); !errors.Is(err, codec.ErrNotRegistered) {
		t.Errorf("Send = %v", err)
	}
	if err := n.SendTo("nobody", &unregistered{}); !errors.Is(err, codec.ErrNotRegistered) {
		t.Errorf("SendTo = %v", err)
	}
	if k, err := n.Broadcast(&unregistered{}); k != 0 || !errors.Is(err, codec.ErrNotRegistered) {
		t.Errorf("Broadcast = %d, %v", k, err)
	}
	if _, err := n.RequestTo(testCtx(t, time.Second), "nobody", &unregistered{}); !errors.Is(err, codec.ErrNotRegistered) {
		t.Errorf("RequestTo = %v", err)
	}
	// A registered type to no peer is ErrNoPeer, as before.
	if err := n.Send(uuid.New(), &Msg32{}); !errors.Is(err, ErrNoPeer) {
		t.Errorf("Send to nobody = %v", err)
	}
}

// TestZeroNodeConfig: a NodeConfig not made by DefaultNodeConfig says so.
func TestZeroNodeConfig(t *testing.T) {
	var cfg NodeConfig
	cfg.Mesh = "mine"
	err := cfg.Validate()
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "start from DefaultNodeConfig()") {
		t.Fatalf("Validate = %v", err)
	}
	var c Config
	if err := c.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "start from DefaultConfig()") {
		t.Fatalf("Config.Validate = %v", err)
	}
}
