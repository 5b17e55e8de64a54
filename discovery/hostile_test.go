package discovery

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestPlausibleAddresses: the addresses a node would dial on a beacon's
// word are those of its LAN's subnets, never another subnet, the subnet's
// own or broadcast address, multicast, or loopback unless discovery runs
// on loopback.
func TestPlausibleAddresses(t *testing.T) {
	d := &Discoverer{prefixes: []netip.Prefix{netip.MustParsePrefix("10.77.1.5/24")}}
	for addr, want := range map[string]bool{
		"10.77.1.2":        true,
		"10.77.1.254":      true,
		"10.77.1.0":        false, // the subnet's own address
		"10.77.1.255":      false, // its broadcast address
		"10.99.0.1":        false, // another subnet
		"10.77.2.1":        false,
		"127.0.0.1":        false, // loopback, and the node is not on loopback
		"224.0.0.251":      false,
		"255.255.255.255":  false,
		"0.0.0.0":          false,
		"::1":              false,
		"::ffff:10.77.1.2": true,
	} {
		if got := d.plausibleLocked(netip.MustParseAddr(addr)); got != want {
			t.Errorf("%s: plausible %v, want %v", addr, got, want)
		}
	}
	d.loopback = true
	if !d.plausibleLocked(netip.MustParseAddr("127.0.0.1")) {
		t.Error("a node on loopback does not believe loopback")
	}
}

// TestSourceLimiterBounded: a flood from any number of source addresses
// gets at most the fixed table's worth of tokens, and the total cap; an
// address over its own rate is refused.
func TestSourceLimiterBounded(t *testing.T) {
	l := newSourceLimiter(50, 100, 1000)
	now := time.Unix(1000, 0)
	allowed := 0
	for i := range 100000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if l.allow(a, now) {
			allowed++
		}
	}
	if allowed != 2000 {
		t.Errorf("100,000 spoofed sources at one instant: %d allowed, want the total burst, 2000", allowed)
	}
	// One source alone, a second later: its burst, then nothing.
	l = newSourceLimiter(50, 100, 1000)
	one := netip.MustParseAddr("10.0.0.1")
	n := 0
	for range 1000 {
		if l.allow(one, now) {
			n++
		}
	}
	if n != 100 {
		t.Errorf("one source: %d allowed at once, want its burst, 100", n)
	}
	if newSourceLimiter(0, 1, 1) != nil || !(*sourceLimiter)(nil).allow(one, now) {
		t.Error("a zero rate is not the no-limit nil limiter")
	}
}

// TestQueryNotAnAmplifier: twenty query beacons from one address within an
// interval get one unicast answer; the rest are counted.
func TestQueryNotAnAmplifier(t *testing.T) {
	port := freeUDPPort(t)
	cfg := loopbackConfig(t, port)
	cfg.Interval = time.Second // so that the test's queries fall in one interval
	cfg.Jitter = 100 * time.Millisecond
	cfg.LostAfter = 3 * time.Second
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := Beacon{Flags: FlagQuery, ID: uuid.New(), Instance: uuid.New(), Port: 9, Mesh: "loop", Name: "asker"}
	p, err := q.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	for range 20 {
		if _, err := c.WriteToUDP(p, to); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 2*time.Second, "19 queries unanswered", func() bool { return d.Stats().QueriesUnanswered == 19 })
	answers := 0
	buf := make([]byte, MaxBeaconLen)
	for {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			break
		}
		if b, err := ParseBeacon(buf[:n]); err == nil && b.ID == d.Self().ID {
			answers++
		}
	}
	if answers != 1 {
		t.Errorf("20 queries from one address got %d unicast answers, want 1", answers)
	}
}

// TestContestedClaims: a claim that Config.Contest disputes (a linked node
// restarted or leaves) changes nothing in the table and is counted; one it
// does not dispute is believed.
func TestContestedClaims(t *testing.T) {
	port := freeUDPPort(t)
	cfg := loopbackConfig(t, port)
	linked, linkedInst := uuid.New(), uuid.New()
	var asked atomic.Int64
	cfg.Contest = func(id, instance uuid.UUID, leaving bool) bool {
		asked.Add(1)
		return id == linked && (instance != linkedInst) != leaving
	}
	ev := newEvents()
	cfg.OnEvent = ev.on
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	send := func(b Beacon) {
		p, err := b.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	honest := Beacon{ID: linked, Instance: linkedInst, Port: 9, Mesh: "loop", Name: "honest"}
	send(honest)
	ev.waitFor(t, 2*time.Second, "the linked node found", func(e Event) bool { return e.Kind == Found && e.Peer.ID == linked })
	forged := honest
	forged.Instance = uuid.New()
	send(forged) // "it restarted"
	bye := honest
	bye.Flags = FlagLeaving
	send(bye) // "it leaves"
	waitFor(t, 2*time.Second, "two claims disputed", func() bool { return d.Stats().Disputed == 2 })
	if p := d.Peers(); len(p) != 1 || p[0].Instance != linkedInst {
		t.Fatalf("after disputed claims the table holds %+v", p)
	}
	// Another node's goodbye is not disputed.
	other := Beacon{ID: uuid.New(), Instance: uuid.New(), Port: 9, Mesh: "loop"}
	send(other)
	ev.waitFor(t, 2*time.Second, "another node", func(e Event) bool { return e.Kind == Found && e.Peer.ID == other.ID })
	other.Flags = FlagLeaving
	send(other)
	ev.waitFor(t, 2*time.Second, "its goodbye", func(e Event) bool { return e.Kind == Lost && e.Peer.ID == other.ID })
	if d.Stats().Disputed != 2 || asked.Load() < 5 {
		t.Fatalf("disputed %d, asked %d", d.Stats().Disputed, asked.Load())
	}
}
