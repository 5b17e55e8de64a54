package hub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/lanmesh/lanmesh/hub/internal/wire"
	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/meshkey"
)

// TestHubLeafSite: site A reaches the hub through a leaf node of its own
// (one outbound connection for the site), site B directly.
func TestHubLeafSite(t *testing.T) {
	leaktest.Check(t)
	hubSrv := startServer(t, ServerOptions{LeafListen: "127.0.0.1:0"})
	if !strings.HasPrefix(hubSrv.LeafURL(), "nats-leaf://127.0.0.1:") {
		t.Fatalf("LeafURL %q", hubSrv.LeafURL())
	}
	leaf := startServer(t, ServerOptions{LeafRemote: hubSrv.LeafURL()})
	lanA, lanB := mesh.NewMemNetwork(), mesh.NewMemNetwork()
	a1 := testNode(t, lanA, "a1", nil, meshkey.Keyring{})
	b1 := testNode(t, lanB, "b1", nil, meshkey.Keyring{})
	// The leaf dials the hub on its own time: wait until traffic crosses.
	join(t, a1, leaf.URL(), "A", testHB)
	join(t, b1, hubSrv.URL(), "B", testHB)
	waitLinked(t, 10*time.Second, map[*watched][]string{a1: {"b1@B"}, b1: {"a1@A"}})
	if got, err := request(b1, a1.ID(), 5*time.Second); err != nil || got != "pong from a1" {
		t.Fatalf("request through the leaf: %q %v", got, err)
	}
}

// TestHubAuth: the hub's credentials are passed through; a wrong one is a
// clear error from Join.
func TestHubAuth(t *testing.T) {
	leaktest.Check(t)
	for _, tc := range []struct {
		name      string
		srv       ServerOptions
		good, bad Options
	}{
		{"user", ServerOptions{User: "u", Password: "p"}, Options{User: "u", Password: "p"}, Options{User: "u", Password: "x"}},
		{"token", ServerOptions{Token: "t0k"}, Options{Token: "t0k"}, Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, tc.srv)
			n := testNode(t, mesh.NewMemNetwork(), "n", nil, meshkey.Keyring{})
			tc.bad.URL, tc.good.URL = srv.URL(), srv.URL()
			if _, err := Join(n.Node, tc.bad); err == nil || !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("bad credentials: %v", err)
			}
			b, err := Join(n.Node, tc.good)
			if err != nil {
				t.Fatal(err)
			}
			b.Close()
		})
	}
	if _, err := StartServer(ServerOptions{User: "u"}); err == nil {
		t.Fatal("a user without a password started")
	}
	if _, err := Join(nil, Options{}); err == nil {
		t.Fatal("Join without a URL")
	}
}

// TestHubNodeClosesFirst: a node closed before its bridge says goodbye
// (the other site sees it leave at once), its remote peers are reported
// left on it, and the bridge's Close still joins everything.
func TestHubNodeClosesFirst(t *testing.T) {
	leaktest.Check(t)
	srv := startServer(t, ServerOptions{})
	a := testNode(t, mesh.NewMemNetwork(), "a", nil, meshkey.Keyring{})
	b := testNode(t, mesh.NewMemNetwork(), "b", nil, meshkey.Keyring{})
	join(t, a, srv.URL(), "A", time.Second) // slow heartbeats: the goodbye must do it
	join(t, b, srv.URL(), "B", time.Second)
	waitLinked(t, 10*time.Second, map[*watched][]string{a: {"b@B"}, b: {"a@A"}})
	a.Close()
	<-a.done
	if evs := a.eventsOf(b.ID()); len(evs) != 2 || !errors.Is(evs[1].Err, mesh.ErrRelayDetached) {
		t.Fatalf("a saw b: %v", evs)
	}
	d := waitFor(t, 5*time.Second, "b to see a leave", func() bool {
		evs := b.eventsOf(a.ID())
		return len(evs) == 2 && errors.Is(evs[1].Err, ErrLeft)
	})
	t.Logf("b saw a leave %v after a's node closed (heartbeat 1s)", d)
}

