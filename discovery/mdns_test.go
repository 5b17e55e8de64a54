package discovery

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/hashicorp/mdns"
)

func TestParseMDNSEntry(t *testing.T) {
	good := func() *mdns.ServiceEntry {
		return &mdns.ServiceEntry{
			Name:   peerA.String() + "._lanmesh._tcp.local.",
			AddrV4: net.IPv4(10, 77, 1, 2),
			Port:   7000,
			InfoFields: []string{"lanmesh=1", "id=" + peerA.String(), "inst=" + inst1.String(),
				"mesh=m", "name=node a"},
		}
	}
	s, ok := parseEntry(good())
	if !ok {
		t.Fatal("valid entry rejected")
	}
	if s.ID != peerA || s.Instance != inst1 || s.Mesh != "m" || s.Name != "node a" ||
		s.Addr.String() != "10.77.1.2:7000" || s.Via != ViaMDNS {
		t.Fatalf("sighting %+v", s)
	}
	for name, f := range map[string]func(e *mdns.ServiceEntry){
		"other program":  func(e *mdns.ServiceEntry) { e.InfoFields = []string{"path=/"} },
		"other version":  func(e *mdns.ServiceEntry) { e.InfoFields[0] = "lanmesh=2" },
		"bad id":         func(e *mdns.ServiceEntry) { e.InfoFields[1] = "id=xyz" },
		"nil instance":   func(e *mdns.ServiceEntry) { e.InfoFields[2] = "inst=00000000-0000-0000-0000-000000000000" },
		"no mesh":        func(e *mdns.ServiceEntry) { e.InfoFields[3] = "mesh=" },
		"zero port":      func(e *mdns.ServiceEntry) { e.Port = 0 },
		"huge port":      func(e *mdns.ServiceEntry) { e.Port = 70000 },
		"ipv6 only":      func(e *mdns.ServiceEntry) { e.AddrV4 = nil; e.AddrV6 = net.ParseIP("fe80::1") },
		"unspecified ip": func(e *mdns.ServiceEntry) { e.AddrV4 = net.IPv4zero },
	} {
		e := good()
		f(e)
		if _, ok := parseEntry(e); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMDNSTXTFitsOneString(t *testing.T) {
	a := &mdnsAgent{d: &Discoverer{self: goldenBeacon}}
	a.d.self.Name = strings.Repeat("é", 127) // 254 bytes
	for _, txt := range a.txt() {
		if len(txt) > maxTXTLen || !utf8.ValidString(txt) {
			t.Fatalf("TXT string of %d bytes, valid UTF-8 %v", len(txt), utf8.ValidString(txt))
		}
	}
}

// TestMDNSKeyedRevealsNothing: a keyed node's TXT records are the version
// and a sealed beacon, and its host and instance names are a random token:
// nothing names the mesh, the node or its id. Another keyed node opens the
// record into a sighting.
func TestMDNSKeyedRevealsNothing(t *testing.T) {
	ring := testRing(1)
	mk := func(self Beacon) *mdnsAgent {
		d := &Discoverer{self: self, cfg: Config{Mesh: self.Mesh}, log: slog.New(slog.DiscardHandler)}
		d.keys.Store(ring.Derive(self.Mesh))
		d.replay, d.replayMDNS = newReplayGuard(8), newReplayGuard(8)
		return newMDNSAgent(d)
	}
	self := goldenBeacon
	self.Flags = 0
	// Names long enough that the random signature cannot show them by
	// chance (the golden "n1" did, in 1 CI run: base64 holds any 2
	// characters about once in 30 records).
	self.Name, self.Mesh = "kitchen-laptop", "family-mesh"
	a := mk(self)
	txt := a.txt()
	if len(txt) != 2 || txt[0] != "lanmesh=3" || !strings.HasPrefix(txt[1], "sig=") || len(txt[1]) > maxTXTLen {
		t.Fatalf("keyed TXT %q", txt)
	}
	for _, s := range append(txt, a.publicName()) {
		for _, secret := range []string{self.Mesh, self.Name, self.ID.String()[:8], self.Instance.String()[:8]} {
			if strings.Contains(s, secret) {
				t.Errorf("%q shows %q", s, secret)
			}
		}
	}
	other := goldenBeacon
	other.ID, other.Mesh = uuid.New(), self.Mesh
	b := mk(other)
	s, ok := b.verify(&mdns.ServiceEntry{AddrV4: net.IPv4(10, 77, 1, 2), Port: int(self.Port), InfoFields: txt})
	if !ok || s.ID != self.ID || s.Instance != self.Instance || s.Mesh != self.Mesh || s.Addr.String() != "10.77.1.2:7946" || !s.NoName {
		t.Fatalf("verify: %v %+v", ok, s)
	}
	// The port of the SRV record must be the sealed one.
	if _, ok := b.verify(&mdns.ServiceEntry{AddrV4: net.IPv4(10, 77, 1, 2), Port: 22, InfoFields: txt}); ok {
		t.Fatal("a sealed record with another SRV port was believed")
	}
}
