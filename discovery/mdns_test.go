package discovery

import (
	"net"
	"strings"
	"testing"
	"unicode/utf8"

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
	s, ok := parseEntry(good(), false)
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
		if _, ok := parseEntry(e, false); ok {
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
