package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// loopbackConfig keeps discovery on the loopback interface: beacons go to
// 127.255.255.255 only and are believed only from 127/8, mDNS is off (lo
// cannot multicast), and timers are short.
func loopbackConfig(t testing.TB, beaconPort int) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Mesh = "loop"
	cfg.Port = 7000
	cfg.BeaconPort = beaconPort
	cfg.Interfaces = []string{"lo"}
	cfg.Destinations = []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.255.255.255"), uint16(beaconPort))}
	cfg.MDNS = false
	cfg.Interval = 100 * time.Millisecond
	cfg.Jitter = 10 * time.Millisecond
	cfg.LostAfter = 400 * time.Millisecond
	cfg.InterfaceRefresh = time.Second
	return cfg
}

func TestLoopbackNodesFindEachOther(t *testing.T) {
	before := countResources()
	port := freeUDPPort(t)
	const n = 3
	ds := make([]*Discoverer, n)
	evs := make([]*events, n)
	for i := range n {
		cfg := loopbackConfig(t, port)
		cfg.Name = fmt.Sprintf("node%d", i)
		cfg.Port = 7000 + i
		evs[i] = newEvents()
		cfg.OnEvent = evs[i].on
		d, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		ds[i] = d
	}
	// Every node finds every other one, each exactly once.
	for i := range n {
		found := map[uuid.UUID]bool{}
		for len(found) < n-1 {
			ev := evs[i].waitFor(t, 2*time.Second, fmt.Sprintf("node%d to find the others", i), func(ev Event) bool { return ev.Kind == Found })
			if found[ev.Peer.ID] {
				t.Fatalf("node%d: Found twice for %v", i, ev.Peer.ID)
			}
			if ev.Peer.ID == ds[i].Self().ID {
				t.Fatalf("node%d found itself", i)
			}
			found[ev.Peer.ID] = true
			if ev.Peer.Addr.Addr() != netip.MustParseAddr("127.0.0.1") {
				t.Fatalf("node%d: peer address %v, want 127.0.0.1", i, ev.Peer.Addr)
			}
		}
		if got := len(ds[i].Peers()); got != n-1 {
			t.Fatalf("node%d: Peers() has %d, want %d", i, got, n-1)
		}
	}
	// Check a peer's advertised port and name made it across.
	for _, p := range ds[0].Peers() {
		want := ds[1].Self()
		if p.ID == want.ID && (p.Addr.Port() != want.Port || p.Name != want.Name) {
			t.Fatalf("peer %+v, want port %d name %q", p, want.Port, want.Name)
		}
	}

	// Node 2 leaves: the others see it Lost for leaving, well before LostAfter.
	gone := ds[2].Self().ID
	start := time.Now()
	ds[2].Close()
	for i := range 2 {
		ev := evs[i].waitFor(t, time.Second, "Lost after leaving", func(ev Event) bool { return ev.Kind == Lost && ev.Peer.ID == gone })
		if ev.Reason != LostLeaving {
			t.Fatalf("node%d: Lost reason %v, want leaving", i, ev.Reason)
		}
	}
	// Far sooner than LostAfter (400 ms) plus slack: it was the goodbye.
	if el := time.Since(start); el > 300*time.Millisecond {
		t.Errorf("Lost on leaving took %v", el)
	}

	// It comes back with the same node id and a new instance: Restarted.
	cfg := loopbackConfig(t, port)
	cfg.NodeID = gone
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ev := evs[0].waitFor(t, 2*time.Second, "Restarted", func(ev Event) bool { return ev.Peer.ID == gone })
	if ev.Kind != Restarted {
		t.Fatalf("comeback reported as %v, want restarted", ev.Kind)
	}
	d.Close()
	for _, d := range ds {
		d.Close()
		d.Close() // idempotent
	}
	checkNoLeak(t, before)
}

func TestLoopbackOtherMeshInvisible(t *testing.T) {
	port := freeUDPPort(t)
	a := loopbackConfig(t, port)
	b := loopbackConfig(t, port)
	b.Mesh = "other"
	c := loopbackConfig(t, port)
	ea, eb := newEvents(), newEvents()
	a.OnEvent, b.OnEvent = ea.on, eb.on
	var ds []*Discoverer
	for _, cfg := range []Config{a, b, c} {
		d, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		ds = append(ds, d)
	}
	// a and c share a mesh: a finds c. b's beacons reach a too (a counts
	// them as ignored): once several have, none may have made a peer.
	ea.waitFor(t, 2*time.Second, "a to find c", func(ev Event) bool { return ev.Kind == Found && ev.Peer.ID == ds[2].Self().ID })
	deadline := time.Now().Add(5 * time.Second)
	for ds[0].Stats().Ignored < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("a ignored %d beacons of b's mesh, want at least 3", ds[0].Stats().Ignored)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ps := ds[0].Peers(); len(ps) != 1 {
		t.Fatalf("a sees %d peers, want 1 (c only)", len(ps))
	}
	if ps := ds[1].Peers(); len(ps) != 0 {
		t.Fatalf("b of another mesh sees %d peers", len(ps))
	}
	if ds[0].Stats().Ignored == 0 {
		t.Fatal("a ignored no beacon of mesh other; were any sent?")
	}
}