// TestHubBounds: an unkeyed hub's claims cost bounded memory: rosters of
// more sites and peers than the bounds are refused and counted.
func TestHubBounds(t *testing.T) {
	leaktest.Check(t)
	srv := startServer(t, ServerOptions{})
	a := testNode(t, mesh.NewMemNetwork(), "a", nil, meshkey.Keyring{})
	ba := join(t, a, srv.URL(), "A", testHB)
	liar, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer liar.Close()
	subj := wire.SubjectRoster("hubtest")
	sender, session := uuid.New(), uuid.New()
	seq := uint64(0)
	publish := func(r wire.RosterBody) {
		seq++
		if r.Site == "s0" {
			// Each roster of s0 from a gateway of its own: from the same
			// one, the big roster would drop the peer it leaves out.
			sender = uuid.New()
		}
		h := wire.Header{Kind: wire.KindRoster, Sender: sender, Session: session, Start: 1, Seq: seq}
		if err := liar.Publish(subj, wire.Seal(nil, h, subj, r.Append(nil), nil)); err != nil {
			t.Fatal(err)
		}
	}
	// MaxSites+6 sites of one peer, then one site of a full roster, then
	// garbage and a name with terminal escapes.
	for i := range MaxSites + 6 {
		publish(wire.RosterBody{Site: fmt.Sprintf("s%d", i), Entries: []wire.RosterEntry{{ID: uuid.New(), Session: uuid.New(), Name: "p"}}})
	}
	big := wire.RosterBody{Site: "s0"}
	for range MaxPeersPerSite {
		big.Entries = append(big.Entries, wire.RosterEntry{ID: uuid.New(), Session: uuid.New(), Name: "q"})
	}
	publish(big)
	liar.Publish(subj, []byte("garbage"))
	liar.Flush()
	waitFor(t, 5*time.Second, "the claims to be counted", func() bool {
		st := ba.Stats()
		return st.BadDrop == 1 && st.Refused >= 6
	})
	waitFor(t, 5*time.Second, "the node to take what fits", func() bool {
		return ba.Stats().RemotePeers == MaxSites+MaxPeersPerSite-1
	})
	if n := len(a.Peers()); n > MaxRemotePeers {
		t.Fatalf("%d peers", n)
	}
	t.Logf("stats: %+v", ba.Stats())
}

func TestRedact(t *testing.T) {
	got := redact("nats://u:secret@h1:4222, nats://h2:4222,nats://tok@h3")
	if strings.Contains(got, "secret") || strings.Contains(got, "tok") || got != "nats://xxxxx@h1:4222, nats://h2:4222,nats://xxxxx@h3" {
		t.Fatalf("redact: %s", got)
	}
}

// TestStartServerPortInUse: a port in use is an error at once, naming the
// address, not after the readiness timeout.
func TestStartServerPortInUse(t *testing.T) {
	leaktest.Check(t)
	srv := startServer(t, ServerOptions{})
	addr := strings.TrimPrefix(srv.URL(), "nats://")
	for _, o := range []ServerOptions{{Listen: addr}, {Listen: "127.0.0.1:0", LeafListen: addr}} {
		start := time.Now()
		s, err := StartServer(o)
		if err == nil {
			s.Close()
			t.Fatalf("%+v: started on a port in use", o)
		}
		if d := time.Since(start); d > readyTimeout/2 || !strings.Contains(err.Error(), addr) {
			t.Fatalf("%+v: after %v: %v", o, d, err)
		}
		t.Logf("%v: %v", time.Since(start), err)
	}
}

// TestHubCloseAfterSend: messages sent just before the bridge closes
// arrive, all of them before the sender's PeerLeft (the goodbye comes
// after the data).
func TestHubCloseAfterSend(t *testing.T) {
	leaktest.Check(t)
	srv := startServer(t, ServerOptions{})
	b := testNode(t, mesh.NewMemNetwork(), "b", nil, meshkey.Keyring{})
	join(t, b, srv.URL(), "B", testHB)
	const rounds, msgs = 8, 3
	for i := range rounds {
		a := testNode(t, mesh.NewMemNetwork(), fmt.Sprintf("a%d", i), nil, meshkey.Keyring{})
		ba := join(t, a, srv.URL(), "A", testHB)
		waitFor(t, 10*time.Second, "b and "+a.Name()+" to see each other", func() bool {
			return len(b.eventsOf(a.ID())) == 1 && len(a.eventsOf(b.ID())) == 1
		})
		for j := range msgs {
			if err := a.Send(b.ID(), &Text{S: fmt.Sprintf("%s-%d", a.Name(), j)}); err != nil {
				t.Fatal(err)
			}
		}
		ba.Close()
		waitFor(t, 5*time.Second, "b to see "+a.Name()+" leave", func() bool { return len(b.eventsOf(a.ID())) == 2 })
		if evs := b.eventsOf(a.ID()); !errors.Is(evs[1].Err, ErrLeft) {
			t.Fatalf("%s left with %v", a.Name(), evs[1].Err)
		}
		for j := range msgs {
			if s := fmt.Sprintf("%s-%d", a.Name(), j); b.count(s) != 1 {
				t.Errorf("round %d: b received %q %d times before the PeerLeft", i, s, b.count(s))
			}
		}
	}
}

