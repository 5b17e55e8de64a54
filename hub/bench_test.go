package hub

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/meshkey"
)

// BenchmarkHubRequest is a Request from one site to another and its reply,
// through an embedded hub on loopback (unkeyed and keyed), beside plain
// NATS request/reply on the same server.
func BenchmarkHubRequest(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		name := "unkeyed"
		var kr meshkey.Keyring
		if keyed {
			name, kr = "keyed", meshkey.Keyring{Primary: meshkey.Key{7}}
		}
		b.Run(name, func(b *testing.B) {
			srv, err := StartServer(ServerOptions{Listen: "127.0.0.1:0"})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			a, err := benchNode("ba", kr)
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			z, err := benchNode("bz", kr)
			if err != nil {
				b.Fatal(err)
			}
			defer z.Close()
			for _, n := range []*watched{a, z} {
				br, err := Join(n.Node, Options{URL: srv.URL(), Site: n.Name()})
				if err != nil {
					b.Fatal(err)
				}
				defer br.Close()
			}
			deadline := time.Now().Add(10 * time.Second)
			for len(a.linked()) != 1 {
				if time.Now().After(deadline) {
					b.Fatal("the sites did not meet")
				}
				time.Sleep(5 * time.Millisecond)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := request(a, z.ID(), 5*time.Second); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("plain-nats", func(b *testing.B) {
		srv, err := StartServer(ServerOptions{Listen: "127.0.0.1:0"})
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Close()
		nc, err := nats.Connect(srv.URL())
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		nc2, err := nats.Connect(srv.URL())
		if err != nil {
			b.Fatal(err)
		}
		defer nc2.Close()
		if _, err := nc2.Subscribe("echo", func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
			b.Fatal(err)
		}
		nc2.Flush()
		b.ResetTimer()
		for range b.N {
			if _, err := nc.Request("echo", []byte("ping"), 5*time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchNode is a node alone on an in-memory LAN, its stream taken by a
// watcher that answers requests.
func benchNode(name string, kr meshkey.Keyring) (*watched, error) {
	cfg := mesh.DefaultNodeConfig()
	cfg.Name = name
	cfg.Mesh = "hubbench"
	cfg.Registry = testRegistry
	cfg.Keyring = kr
	cfg.Link.Transport = mesh.NewMemNetwork()
	cfg.Net.Listen = []string{name + ":1"}
	cfg.Discovery.Off = true
	n, err := mesh.NewNode(cfg)
	if err != nil {
		return nil, err
	}
	return watch(n), nil
}