func TestLoopbackLostByTimeout(t *testing.T) {
	port := freeUDPPort(t)
	a := loopbackConfig(t, port)
	ea := newEvents()
	a.OnEvent = ea.on
	da, err := New(a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { da.Close() })
	db, err := New(loopbackConfig(t, port))
	if err != nil {
		t.Fatal(err)
	}
	ea.waitFor(t, 2*time.Second, "Found", func(ev Event) bool { return ev.Kind == Found })
	// Silence b without a goodbye: close its socket under it.
	db.conn.close()
	start := time.Now()
	ev := ea.waitFor(t, 4*a.LostAfter, "Lost by timeout", func(ev Event) bool { return ev.Kind == Lost })
	el := time.Since(start)
	if ev.Reason != LostTimeout {
		t.Fatalf("reason %v, want timeout", ev.Reason)
	}
	if el > a.LostAfter+200*time.Millisecond { // slack for a loaded machine
		t.Fatalf("Lost after %v, LostAfter is %v", el, a.LostAfter)
	}
	t.Logf("Lost by timeout after %v (LostAfter %v)", el, a.LostAfter)
	db.Close()
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Mesh, ok.Port = "m", 1
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, f := range map[string]func(*Config){
		"no mesh":           func(c *Config) { c.Mesh = "" },
		"no port":           func(c *Config) { c.Port = 0 },
		"beacon port":       func(c *Config) { c.BeaconPort = 70000 },
		"lost too soon":     func(c *Config) { c.LostAfter = c.Interval },
		"jitter":            func(c *Config) { c.Jitter = c.Interval },
		"nothing on":        func(c *Config) { c.Broadcast, c.MDNS = false, false },
		"bad service":       func(c *Config) { c.MDNSService = "lanmesh" },
		"ipv6 destination":  func(c *Config) { c.Destinations = []netip.AddrPort{netip.MustParseAddrPort("[::1]:9")} },
		"mdns slower":       func(c *Config) { c.MDNSInterval = c.LostAfter },
		"long name":         func(c *Config) { c.Name = string(make([]byte, MaxNameLen+1)) },
		"zero refresh":      func(c *Config) { c.InterfaceRefresh = 0 },
		"zero queued limit": func(c *Config) { c.MaxQueuedEvents = 0 },
	} {
		c := ok
		f(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
}

// TestLoopbackSeeds has two nodes on different beacon ports, with broadcast
// and mDNS off: only their seeds (each other's beacon address) join them.
func TestLoopbackSeeds(t *testing.T) {
	before := countResources()
	pa, pb := freeUDPPort(t), freeUDPPort(t)
	a := loopbackConfig(t, pa)
	b := loopbackConfig(t, pb)
	a.Broadcast, b.Broadcast = false, false
	a.Seeds = []string{fmt.Sprintf("127.0.0.1:%d", pb)}
	b.Seeds = []string{fmt.Sprintf("127.0.0.1:%d", pa)}
	ea, eb := newEvents(), newEvents()
	a.OnEvent, b.OnEvent = ea.on, eb.on
	da, err := New(a)
	if err != nil {
		t.Fatal(err)
	}
	defer da.Close()
	db, err := New(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ev   *events
		peer *Discoverer
	}{{ea, db}, {eb, da}} {
		ev := c.ev.waitFor(t, 2*time.Second, "Found via seed", func(ev Event) bool { return ev.Kind == Found })
		if ev.Peer.ID != c.peer.Self().ID || ev.Peer.Via != ViaSeed {
			t.Fatalf("found %v via %v, want %v via seed", ev.Peer.ID, ev.Peer.Via, c.peer.Self().ID)
		}
	}
	// A leaving beacon goes to seeds too.
	db.Close()
	ev := ea.waitFor(t, time.Second, "Lost", func(ev Event) bool { return ev.Kind == Lost })
	if ev.Reason != LostLeaving {
		t.Fatalf("Lost reason %v, want leaving", ev.Reason)
	}
	da.Close()
	checkNoLeak(t, before)
}

func TestNewErrors(t *testing.T) {
	bad := loopbackConfig(t, freeUDPPort(t))
	bad.Mesh = ""
	if _, err := New(bad); !errors.Is(err, ErrConfig) {
		t.Fatalf("New with no mesh: %v, want ErrConfig", err)
	}
	// A program that holds the port without sharing it keeps us out, and
	// New says so rather than running deaf.
	hog, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	defer hog.Close()
	cfg := loopbackConfig(t, hog.LocalAddr().(*net.UDPAddr).Port)
	if d, err := New(cfg); !errors.Is(err, ErrListen) {
		if d != nil {
			d.Close()
		}
		t.Fatalf("New on a held port: %v, want ErrListen", err)
	}
}

// recordCounter counts log records at or above a level.
type recordCounter struct {
	level slog.Level
	n     *atomic.Int64
}

func (h recordCounter) Enabled(_ context.Context, l slog.Level) bool { return true }
func (h recordCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= h.level {
		h.n.Add(1)
	}
	return nil
}
func (h recordCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordCounter) WithGroup(string) slog.Handler      { return h }

// TestLoopbackForeignPackets sends datagrams of other programs to the
// beacon port: they are counted and ignored, and logged below Info only.
func TestLoopbackForeignPackets(t *testing.T) {
	port := freeUDPPort(t)
	cfg := loopbackConfig(t, port)
	var loud atomic.Int64
	cfg.Logger = slog.New(recordCounter{level: slog.LevelInfo, n: &loud})
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
	good, _ := goldenBeacon.AppendBinary(nil)
	junk := [][]byte{
		[]byte("hello"),
		{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0}, // a DNS query header
		append(good[:len(good):len(good)], 0),                  // a beacon with a trailing byte
		make([]byte, 1400),
	}
	for _, p := range junk {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for d.Stats().Rejected < uint64(len(junk)) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := d.Stats().Rejected; got != uint64(len(junk)) {
		t.Fatalf("rejected %d datagrams, want %d", got, len(junk))
	}
	if len(d.Peers()) != 0 {
		t.Fatalf("junk made peers: %v", d.Peers())
	}
	if n := loud.Load(); n != 0 {
		t.Fatalf("%d log records at Info or above for foreign packets", n)
	}
}