// TestHubMemberDies: a node that dies while not its site's gateway is
// reported left in the other site once its gateway's roster leaves it out
// (3 heartbeats and at most one more), not 6 heartbeats after that; a
// gateway that dies, once its successor's roster comes (not 6 heartbeats
// after its own last one); the site's surviving node and the other site's
// peer see no other event.
func TestHubMemberDies(t *testing.T) {
	for _, gateway := range []bool{false, true} {
		t.Run(fmt.Sprintf("gateway=%v", gateway), func(t *testing.T) { testHubMemberDies(t, gateway) })
	}
}

func testHubMemberDies(t *testing.T, gateway bool) {
	leaktest.Check(t)
	const hb = 300 * time.Millisecond
	srv := startServer(t, ServerOptions{})
	lanA := mesh.NewMemNetwork()
	a1 := testNode(t, lanA, "a1", nil, meshkey.Keyring{})
	a2 := testNode(t, lanA, "a2", []string{"a1:1"}, meshkey.Keyring{})
	b1 := testNode(t, mesh.NewMemNetwork(), "b1", nil, meshkey.Keyring{})
	ba1, ba2 := join(t, a1, srv.URL(), "A", hb), join(t, a2, srv.URL(), "A", hb)
	join(t, b1, srv.URL(), "B", hb)
	waitLinked(t, 10*time.Second, map[*watched][]string{a1: {"a2", "b1@B"}, a2: {"a1", "b1@B"}, b1: {"a1@A", "a2@A"}})
	waitFor(t, 5*time.Second, "one gateway in site A", func() bool { return gateways(ba1, ba2) == 1 })
	member, memberW, gw, gwB := ba2, a2, a1, ba1
	if ba2.Gateway() != gateway {
		member, memberW, gw, gwB = ba1, a1, a2, ba2
	}
	member.crash()
	start := time.Now()
	deadline := (remoteBeats + 2) * hb
	if gateway {
		// Before, the peer stayed until 6 heartbeats after its last
		// roster, about 3 after its successor took over.
		waitFor(t, 10*time.Second, "the other node to take over", gwB.Gateway)
		deadline = 3 * hb / 2
	}
	// Before, the peer stayed until 6 heartbeats after the last roster
	// that listed it, itself at least 2 heartbeats after the crash.
	waitFor(t, deadline, "b1 to see the dead node leave", func() bool {
		evs := b1.eventsOf(memberW.ID())
		return len(evs) == 2 && evs[1].Kind == mesh.PeerLeft
	})
	t.Logf("a node that died (gateway: %v) reported left in the other site after %v (heartbeat %v)", gateway, time.Since(start), hb)
	if ev := b1.eventsOf(memberW.ID())[1]; !errors.Is(ev.Err, ErrExpired) {
		t.Fatalf("the dead member left with %v", ev.Err)
	}
	if evs := b1.eventsOf(gw.ID()); len(evs) != 1 {
		t.Fatalf("b1 saw the gateway: %v", evs)
	}
	if evs := gw.eventsOf(b1.ID()); len(evs) != 1 {
		t.Fatalf("the gateway saw b1: %v", evs)
	}
}

