package hub

import (
	"errors"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/meshkey"
)

// testHB is the heartbeat of the in-memory tests.
const testHB = 200 * time.Millisecond

// twoSites starts two sites of two nodes each (a1 a2 on one in-memory LAN,
// b1 b2 on another), each node bridged to the hub at url.
type sites struct {
	a1, a2, b1, b2     *watched
	ba1, ba2, bb1, bb2 *Bridge
}

func twoSites(t *testing.T, url string, kr meshkey.Keyring) *sites {
	t.Helper()
	lanA, lanB := mesh.NewMemNetwork(), mesh.NewMemNetwork()
	s := &sites{}
	s.a1 = testNode(t, lanA, "a1", nil, kr)
	s.a2 = testNode(t, lanA, "a2", []string{"a1:1"}, kr)
	s.b1 = testNode(t, lanB, "b1", nil, kr)
	s.b2 = testNode(t, lanB, "b2", []string{"b1:1"}, kr)
	s.ba1 = join(t, s.a1, url, "A", testHB)
	s.ba2 = join(t, s.a2, url, "A", testHB)
	s.bb1 = join(t, s.b1, url, "B", testHB)
	s.bb2 = join(t, s.b2, url, "B", testHB)
	return s
}

func (s *sites) all() []*watched { return []*watched{s.a1, s.a2, s.b1, s.b2} }

// full is what each node sees when all four are up.
func (s *sites) full() map[*watched][]string {
	return map[*watched][]string{
		s.a1: {"a2", "b1@B", "b2@B"},
		s.a2: {"a1", "b1@B", "b2@B"},
		s.b1: {"a1@A", "a2@A", "b2"},
		s.b2: {"a1@A", "a2@A", "b1"},
	}
}

// broadcastOnce checks that a Broadcast from w reaches every other node of
// s exactly once: it waits for it everywhere, then for a second one, which
// comes after any late copy of the first (one sender's order holds across
// the hub).
func (s *sites) broadcastOnce(t *testing.T, from *watched, text string) {
	t.Helper()
	if k, err := from.Broadcast(&Text{S: text}); k != 3 || err != nil {
		t.Fatalf("%s: Broadcast: %d, %v", from.Name(), k, err)
	}
	from.Xfer()
	if k, err := from.Broadcast(&Text{S: text + "-after"}); k != 3 || err != nil {
		t.Fatalf("%s: Broadcast: %d, %v", from.Name(), k, err)
	}
	from.Xfer()
	for _, w := range s.all() {
		if w == from {
			continue
		}
		waitFor(t, 5*time.Second, w.Name()+" to receive "+text, func() bool { return w.count(text+"-after") == 1 })
		if k := w.count(text); k != 1 {
			t.Fatalf("%s received %q %d times", w.Name(), text, k)
		}
	}
}

func gateways(bs ...*Bridge) int {
	k := 0
	for _, b := range bs {
		if b.Gateway() {
			k++
		}
	}
	return k
}

