package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/message"
	"github.com/lanmesh/lanmesh/safetext"
)

const demoSummary = `Show lanmesh at work: four nodes start in this process, find each other,
link, send a broadcast, a direct message and a request, and one leaves;
then the demo exits. Everything stays on this machine's loopback interface.`

// demoNames are the demo's nodes; the last one leaves.
var demoNames = []string{"ann", "bob", "cat", "dan"}

// demoStep bounds each step of the demo; they take milliseconds.
const demoStep = 10 * time.Second

func runDemo(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("demo", demoSummary, std.err)
	codecs := fs.Bool("codecs", false, "show instead how each codec encodes cable_car's messages")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *codecs {
		return demoCodecs(std.out)
	}
	return demoMesh(ctx, std.out)
}

// demoMesh tells the story of a small mesh on loopback.
func demoMesh(ctx context.Context, w io.Writer) error {
	start := time.Now()
	say := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	port, err := freeUDPPort()
	if err != nil {
		return err
	}
	say("lanmesh demo: %d nodes in this process, on loopback only", len(demoNames))
	say("(discovery beacons to 127.255.255.255:%d, no mDNS; links over TCP on 127.0.0.1)", port)

	say("\n== 1. start: each node listens and starts discovery")
	nodes := make([]*mesh.Node, len(demoNames))
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.Close()
			}
		}
	}()
	for i, name := range demoNames {
		cfg := demoConfig(name, port)
		if name == "ann" {
			// ann answers questions by rule, on a goroutine of the node.
			r := mesh.NewResponder()
			r.Handle(&ChatLine{}, func(m mesh.Message) (any, error) {
				return &ChatLine{Text: "the answer is 42"}, nil
			})
			cfg.Responder = r
		}
		n, err := mesh.NewNode(cfg)
		if err != nil {
			return err
		}
		nodes[i] = n
		say("%s started, id %s, listening on %s", name, shortID(n.ID()), n.Addrs()[0])
	}
	ann, bob, cat, dan := nodes[0], nodes[1], nodes[2], nodes[3]

	say("\n== 2. discovery and links: every pair of nodes links once, directly")
	if err := waitFor(ctx, "every node to link with every other", func() bool {
		for _, n := range nodes {
			if linkedCount(n) != len(nodes)-1 {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	say("all %d nodes linked with each other, %d links, after %v", len(nodes), len(nodes)*(len(nodes)-1)/2, since(start))
	// Each link pings; wait for the first round trip of each.
	if err := waitFor(ctx, "a round trip on every link", func() bool {
		for _, n := range nodes {
			for _, p := range n.Peers() {
				if p.Link.RTTSamples == 0 {
					return false
				}
			}
		}
		return true
	}); err != nil {
		return err
	}
	for _, n := range nodes {
		var parts []string
		for _, p := range n.Peers() {
			parts = append(parts, fmt.Sprintf("%s (rtt %v, found by %s)", safetext.Line(p.Name), p.Link.RTT.Round(time.Microsecond), how(p)))
		}
		say("%s is linked with %s", n.Name(), strings.Join(parts, ", "))
	}

	say("\n== 3. a broadcast: ann sends one message to every peer (Broadcast, then Xfer)")
	k, err := ann.Broadcast(&ChatLine{Text: "hello, everyone"})
	if err != nil {
		return err
	}
	ann.Xfer() // a game loop calls Xfer once per tick: the tick's messages leave in one write per link
	say("ann queued it for %d peers", k)
	for _, n := range nodes[1:] {
		if err := receiveChat(ctx, n, say); err != nil {
			return err
		}
	}

	say("\n== 4. a direct message: bob sends to dan only (SendTo, by name)")
	if err := bob.SendTo("dan", &ChatLine{Text: "just between us"}); err != nil {
		return err
	}
	bob.Xfer()
	if err := receiveChat(ctx, dan, say); err != nil {
		return err
	}

	say("\n== 5. a request: cat asks ann, whose Responder answers")
	rctx, cancel := context.WithTimeout(ctx, demoStep)
	reply, err := cat.Request(rctx, ann.ID(), &ChatLine{Text: "what is six times seven?"})
	cancel()
	if err != nil {
		return err
	}
	say("cat asked %q; ann replied %q", "what is six times seven?", reply.(*ChatLine).Text)

	say("\n== 6. one leaves: dan closes with a reason, and the others see it")
	drainEvents(nodes[:3])
	dan.CloseReason("dan has to go")
	say("dan closed")
	for _, n := range nodes[:3] {
		ev, err := waitLeft(ctx, n, "dan")
		if err != nil {
			return err
		}
		say("%s saw dan leave: %s", n.Name(), safetext.Line(fmt.Sprint(ev.Err)))
	}
	if err := bob.SendTo("dan", &ChatLine{Text: "still there?"}); err != nil {
		say("bob tries to send to dan: %v", err)
	}

	say("\n== 7. the others close")
	for _, n := range nodes[:3] {
		n.CloseReason("the demo is over")
	}
	say("done in %v", since(start))
	return nil
}

// demoConfig keeps a demo node on loopback, with short timers.
func demoConfig(name string, port int) mesh.NodeConfig {
	cfg := mesh.DefaultNodeConfig()
	cfg.Name = name
	cfg.Mesh = "lanmesh-demo"
	cfg.Link.PingInterval = 50 * time.Millisecond
	cfg.UseLoopback(port)
	d := &cfg.Discovery
	d.Interval = 250 * time.Millisecond
	d.Jitter = 25 * time.Millisecond
	d.LostAfter = time.Second
	return cfg
}

// freeUDPPort returns a UDP port that was free on 127.0.0.1 a moment ago,
// so that the demo's beacons meet no other program's.
func freeUDPPort() (int, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

func linkedCount(n *mesh.Node) int {
	k := 0
	for _, p := range n.Peers() {
		if p.State == mesh.StateLinked {
			k++
		}
	}
	return k
}

// waitFor polls cond until it holds, for at most demoStep.
func waitFor(ctx context.Context, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, demoStep)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
	}
	return nil
}

func receiveChat(ctx context.Context, n *mesh.Node, say func(string, ...any)) error {
	ctx, cancel := context.WithTimeout(ctx, demoStep)
	defer cancel()
	m, err := n.Receive(ctx)
	for err == nil {
		if _, isEvent := m.Msg.(*mesh.PeerEvent); !isEvent {
			break
		}
		m, err = n.Receive(ctx) // peer events come in the same stream
	}
	if err != nil {
		return fmt.Errorf("%s receiving: %w", n.Name(), err)
	}
	c, ok := m.Msg.(*ChatLine)
	if !ok {
		return fmt.Errorf("%s received a %T", n.Name(), m.Msg)
	}
	say("%s got a ChatLine from %s: %q", n.Name(), safetext.Line(m.FromName), c.Text)
	return nil
}

func drainEvents(nodes []*mesh.Node) {
	for _, n := range nodes {
		for _, ok := n.Get(); ok; _, ok = n.Get() {
		}
	}
}

func waitLeft(ctx context.Context, n *mesh.Node, name string) (mesh.PeerEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, demoStep)
	defer cancel()
	for {
		m, err := n.Receive(ctx)
		if err != nil {
			return mesh.PeerEvent{}, fmt.Errorf("%s waiting for %s to leave: %w", n.Name(), name, err)
		}
		if ev, ok := m.Msg.(*mesh.PeerEvent); ok && ev.Kind == mesh.PeerLeft && ev.Peer.Name == name {
			return *ev, nil
		}
	}
}

// demoCodecs shows cable_car's messages in each of the three codecs, encoded
// and read back from a stream.
func demoCodecs(w io.Writer) error {
	msgs := []any{
		&message.Identify{Username: "alice", Hostname: "box"},
		message.Join{},
		message.Quit{},
	}
	fmt.Fprintln(w, "== codecs: cable_car's messages, encoded and decoded")
	for _, name := range codec.Names() {
		c, err := codec.New(name, message.Default)
		if err != nil {
			return err
		}
		var stream []byte
		for _, m := range msgs {
			before := len(stream)
			if stream, err = c.AppendFrame(stream, m); err != nil {
				return err
			}
			fmt.Fprintf(w, "%-8s %-10T %s\n", name, m, show(name, stream[before:]))
		}
		d := c.NewDecoder(bytes.NewReader(stream))
		for range msgs {
			m, size, err := d.Decode()
			if err != nil {
				return fmt.Errorf("decoding %s: %w", name, err)
			}
			fmt.Fprintf(w, "%-8s decoded %3d bytes -> %T %+v\n", name, size, m, m)
		}
	}
	return nil
}

func show(codecName string, frame []byte) string {
	if codecName == "json" {
		return fmt.Sprintf("%q", frame)
	}
	return fmt.Sprintf("% x", frame)
}
