package mesh_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/message"
)

// Move is the message of these examples: two signed bytes on the wire.
type Move struct{ X, Y int8 }

// AppendBinary gives Move its binary-codec form.
func (m Move) AppendBinary(b []byte) ([]byte, error) { return append(b, byte(m.X), byte(m.Y)), nil }

// UnmarshalBinary reads it back.
func (m *Move) UnmarshalBinary(p []byte) error {
	if len(p) != 2 {
		return errors.New("Move: want 2 bytes")
	}
	m.X, m.Y = int8(p[0]), int8(p[1])
	return nil
}

func init() { message.MustRegister[Move](message.Default, 0x40, "Move") }

// memNodes starts one node per name on an in-memory network, each told the
// others' addresses (no discovery), and waits until all are linked. On a
// LAN, leave Link.Transport, Net and Discovery at their defaults:
// discovery finds the peers.
func memNodes(names ...string) []*mesh.Node {
	network := mesh.NewMemNetwork()
	var nodes []*mesh.Node
	for _, name := range names {
		cfg := mesh.DefaultNodeConfig()
		cfg.Name = name
		cfg.Mesh = "example"
		cfg.Link.Transport = network
		cfg.Net.Listen = []string{name + ":1"}
		cfg.Discovery.Off = true
		// Each node dials the ones named before it, and only those: were
		// both to dial, one of the two links would be replaced (the
		// one-link rule) and a send in that moment would be refused.
		for _, other := range names {
			if other == name {
				break
			}
			cfg.Net.Peers = append(cfg.Net.Peers, other+":1")
		}
		n, err := mesh.NewNode(cfg)
		if err != nil {
			log.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		linked := 0
		for _, n := range nodes {
			for _, p := range n.Peers() {
				if p.State == mesh.StateLinked {
					linked++
				}
			}
		}
		if linked == len(nodes)*(len(nodes)-1) {
			return nodes
		}
		if time.Now().After(deadline) {
			log.Fatal("the nodes did not link")
		}
	}
}

// Two nodes link and one sends the other a message. On a LAN the config
// needs only a mesh name: discovery (broadcast and mDNS) finds the peers.
func ExampleNewNode() {
	network := mesh.NewMemNetwork() // stands in for TCP and discovery here
	newNode := func(name string, peers ...string) *mesh.Node {
		cfg := mesh.DefaultNodeConfig()
		cfg.Mesh = "example"
		cfg.Name = name
		cfg.Link.Transport = network
		cfg.Net.Listen = []string{name + ":1"}
		cfg.Discovery.Off = true
		cfg.Net.Peers = peers
		n, err := mesh.NewNode(cfg)
		if err != nil {
			log.Fatal(err)
		}
		return n
	}
	ann := newNode("ann")
	defer ann.Close()
	bob := newNode("bob", "ann:1") // bob dials ann
	defer bob.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Peer events and messages come in one stream, in order: a peer's
	// PeerJoined before anything it sends.
	m, err := ann.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	ev := m.Msg.(*mesh.PeerEvent)
	fmt.Println("ann:", ev.Peer.Name, ev.Kind)

	ann.Send(ev.Peer.ID, &Move{X: 1, Y: -1})
	ann.Xfer()
	for {
		m, err := bob.Receive(ctx)
		if err != nil {
			log.Fatal(err)
		}
		switch msg := m.Msg.(type) {
		case *mesh.PeerEvent:
			fmt.Println("bob:", msg.Peer.Name, msg.Kind)
		case *Move:
			fmt.Printf("bob: %+v from %s\n", *msg, m.FromName)
			return
		}
	}
	// Output:
	// ann: bob joined
	// bob: ann joined
	// bob: {X:1 Y:-1} from ann
}

// A game loop: once per tick it sends what the player did, calls Xfer once
// (so the tick's messages leave in one write per peer), and drains Get,
// which returns peer events and messages in the order they happened.
// Nothing in it blocks.
func ExampleNode_Xfer() {
	nodes := memNodes("ann", "bob")
	ann, bob := nodes[0], nodes[1]
	defer ann.Close()
	defer bob.Close()

	bob.SendTo("ann", &Move{X: 2, Y: 3})
	bob.Xfer()

	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for range 1000 { // a bounded game
		ann.Xfer()
		got := false
		for m, ok := ann.Get(); ok; m, ok = ann.Get() {
			switch msg := m.Msg.(type) {
			case *mesh.PeerEvent:
				// Players appear (PeerJoined) before their first move, and
				// vanish (PeerLeft) after their last.
				fmt.Println(msg.Peer.Name, msg.Kind)
			case *Move:
				fmt.Printf("%s moved by %d,%d\n", m.FromName, msg.X, msg.Y)
				got = true
			}
		}
		if got {
			break
		}
		<-tick.C
	}
	// Output:
	// bob joined
	// bob moved by 2,3
}

// Broadcast sends one message to every linked peer: it is encoded once.
func ExampleNode_Broadcast() {
	nodes := memNodes("ann", "bob", "cat")
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	k, err := nodes[0].Broadcast(&Move{X: 5})
	nodes[0].Xfer()
	fmt.Println("queued for", k, "peers", err)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range nodes[1:] {
		for {
			m, err := n.Receive(ctx)
			if err != nil {
				log.Fatal(err)
			}
			if mv, ok := m.Msg.(*Move); ok {
				fmt.Printf("%s got %+v from %s\n", n.Name(), *mv, m.FromName)
				break
			}
		}
	}
	// Output:
	// queued for 2 peers <nil>
	// bob got {X:5 Y:0} from ann
	// cat got {X:5 Y:0} from ann
}

// A request waits for its reply. Here a Responder answers it by rule, on a
// goroutine of bob's node; a program can also take requests from Get and
// answer with Reply.
func ExampleNode_Request() {
	network := mesh.NewMemNetwork()
	mirror := mesh.NewResponder()
	mirror.Handle(&Move{}, func(m mesh.Message) (any, error) {
		mv := m.Msg.(*Move)
		return &Move{X: -mv.X, Y: -mv.Y}, nil
	})
	var nodes []*mesh.Node
	for _, name := range []string{"ann", "bob"} {
		cfg := mesh.DefaultNodeConfig()
		cfg.Mesh, cfg.Name, cfg.Link.Transport = "example", name, network
		cfg.Net.Listen = []string{name + ":1"}
		cfg.Discovery.Off = true
		if name == "ann" {
			cfg.Net.Peers = []string{"bob:1"}
		} else {
			cfg.Responder = mirror
		}
		n, err := mesh.NewNode(cfg)
		if err != nil {
			log.Fatal(err)
		}
		defer n.Close()
		nodes = append(nodes, n)
	}
	ann, bob := nodes[0], nodes[1]

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ann.Receive(ctx); err != nil { // bob joined
		log.Fatal(err)
	}
	reply, err := ann.Request(ctx, bob.ID(), &Move{X: 3, Y: 4})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", *reply.(*Move))
	// Output:
	// {X:-3 Y:-4}
}

// A peer that leaves says why; the others see it in a PeerLeft event, after
// the last message it sent.
func ExampleNode_Receive() {
	nodes := memNodes("ann", "bob")
	ann, bob := nodes[0], nodes[1]
	defer ann.Close()

	bob.CloseReason("bob has to go")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		m, err := ann.Receive(ctx)
		if err != nil {
			log.Fatal(err)
		}
		if ev, ok := m.Msg.(*mesh.PeerEvent); ok && ev.Kind == mesh.PeerLeft {
			fmt.Println(ev.Peer.Name, "left:", ev.Err)
			fmt.Println("a graceful leave:", errors.Is(ev.Err, mesh.ErrPeerBye))
			break
		}
	}
	// Output:
	// bob left: mesh: peer closed the link (the peer's reason: bob has to go)
	// a graceful leave: true
}

// The traffic log records what a node sends and receives, once started.
func ExampleNode_Traffic() {
	nodes := memNodes("ann", "bob")
	ann, bob := nodes[0], nodes[1]
	defer ann.Close()
	defer bob.Close()

	traffic := ann.Traffic()
	traffic.Start()
	ann.SendTo("bob", &Move{X: 1})
	ann.Xfer()
	for _, r := range traffic.All() {
		fmt.Println(r.Dir, r.PeerName, r.Type, r.Size, "bytes")
	}
	// Output:
	// out bob Move 4 bytes
}

// The configuration of a program on a LAN: its own mesh name, and
// discovery restricted to the interface the LAN is on. (Not run: it would
// broadcast on this machine's network.)
func ExampleDefaultNodeConfig() {
	cfg := mesh.DefaultNodeConfig()
	cfg.Mesh = "mygame"
	cfg.Discovery.Interfaces = []string{"eth0"}
	cfg.OnPeer = func(ev mesh.PeerEvent) { fmt.Println(ev.Peer.Name, ev.Kind) }
	n, err := mesh.NewNode(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer n.CloseReason("bye")
	// ... the game loop: n.Send, n.Xfer, n.Get
}