// TestHubTwoSites: two sites of two nodes through an embedded hub: each
// node sees all four (its LAN peer directly, the others through the hub),
// a Broadcast reaches the three others exactly once, a Request across
// sites is answered, each site has one gateway.
func TestHubTwoSites(t *testing.T) {
	leaktest.Check(t)
	srv := startServer(t, ServerOptions{})
	s := twoSites(t, srv.URL(), meshkey.Keyring{})
	d := waitLinked(t, 10*time.Second, s.full())
	t.Logf("all four see each other %v after the last Join", d)

	for _, p := range s.a1.Peers() {
		if p.Name == "b1" && (p.Site != "B" || p.Instance == (p.ID)) {
			t.Fatalf("b1 as a1 sees it: %+v", p)
		}
	}
	s.broadcastOnce(t, s.a1, "hello from a1")
	s.broadcastOnce(t, s.b2, "hello from b2")

	for _, pair := range [][2]*watched{{s.a1, s.b2}, {s.b1, s.a2}} {
		got, err := request(pair[0], pair[1].ID(), 5*time.Second)
		if err != nil || got != "pong from "+pair[1].Name() {
			t.Fatalf("%s asks %s: %q, %v", pair[0].Name(), pair[1].Name(), got, err)
		}
	}
	if err := s.a1.SendTo("b1", &Text{S: "by name"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b1 to get a message sent by name", func() bool { return s.b1.count("by name") == 1 })
	// The lane's kinds reach the other site too.
	if err := s.a1.SendKind(s.b1.ID(), &Text{S: "sequenced"}, mesh.Sequenced); err != nil {
		t.Fatalf("SendKind across the hub: %v", err)
	}
	if k, err := s.a1.BroadcastKind(&Text{S: "unreliable"}, mesh.Unreliable); k != 3 || err != nil {
		t.Fatalf("BroadcastKind: %d, %v", k, err)
	}
	s.a1.Xfer()
	waitFor(t, 5*time.Second, "the lane's kinds across the hub", func() bool {
		return s.b1.count("sequenced") == 1 && s.b1.count("unreliable") == 1 && s.b2.count("unreliable") == 1 && s.a2.count("unreliable") == 1
	})
	for _, m := range s.b1.msgs {
		if m.From == s.a1.ID() && m.Via != mesh.Relayed {
			t.Fatalf("a message from a1 came %v", m.Via)
		}
	}

	waitFor(t, 5*time.Second, "one gateway per site", func() bool {
		return gateways(s.ba1, s.ba2) == 1 && gateways(s.bb1, s.bb2) == 1
	})
	st := s.ba1.Stats()
	if !st.Connected || st.RemotePeers != 2 || st.Members != 2 || st.Published == 0 || st.Received == 0 {
		t.Fatalf("stats: %+v", st)
	}
	if st.SealedDrop+st.BadDrop+st.ReplayDrop+st.QueueDrop != 0 {
		t.Fatalf("drops: %+v", st)
	}
	// Each node saw each peer join once, and nothing else.
	for _, w := range s.all() {
		for _, o := range s.all() {
			if o == w {
				continue
			}
			if evs := w.eventsOf(o.ID()); len(evs) != 1 || evs[0].Kind != mesh.PeerJoined {
				t.Fatalf("%s saw %s: %v", w.Name(), o.Name(), evs)
			}
		}
	}
}

// TestHubLeaveAndFailover: a node whose bridge closes is seen leaving at
// once (ErrLeft); a gateway that dies (no goodbye) is replaced, the other
// site keeps its site's other peer (no PeerLeft for it) and traffic goes
// on; the dead node is reported left (ErrExpired).
func TestHubLeaveAndFailover(t *testing.T) {
	leaktest.Check(t)
	srv := startServer(t, ServerOptions{})
	s := twoSites(t, srv.URL(), meshkey.Keyring{})
	waitLinked(t, 10*time.Second, s.full())
	waitFor(t, 5*time.Second, "one gateway per site", func() bool {
		return gateways(s.ba1, s.ba2) == 1 && gateways(s.bb1, s.bb2) == 1
	})

	// A graceful leave: b2's bridge closes.
	s.bb2.Close()
	start := time.Now()
	waitFor(t, 5*time.Second, "a1 to see b2 leave", func() bool {
		evs := s.a1.eventsOf(s.b2.ID())
		return len(evs) == 2 && evs[1].Kind == mesh.PeerLeft
	})
	t.Logf("a graceful leave seen in the other site after %v", time.Since(start))
	if ev := s.a1.eventsOf(s.b2.ID())[1]; !errors.Is(ev.Err, ErrLeft) {
		t.Fatalf("b2 left with %v", ev.Err)
	}

	// Site A's gateway dies.
	gw, other, otherW := s.ba1, s.ba2, s.a2
	dead := s.a1
	if s.ba2.Gateway() {
		gw, other, otherW, dead = s.ba2, s.ba1, s.a1, s.a2
	}
	gw.crash()
	start = time.Now()
	takeover := waitFor(t, 5*time.Second, "the other node of site A to take over", other.Gateway)
	t.Logf("gateway of site A died: %s took over after %v (heartbeat %v)", otherW.Name(), takeover, testHB)
	left := waitFor(t, 10*time.Second, "b1 to see the dead gateway leave", func() bool {
		evs := s.b1.eventsOf(dead.ID())
		return len(evs) == 2 && evs[1].Kind == mesh.PeerLeft
	})
	t.Logf("the dead gateway reported left in site B after %v", left)
	if ev := s.b1.eventsOf(dead.ID())[1]; !errors.Is(ev.Err, ErrExpired) {
		t.Fatalf("the dead gateway left with %v", ev.Err)
	}
	if evs := s.b1.eventsOf(otherW.ID()); len(evs) != 1 {
		t.Fatalf("b1 saw the surviving node of site A: %v", evs)
	}
	got, err := request(s.b1, otherW.ID(), 5*time.Second)
	if err != nil || got != "pong from "+otherW.Name() {
		t.Fatalf("after the failover: %q, %v", got, err)
	}
	got, err = request(otherW, s.b1.ID(), 5*time.Second)
	if err != nil || got != "pong from b1" {
		t.Fatalf("after the failover: %q, %v", got, err)
	}
	_ = start
}

// TestHubServerRestart: the hub goes away and comes back on its address;
// the sites rejoin and traffic goes on.
func TestHubServerRestart(t *testing.T) {
	leaktest.Check(t)
	srv, err := StartServer(ServerOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	url := srv.URL()
	listen := url[len("nats://"):]
	t.Cleanup(func() { srv.Close() })
	s := twoSites(t, url, meshkey.Keyring{})
	waitLinked(t, 10*time.Second, s.full())

	srv.Close()
	waitFor(t, 5*time.Second, "the bridges to see the hub gone", func() bool { return !s.ba1.Stats().Connected })
	srv2 := startServer(t, ServerOptions{Listen: listen})
	start := time.Now()
	waitFor(t, 10*time.Second, "the bridges to reconnect", func() bool {
		for _, b := range []*Bridge{s.ba1, s.ba2, s.bb1, s.bb2} {
			if !b.Stats().Connected {
				return false
			}
		}
		return true
	})
	d := waitLinked(t, 10*time.Second, s.full())
	t.Logf("hub restarted: the bridges reconnected and all four see each other %v after", time.Since(start))
	_ = d
	_ = srv2
	s.broadcastOnce(t, s.b1, "after the restart")
	if s.ba1.Stats().Reconnects == 0 {
		t.Fatal("no reconnect counted")
	}
}