// TestHubSlowReceiverLastMessages: a receiver whose program is slow (its
// stream full) still takes every message a peer sent before leaving, then
// its PeerLeft, however long after the goodbye it reads them.
func TestHubSlowReceiverLastMessages(t *testing.T) {
	leaktest.Check(t)
	srv := startServer(t, ServerOptions{})
	cfg := mesh.DefaultNodeConfig()
	cfg.Name, cfg.Mesh, cfg.Registry = "b", "hubtest", testRegistry
	cfg.Link.Transport = mesh.NewMemNetwork()
	cfg.Net.Listen = []string{"b:1"}
	cfg.Discovery.Off = true
	cfg.Limits.ReceiveQueue = 4
	b, err := mesh.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	bb, err := Join(b, Options{URL: srv.URL(), Site: "B", Heartbeat: testHB})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bb.Close() })
	a := testNode(t, mesh.NewMemNetwork(), "a", nil, meshkey.Keyring{})
	ba := join(t, a, srv.URL(), "A", testHB)
	waitFor(t, 10*time.Second, "a and b to see each other", func() bool {
		_, err := b.Peer(a.ID())
		return err == nil && len(a.eventsOf(b.ID())) == 1
	})
	const msgs = 300 // well past what b's stream holds
	for i := range msgs {
		if err := a.Send(b.ID(), &Text{S: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	ba.Close()
	waitFor(t, 5*time.Second, "b's bridge to have heard a's goodbye 3 heartbeats ago", func() bool {
		bb.mu.Lock()
		defer bb.mu.Unlock()
		v := bb.view[a.ID()]
		return v != nil && v.bye && time.Since(v.byeAt) > 3*testHB
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := 0
	for {
		m, err := b.Receive(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", got, err)
		}
		if ev, ok := m.Msg.(*mesh.PeerEvent); ok {
			if ev.Peer.ID == a.ID() && ev.Kind == mesh.PeerLeft {
				break
			}
			continue
		}
		if txt, ok := m.Msg.(*Text); !ok || txt.S != fmt.Sprint(got) {
			t.Fatalf("message %d: %+v", got, m.Msg)
		}
		got++
	}
	if got != msgs {
		t.Fatalf("b took %d of %d messages before a's PeerLeft", got, msgs)
	}
}

// TestHubNewcomerGateway: a node that joins a site with an id below the
// others' becomes its gateway, its first rosters listing only what it has
// heard so far: the other site sees it join and nothing else; when it
// dies, the other site sees it leave, and nothing else.
func TestHubNewcomerGateway(t *testing.T) {
	leaktest.Check(t)
	id := func(b byte) func(*mesh.NodeConfig) {
		return func(c *mesh.NodeConfig) { c.NodeID = uuid.UUID{b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15} }
	}
	srv := startServer(t, ServerOptions{})
	lanA := mesh.NewMemNetwork()
	var site []*watched
	var bridges []*Bridge
	for i := range 4 {
		w := testNode(t, lanA, fmt.Sprintf("a%d", i+1), nil, meshkey.Keyring{}, id(byte(0xf0+i)))
		site = append(site, w)
		bridges = append(bridges, join(t, w, srv.URL(), "A", testHB))
	}
	b1 := testNode(t, mesh.NewMemNetwork(), "b1", nil, meshkey.Keyring{})
	join(t, b1, srv.URL(), "B", testHB)
	waitFor(t, 10*time.Second, "b1 to see site A", func() bool { return len(b1.linked()) == 4 })
	a0 := testNode(t, lanA, "a0", nil, meshkey.Keyring{}, id(0x01))
	b0 := join(t, a0, srv.URL(), "A", testHB)
	waitFor(t, 10*time.Second, "a0 to be site A's gateway", func() bool { return b0.Gateway() && gateways(bridges...) == 0 })
	// Rosters for a few heartbeats: a0's, complete.
	waitFor(t, 10*time.Second, "b1 to see a0", func() bool { return len(b1.eventsOf(a0.ID())) == 1 })
	deadline := time.Now().Add(remoteBeats * testHB)
	for time.Now().Before(deadline) {
		for _, w := range site {
			if evs := b1.eventsOf(w.ID()); len(evs) != 1 {
				t.Fatalf("b1 saw %s: %v", w.Name(), evs)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b0.crash()
	waitFor(t, 10*time.Second, "b1 to see a0 leave", func() bool { return len(b1.eventsOf(a0.ID())) == 2 })
	waitFor(t, 10*time.Second, "a1 to take over", bridges[0].Gateway)
	deadline = time.Now().Add(remoteBeats * testHB)
	for time.Now().Before(deadline) {
		for _, w := range site {
			if evs := b1.eventsOf(w.ID()); len(evs) != 1 {
				t.Fatalf("after the failover b1 saw %s: %v", w.Name(), evs)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}
