//go:build linux

package hub

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lanmesh/lanmesh/hub/internal/wire"
	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/lanmeshtest/netlab"
	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/meshkey"
)

// routed is two LANs (netlab labs of two hosts each) joined by a router
// namespace with forwarding on: each host's default route is the router's
// address in its subnet. TCP crosses the router; broadcasts do not.
type routed struct {
	labs [2]*netlab.Lab
	// rt is the router's namespace, as a Host so that Do runs code in it.
	rt *netlab.Host
	// rtAddr is the router's address in each lab's subnet.
	rtAddr [2]netip.Addr
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func newRouted(t *testing.T) *routed {
	r := &routed{labs: [2]*netlab.Lab{netlab.New(t, 2), netlab.New(t, 2)}}
	// Named after the first lab, so that a crashed run's router is removed
	// with its labs' leftovers (netlab removes namespaces by its prefix and
	// the dead process's id).
	ns := r.labs[0].Name + "-rt"
	ip(t, "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	r.rt = &netlab.Host{Name: "router", NS: ns}
	ip(t, "-n", ns, "link", "set", "lo", "up")
	ip(t, "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
		"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
	for i, lab := range r.labs {
		a := lab.Subnet.Addr().As4()
		a[3] = 253
		r.rtAddr[i] = netip.AddrFrom4(a)
		dev := fmt.Sprintf("r%d", i)
		ip(t, "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", "rt", "netns", lab.Bridge)
		ip(t, "-n", lab.Bridge, "link", "set", "rt", "master", "br0")
		ip(t, "-n", lab.Bridge, "link", "set", "rt", "up")
		ip(t, "-n", ns, "addr", "add", r.rtAddr[i].String()+"/24", "dev", dev)
		ip(t, "-n", ns, "link", "set", dev, "up")
		for _, h := range lab.Hosts {
			ip(t, "-n", h.NS, "route", "replace", "default", "via", r.rtAddr[i].String())
		}
	}
	return r
}

// dialFrom dials from inside h's namespace.
func dialFrom(h *netlab.Host) func(network, addr string) (net.Conn, error) {
	return func(network, addr string) (net.Conn, error) {
		var c net.Conn
		err := h.Do(func() (err error) {
			c, err = net.DialTimeout(network, addr, 2*time.Second)
			return err
		})
		return c, err
	}
}

// startHub starts the hub in the router, on every address, port 4222.
func (r *routed) startHub(t *testing.T) *Server {
	t.Helper()
	var s *Server
	if err := r.rt.Do(func() (err error) {
		s, err = StartServer(ServerOptions{Listen: "0.0.0.0:4222", Logger: testLogger("hub")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// nsNode starts a node in h, listening on its address; it links to the
// node at peer (if any) with one Connect made inside h.
func nsNode(t *testing.T, h *netlab.Host, name string, kr meshkey.Keyring, peer string) *watched {
	t.Helper()
	var n *mesh.Node
	if err := h.Do(func() (err error) {
		cfg := mesh.DefaultNodeConfig()
		cfg.Name = name
		cfg.Mesh = "hubtest"
		cfg.Registry = testRegistry
		cfg.Keyring = kr
		cfg.Discovery.Off = true
		cfg.Net.Listen = []string{netip.AddrPortFrom(h.Addr, 7700).String()}
		n, err = mesh.NewNode(cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	w := watch(n)
	t.Cleanup(func() {
		n.Close()
		<-w.done
	})
	if peer != "" {
		if err := h.Do(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := n.Connect(ctx, peer)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// nsJoin joins w's node to the hub from inside h, with the default site
// (derived in h: its subnet) and heartbeat.
func nsJoin(t *testing.T, h *netlab.Host, w *watched, url string) *Bridge {
	t.Helper()
	var b *Bridge
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := h.Do(func() (err error) {
			b, err = Join(w.Node, Options{URL: url, Dial: dialFrom(h), Logger: testLogger(w.Name())})
			return err
		})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: Join: %v", w.Name(), err)
		}
		time.Sleep(100 * time.Millisecond) // the router's links coming up
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestHubRoutedSubnets is issue 17's proof: two LANs behind a router (no
// broadcast crosses it), two nodes in each, a keyed mesh and a hub in the
// router. Each node sees all four; a Broadcast reaches the three others
// exactly once; a Request across sites is answered; a plain subscriber on
// the hub sees only sealed bytes; the gateway of one site dies and the
// other node takes over, and traffic across goes on; the hub restarts and
// the sites rejoin. Times go to the test log.
func TestHubRoutedSubnets(t *testing.T) {
	leaktest.Check(t)
	r := newRouted(t)
	srv := r.startHub(t)
	url := func(i int) string { return "nats://" + netip.AddrPortFrom(r.rtAddr[i], 4222).String() }
	key, err := meshkey.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kr := meshkey.Keyring{Primary: key}

	// A plain subscriber in the router, that never reconnects.
	var spy *nats.Conn
	if err := r.rt.Do(func() (err error) {
		spy, err = nats.Connect(srv.URL(), nats.NoReconnect())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	seen := make(chan *nats.Msg, 1<<14)
	if _, err := spy.ChanSubscribe("lanmesh.>", seen); err != nil {
		t.Fatal(err)
	}
	spy.Flush()

	h := [2][2]*netlab.Host{{r.labs[0].Hosts[0], r.labs[0].Hosts[1]}, {r.labs[1].Hosts[0], r.labs[1].Hosts[1]}}
	lanAddr := func(hh *netlab.Host) string { return netip.AddrPortFrom(hh.Addr, 7700).String() }
	s := &sites{}
	s.a1 = nsNode(t, h[0][0], "a1", kr, "")
	s.a2 = nsNode(t, h[0][1], "a2", kr, lanAddr(h[0][0]))
	s.b1 = nsNode(t, h[1][0], "b1", kr, "")
	s.b2 = nsNode(t, h[1][1], "b2", kr, lanAddr(h[1][0]))
	s.ba1 = nsJoin(t, h[0][0], s.a1, url(0))
	s.ba2 = nsJoin(t, h[0][1], s.a2, url(0))
	s.bb1 = nsJoin(t, h[1][0], s.b1, url(1))
	joined := time.Now()
	s.bb2 = nsJoin(t, h[1][1], s.b2, url(1))
	siteA, siteB := r.labs[0].Subnet.String(), r.labs[1].Subnet.String()
	if s.ba1.Site() != siteA || s.bb2.Site() != siteB {
		t.Fatalf("default sites: %q %q, want %q %q", s.ba1.Site(), s.bb2.Site(), siteA, siteB)
	}
	waitFor(t, 10*time.Second, "a1 to see b2 join", func() bool {
		evs := s.a1.eventsOf(s.b2.ID())
		return len(evs) == 1 && evs[0].Kind == mesh.PeerJoined
	})
	t.Logf("presence latency: a1 saw b2 (in the other site) join %v after b2's Join began", time.Since(joined))
	full := map[*watched][]string{
		s.a1: {"a2", "b1@" + siteB, "b2@" + siteB},
		s.a2: {"a1", "b1@" + siteB, "b2@" + siteB},
		s.b1: {"a1@" + siteA, "a2@" + siteA, "b2"},
		s.b2: {"a1@" + siteA, "a2@" + siteA, "b1"},
	}
	for w, names := range full {
		waitLinked(t, 10*time.Second, map[*watched][]string{w: names})
		t.Logf("%s sees all four %v after the last Join began", w.Name(), time.Since(joined))
	}

	s.broadcastOnce(t, s.a1, "from a1")
	s.broadcastOnce(t, s.b2, "from b2")
	for _, pair := range [][2]*watched{{s.a2, s.b1}, {s.b2, s.a1}} {
		start := time.Now()
		got, err := request(pair[0], pair[1].ID(), 5*time.Second)
		if err != nil || got != "pong from "+pair[1].Name() {
			t.Fatalf("%s asks %s: %q, %v", pair[0].Name(), pair[1].Name(), got, err)
		}
		t.Logf("request %s -> %s answered through the hub in %v", pair[0].Name(), pair[1].Name(), time.Since(start))
	}

	// The spy saw only sealed envelopes.
	k := 0
	for drained := false; !drained; {
		select {
		case m := <-seen:
			k++
			if hd, _, err := wire.Open(m.Data, m.Subject, nil); err != wire.ErrSealed || !hd.Sealed {
				t.Fatalf("an envelope on %s is not sealed: %v", m.Subject, err)
			}
			// Names as the bodies carry them (a length byte first): two bytes
			// alone turn up in random ciphertext.
			for _, clear := range []string{"from a1", "from b2", "pong", "\x02a1", "\x02b2", siteA} {
				if strings.Contains(string(m.Data[wire.HeaderSize:]), clear) {
					t.Fatalf("%q in the clear on %s", clear, m.Subject)
				}
			}
		default:
			drained = true
		}
	}
	spy.Close()
	t.Logf("a plain subscriber on the hub saw %d envelopes, all sealed", k)

	// Site A's gateway dies: its connection to the hub is cut with no
	// goodbye, and its node closes.
	waitFor(t, 5*time.Second, "one gateway per site", func() bool {
		return gateways(s.ba1, s.ba2) == 1 && gateways(s.bb1, s.bb2) == 1
	})
	gw, other, dead, alive := s.ba1, s.ba2, s.a1, s.a2
	if s.ba2.Gateway() {
		gw, other, dead, alive = s.ba2, s.ba1, s.a2, s.a1
	}
	start := time.Now()
	gw.crash()
	dead.Close()
	// Traffic across to the site's surviving node: it never depended on
	// the gateway.
	var resumed time.Duration
	for deadline := time.Now().Add(10 * time.Second); ; {
		if got, err := request(s.b1, alive.ID(), time.Second); err == nil && got == "pong from "+alive.Name() {
			resumed = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer from %s after the gateway died", alive.Name())
		}
	}
	waitFor(t, 10*time.Second, alive.Name()+" to take over as gateway", other.Gateway)
	takeover := time.Since(start)
	waitFor(t, 10*time.Second, "b1 to see the dead gateway leave", func() bool {
		evs := s.b1.eventsOf(dead.ID())
		return len(evs) == 2 && evs[1].Kind == mesh.PeerLeft
	})
	left := time.Since(start)
	t.Logf("gateway %s killed: %s took over after %v; a request from the other site answered %v after the kill; the dead node reported left there after %v (heartbeat %v)",
		dead.Name(), alive.Name(), takeover, resumed, left, DefaultHeartbeat)
	for _, w := range []*watched{s.b1, s.b2} {
		if evs := w.eventsOf(alive.ID()); len(evs) != 1 {
			t.Fatalf("%s saw %s: %v (want no Left for the site's other peer)", w.Name(), alive.Name(), evs)
		}
	}
	waitLinked(t, 5*time.Second, map[*watched][]string{s.b2: {alive.Name() + "@" + siteA, "b1"}})

	// The hub restarts; the sites rejoin.
	srv.Close()
	waitFor(t, 10*time.Second, "the bridges to see the hub gone", func() bool { return !s.bb1.Stats().Connected })
	start = time.Now()
	r.startHub(t)
	waitFor(t, 15*time.Second, "the bridges to reconnect", func() bool {
		return other.Stats().Connected && s.bb1.Stats().Connected && s.bb2.Stats().Connected
	})
	after := map[*watched][]string{
		alive: {"b1@" + siteB, "b2@" + siteB},
		s.b1:  {alive.Name() + "@" + siteA, "b2"},
		s.b2:  {alive.Name() + "@" + siteA, "b1"},
	}
	waitLinked(t, 15*time.Second, after)
	t.Logf("hub restarted: the sites see each other again %v after it came back", time.Since(start))
	if got, err := request(alive, s.b2.ID(), 5*time.Second); err != nil || got != "pong from b2" {
		t.Fatalf("after the hub's restart: %q %v", got, err)
	}
}
