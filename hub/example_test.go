package hub_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/lanmesh/lanmesh/hub"
	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/message"
)

// Hello is the example's message.
type Hello struct{ Text string }

var registry = func() *message.Registry {
	r := message.NewRegistry()
	message.MustRegister[Hello](r, 0x10, "Hello")
	return r
}()

// Two nodes in two sites (here, each alone on an in-memory LAN of its own)
// meet through an embedded hub on loopback, and talk as LAN peers do.
func Example() {
	srv, err := hub.StartServer(hub.ServerOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	start := func(name, site string) (*mesh.Node, *hub.Bridge) {
		cfg := mesh.DefaultNodeConfig()
		cfg.Name = name
		cfg.Mesh = "example"
		cfg.Registry = registry
		cfg.Link.Transport = mesh.NewMemNetwork() // on a real LAN: the defaults
		cfg.Net.Listen = []string{name + ":1"}
		cfg.Discovery.Off = true
		n, err := mesh.NewNode(cfg)
		if err != nil {
			log.Fatal(err)
		}
		b, err := hub.Join(n, hub.Options{URL: srv.URL(), Site: site})
		if err != nil {
			log.Fatal(err)
		}
		return n, b
	}
	alice, ba := start("alice", "office")
	defer alice.Close()
	defer ba.Close()
	bob, bb := start("bob", "lab")
	defer bob.Close()
	defer bb.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := alice.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	ev := m.Msg.(*mesh.PeerEvent)
	fmt.Println(ev.Kind, ev.Peer.Name, "in", ev.Peer.Site)

	if err := alice.SendTo("bob", &Hello{Text: "hi"}); err != nil {
		log.Fatal(err)
	}
	for {
		m, err := bob.Receive(ctx)
		if err != nil {
			log.Fatal(err)
		}
		if h, ok := m.Msg.(*Hello); ok {
			fmt.Println(m.FromName, "says", h.Text, "via", m.Via)
			break
		}
	}
	// Output:
	// joined bob in lab
	// alice says hi via relayed
}
