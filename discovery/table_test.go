package discovery

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"
)

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

const testLost = 3 * time.Second

var (
	selfID = uuid.MustParse("00000000-0000-4000-8000-000000000001")
	peerA  = uuid.MustParse("00000000-0000-4000-8000-00000000000a")
	peerB  = uuid.MustParse("00000000-0000-4000-8000-00000000000b")
	inst1  = uuid.MustParse("00000000-0000-4000-8000-000000000101")
	inst2  = uuid.MustParse("00000000-0000-4000-8000-000000000102")
	addr1  = netip.MustParseAddrPort("10.0.0.1:7000")
	addr2  = netip.MustParseAddrPort("10.0.0.2:7000")
)

func newTestTable() (*table, *fakeClock) {
	c := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return newTable("m", selfID, testLost, 8, c), c
}

func see(id, inst uuid.UUID, addr netip.AddrPort, via Via) sighting {
	return sighting{ID: id, Instance: inst, Name: "n", Mesh: "m", Addr: addr, Via: via}
}

// kinds runs one step and returns the kinds of the events it produced.
func kinds(evs []Event) []EventKind {
	var out []EventKind
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

func wantKinds(t *testing.T, step string, evs []Event, want ...EventKind) {
	t.Helper()
	got := kinds(evs)
	if len(got) != len(want) {
		t.Fatalf("%s: events %v, want %v", step, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: events %v, want %v", step, got, want)
		}
	}
}

func TestTableFoundAndQuiet(t *testing.T) {
	tb, _ := newTestTable()
	evs := tb.observe(see(peerA, inst1, addr1, ViaBroadcast), nil)
	wantKinds(t, "first beacon", evs, Found)
	if evs[0].Peer.Addr != addr1 || evs[0].Peer.Via != ViaBroadcast {
		t.Fatalf("Found peer = %+v", evs[0].Peer)
	}
	wantKinds(t, "repeat beacon", tb.observe(see(peerA, inst1, addr1, ViaBroadcast), nil))
	if n := len(tb.snapshot()); n != 1 {
		t.Fatalf("table holds %d peers, want 1", n)
	}
}

func TestTableLostByTimeout(t *testing.T) {
	tb, c := newTestTable()
	tb.observe(see(peerA, inst1, addr1, ViaBroadcast), nil)
	c.Advance(testLost - time.Millisecond)
	wantKinds(t, "just before LostAfter", tb.expire(nil))
	c.Advance(time.Millisecond)
	evs := tb.expire(nil)
	wantKinds(t, "at LostAfter", evs, Lost)
	if evs[0].Reason != LostTimeout {
		t.Fatalf("reason %v, want timeout", evs[0].Reason)
	}
	if len(tb.snapshot()) != 0 {
		t.Fatal("lost peer still in the table")
	}
	// Back with the same instance (a healed partition): Found again.
	wantKinds(t, "return", tb.observe(see(peerA, inst1, addr1, ViaBroadcast), nil), Found)
}

func TestTableLostByLeaving(t *testing.T) {
	tb, _ := newTestTable()
	tb.observe(see(peerA, inst1, addr1, ViaBroadcast), nil)
	bye := see(peerA, inst1, addr1, ViaBroadcast)
	bye.Leaving = true
	evs := tb.observe(bye, nil)
	wantKinds(t, "leaving", evs, Lost)
	if evs[0].Reason != LostLeaving {
		t.Fatalf("reason %v, want leaving", evs[0].Reason)
	}
	// A beacon of that instance still in flight must not resurrect it.
	wantKinds(t, "late beacon", tb.observe(see(peerA, inst1, addr1, ViaBroadcast), nil))
	wantKinds(t, "second goodbye", tb.observe(bye, nil))
	// The program restarted.
	evs = tb.observe(see(peerA, inst2, addr1, ViaBroadcast), nil)
	wantKinds(t, "new instance", evs, Restarted)
	if evs[0].Prev.Instance != inst1 || evs[0].Peer.Instance != inst2 {
		t.Fatalf("Restarted prev %v now %v", evs[0].Prev.Instance, evs[0].Peer.Instance)
	}
}

func TestTableRestarted(t *testing.T) {
	tb, c := newTestTable()
	tb.observe(see(peerA, inst1, addr1, ViaBroadcast), nil)
	evs := tb.observe(see(peerA, inst2, addr2, ViaBroadcast), nil)
	wantKinds(t, "new instance while present", evs, Restarted)
	if evs[0].Peer.Addr != addr2 {
		t.Fatalf("Restarted addr %v, want %v", evs[0].Peer.Addr, addr2)
	}
	// A delayed beacon of the old instance is ignored, not a restart back.
	wantKinds(t, "old instance late", tb.observe(see(peerA, inst1, addr1, ViaBroadcast), nil))

	// Killed (no goodbye), lost by timeout, then back with a new instance.
	c.Advance(testLost)
	wantKinds(t, "timeout", tb.expire(nil), Lost)
	inst3 := uuid.New()
	wantKinds(t, "back after lost", tb.observe(see(peerA, inst3, addr2, ViaBroadcast), nil), Restarted)
}

func TestTableUpdated(t *testing.T) {
	tb, c := newTestTable()
	tb.observe(see(peerA, inst1, addr1, ViaBroadcast), nil)
	// A new port at the same address is taken at once.
	port := see(peerA, inst1, netip.AddrPortFrom(addr1.Addr(), 7001), ViaBroadcast)
	evs := tb.observe(port, nil)
	wantKinds(t, "port change", evs, Updated)
	if evs[0].Prev.Addr != addr1 || evs[0].Peer.Addr != port.Addr {
		t.Fatalf("Updated %v -> %v", evs[0].Prev.Addr, evs[0].Peer.Addr)
	}
	// A new address (a new DHCP lease) is taken once the old one has
	// been quiet for half of LostAfter.
	moved := see(peerA, inst1, netip.AddrPortFrom(addr2.Addr(), 7001), ViaBroadcast)
	wantKinds(t, "new address, old one just heard", tb.observe(moved, nil))
	c.Advance(testLost / 2)
	evs = tb.observe(moved, nil)
	wantKinds(t, "new address, old one quiet", evs, Updated)
	if evs[0].Peer.Addr != moved.Addr {
		t.Fatalf("Updated to %v, want %v", evs[0].Peer.Addr, moved.Addr)
	}
	renamed := moved
	renamed.Name = "other"
	wantKinds(t, "name change", tb.observe(renamed, nil), Updated)
}

// TestTableTwoLANsDoNotFlap: a node heard from two addresses in turn (it
// shares two LANs with us) keeps one address and produces no events.
func TestTableTwoLANsDoNotFlap(t *testing.T) {
	tb, c := newTestTable()
	wantKinds(t, "first", tb.observe(see(peerA, inst1, addr1, ViaBroadcast), nil), Found)
	for i := range 40 {
		c.Advance(testLost / 30)
		a := addr1
		if i%2 == 0 {
			a = addr2
		}
		wantKinds(t, "beacon from the other LAN", tb.observe(see(peerA, inst1, a, ViaBroadcast), nil))
	}
	if ps := tb.snapshot(); len(ps) != 1 || ps[0].Addr != addr1 {
		t.Fatalf("peers %+v, want one at %v", ps, addr1)
	}
}

func TestTableOnePeerFromTwoSources(t *testing.T) {
	tb, c := newTestTable()
	wantKinds(t, "broadcast", tb.observe(see(peerA, inst1, addr1, ViaBroadcast), nil), Found)
	// mDNS reports another address of the same node (a second interface):
	// the beacon's source address stays, no Updated, no second peer.
	wantKinds(t, "mdns", tb.observe(see(peerA, inst1, addr2, ViaMDNS), nil))
	ps := tb.snapshot()
	if len(ps) != 1 || ps[0].Via != ViaBroadcast|ViaMDNS || ps[0].Addr != addr1 {
		t.Fatalf("peers %+v, want one via broadcast+mdns at %v", ps, addr1)
	}
	// Broadcast goes quiet, mDNS still answers: the peer stays, now by
	// mDNS alone, and its address follows mDNS.
	for range 3 {
		c.Advance(testLost / 2)
		tb.observe(see(peerA, inst1, addr2, ViaMDNS), nil)
	}
	wantKinds(t, "sweep", tb.expire(nil))
	ps = tb.snapshot()
	if len(ps) != 1 || ps[0].Via != ViaMDNS || ps[0].Addr != addr2 {
		t.Fatalf("peers %+v, want one via mdns at %v", ps, addr2)
	}
}

func TestTableInvisible(t *testing.T) {
	tb, _ := newTestTable()
	other := see(peerA, inst1, addr1, ViaBroadcast)
	other.Mesh = "other"
	wantKinds(t, "other mesh", tb.observe(other, nil))
	wantKinds(t, "self", tb.observe(see(selfID, inst1, addr1, ViaBroadcast), nil))
	unknownBye := see(peerB, inst1, addr1, ViaBroadcast)
	unknownBye.Leaving = true
	wantKinds(t, "goodbye of a stranger", tb.observe(unknownBye, nil))
	if len(tb.snapshot()) != 0 {
		t.Fatal("table not empty")
	}
}

func TestTableMaxPeers(t *testing.T) {
	tb, _ := newTestTable()
	for range tb.maxPeers + 3 {
		tb.observe(see(uuid.New(), inst1, addr1, ViaBroadcast), nil)
	}
	if n := len(tb.snapshot()); n != tb.maxPeers {
		t.Fatalf("table holds %d peers, want the cap %d", n, tb.maxPeers)
	}
	if tb.dropped != 3 {
		t.Fatalf("dropped %d, want 3", tb.dropped)
	}
}

func TestTableTwoPeersLostTogether(t *testing.T) {
	tb, c := newTestTable()
	tb.observe(see(peerB, inst1, addr2, ViaBroadcast), nil)
	tb.observe(see(peerA, inst1, addr1, ViaSeed), nil)
	c.Advance(testLost)
	evs := tb.expire(nil)
	wantKinds(t, "both", evs, Lost, Lost)
	if evs[0].Peer.ID != peerA || evs[1].Peer.ID != peerB {
		t.Fatal("Lost events not in id order")
	}
}

func TestEventString(t *testing.T) {
	ev := Event{Kind: Lost, Reason: LostTimeout, Peer: Peer{ID: peerA, Name: "n1", Addr: addr1, Via: ViaBroadcast | ViaMDNS}}
	if got, want := ev.String(), "lost 00000000 (n1) at 10.0.0.1:7000 via broadcast+mdns: timeout"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

// TestTableGraveDoesNotBlock: a leaving beacon (unkeyed, anyone can forge
// one) keeps the instance out only for leaveHold; a node that is still
// there beacons again and is found.
func TestTableGraveDoesNotBlock(t *testing.T) {
	tb, c := newTestTable()
	tb.observe(see(peerA, inst1, addr1, ViaBroadcast), nil)
	bye := see(peerA, inst1, addr1, ViaBroadcast)
	bye.Leaving = true
	for range 3 {
		tb.observe(bye, nil)
	}
	wantKinds(t, "beacon in flight", tb.observe(see(peerA, inst1, addr1, ViaBroadcast), nil))
	c.now = c.now.Add(tb.leaveHold)
	wantKinds(t, "beacon after the hold", tb.observe(see(peerA, inst1, addr1, ViaBroadcast), nil), Found)
}
